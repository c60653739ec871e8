//! What a user's model implements to be tuned.
//!
//! A [`Trainable`] is one training run of one configuration. The tuner
//! builds it with a factory `Fn(&Config, &TrialContext) -> Result<T,
//! TrialError>` (the user's constructor), then calls
//! [`Trainable::train_epoch`] once per epoch, up to the study's horizon or
//! until its stopping policy ends the run. Each call returns the validation
//! score after that epoch in the study's objective — a plain `f64`, or an
//! [`EpochReport`] that also carries named metrics (training loss, test
//! accuracy, seconds) and attributes, all recorded with the epoch.
//!
//! A run ends early, and the tuner records why, when `train_epoch`
//! * returns [`Pruned`] as its error: the trial asked to be pruned (its own
//!   logic says it is hopeless; recorded as pruned, not failed);
//! * returns any other error or panics: failed;
//! * reports a non-finite score: diverged;
//! * runs past the study's per-trial time limit: failed, with the reason.
//!
//! Checkpoints are optional: a model that implements [`Trainable::save`] and
//! [`Trainable::restore`] is continued from its last checkpoint when a
//! killed study is resumed, instead of being trained again from scratch.
//!
//! A program in any language can be a trial too: [`command`].

// Process groups and signals: Unix (the parent-death signal: Linux).
#[cfg(unix)]
pub mod command;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The error a trial returns: anything the user's code produces.
pub type TrialError = Box<dyn std::error::Error + Send + Sync>;

/// What a trial is told when it is built.
#[derive(Debug, Clone, PartialEq)]
pub struct TrialContext {
    /// The trial's number in the study (0-based, in order of start).
    pub trial: usize,
    /// The seed for every random choice of this trial (weight
    /// initialisation, data shuffling, dropout): derived from the study's
    /// seed and the trial number, so that a study is reproducible.
    pub seed: u64,
    /// Epochs of a full run.
    pub horizon: usize,
    /// The index of the worker that runs the trial, `0..workers`: pin a
    /// device per worker with it (GPU `worker`, say).
    pub worker: usize,
    /// Compute threads this trial may use (the tuner also runs the trial
    /// inside a rayon pool of that size).
    pub threads: usize,
    /// The study's per-trial time limit, from the trial's start, if it has
    /// one (a trial that can stop itself does: a command trial stops its
    /// program at it; the tuner fails the trial then in any case).
    pub time_limit: Option<Duration>,
    /// A folder of this trial's own for checkpoints (created by the tuner;
    /// empty when the study keeps no checkpoints).
    pub checkpoint_dir: PathBuf,
}

/// What one epoch reports: the score the study optimises, and optionally
/// other metrics and attributes to record with it.
///
/// ```
/// use foresight::trial::EpochReport;
///
/// let report = EpochReport::new(0.91)
///     .metric("train_loss", 0.27)
///     .metric("seconds", 12.5)
///     .attr("lr_now", 3e-4);
/// assert_eq!(report.metrics["train_loss"], 0.27);
/// let plain: EpochReport = 0.91.into();
/// assert!(plain.metrics.is_empty());
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EpochReport {
    /// The validation score after the epoch, in the study's objective.
    pub score: f64,
    /// Other metrics by name (recorded, never optimised).
    pub metrics: BTreeMap<String, f64>,
    /// Attributes by name (any JSON value: text, numbers, flags).
    pub attrs: BTreeMap<String, serde_json::Value>,
}

impl EpochReport {
    /// A report of `score` alone.
    pub fn new(score: f64) -> EpochReport {
        EpochReport {
            score,
            ..EpochReport::default()
        }
    }

    /// Adds a metric.
    pub fn metric(mut self, name: impl Into<String>, value: f64) -> EpochReport {
        self.metrics.insert(name.into(), value);
        self
    }

    /// Adds an attribute.
    pub fn attr(
        mut self,
        name: impl Into<String>,
        value: impl Into<serde_json::Value>,
    ) -> EpochReport {
        self.attrs.insert(name.into(), value.into());
        self
    }
}

impl From<f64> for EpochReport {
    fn from(score: f64) -> EpochReport {
        EpochReport::new(score)
    }
}

/// The error a trial returns to ask to be pruned: its own logic says the
/// run is not worth finishing. Recorded as [`crate::study::Status::Pruned`]
/// (not failed), and its last score goes to the sampler as a stopped run's
/// does.
///
/// ```
/// use foresight::trial::{Pruned, TrialError};
///
/// fn check(loss: f64) -> Result<f64, TrialError> {
///     if loss > 10.0 {
///         return Err(Pruned::because("the loss exploded").into());
///     }
///     Ok(loss)
/// }
/// let err = check(11.0).unwrap_err();
/// assert!(err.downcast_ref::<Pruned>().is_some());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pruned {
    pub reason: String,
}

impl Pruned {
    pub fn because(reason: impl Into<String>) -> Pruned {
        Pruned {
            reason: reason.into(),
        }
    }
}

impl std::fmt::Display for Pruned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pruned: {}", self.reason)
    }
}

impl std::error::Error for Pruned {}

/// One training run of one configuration.
///
/// ```
/// use foresight::trial::{Trainable, TrialError};
///
/// /// A "model" whose validation accuracy approaches `limit`.
/// struct Toy { epoch: usize, limit: f64 }
///
/// impl Trainable for Toy {
///     type Report = f64;
///     fn train_epoch(&mut self) -> Result<f64, TrialError> {
///         self.epoch += 1;
///         Ok(self.limit * (1.0 - 0.5f64.powi(self.epoch as i32)))
///     }
/// }
///
/// let mut toy = Toy { epoch: 0, limit: 0.9 };
/// assert_eq!(toy.train_epoch().unwrap(), 0.45);
/// ```
pub trait Trainable: Send {
    /// What an epoch reports: `f64` (the score alone) or [`EpochReport`].
    type Report: Into<EpochReport>;

    /// Trains one more epoch and returns the validation score after it.
    fn train_epoch(&mut self) -> Result<Self::Report, TrialError>;

    /// Saves a checkpoint of the run so far into `dir` (the trial's
    /// [`TrialContext::checkpoint_dir`]); returns whether one was saved. The
    /// default saves nothing. Called after an epoch whose run goes on.
    fn save(&mut self, dir: &Path) -> Result<bool, TrialError> {
        let _ = dir;
        Ok(false)
    }

    /// Restores the checkpoint last saved into `dir`; returns whether one
    /// was restored (the default restores nothing, and the run starts over).
    fn restore(&mut self, dir: &Path) -> Result<bool, TrialError> {
        let _ = dir;
        Ok(false)
    }
}
