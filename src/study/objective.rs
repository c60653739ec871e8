//! What a study optimises: the direction of its metric, and the range the
//! metric lives in where it has one.
//!
//! The range matters to learning-curve stopping. The predictor's curve
//! families describe a quantity that improves towards a bound: an accuracy
//! in `[0, 1]` rising towards its asymptote, or a loss `>= 0` falling
//! towards zero ([`crate::curve::Metric`]). Any objective with a known
//! bound on its *good* side maps onto one of the two by an affine map
//! ([`Objective::curve_units`]):
//!
//! | objective | predictor sees | map `u(v)` |
//! |---|---|---|
//! | maximise in `[lo, hi]` (accuracy, a percentage) | accuracy | `(v − lo) / (hi − lo)` |
//! | minimise in `[lo, hi]` (an error rate) | accuracy | `(hi − v) / (hi − lo)` |
//! | minimise, `v >= lo` (a loss, a negative log-likelihood) | loss | `v − lo` |
//! | maximise, `v <= hi` (a log-likelihood `<= 0`) | loss | `hi − v` |
//!
//! The map is monotone, so probabilities of beating an incumbent are the
//! same on both sides, and quantiles map through it exactly (a decreasing
//! map swaps lower and upper quantiles). An objective with no bound on its
//! good side (a reward that can grow without limit, a loss that can be any
//! negative number) has no asymptote to extrapolate towards: a learning-curve
//! policy refuses it when the study starts, with an error that says which
//! bound to declare. A score outside the declared range ends the study with
//! an error that says what to declare instead (a percentage declared as an
//! accuracy, say), so that stopping is never switched off silently.
//!
//! ```
//! use foresight::study::Objective;
//!
//! let percent = Objective::maximize().range(0.0, 100.0);
//! assert!(percent.better(81.0, 80.0));
//! let units = percent.curve_units().unwrap();
//! assert_eq!(units.to_curve(81.0), 0.81);
//! // A maximised metric with no upper bound cannot be extrapolated.
//! assert!(Objective::maximize().curve_units().is_none());
//! ```

use serde::{Deserialize, Serialize};

use crate::curve::Metric;
use crate::error::{Error, Result};

/// Whether larger or smaller values are better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Maximize,
    Minimize,
}

/// A study's objective: its direction and the metric's range (either bound
/// may be absent).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Objective {
    pub direction: Direction,
    /// The smallest value the metric can take, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub low: Option<f64>,
    /// The largest value the metric can take, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub high: Option<f64>,
}

impl Objective {
    /// Larger is better, no range.
    pub const fn maximize() -> Objective {
        Objective {
            direction: Direction::Maximize,
            low: None,
            high: None,
        }
    }

    /// Smaller is better, no range.
    pub const fn minimize() -> Objective {
        Objective {
            direction: Direction::Minimize,
            low: None,
            high: None,
        }
    }

    /// An accuracy-like score: maximised, in `[0, 1]`.
    pub const fn accuracy() -> Objective {
        Objective::maximize().range(0.0, 1.0)
    }

    /// A loss: minimised, `>= 0`.
    pub const fn loss() -> Objective {
        Objective::minimize().at_least(0.0)
    }

    /// The metric lives in `[low, high]`.
    pub const fn range(self, low: f64, high: f64) -> Objective {
        Objective {
            low: Some(low),
            high: Some(high),
            ..self
        }
    }

    /// The metric is `>= low`.
    pub const fn at_least(self, low: f64) -> Objective {
        Objective {
            low: Some(low),
            ..self
        }
    }

    /// The metric is `<= high`.
    pub const fn at_most(self, high: f64) -> Objective {
        Objective {
            high: Some(high),
            ..self
        }
    }

    /// Checks the bounds: finite, and `low < high` when both are given.
    pub fn validate(&self) -> Result<()> {
        for b in [self.low, self.high].into_iter().flatten() {
            if !b.is_finite() {
                return Err(Error::invalid(
                    "objective",
                    format!("bound {b} is not finite; leave an unbounded side out"),
                ));
            }
        }
        if let (Some(lo), Some(hi)) = (self.low, self.high)
            && !(lo < hi)
        {
            return Err(Error::invalid(
                "objective",
                format!("the range [{lo}, {hi}] is empty: low must be below high"),
            ));
        }
        Ok(())
    }

    /// Whether `a` is strictly better than `b`.
    pub fn better(&self, a: f64, b: f64) -> bool {
        match self.direction {
            Direction::Maximize => a > b,
            Direction::Minimize => a < b,
        }
    }

