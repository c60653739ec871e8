//! A task's pool of logged curves, and what makes it a tuning problem: the
//! rank-encoded cube its configurations live in ([`Pool`]), a sampler
//! restricted to the pool ([`PoolSampler`]) and a logged curve as a
//! trainable ([`LoggedCurve`]).

use std::sync::{Arc, Mutex};

use foresight::error::{Error, Result};
use foresight::sampler::Sampler;
use foresight::space::{Config, Domain, Param, Scale, Space, Value};
use foresight::study::Objective;
use foresight::trial::{Trainable, TrialError};

use crate::curveset::{CurveRecord, ParamValue, objective_of};

/// One task: a pool of configurations with their logged curves.
#[derive(Debug, Clone)]
pub struct Pool {
    pub source: String,
    pub task: String,
    /// The direction of the curves' metric, with the range their values
    /// show ([`objective_of`]).
    pub objective: Objective,
    /// Length of every curve, `T`.
    pub horizon: usize,
    /// The encoded cube.
    pub space: Space,
    /// Each configuration, encoded (rank or one-hot), in pool order.
    pub configs: Vec<Config>,
    /// Logged values (`NaN` where the run diverged).
    pub curves: Vec<Vec<f64>>,
    /// Each curve's `config_id`.
    pub ids: Vec<u64>,
}

impl Pool {
    /// Groups curve records into pools, one per `(source, task)`, in order of
    /// first appearance. Errors: a task whose curves differ in length or in
    /// metric, or whose configurations name different hyperparameters.
    pub fn from_records(records: Vec<CurveRecord>) -> Result<Vec<Pool>> {
        let mut groups: Vec<((String, String), Vec<CurveRecord>)> = Vec::new();
        for r in records {
            let key = (r.source.clone(), r.task.clone());
            match groups.iter_mut().find(|g| g.0 == key) {
                Some(g) => g.1.push(r),
                None => groups.push((key, vec![r])),
            }
        }
        groups.into_iter().map(|(_, rs)| Pool::new(rs)).collect()
    }

    /// The pool of one task's records.
    pub fn new(records: Vec<CurveRecord>) -> Result<Pool> {
        let first = records
            .first()
            .ok_or_else(|| Error::invalid("pool", "no curves"))?;
        let (source, task) = (first.source.clone(), first.task.clone());
        let what = |m: String| Error::invalid("pool", format!("task `{task}`: {m}"));
        let horizon = first.values.len();
        let names: Vec<String> = first.config.keys().cloned().collect();
        for r in &records {
            if r.values.len() != horizon {
                return Err(what(format!(
                    "curves of different lengths ({} and {}, config {}): replay needs equal lengths",
                    horizon,
                    r.values.len(),
                    r.config_id
                )));
            }
            if r.higher_is_better != first.higher_is_better {
                return Err(what("curves disagree on higher_is_better".into()));
            }
            if !r.config.keys().eq(names.iter()) {
                return Err(what(format!(
                    "config {} names different hyperparameters than config {}",
                    r.config_id, first.config_id
                )));
            }
        }
        if horizon < 2 {
            return Err(what("curves need at least two epochs".into()));
        }
        // Encode each hyperparameter.
        let n = records.len();
        let mut params = Vec::new();
        let mut columns: Vec<Vec<Value>> = Vec::new();
        for name in &names {
            let numbers: Option<Vec<f64>> = records
                .iter()
                .map(|r| match &r.config[name] {
                    ParamValue::Number(x) => Some(*x),
                    ParamValue::Text(_) => None,
                })
                .collect();
            match numbers {
                Some(x) => {
                    params.push(Param {
                        name: name.clone(),
                        domain: Domain::Float {
                            low: 0.0,
                            high: 1.0,
                            scale: Scale::Linear,
                        },
                        condition: None,
                    });
                    columns.push(ranks(&x).into_iter().map(Value::Float).collect());
                }
                None => {
                    let text: Vec<String> = records
                        .iter()
                        .map(|r| match &r.config[name] {
                            ParamValue::Number(x) => x.to_string(),
                            ParamValue::Text(s) => s.clone(),
                        })
                        .collect();
                    let mut choices = text.clone();
                    choices.sort();
                    choices.dedup();
                    params.push(Param {
                        name: name.clone(),
                        domain: Domain::Categorical { choices },
                        condition: None,
                    });
                    columns.push(text.into_iter().map(Value::Str).collect());
                }
            }
        }
        if params.is_empty() {
            return Err(what("configurations have no hyperparameters".into()));
        }
        let space = Space::new(params)?;
        let configs = (0..n)
            .map(|i| {
                names
                    .iter()
                    .zip(&columns)
                    .map(|(name, col)| (name.clone(), col[i].clone()))
                    .collect()
            })
            .collect();
        Ok(Pool {
            source,
            task,
            objective: objective_of(&records),
            horizon,
            space,
            configs,
            curves: records.iter().map(|r| r.values.clone()).collect(),
            ids: records.iter().map(|r| r.config_id).collect(),
        })
    }

