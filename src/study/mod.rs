//! The study model: a study is the fold of its events.
//!
//! * [`Event`] and [`Header`] (`event.rs`): what happens, one record each,
//!   as a storage keeps them;
//! * [`Objective`] (`objective.rs`): the direction and range of the metric;
//! * [`Command`] (`command.rs`): the command line that created a study;
//! * [`Study`] (here): the state every part of foresight reads — the tuner
//!   deciding, the progress display, reports, replay — built by
//!   [`Study::apply`] one event at a time, in the order the storage
//!   acknowledged them. The same events fold to the same study wherever
//!   they are read, so a study resumed, reported or shared by many workers
//!   is one study. (The model depends on nothing above it: a storage keeps
//!   events, [`crate::storage::Storage::load`] folds them.)

mod command;
mod event;
mod objective;

use std::collections::BTreeMap;

pub use command::{Command, hide_password};
pub use event::{Component, Event, Header, Status, VERSION};
pub use objective::{CurveUnits, Direction, Objective};

use crate::space::Config;

/// A prediction made for a trial, as the storage recorded it.
#[derive(Debug, Clone, PartialEq)]
pub struct PredictionRecord {
    /// Epochs observed when it was made.
    pub epoch: usize,
    pub p_better: Option<f64>,
    pub mean: Option<f64>,
    pub variance: Option<f64>,
    pub band: Vec<(usize, f64, f64, f64)>,
    pub stop: bool,
    /// Why the assessment failed, if it did.
    pub error: Option<String>,
}

/// One trial of a study.
#[derive(Debug, Clone, PartialEq)]
pub struct TrialRecord {
    pub id: usize,
    pub config: Config,
    pub seed: u64,
    /// The worker process that runs (or ran) it.
    pub owner: String,
    /// Times it was taken over from a worker that was gone.
    pub restarts: usize,
    /// Scores after epochs `1..=scores.len()` (`NaN` for a non-finite one).
    pub scores: Vec<f64>,
    /// Other metrics the trial reported: `(epoch, value)` by name.
    pub metrics: BTreeMap<String, Vec<(usize, f64)>>,
    /// Attributes the trial reported (the latest value of each).
    pub attrs: BTreeMap<String, serde_json::Value>,
    /// How it ended (`None` while running, or interrupted by a crash).
    pub status: Option<Status>,
    /// What the sampler was told: value and variance, objective units.
    pub told: Option<(f64, f64)>,
    /// The error of a failed trial, or the reason of a pruned one.
    pub message: Option<String>,
    pub predictions: Vec<PredictionRecord>,
    /// Epoch of the last checkpoint.
    pub checkpoint: Option<usize>,
    /// Time the trial started (seconds, or simulated epochs).
    pub started: f64,
}

impl TrialRecord {
    /// The score after the horizon, for a completed trial.
    pub fn final_score(&self) -> Option<f64> {
        if self.status == Some(Status::Completed) {
            self.scores.last().copied()
        } else {
            None
        }
    }
}

/// A study's state: the fold of its events ([`Study::apply`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Study {
    pub header: Header,
    pub trials: Vec<TrialRecord>,
    /// Epochs trained, over all trials (including epochs lost to a crash).
    pub epochs_used: usize,
    /// Time of the last event.
    pub elapsed: f64,
    /// Trials in the order they ended, with the epochs used by then.
    pub ends: Vec<(usize, usize)>,
    /// The incumbent's trial and final score.
    incumbent: Option<(usize, f64)>,
}

impl Study {
    /// An empty study.
    pub fn new(header: Header) -> Study {
        Study {
            header,
            trials: Vec::new(),
            epochs_used: 0,
            elapsed: 0.0,
            ends: Vec::new(),
            incumbent: None,
        }
    }

    /// The study whose events are `events` (header first, as
    /// [`crate::storage::Storage::load`] reads them); `None` without a
    /// header.
    pub fn from_events(events: &[Event]) -> Option<Study> {
        let Some(Event::Study(header)) = events.first() else {
            return None;
        };
        let mut study = Study::new(header.clone());
        for e in &events[1..] {
            study.apply(e);
        }
        Some(study)
    }

