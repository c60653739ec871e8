//! What tuning a model needs, in one import: `use foresight::prelude::*;`.
//!
//! ```
//! use foresight::prelude::*;
//!
//! let space = Space::builder()
//!     .float("learning_rate", 1e-4, 1e-1, Scale::Log)
//!     .int("hidden", 32, 256, Scale::Log)
//!     .build()?;
//! let objective = Objective::accuracy();
//! # let _ = (space, objective);
//! # Ok::<(), foresight::Error>(())
//! ```

pub use crate::error::Error;
pub use crate::observe::{Flow, Observer, Output};
pub use crate::policy::{
    Hyperband, LearningCurve, MedianRule, NoStopping, StoppingPolicy, SuccessiveHalving,
};
pub use crate::sampler::{GpSampler, GpSettings, RandomSampler, Sampler};
pub use crate::space::{Config, Scale, Space, Value, from_config, to_config};
pub use crate::storage::{Journal, Memory, Storage};
pub use crate::study::{Direction, Event, Objective, Status, Study, TrialRecord};
pub use crate::trial::{EpochReport, Pruned, Trainable, TrialContext, TrialError};
pub use crate::tuner::{Budget, Interrupt, Tuner};
