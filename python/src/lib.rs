//! `foresight._foresight`: the Rust side of the Python package.
//!
//! A thin layer over [`foresight::curve`]: [`predict`] runs the learning-curve
//! predictor with the GIL released, and [`Forecast`] answers questions about
//! the posterior at any epoch. `foresight/__init__.py` wraps both with
//! NumPy conversions and docstrings; `foresight/optuna.py` builds the Optuna
//! pruner on them. Errors of the library become `ValueError` with its
//! message.

use std::borrow::Cow;

use foresight::curve::{self, Metric, Predictive, PredictorConfig};
use foresight::study::{Direction, Objective};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

fn value_error(e: foresight::Error) -> PyErr {
    PyValueError::new_err(e.to_string())
}

fn metric(name: &str) -> PyResult<Metric> {
    match name {
        "accuracy" => Ok(Metric::Accuracy),
        "loss" => Ok(Metric::Loss),
        other => Err(PyValueError::new_err(format!(
            "metric must be 'accuracy' (larger is better, values in [0, 1]) or 'loss' \
             (smaller is better, values >= 0), not {other:?}"
        ))),
    }
}

/// The posterior over the rest of a learning curve (see `foresight.Forecast`).
#[pyclass(frozen, module = "foresight._foresight")]
struct Forecast {
    inner: curve::Forecast,
    observed: usize,
    /// The predictive at the horizon, asked for most.
    last: Predictive,
}

impl Forecast {
    /// The predictive after `epoch` (1-based; the horizon by default): the
    /// one computed with the forecast, or a new one for another epoch.
    fn at(&self, epoch: Option<usize>) -> PyResult<Cow<'_, Predictive>> {
        match epoch {
            None => Ok(Cow::Borrowed(&self.last)),
            Some(e) if e == self.inner.horizon() => Ok(Cow::Borrowed(&self.last)),
            Some(e) if e >= 1 => Ok(Cow::Owned(self.inner.at(e))),
            Some(_) => Err(PyValueError::new_err("epochs count from 1")),
        }
    }
}

#[pymethods]
impl Forecast {
    #[getter]
    fn horizon(&self) -> usize {
        self.inner.horizon()
    }

    #[getter]
    fn observed(&self) -> usize {
        self.observed
    }

    #[getter]
    fn families(&self) -> Vec<&'static str> {
        self.inner.families().iter().map(|f| f.name()).collect()
    }

    #[getter]
    fn is_fallback(&self) -> bool {
        self.inner.is_fallback()
    }

    #[getter]
    fn is_diverged(&self) -> bool {
        self.inner.is_diverged()
    }

    #[pyo3(signature = (epoch=None))]
    fn mean(&self, epoch: Option<usize>) -> PyResult<f64> {
        Ok(self.at(epoch)?.mean())
    }

    #[pyo3(signature = (epoch=None))]
    fn std(&self, epoch: Option<usize>) -> PyResult<f64> {
        Ok(self.at(epoch)?.std())
    }

    #[pyo3(signature = (qs, epoch=None))]
    fn quantiles(&self, py: Python<'_>, qs: Vec<f64>, epoch: Option<usize>) -> PyResult<Vec<f64>> {
        if let Some(q) = qs.iter().find(|q| !(**q > 0.0 && **q < 1.0)) {
            return Err(PyValueError::new_err(format!(
                "a quantile level must lie in (0, 1), got {q}"
            )));
        }
        let p = self.at(epoch)?;
        Ok(py.detach(|| qs.iter().map(|&q| p.quantile(q)).collect()))
    }

    #[pyo3(signature = (value, epoch=None))]
    fn prob_better(&self, value: f64, epoch: Option<usize>) -> PyResult<f64> {
        if value.is_nan() {
            return Err(PyValueError::new_err("the value to beat is NaN"));
        }
        Ok(self.at(epoch)?.prob_better(value))
    }

    #[pyo3(signature = (n, seed, epoch=None))]
    fn samples(
        &self,
        py: Python<'_>,
        n: usize,
        seed: u64,
        epoch: Option<usize>,
    ) -> PyResult<Vec<f64>> {
        let p = self.at(epoch)?;
        Ok(py.detach(|| p.sample(n, seed)))
    }
}

/// Runs the predictor on `values` (metric units, one per epoch from the
/// first) for a run of `horizon` epochs, with the GIL released.
#[pyfunction]
#[pyo3(signature = (values, horizon, metric_name, seed, parallel=true))]
fn predict(
    py: Python<'_>,
    values: Vec<f64>,
    horizon: usize,
    metric_name: &str,
    seed: u64,
    parallel: bool,
) -> PyResult<Forecast> {
    let metric = metric(metric_name)?;
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(PyValueError::new_err(format!(
            "value {i} of the curve is {} (a diverged run needs no forecast: it ends at the \
             metric's worst value)",
            values[i]
        )));
    }
    let config = PredictorConfig {
        seed,
        parallel,
        ..PredictorConfig::default()
    };
    let observed = values.len();
    let inner = py
        .detach(|| config.predict(&values, horizon, metric))
        .map_err(value_error)?;
    let last = inner.final_value();
    Ok(Forecast {
        inner,
        observed,
        last,
    })
}

/// How the predictor sees an objective (`foresight::study::Objective`):
/// `(metric, offset, width)` with `u = (v - offset) / width` the value in the
/// predictor's units, or a `ValueError` that says which bound to declare.
#[pyfunction]
#[pyo3(signature = (maximize, low=None, high=None))]
fn curve_units(
    maximize: bool,
    low: Option<f64>,
    high: Option<f64>,
) -> PyResult<(&'static str, f64, f64)> {
    let objective = Objective {
        direction: if maximize {
            Direction::Maximize
        } else {
            Direction::Minimize
        },
        low,
        high,
    };
    objective.validate().map_err(value_error)?;
    let units = objective.curve_units().ok_or_else(|| {
        PyValueError::new_err(if maximize {
            "a maximised metric needs the best value it can reach: metric='accuracy' for a \
             score in [0, 1], metric=(0, 100) for a percentage, metric=(None, 0) for a \
             log-likelihood"
        } else {
            "a minimised metric needs the best value it can reach: metric='loss' for a loss \
             >= 0, metric=(LOW, None) for a metric bounded below by LOW"
        })
    })?;
    let name = match units.metric {
        Metric::Accuracy => "accuracy",
        Metric::Loss => "loss",
    };
    Ok((name, units.offset, units.width))
}

#[pymodule]
fn _foresight(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Forecast>()?;
    m.add_function(wrap_pyfunction!(predict, m)?)?;
    m.add_function(wrap_pyfunction!(curve_units, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