    /// Final value of configuration `i`; the objective's worst for a curve
    /// that diverged.
    pub fn final_value(&self, i: usize) -> f64 {
        let c = &self.curves[i];
        if c.iter().all(|v| v.is_finite()) {
            c[self.horizon - 1]
        } else {
            self.objective.worst()
        }
    }

    /// `(y*, y_med)`: the best and the median final value of the pool
    /// (non-finite finals count as worst).
    pub fn reference_values(&self) -> (f64, f64) {
        let mut finals: Vec<f64> = (0..self.curves.len())
            .map(|i| self.final_value(i))
            .collect();
        // Best first.
        let sign = self.objective.sign();
        finals.sort_by(|a, b| (sign * a).total_cmp(&(sign * b)));
        let n = finals.len();
        let med = if n % 2 == 1 {
            finals[n / 2]
        } else {
            let (a, b) = (finals[n / 2 - 1], finals[n / 2]);
            if a.is_finite() && b.is_finite() {
                0.5 * (a + b)
            } else {
                b
            }
        };
        (finals[0], med)
    }

    /// Normalised regret `|y* − y| / |y* − y_med|` of an incumbent value
    /// (`inf` without one).
    pub fn regret(&self, incumbent: Option<f64>) -> f64 {
        let (best, med) = self.reference_values();
        match incumbent {
            None => f64::INFINITY,
            Some(y) => {
                let scale = (best - med).abs();
                if scale > 0.0 && scale.is_finite() {
                    (best - y).abs() / scale
                } else {
                    (best - y).abs()
                }
            }
        }
    }
}

/// Ranks scaled to `[0, 1]`, ties averaged.
fn ranks(x: &[f64]) -> Vec<f64> {
    let n = x.len();
    if n < 2 {
        return vec![0.5; n];
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    let mut r = vec![0.0; n];
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j + 1 < n && x[order[j + 1]] == x[order[i]] {
            j += 1;
        }
        let avg = 0.5 * (i + j) as f64;
        for &k in &order[i..=j] {
            r[k] = avg / (n - 1) as f64;
        }
        i = j + 1;
    }
    r
}

/// A sampler restricted to a pool: each ask chooses among the unused
/// configurations (via the inner sampler's finite-candidate mode); an
/// exhausted pool ends the study. The chosen pool indices, in order of
/// asking, are shared with the code that builds the trials.
pub struct PoolSampler {
    inner: Box<dyn Sampler>,
    configs: Vec<Config>,
    used: Vec<bool>,
    chosen: Arc<Mutex<Vec<usize>>>,
}

impl PoolSampler {
    pub fn new(inner: Box<dyn Sampler>, configs: Vec<Config>) -> PoolSampler {
        PoolSampler {
            inner,
            used: vec![false; configs.len()],
            configs,
            chosen: Arc::default(),
        }
    }

    /// Pool indices chosen so far, in order (trial `k` runs `chosen[k]`).
    pub fn chosen(&self) -> Arc<Mutex<Vec<usize>>> {
        self.chosen.clone()
    }
}

