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
//! All policies see the same [`StudyView`]: every trial's scores so far, the
//! incumbent (the best final value of a trial that ran to the horizon) and
//! the study's seed. Each is named and parsed where it is defined
//! (`FromStr`, [`parse`]), with its settings ([`crate::spec`]).

mod halving;
mod lc;
mod median;

use std::str::FromStr;

pub use halving::{Hyperband, SuccessiveHalving};
pub use lc::LearningCurve;
pub use median::MedianRule;

use crate::error::{Error, Result};
use crate::spec;
use crate::study::Objective;

/// The state of one trial, as policies see it.
#[derive(Debug, Clone, Copy)]
pub struct TrialView<'a> {
    /// The trial's number.
    pub id: usize,
    /// Validation scores after epochs `1..=scores.len()` (objective units).
    pub scores: &'a [f64],
    /// Whether the trial ran to the horizon.
    pub completed: bool,
    /// Whether the trial is still running.
    pub running: bool,
}

/// The study, as policies see it.
#[derive(Debug, Clone, Copy)]
pub struct StudyView<'a> {
    pub objective: Objective,
    /// Epochs of a full run.
    pub horizon: usize,
    /// Every trial started so far, by number.
    pub trials: &'a [TrialView<'a>],
    /// Best final value of a trial that ran to the horizon.
    pub incumbent: Option<f64>,
    /// The study's seed: every random choice of a policy flows from it.
    pub seed: u64,
}

impl StudyView<'_> {
    /// The best of the values by the study's objective (`None` if empty).
    pub fn best_of(&self, values: impl IntoIterator<Item = f64>) -> Option<f64> {
        values
            .into_iter()
            .filter(|v| v.is_finite())
            .reduce(|a, b| if self.objective.better(b, a) { b } else { a })
    }
}

/// What a policy learned from an assessment.
#[derive(Debug, Clone, PartialEq)]
pub struct Assessment {
    /// Stop the trial.
    pub stop: bool,
    /// `P(final value better than the incumbent)`, if the policy computed it.
    pub p_better: Option<f64>,
    /// Predicted final value and its predictive variance (finite, objective
    /// units), if any; a stopped trial is reported to the sampler with these.
    pub final_value: Option<(f64, f64)>,
    /// For a stop, a band over the remaining epochs, `(epoch, q05, median,
    /// q95)`, for plots (empty otherwise).
    pub band: Vec<(usize, f64, f64, f64)>,
}

/// An assessment to run off the training path: an [`Assessment`], or why
/// none could be made (recorded; the trial is assessed again at its next
/// check).
pub type AssessJob = Box<dyn FnOnce() -> std::result::Result<Assessment, String> + Send>;

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
///
/// A policy keeps no history of its own: everything it needs is in the
/// [`StudyView`] (which is the fold of the study's events), so a resumed
/// study, or one shared by many workers, decides the same way. Randomness
/// comes from [`StudyView::seed`].
pub trait StoppingPolicy: Send {
    /// A short name for headers and tables (`"lc"`, `"median"`, ...).
    fn name(&self) -> &'static str;

    /// Every setting that changes a decision, recorded in the study's header
    /// so that a study is only resumed with the same ones. The default,
    /// `null`, records none (the name alone is compared).
    fn settings(&self) -> serde_json::Value {
        serde_json::Value::Null
    }

    /// Refuses settings, or an objective, the policy cannot work with
    /// (checked when the study starts, so a bad setting is an error before
    /// any trial runs). The default accepts everything.
    fn accepts(&self, objective: &Objective) -> Result<()> {
        let _ = objective;
        Ok(())
    }

    /// Called after epoch `study.trials[trial].scores.len()` of a running
    /// trial (always before the horizon, with finite scores).
    fn check(&mut self, trial: usize, study: &StudyView) -> Check;

    /// Whether a stop that an assessment asked for still holds now, when it
    /// takes effect: the trial may have reported more epochs while the
    /// assessment ran (on real training it runs beside the trial). The
    /// default says yes.
    fn still_stops(&self, trial: usize, study: &StudyView) -> bool {
        let _ = (trial, study);
        true
    }
}

