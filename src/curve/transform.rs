//! The map between a metric's own units and the model space of the predictor.
//!
//! The curve families describe a quantity that grows with training and
//! levels off below an upper bound. The predictor therefore works in a *model
//! space* where larger is better and the attainable range is `[0, 1]`:
//!
//! * [`Metric::Accuracy`] (larger is better, values in `[0, 1]`: accuracy,
//!   AUC, F1): `y = v`, the identity.
//! * [`Metric::Loss`] (smaller is better, values `>= 0`, unbounded above:
//!   cross-entropy, MSE): `y = exp(-v / s)`. A loss of 0 maps to 1 and an
//!   infinite loss to 0, and the map is strictly decreasing, so "better" is
//!   "larger" in model space and probabilities of beating an incumbent are
//!   the same in both spaces. The scale `s > 0` is fixed per prediction:
//!   `s = 1` reproduces the transformation the reference evaluation used for
//!   TaskSet losses (`y = exp(-loss)`); foresight's default takes `s` from
//!   the curve itself (see [`LossScale`]), which makes the predictor
//!   invariant to the units of the loss (a loss reported ×100 gets the same
//!   forecast, ×100).
//!
//! Quantiles map through the transformation exactly (it is monotone);
//! densities pick up the Jacobian `|dy/dv|` (`y / s` for the loss map).
//!
//! **A loss forecast is finite.** The predictive is Gaussian in model space,
//! so a curve whose loss climbs (a diverging run) gets mass at `y <= 0`,
//! which no finite loss maps to. Back in metric units every model value at
//! or below `e^-C` — a loss beyond `C·s`, `C` = [`LOSS_CEILING`] = 100, so
//! a hundred times the curve's first loss under the default scale — is
//! reported as that ceiling `C·s`: the predictive puts the probability that
//! the run diverges on the ceiling instead of on an infinite loss. Quantiles
//! stay monotone and exact below the ceiling, and means and standard
//! deviations are finite.

/// What kind of metric a learning curve records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    /// Larger is better, values in `[0, 1]`.
    Accuracy,
    /// Smaller is better, values `>= 0`, no upper bound.
    Loss,
}

impl Metric {
    /// The metric kind of a curve-set row: `higher_is_better` means accuracy-like.
    pub fn from_higher_is_better(higher_is_better: bool) -> Metric {
        if higher_is_better {
            Metric::Accuracy
        } else {
            Metric::Loss
        }
    }

    /// Whether `a` is strictly better than `b`.
    pub fn better(self, a: f64, b: f64) -> bool {
        match self {
            Metric::Accuracy => a > b,
            Metric::Loss => a < b,
        }
    }

    /// The worst possible value (what a diverged run ends with).
    pub fn worst(self) -> f64 {
        match self {
            Metric::Accuracy => 0.0,
            Metric::Loss => f64::INFINITY,
        }
    }
}

/// The largest loss a forecast reports, in units of the loss scale `s`
/// (see the module documentation): model values at or below `e^-100`
/// stand for a diverged run.
pub const LOSS_CEILING: f64 = 100.0;

/// How the scale `s` of the loss transformation `y = exp(-v / s)` is chosen.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossScale {
    /// A fixed scale (`Fixed(1.0)` is the reference's `y = exp(-loss)`).
    Fixed(f64),
    /// `s` = the first observed value of the curve (the loss before
    /// training has made much progress), so that model-space values start
    /// near `e^-1` whatever the units of the loss.
    FirstValue,
}

/// The transformation of one prediction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Transform {
    pub metric: Metric,
    /// The scale `s` for [`Metric::Loss`] (unused for accuracy).
    pub scale: f64,
}

impl Transform {
    /// The transformation for a curve; `observed` must be finite and in range.
    pub fn new(metric: Metric, loss_scale: LossScale, observed: &[f64]) -> Transform {
        let scale = match (metric, loss_scale) {
            (Metric::Accuracy, _) => 1.0,
            (Metric::Loss, LossScale::Fixed(s)) => s,
            (Metric::Loss, LossScale::FirstValue) => {
                let s = observed.first().copied().unwrap_or(1.0);
                if s > 1e-12 && s.is_finite() { s } else { 1.0 }
            }
        };
        Transform { metric, scale }
    }

