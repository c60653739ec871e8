//! The median stopping rule.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{Check, StoppingPolicy, StudyView};
use crate::error::{Error, Result};
use crate::stats::median;

/// Stop a trial whose best score so far is worse than the median, at the
/// same epoch, of the trials that ran to the horizon (Golovin et al.,
/// "Google Vizier: a service for black-box optimization", KDD 2017).
///
/// This is the form of Optuna's `MedianPruner`, so that the two can be
/// compared on the same runs: the trial's *best* score over epochs `1..=n`
/// against the median of the completed trials' scores *at* epoch `n`;
/// nothing is stopped before `startup_trials` trials have completed or
/// before epoch `warmup_epochs` (Optuna's `n_warmup_steps`: a trial whose
/// epoch `n < warmup_epochs` is never stopped).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MedianRule {
    /// Completed trials needed before anything is stopped.
    pub startup_trials: usize,
    /// No stop before this epoch.
    pub warmup_epochs: usize,
}

impl MedianRule {
    pub const NAME: &'static str = "median";
}

impl Default for MedianRule {
    /// 5 startup trials (Optuna's default) and 5 warm-up epochs (Optuna's
    /// default is 0; protocol R compares the rule with Optuna's pruner set
    /// to 5, and a median of first-epoch scores says little).
    fn default() -> Self {
        MedianRule {
            startup_trials: 5,
            warmup_epochs: 5,
        }
    }
}

impl FromStr for MedianRule {
    type Err = Error;
    /// `median`, or `median(startup_trials=3, warmup_epochs=0)`.
    fn from_str(s: &str) -> Result<Self> {
        super::from_spec(Self::NAME, s)
    }
}

impl StoppingPolicy for MedianRule {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn settings(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }

    fn check(&mut self, trial: usize, study: &StudyView) -> Check {
        let scores = study.trials[trial].scores;
        let n = scores.len();
        if n == 0 || n < self.warmup_epochs {
            return Check::Continue;
        }
        let completed: Vec<f64> = study
            .trials
            .iter()
            .filter(|t| t.completed && t.id != trial)
            .filter_map(|t| t.scores.get(n - 1).copied())
            .filter(|v| v.is_finite())
            .collect();
        if completed.len() < self.startup_trials.max(1) {
            return Check::Continue;
        }
        let median = median(&completed);
        let best = study.best_of(scores.iter().copied());
        match best {
            Some(b) if study.objective.better(median, b) => Check::Stop,
            _ => Check::Continue,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::curve::Metric;
    use crate::policy::testing::{study, views};

    #[test]
    fn stops_below_the_median_of_completed_trials() {
        let t = 4;
        // Completed losses at epoch 2: 0.5, 0.6, 0.7 → median 0.6.
        let mut curves = vec![
            vec![0.9, 0.5, 0.4, 0.3],
            vec![0.9, 0.6, 0.5, 0.4],
            vec![0.9, 0.7, 0.6, 0.5],
        ];
        curves.push(vec![0.95, 0.65]); // best 0.65 > 0.6: stop
        curves.push(vec![0.95, 0.55]); // best 0.55 < 0.6: go on
        let v = views(&curves, t);
        let s = study(Metric::Loss, t, &v);
        let mut rule = MedianRule {
            startup_trials: 3,
            warmup_epochs: 0,
        };
        assert!(matches!(rule.check(3, &s), Check::Stop));
        assert!(matches!(rule.check(4, &s), Check::Continue));
        // Too few completed trials, or still warming up: go on.
        rule.startup_trials = 4;
        assert!(matches!(rule.check(3, &s), Check::Continue));
        rule.startup_trials = 3;
        rule.warmup_epochs = 3;
        assert!(matches!(rule.check(3, &s), Check::Continue));
    }

    #[test]
    fn uses_the_best_score_so_far_and_the_metric_direction() {
        let t = 3;
        let curves = vec![
            vec![0.5, 0.6, 0.7],
            vec![0.5, 0.7, 0.8],
            vec![0.5, 0.8, 0.9],
            vec![0.75, 0.2], // accuracy: best 0.75 beats the median 0.7
            vec![0.3, 0.65],
        ];
        let v = views(&curves, t);
        let s = study(Metric::Accuracy, t, &v);
        let mut rule = MedianRule {
            startup_trials: 3,
            warmup_epochs: 0,
        };
        assert!(matches!(rule.check(3, &s), Check::Continue));
        assert!(matches!(rule.check(4, &s), Check::Stop));
    }
}