    /// The sign that turns the metric into a quantity to minimise (the
    /// samplers minimise).
    pub fn sign(&self) -> f64 {
        match self.direction {
            Direction::Maximize => -1.0,
            Direction::Minimize => 1.0,
        }
    }

    /// The worst value the metric can take (what a diverged run counts as):
    /// the bound on the bad side, or an infinity without one.
    pub fn worst(&self) -> f64 {
        match self.direction {
            Direction::Maximize => self.low.unwrap_or(f64::NEG_INFINITY),
            Direction::Minimize => self.high.unwrap_or(f64::INFINITY),
        }
    }

    /// Whether a finite `v` lies in the range.
    pub fn contains(&self, v: f64) -> bool {
        self.low.is_none_or(|lo| v >= lo) && self.high.is_none_or(|hi| v <= hi)
    }

    /// How the learning-curve predictor sees this metric (see the module
    /// documentation), or `None` without a bound on the good side.
    pub fn curve_units(&self) -> Option<CurveUnits> {
        use Direction::*;
        match (self.direction, self.low, self.high) {
            (Maximize, Some(lo), Some(hi)) => Some(CurveUnits {
                metric: Metric::Accuracy,
                offset: lo,
                width: hi - lo,
            }),
            (Minimize, Some(lo), Some(hi)) => Some(CurveUnits {
                metric: Metric::Accuracy,
                offset: hi,
                width: lo - hi,
            }),
            (Minimize, Some(lo), None) => Some(CurveUnits {
                metric: Metric::Loss,
                offset: lo,
                width: 1.0,
            }),
            (Maximize, None, Some(hi)) => Some(CurveUnits {
                metric: Metric::Loss,
                offset: hi,
                width: -1.0,
            }),
            _ => None,
        }
    }

    /// Why a learning-curve policy cannot use this objective, and what to
    /// declare instead (`Ok` when it can).
    pub fn require_curve_units(&self) -> Result<CurveUnits> {
        self.curve_units().ok_or_else(|| {
            let hint = match self.direction {
                Direction::Maximize => {
                    "declare the best value it can reach: Objective::accuracy() for a score in \
                     [0, 1], Objective::maximize().range(0.0, 100.0) for a percentage, \
                     Objective::maximize().at_most(0.0) for a log-likelihood"
                }
                Direction::Minimize => {
                    "declare the best value it can reach: Objective::loss() for a loss >= 0, \
                     Objective::minimize().at_least(LOW) for a metric bounded below by LOW"
                }
            };
            Error::invalid(
                "objective",
                format!(
                    "learning-curve stopping extrapolates towards the metric's best value, and \
                     this objective ({self}) has none: {hint}; or choose a stopping policy that \
                     needs no bound (median, asha, hyperband, none)"
                ),
            )
        })
    }

    /// The error for a score outside the range, with what to declare.
    pub(crate) fn out_of_range(&self, v: f64, trial: usize, epoch: usize) -> Error {
        let hint = match (self.direction, self.low, self.high) {
            (Direction::Maximize, Some(lo), Some(hi))
                if lo == 0.0 && hi == 1.0 && v > 1.0 && v <= 100.0 =>
            {
                "if the metric is a percentage, declare Objective::maximize().range(0.0, 100.0)"
                    .to_string()
            }
            (_, Some(lo), _) if v < lo => format!(
                "the metric goes below {lo}: declare its true lower bound, or leave it out \
                 (Objective::{}())",
                self.direction.name()
            ),
            (_, _, Some(hi)) => format!(
                "the metric goes above {hi}: declare its true upper bound, or leave it out \
                 (Objective::{}())",
                self.direction.name()
            ),
            _ => String::new(),
        };
        Error::invalid(
            "objective",
            format!(
                "trial {trial} reported {v} after epoch {epoch}, outside the objective's range \
                 ({self}): {hint}. The study stopped; start it again with the right objective \
                 (a new study folder)"
            ),
        )
    }
}

impl Direction {
    fn name(self) -> &'static str {
        match self {
            Direction::Maximize => "maximize",
            Direction::Minimize => "minimize",
        }
    }
}

impl std::fmt::Display for Objective {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.direction.name())?;
        match (self.low, self.high) {
            (Some(lo), Some(hi)) => write!(f, " in [{lo}, {hi}]"),
            (Some(lo), None) => write!(f, ", >= {lo}"),
            (None, Some(hi)) => write!(f, ", <= {hi}"),
            (None, None) => f.write_str(", unbounded"),
        }
    }
}

