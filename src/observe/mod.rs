//! Observers: what sees a study's events as they happen.
//!
//! The tuner publishes every event, once the storage has acknowledged it
//! and the study has folded it in, to its observers in order: the progress
//! display ([`Progress`], chosen with [`Output`]) and whatever the user
//! registered with [`crate::tuner::Tuner::observe`] — a closure
//! `FnMut(&Event, &Study) -> Flow` or a type implementing [`Observer`] (to
//! log to one's own tracker, say, or to stop the study on a condition).
//! Events other workers appended reach the observers too, when this
//! worker next hears from the storage.
//!
//! ```
//! use foresight::observe::Flow;
//! use foresight::study::{Event, Study};
//!
//! // Stop the study once any trial completes with a score of 0.95 or more.
//! let good_enough = |event: &Event, study: &Study| match (event, study.incumbent()) {
//!     (Event::End { .. }, Some(best)) if best >= 0.95 => Flow::Stop,
//!     _ => Flow::Continue,
//! };
//! # let _ = good_enough;
//! ```
//!
//! An observer that panics is dropped (with a message on stderr); the study
//! goes on.

mod progress;

pub use progress::{Measure, Output, Progress, show_config};

use crate::study::{Event, Study};

/// What an observer asks of the study after an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// Start no new trial, and cut the running ones at their next epoch.
    Stop,
}

/// Sees a study's events.
pub trait Observer: Send {
    /// Called once when the study is opened, with what it holds already
    /// (empty for a new study).
    fn on_open(&mut self, study: &Study) {
        let _ = study;
    }

    /// Called after each event, with the study it has been applied to.
    fn on_event(&mut self, event: &Event, study: &Study) -> Flow;

    /// Called once when this worker is done with the study.
    fn on_finish(&mut self, study: &Study) {
        let _ = study;
    }
}

impl<F: FnMut(&Event, &Study) -> Flow + Send> Observer for F {
    fn on_event(&mut self, event: &Event, study: &Study) -> Flow {
        self(event, study)
    }
}
