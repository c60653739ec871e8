//! What a user's model implements to be tuned.
//!
//! A [`Trainable`] is one training run of one configuration. The tuner
//! builds it with a factory `Fn(&Config, &TrialContext) -> Result<T,
//! TrialError>` (the user's constructor), then calls
//! [`Trainable::train_epoch`] once per epoch, up to the study's horizon or
//! until its stopping policy ends the run. Each call returns the validation
//! score after that epoch, in the study's metric (accuracy in `[0, 1]` or a
//! loss); whether larger is better is a property of the study, not of the
//! model.
//!
//! A run that returns an error, panics, or reports a non-finite score ends
//! there; the tuner records it (failed or diverged) and goes on.
//!
//! Checkpoints are optional: a model that implements [`Trainable::save`] and
//! [`Trainable::restore`] is continued from its last checkpoint when a
//! killed study is resumed, instead of being trained again from scratch.

use std::path::{Path, PathBuf};

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
    /// A folder of this trial's own for checkpoints (created by the tuner).
    pub checkpoint_dir: PathBuf,
}

/// One training run of one configuration.
///
/// ```
/// use foresight::trainable::{Trainable, TrialError};
///
/// /// A "model" whose validation accuracy approaches `limit`.
/// struct Toy { epoch: usize, limit: f64 }
///
/// impl Trainable for Toy {
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
    /// Trains one more epoch and returns the validation score after it.
    fn train_epoch(&mut self) -> Result<f64, TrialError>;

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
