//! Stopping policies: which running trials to end early.
//!
//! The tuner consults its [`StoppingPolicy`] after every epoch of a running
//! trial that has not reached the horizon. The policy answers with a
//! [`Check`]: go on, stop, or *assess* — run an expensive computation (a
//! learning-curve prediction) off the training path and decide from its
//! result. The tuner runs assessments on a thread of their own (real
//! training) or inline (replay's simulated clock); either way the decision
//! takes effect at the trial's next epoch boundary.
//!
//! Policies:
//! * [`NoStopping`] — every trial runs to the horizon.
//! * [`LearningCurve`] — Domhan, Springenberg & Hutter (IJCAI 2015):
//!   extrapolate the curve and stop when `P(final better than incumbent)`
//!   falls below a threshold ([`crate::curve`]).
//! * [`MedianRule`] — the median stopping rule (Golovin et al., "Google
//!   Vizier", KDD 2017), in the form of Optuna's `MedianPruner`.
//! * [`SuccessiveHalving`] — asynchronous successive halving, ASHA (Li et
//!   al., "A system for massively parallel hyperparameter tuning", MLSys
//!   2020).
//! * [`Hyperband`] — Hyperband (Li et al., JMLR 2018) as a set of ASHA
//!   brackets, each trial assigned to one.
//!
//! All policies see the same [`StudyView`]: every trial's scores so far and
//! the incumbent (the best final value of a trial that ran to the horizon).

mod halving;
mod lc;
mod median;

pub use halving::{Hyperband, SuccessiveHalving};
pub use lc::LearningCurve;
pub use median::MedianRule;

use crate::curve::Metric;

/// The state of one trial, as policies see it.
#[derive(Debug, Clone, Copy)]
pub struct TrialView<'a> {
    /// The trial's number.
    pub id: usize,
    /// Validation scores after epochs `1..=scores.len()` (metric units).
    pub scores: &'a [f64],
    /// Whether the trial ran to the horizon.
    pub completed: bool,
    /// Whether the trial is still running.
    pub running: bool,
}

/// The study, as policies see it.
#[derive(Debug, Clone, Copy)]
pub struct StudyView<'a> {
    pub metric: Metric,
    /// Epochs of a full run.
    pub horizon: usize,
    /// Every trial started so far, by number.
    pub trials: &'a [TrialView<'a>],
    /// Best final value of a trial that ran to the horizon.
    pub incumbent: Option<f64>,
}

impl StudyView<'_> {
    /// The best of the values by the study's metric (`None` if empty).
    pub fn best_of(&self, values: impl IntoIterator<Item = f64>) -> Option<f64> {
        values
            .into_iter()
            .filter(|v| v.is_finite())
            .reduce(|a, b| if self.metric.better(b, a) { b } else { a })
    }
}

/// What a policy learned from an assessment.
#[derive(Debug, Clone, PartialEq)]
pub struct Assessment {
    /// Stop the trial.
    pub stop: bool,
    /// `P(final value better than the incumbent)`, if the policy computed it.
    pub p_better: Option<f64>,
    /// Predicted final value and its predictive variance (finite), if any;
    /// a stopped trial is reported to the sampler with these.
    pub final_value: Option<(f64, f64)>,
    /// For a stop, a band over the remaining epochs, `(epoch, q05, median,
    /// q95)`, for plots (empty otherwise).
    pub band: Vec<(usize, f64, f64, f64)>,
}

/// An assessment to run off the training path.
pub type AssessJob = Box<dyn FnOnce() -> Assessment + Send>;

/// A policy's answer after an epoch.
pub enum Check {
    Continue,
    Stop,
    /// Run the job, then stop if its assessment says so.
    Assess(AssessJob),
}

impl std::fmt::Debug for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Check::Continue => "Continue",
            Check::Stop => "Stop",
            Check::Assess(_) => "Assess(..)",
        })
    }
}

/// Decides which running trials to stop.
pub trait StoppingPolicy: Send {
    /// A short name for journals and tables (`"lc"`, `"median"`, ...).
    fn name(&self) -> &'static str;

    /// Called after epoch `study.trials[trial].scores.len()` of a running
    /// trial (always before the horizon, with finite scores).
    fn check(&mut self, trial: usize, study: &StudyView) -> Check;
}

impl StoppingPolicy for Box<dyn StoppingPolicy> {
    fn name(&self) -> &'static str {
        (**self).name()
    }

    fn check(&mut self, trial: usize, study: &StudyView) -> Check {
        (**self).check(trial, study)
    }
}

/// Every trial runs to the horizon.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoStopping;

impl StoppingPolicy for NoStopping {
    fn name(&self) -> &'static str {
        "none"
    }

    fn check(&mut self, _trial: usize, _study: &StudyView) -> Check {
        Check::Continue
    }
}

#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// Views of `curves`; the first `completed` are complete, the rest running.
    pub fn views(curves: &[Vec<f64>], horizon: usize) -> Vec<TrialView<'_>> {
        curves
            .iter()
            .enumerate()
            .map(|(id, c)| TrialView {
                id,
                scores: c,
                completed: c.len() == horizon,
                running: c.len() < horizon,
            })
            .collect()
    }

    /// A study over `trials` with the incumbent taken from completed ones.
    pub fn study<'a>(metric: Metric, horizon: usize, trials: &'a [TrialView<'a>]) -> StudyView<'a> {
        let mut s = StudyView {
            metric,
            horizon,
            trials,
            incumbent: None,
        };
        s.incumbent = s.best_of(
            trials
                .iter()
                .filter(|t| t.completed)
                .map(|t| t.scores[horizon - 1]),
        );
        s
    }
}