impl StoppingPolicy for Box<dyn StoppingPolicy> {
    fn name(&self) -> &'static str {
        (**self).name()
    }
    fn settings(&self) -> serde_json::Value {
        (**self).settings()
    }
    fn accepts(&self, objective: &Objective) -> Result<()> {
        (**self).accepts(objective)
    }
    fn check(&mut self, trial: usize, study: &StudyView) -> Check {
        (**self).check(trial, study)
    }
    fn still_stops(&self, trial: usize, study: &StudyView) -> bool {
        (**self).still_stops(trial, study)
    }
}

/// The policy a spec names (see [`crate::spec`]): `none`, `lc`, `median`,
/// `asha` or `hyperband`, with optional settings (`lc(threshold=0.01)`).
pub fn parse(spec: &str) -> Result<Box<dyn StoppingPolicy>> {
    let (name, _) = spec::split(spec)?;
    Ok(match name.as_str() {
        NoStopping::NAME => Box::new(spec.parse::<NoStopping>()?),
        LearningCurve::NAME => Box::new(spec.parse::<LearningCurve>()?),
        MedianRule::NAME => Box::new(spec.parse::<MedianRule>()?),
        SuccessiveHalving::NAME => Box::new(spec.parse::<SuccessiveHalving>()?),
        Hyperband::NAME => Box::new(spec.parse::<Hyperband>()?),
        other => {
            return Err(Error::invalid(
                "policy",
                format!("`{other}`: expected none, lc, median, asha or hyperband"),
            ));
        }
    })
}

/// `FromStr` of a policy named `name` with serialisable settings.
fn from_spec<T>(name: &str, text: &str) -> Result<T>
where
    T: Default + serde::Serialize + serde::de::DeserializeOwned,
{
    let (given, settings) = spec::split(text)?;
    if given != name {
        return Err(Error::invalid(
            "policy",
            format!("`{text}` does not name the `{name}` policy"),
        ));
    }
    spec::apply(name, &T::default(), &settings)
}

/// Every trial runs to the horizon.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NoStopping;

impl NoStopping {
    pub const NAME: &'static str = "none";
}

impl FromStr for NoStopping {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let (name, settings) = spec::split(s)?;
        if name != Self::NAME || !settings.is_empty() {
            return Err(Error::invalid("policy", format!("`{s}` is not `none`")));
        }
        Ok(NoStopping)
    }
}

impl StoppingPolicy for NoStopping {
    fn name(&self) -> &'static str {
        Self::NAME
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
    pub fn study<'a>(
        objective: impl Into<Objective>,
        horizon: usize,
        trials: &'a [TrialView<'a>],
    ) -> StudyView<'a> {
        let mut s = StudyView {
            objective: objective.into(),
            horizon,
            trials,
            incumbent: None,
            seed: 3,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_that_cannot_work_are_refused_when_the_study_starts() {
        let objective = Objective::accuracy();
        for good in [
            "none",
            "lc",
            "lc(threshold=0.1, every=2)",
            "median",
            "asha",
            "hyperband(reduction=2)",
        ] {
            let policy = parse(good).unwrap();
            assert!(policy.accepts(&objective).is_ok(), "{good}");
        }
        for (bad, says) in [
            ("lc(threshold=0)", "threshold 0 must lie in (0, 1)"),
            ("lc(threshold=1)", "threshold 1 must lie in (0, 1)"),
            ("lc(threshold=-0.5)", "threshold -0.5"),
            ("lc(every=0)", "every must be at least 1"),
            ("lc(predictor.walkers=0)", "need walkers >= 2"),
            ("lc(predictor.burn_in=5000)", "steps > burn-in"),
            ("asha(reduction=1)", "reduction >= 2"),
            ("asha(min_resource=0)", "min_resource >= 1"),
            ("hyperband(reduction=0)", "reduction >= 2"),
        ] {
            let error = parse(bad).unwrap().accepts(&objective).unwrap_err();
            assert!(error.to_string().contains(says), "{bad}: {error}");
        }
    }
}