impl From<Metric> for Objective {
    /// [`Metric::Accuracy`] is [`Objective::accuracy`], [`Metric::Loss`]
    /// is [`Objective::loss`].
    fn from(m: Metric) -> Objective {
        match m {
            Metric::Accuracy => Objective::accuracy(),
            Metric::Loss => Objective::loss(),
        }
    }
}

/// The affine map `u = (v − offset) / width` from an objective's values
/// `v` to the units of one of the predictor's metrics. (A division, so that
/// `[0, 1]` maps exactly onto itself and a percentage `37` onto exactly
/// `0.37`.)
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CurveUnits {
    /// The predictor's metric.
    pub metric: Metric,
    pub offset: f64,
    /// Negative when the map reverses the order (the predictor's metric
    /// improves where the objective's value falls).
    pub width: f64,
}

impl CurveUnits {
    /// Objective units → the predictor's.
    pub fn to_curve(&self, v: f64) -> f64 {
        (v - self.offset) / self.width
    }

    /// The predictor's units → the objective's.
    pub fn from_curve(&self, u: f64) -> f64 {
        u * self.width + self.offset
    }

    /// A variance in the predictor's units → the objective's.
    pub fn variance_from_curve(&self, var: f64) -> f64 {
        var * self.width * self.width
    }

    /// A quantile band `(lower, middle, upper)` in the predictor's units →
    /// the objective's (swapped when the map reverses the order).
    pub fn band_from_curve(&self, (lo, mid, hi): (f64, f64, f64)) -> (f64, f64, f64) {
        let (a, b, c) = (
            self.from_curve(lo),
            self.from_curve(mid),
            self.from_curve(hi),
        );
        if self.width < 0.0 {
            (c, b, a)
        } else {
            (a, b, c)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_old_metrics_map_to_themselves() {
        let acc = Objective::from(Metric::Accuracy).curve_units().unwrap();
        assert_eq!(acc.metric, Metric::Accuracy);
        for v in [0.0, 0.37, 1.0] {
            assert_eq!(acc.to_curve(v), v);
            assert_eq!(acc.from_curve(v), v);
        }
        let loss = Objective::from(Metric::Loss).curve_units().unwrap();
        assert_eq!(loss.metric, Metric::Loss);
        for v in [0.0, 2.5, 1e30] {
            assert_eq!(loss.to_curve(v), v);
        }
    }

    #[test]
    fn every_bounded_objective_maps_monotonically() {
        let cases = [
            (Objective::maximize().range(0.0, 100.0), 20.0, 80.0),
            (Objective::minimize().range(0.0, 100.0), 80.0, 20.0),
            (Objective::minimize().at_least(-3.0), 1.0, -2.0),
            (Objective::maximize().at_most(0.0), -5.0, -0.5),
        ];
        for (o, worse, better) in cases {
            let u = o.curve_units().unwrap();
            assert!(o.better(better, worse));
            // Better in the objective is better in the predictor's metric.
            let (uw, ub) = (u.to_curve(worse), u.to_curve(better));
            assert!(u.metric.better(ub, uw), "{o}");
            assert!((u.from_curve(ub) - better).abs() < 1e-12);
            // The predictor's range is respected.
            match u.metric {
                Metric::Accuracy => assert!((0.0..=1.0).contains(&uw)),
                Metric::Loss => assert!(uw >= 0.0),
            }
            // A band's lower end stays below its upper end.
            let (lo, mid, hi) = u.band_from_curve((0.2, 0.3, 0.4));
            assert!(lo < mid && mid < hi, "{o}: {lo} {mid} {hi}");
        }
    }

    #[test]
    fn unbounded_good_sides_are_refused_with_a_hint() {
        for o in [
            Objective::maximize(),
            Objective::maximize().at_least(0.0),
            Objective::minimize(),
            Objective::minimize().at_most(5.0),
        ] {
            let err = o.require_curve_units().unwrap_err().to_string();
            assert!(err.contains("best value"), "{err}");
        }
        assert!(Objective::maximize().range(1.0, 1.0).validate().is_err());
        assert!(Objective::minimize().at_least(f64::NAN).validate().is_err());
        let err = Objective::accuracy().out_of_range(87.5, 0, 1).to_string();
        assert!(err.contains("range(0.0, 100.0)"), "{err}");
    }
}