    /// Metric units → model space.
    pub fn forward(&self, v: f64) -> f64 {
        match self.metric {
            Metric::Accuracy => v,
            Metric::Loss => (-v / self.scale).exp(),
        }
    }

    /// Model space → metric units. For a loss, model values at or below
    /// `e^-C` (a diverged run, `y <= 0` included) map to the ceiling
    /// [`Transform::loss_ceiling`].
    pub fn backward(&self, y: f64) -> f64 {
        match self.metric {
            Metric::Accuracy => y,
            Metric::Loss => (-self.scale * y.ln()).min(self.loss_ceiling()),
        }
    }

    /// The largest loss reported, `C·s` ([`LOSS_CEILING`]).
    pub fn loss_ceiling(&self) -> f64 {
        LOSS_CEILING * self.scale
    }

    /// `ln |dy/dv|` at the model value `y`: add it to a model-space log
    /// density to get the density in metric units.
    pub fn ln_jacobian(&self, y: f64) -> f64 {
        match self.metric {
            Metric::Accuracy => 0.0,
            Metric::Loss => y.ln() - self.scale.ln(),
        }
    }

    /// `|dv/dy|` at the model value `y` (for the delta-method standard deviation).
    pub fn inverse_slope(&self, y: f64) -> f64 {
        match self.metric {
            Metric::Accuracy => 1.0,
            Metric::Loss => self.scale / y.abs(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_transform_round_trips_and_orders() {
        for scale in [LossScale::Fixed(1.0), LossScale::FirstValue] {
            let t = Transform::new(Metric::Loss, scale, &[2.3, 1.9, 1.5]);
            for v in [0.0, 0.1, 0.69, 2.3, 10.0] {
                let y = t.forward(v);
                assert!((0.0..=1.0).contains(&y));
                assert!((t.backward(y) - v).abs() < 1e-12 * (1.0 + v));
            }
            // Smaller loss is larger model value.
            assert!(t.forward(0.5) > t.forward(0.6));
        }
        let t = Transform::new(Metric::Loss, LossScale::Fixed(1.0), &[0.7]);
        assert_eq!(t.forward(0.0), 1.0);
        // Model values at or below e^-100 (and below 0) are the ceiling.
        assert_eq!(t.backward(0.0), 100.0);
        assert_eq!(t.backward(-0.3), 100.0);
        assert_eq!(t.backward(1e-50), 100.0);
        assert!((t.backward(1e-40) - 40.0 * 10f64.ln()).abs() < 1e-9);
        assert!((t.forward(0.69) - (-0.69f64).exp()).abs() < 1e-15);
    }

    /// With the first value as scale, a loss in other units gets the same
    /// model-space curve.
    #[test]
    fn first_value_scale_is_unit_free() {
        let a = [0.8, 0.6, 0.5];
        let b: Vec<f64> = a.iter().map(|v| v * 100.0).collect();
        let ta = Transform::new(Metric::Loss, LossScale::FirstValue, &a);
        let tb = Transform::new(Metric::Loss, LossScale::FirstValue, &b);
        for (x, y) in a.iter().zip(&b) {
            assert!((ta.forward(*x) - tb.forward(*y)).abs() < 1e-15);
        }
    }

    /// The Jacobian makes densities integrate to one in metric units.
    #[test]
    fn jacobian_matches_numeric_derivative() {
        let t = Transform::new(Metric::Loss, LossScale::Fixed(0.7), &[0.7]);
        for v in [0.2, 0.7, 1.5] {
            let h = 1e-6;
            let numeric = ((t.forward(v + h) - t.forward(v - h)) / (2.0 * h)).abs();
            assert!((t.ln_jacobian(t.forward(v)) - numeric.ln()).abs() < 1e-6);
        }
        let acc = Transform::new(Metric::Accuracy, LossScale::FirstValue, &[0.3]);
        assert_eq!(acc.forward(0.3), 0.3);
        assert_eq!(acc.ln_jacobian(0.3), 0.0);
    }
}