impl Sampler for PoolSampler {
    fn name(&self) -> String {
        self.inner.name()
    }

    fn settings(&self) -> serde_json::Value {
        self.inner.settings()
    }

    fn reseed(&mut self, seed: u64) {
        self.inner.reseed(seed)
    }

    fn ask(&mut self, pending: &[Config]) -> Result<Config> {
        let unused: Vec<usize> = (0..self.configs.len()).filter(|&i| !self.used[i]).collect();
        if unused.is_empty() {
            return Err(Error::Exhausted);
        }
        let candidates: Vec<Config> = unused.iter().map(|&i| self.configs[i].clone()).collect();
        let k = self.inner.ask_among(&candidates, pending)?;
        let i = unused[k];
        self.used[i] = true;
        self.chosen.lock().expect("not poisoned").push(i);
        Ok(self.configs[i].clone())
    }

    fn ask_among(&mut self, candidates: &[Config], pending: &[Config]) -> Result<usize> {
        self.inner.ask_among(candidates, pending)
    }

    fn tell(&mut self, config: &Config, value: f64, variance: f64) -> Result<()> {
        self.inner.tell(config, value, variance)
    }
}

/// A logged curve as a [`Trainable`]: epoch `e` reveals `values[e - 1]`.
#[derive(Debug, Clone)]
pub struct LoggedCurve<'a> {
    values: &'a [f64],
    epoch: usize,
}

impl<'a> LoggedCurve<'a> {
    pub fn new(values: &'a [f64]) -> Self {
        LoggedCurve { values, epoch: 0 }
    }
}

impl Trainable for LoggedCurve<'_> {
    type Report = f64;

    fn train_epoch(&mut self) -> std::result::Result<f64, TrialError> {
        let v = self
            .values
            .get(self.epoch)
            .copied()
            .ok_or("the logged curve has no more epochs")?;
        self.epoch += 1;
        Ok(v)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn record(task: &str, id: u64, x: f64, values: Vec<f64>) -> CurveRecord {
        CurveRecord {
            source: "test".into(),
            task: task.into(),
            config_id: id,
            config: [("x".to_string(), ParamValue::Number(x))].into(),
            metric: "val_accuracy".into(),
            higher_is_better: true,
            values,
        }
    }

    pub(crate) fn pool(n: usize, t: usize) -> Pool {
        let recs = (0..n)
            .map(|i| {
                let limit = 0.5 + 0.4 * (i as f64 / n as f64);
                let values = (1..=t)
                    .map(|e| limit * (1.0 - (-(e as f64) / 3.0).exp()))
                    .collect();
                record("a", i as u64, i as f64 * 0.1, values)
            })
            .collect();
        Pool::new(recs).unwrap()
    }

    #[test]
    fn ranks_average_ties_and_span_the_unit_interval() {
        assert_eq!(ranks(&[3.0, 1.0, 2.0]), vec![1.0, 0.0, 0.5]);
        assert_eq!(ranks(&[1.0, 1.0, 5.0]), vec![0.25, 0.25, 1.0]);
    }

    #[test]
    fn ragged_and_mixed_pools_are_refused() {
        let err = Pool::new(vec![
            record("a", 0, 0.1, vec![0.1, 0.2]),
            record("a", 1, 0.2, vec![0.1]),
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("different lengths"), "{err}");
        let pools = Pool::from_records(vec![
            record("a", 0, 0.1, vec![0.1, 0.2]),
            record("b", 0, 0.1, vec![0.1, 0.2]),
            record("a", 1, 0.3, vec![0.3, 0.4]),
        ])
        .unwrap();
        assert_eq!(pools.len(), 2);
        assert_eq!(pools[0].curves.len(), 2);
    }

    #[test]
    fn regret_is_normalised_by_the_median() {
        let p = pool(5, 10);
        let (best, med) = p.reference_values();
        assert!(best > med);
        assert_eq!(p.regret(Some(best)), 0.0);
        assert!((p.regret(Some(med)) - 1.0).abs() < 1e-12);
        assert_eq!(p.regret(None), f64::INFINITY);
    }
}
