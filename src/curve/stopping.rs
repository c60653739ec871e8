//! The stopping rule of Domhan et al. (2015), Section 4: terminate a run
//! when the predicted probability that its final value beats the incumbent,
//! `P(y_T better than y_best | y_1..y_n)`, falls below a threshold (0.05 in
//! the paper).
//!
//! Guards, as the reference's `ConservativeTerminationCriterion` has them and
//! a tuner needs them:
//! * no stop before `min_epochs` epochs have been observed;
//! * no stop while there is no incumbent;
//! * no stop when the run has already beaten the incumbent at some epoch.

use super::predictive::Predictive;
use super::transform::Metric;

/// Why a run was or was not stopped.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StopDecision {
    /// Stop: `P(better) = p` is below the threshold.
    Stop { p_better: f64 },
    /// Go on: `P(better) = p` is at least the threshold.
    Continue { p_better: f64 },
    /// Go on: fewer than `min_epochs` epochs observed.
    TooEarly,
    /// Go on: no incumbent to beat yet.
    NoIncumbent,
    /// Go on: the run has already beaten the incumbent.
    AlreadyBetter,
}

impl StopDecision {
    pub fn should_stop(self) -> bool {
        matches!(self, StopDecision::Stop { .. })
    }
}

/// The rule's settings.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StoppingRule {
    /// Stop when `P(better) < threshold`.
    pub threshold: f64,
    /// Never stop before this many epochs.
    pub min_epochs: usize,
}

impl Default for StoppingRule {
    /// The paper's threshold 0.05, and at least 3 epochs.
    fn default() -> Self {
        StoppingRule {
            threshold: 0.05,
            min_epochs: 3,
        }
    }
}

impl StoppingRule {
    /// Decides for a run with the observed prefix `observed` (metric units),
    /// the predictive of its final value, and the incumbent `y_best` (if any).
    ///
    /// `final_value` is only consulted when the guards pass, so a caller can
    /// pass a closure that runs the (expensive) prediction lazily.
    pub fn decide(
        &self,
        observed: &[f64],
        metric: Metric,
        y_best: Option<f64>,
        final_value: impl FnOnce() -> Predictive,
    ) -> StopDecision {
        if let Some(d) = self.guard(observed, metric, y_best) {
            return d;
        }
        let best = y_best.expect("guard passes only with an incumbent");
        self.decide_with(final_value().prob_better(best))
    }

    /// The guards alone: `Some` decision when one applies, `None` when the
    /// rule needs the prediction (so a caller can run it elsewhere and finish
    /// with [`StoppingRule::decide_with`]).
    pub fn guard(
        &self,
        observed: &[f64],
        metric: Metric,
        y_best: Option<f64>,
    ) -> Option<StopDecision> {
        if observed.len() < self.min_epochs {
            return Some(StopDecision::TooEarly);
        }
        let Some(best) = y_best else {
            return Some(StopDecision::NoIncumbent);
        };
        if observed
            .iter()
            .any(|&v| v.is_finite() && metric.better(v, best))
        {
            return Some(StopDecision::AlreadyBetter);
        }
        None
    }

    /// The decision from `P(better)`, once the guards have passed.
    pub fn decide_with(&self, p_better: f64) -> StopDecision {
        if p_better < self.threshold {
            StopDecision::Stop { p_better }
        } else {
            StopDecision::Continue { p_better }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::curve::transform::{LossScale, Transform};

    fn gauss(mu: f64, s: f64) -> Predictive {
        Predictive::equal(
            vec![(mu, s)],
            Transform::new(Metric::Accuracy, LossScale::FirstValue, &[mu]),
        )
    }

    #[test]
    fn stops_only_when_unlikely_to_beat_the_incumbent() {
        let rule = StoppingRule::default();
        let obs = [0.3, 0.4, 0.45, 0.5];
        let d = rule.decide(&obs, Metric::Accuracy, Some(0.9), || gauss(0.6, 0.1));
        assert!(d.should_stop(), "{d:?}");
        let d = rule.decide(&obs, Metric::Accuracy, Some(0.7), || gauss(0.6, 0.1));
        assert!(matches!(d, StopDecision::Continue { p_better } if p_better > 0.05));
    }

    #[test]
    fn guards() {
        let rule = StoppingRule {
            threshold: 0.05,
            min_epochs: 5,
        };
        let never = || -> Predictive { panic!("prediction must not run") };
        assert_eq!(
            rule.decide(&[0.3, 0.4], Metric::Accuracy, Some(0.9), never),
            StopDecision::TooEarly
        );
        let obs = [0.3, 0.4, 0.5, 0.6, 0.62];
        assert_eq!(
            rule.decide(&obs, Metric::Accuracy, None, never),
            StopDecision::NoIncumbent
        );
        assert_eq!(
            rule.decide(&obs, Metric::Accuracy, Some(0.55), never),
            StopDecision::AlreadyBetter
        );
        // For a loss, "better" is smaller.
        let loss = [0.9, 0.8, 0.7, 0.65, 0.6];
        assert_eq!(
            rule.decide(&loss, Metric::Loss, Some(0.62), never),
            StopDecision::AlreadyBetter
        );
    }

    #[test]
    fn threshold_is_configurable() {
        let obs = [0.3, 0.4, 0.45, 0.5];
        let strict = StoppingRule {
            threshold: 0.5,
            min_epochs: 1,
        };
        // P(better) = 0.16 here: stopped at 0.5, kept at 0.05.
        assert!(
            strict
                .decide(&obs, Metric::Accuracy, Some(0.7), || gauss(0.6, 0.1))
                .should_stop()
        );
        assert!(
            !StoppingRule::default()
                .decide(&obs, Metric::Accuracy, Some(0.7), || gauss(0.6, 0.1))
                .should_stop()
        );
    }
}