    /// Applies one event. Events about unknown trials are ignored.
    pub fn apply(&mut self, event: &Event) {
        if let Some(t) = event.time() {
            self.elapsed = self.elapsed.max(t);
        }
        match event {
            Event::Study(h) => self.header = h.clone(),
            Event::Start {
                trial,
                config,
                seed,
                owner,
                t,
            } => {
                if *trial == self.trials.len() {
                    self.trials.push(TrialRecord {
                        id: *trial,
                        config: config.clone(),
                        seed: *seed,
                        owner: owner.clone(),
                        restarts: 0,
                        scores: Vec::new(),
                        metrics: BTreeMap::new(),
                        attrs: BTreeMap::new(),
                        status: None,
                        told: None,
                        message: None,
                        predictions: Vec::new(),
                        checkpoint: None,
                        started: *t,
                    });
                }
            }
            Event::Takeover { trial, owner, .. } => {
                if let Some(r) = self.trials.get_mut(*trial) {
                    r.owner = owner.clone();
                    r.restarts += 1;
                }
            }
            Event::Epoch {
                trial,
                epoch,
                value,
                metrics,
                attrs,
                ..
            } => {
                self.epochs_used += 1;
                if let Some(r) = self.trials.get_mut(*trial) {
                    r.scores.truncate(epoch.saturating_sub(1));
                    r.scores.push(value.unwrap_or(f64::NAN));
                    for (name, v) in metrics {
                        let series = r.metrics.entry(name.clone()).or_default();
                        series.retain(|p| p.0 < *epoch);
                        series.push((*epoch, v.unwrap_or(f64::NAN)));
                    }
                    for (k, v) in attrs {
                        r.attrs.insert(k.clone(), v.clone());
                    }
                }
            }
            Event::Prediction {
                trial,
                epoch,
                p_better,
                mean,
                variance,
                band,
                stop,
                error,
                ..
            } => {
                if let Some(r) = self.trials.get_mut(*trial) {
                    r.predictions.push(PredictionRecord {
                        epoch: *epoch,
                        p_better: *p_better,
                        mean: *mean,
                        variance: *variance,
                        band: band.clone(),
                        stop: *stop,
                        error: error.clone(),
                    });
                }
            }
            Event::Checkpoint { trial, epoch, .. } => {
                if let Some(r) = self.trials.get_mut(*trial) {
                    r.checkpoint = Some(*epoch);
                }
            }
            Event::Restart { trial, epoch, .. } => {
                if let Some(r) = self.trials.get_mut(*trial) {
                    r.scores.truncate(*epoch);
                    r.predictions.retain(|p| p.epoch <= *epoch);
                    for series in r.metrics.values_mut() {
                        series.retain(|p| p.0 <= *epoch);
                    }
                }
            }
            Event::End {
                trial,
                status,
                value,
                variance,
                message,
                ..
            } => {
                let objective = self.header.objective;
                if let Some(r) = self.trials.get_mut(*trial) {
                    if r.status.is_none() {
                        self.ends.push((*trial, self.epochs_used));
                    }
                    r.status = Some(*status);
                    r.told = value.map(|v| (v, variance.unwrap_or(0.0)));
                    r.message = message.clone();
                    if let Some(f) = r.final_score() {
                        let better = match self.incumbent {
                            None => true,
                            Some((_, b)) => objective.better(f, b),
                        };
                        if f.is_finite() && better {
                            self.incumbent = Some((*trial, f));
                        }
                    }
                }
            }
        }
    }

    /// The incumbent: the completed trial with the best final score.
    pub fn best(&self) -> Option<&TrialRecord> {
        self.incumbent.map(|(i, _)| &self.trials[i])
    }

    /// The incumbent's final score.
    pub fn incumbent(&self) -> Option<f64> {
        self.incumbent.map(|(_, v)| v)
    }

    /// Trials with the given end status.
    pub fn count(&self, status: Option<Status>) -> usize {
        self.trials.iter().filter(|t| t.status == status).count()
    }

    /// Epochs the same trials would have used without early stopping: a
    /// stopped or pruned trial counts the whole horizon.
    pub fn epochs_without_stopping(&self) -> usize {
        let stopped_extra: usize = self
            .trials
            .iter()
            .filter(|t| matches!(t.status, Some(Status::Stopped | Status::Pruned)))
            .map(|t| self.header.horizon.saturating_sub(t.scores.len()))
            .sum();
        self.epochs_used + stopped_extra
    }

    /// Running trials (`status == None`).
    pub fn running(&self) -> impl Iterator<Item = &TrialRecord> {
        self.trials.iter().filter(|t| t.status.is_none())
    }
}

/// A header for tests: one log-scale float, accuracy, horizon 10.
#[cfg(test)]
pub(crate) fn test_header() -> Header {
    use crate::space::{Scale, Space};
    Header {
        version: VERSION,
        space: Space::builder()
            .float("lr", 1e-3, 1e-1, Scale::Log)
            .build()
            .unwrap(),
        objective: Objective::accuracy(),
        horizon: 10,
        seed: 1,
        sampler: Component {
            name: "gp-hedge".into(),
            settings: serde_json::json!({"eta": 0.1, "arms": ["ucb", "pi"]}),
        },
        policy: Component {
            name: "lc".into(),
            settings: serde_json::json!({"threshold": 0.05, "predictor": {"walkers": 32}}),
        },
    }
}
