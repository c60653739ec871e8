//! The events of a study: everything that happens to it, in the order a
//! storage acknowledged them. A study's state is the fold of its events
//! ([`super::Study::apply`]); nothing else is kept.
//!
//! The first event is [`Event::Study`], the [`Header`]: what defines the
//! study (search space, objective, horizon, seed, and the full settings of
//! its sampler and stopping policy). A study is only continued by a tuner
//! whose header is the same ([`Header::check`] names what differs); a
//! setting foresight gained after the study began reads as its default
//! ([`Component::with_defaults`]), so a newer version continues an older
//! study.
//!
//! Trial events carry the trial's number. [`Event::Start`] and
//! [`Event::Takeover`] name the trial's *owner*, the worker process that
//! runs it; storages accept the other events of a trial only from its
//! owner (see [`crate::storage`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Objective;
use crate::error::{Error, Result};
use crate::space::{Config, Space};

/// The format version written into every header. Version 1 (before the
/// study model had owners, objectives and settings) is not read.
pub const VERSION: u32 = 2;

/// A sampler's or stopping policy's name and full settings, as the header
/// records them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Component {
    pub name: String,
    /// Every setting that changes a decision (`null` for a user-built
    /// component that does not report its settings).
    #[serde(default)]
    pub settings: serde_json::Value,
}

impl Component {
    /// The component with every setting it lacks taken from `defaults`
    /// (nested settings too). A study begun by an earlier version of
    /// foresight lacks the settings added since; a setting is only ever
    /// added with a default that keeps the behaviour from before it, so
    /// such a study reads as one that chose the defaults.
    pub fn with_defaults(&self, defaults: &serde_json::Value) -> Component {
        fn fill(into: &mut serde_json::Value, defaults: &serde_json::Value) {
            if let (Some(into), Some(defaults)) = (into.as_object_mut(), defaults.as_object()) {
                for (key, default) in defaults {
                    match into.get_mut(key) {
                        Some(value) => fill(value, default),
                        None => {
                            into.insert(key.clone(), default.clone());
                        }
                    }
                }
            }
        }
        let mut settings = self.settings.clone();
        fill(&mut settings, defaults);
        Component {
            name: self.name.clone(),
            settings,
        }
    }
}

/// What defines a study.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub version: u32,
    pub space: Space,
    pub objective: Objective,
    /// Epochs of a full run.
    pub horizon: usize,
    pub seed: u64,
    pub sampler: Component,
    pub policy: Component,
}

impl Header {
    /// `Ok` if a tuner with header `self` may continue the study whose
    /// stored header is `stored`; otherwise an error naming the first thing
    /// that differs (down to one setting of the sampler or policy). A
    /// setting `stored` lacks is compared as `null`: fill it in first
    /// ([`Component::with_defaults`]) where its default is known.
    pub fn check(&self, stored: &Header, storage: &str) -> Result<()> {
        let differs = |what: String, mine: String, theirs: String| {
            Err(Error::Storage {
                storage: storage.to_string(),
                message: format!(
                    "belongs to a different study: its {what} is {theirs}, this study's is \
                     {mine} (use another study folder or storage, or the same settings)"
                ),
            })
        };
        if stored.version != VERSION {
            return Err(Error::Storage {
                storage: storage.to_string(),
                message: format!(
                    "written in study format {} by {} version of foresight; this one reads \
                     format {VERSION}",
                    stored.version,
                    if stored.version > VERSION {
                        "a newer"
                    } else {
                        "an older"
                    }
                ),
            });
        }
        if self.space != stored.space {
            let json = |s: &Space| serde_json::to_string(s).unwrap_or_default();
            return differs(
                "search space".into(),
                json(&self.space),
                json(&stored.space),
            );
        }
        if self.objective != stored.objective {
            return differs(
                "objective".into(),
                self.objective.to_string(),
                stored.objective.to_string(),
            );
        }
        if self.horizon != stored.horizon {
            return differs(
                "horizon".into(),
                self.horizon.to_string(),
                stored.horizon.to_string(),
            );
        }
        if self.seed != stored.seed {
            return differs(
                "seed".into(),
                self.seed.to_string(),
                stored.seed.to_string(),
            );
        }
        for (what, mine, theirs) in [
            ("sampler", &self.sampler, &stored.sampler),
            ("stopping policy", &self.policy, &stored.policy),
        ] {
            if mine.name != theirs.name {
                return differs(what.into(), mine.name.clone(), theirs.name.clone());
            }
            if let Some((path, a, b)) = first_difference("", &mine.settings, &theirs.settings) {
                let name = if path.is_empty() {
                    format!("{what} settings")
                } else {
                    format!("{what} setting `{path}`")
                };
                return differs(name, a, b);
            }
        }
        Ok(())
    }
}

/// The first place where two settings trees differ: its dotted path and
/// both values (`None` if they are equal).
fn first_difference(
    path: &str,
    a: &serde_json::Value,
    b: &serde_json::Value,
) -> Option<(String, String, String)> {
    use serde_json::Value;
    let join = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            keys.into_iter().find_map(|k| {
                let (va, vb) = (
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                );
                first_difference(&join(k), va, vb)
            })
        }
        _ if a == b => None,
        _ => Some((path.to_string(), a.to_string(), b.to_string())),
    }
}

/// How a trial ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Ran to the horizon.
    Completed,
    /// Stopped by the stopping policy.
    Stopped,
    /// Asked to be pruned by its own code ([`crate::trial::Pruned`]).
    Pruned,
    /// Returned an error, panicked, or exceeded the per-trial time limit.
    Failed,
    /// Reported a non-finite score.
    Diverged,
    /// Cut off when the budget ran out or the study was stopped (not a
    /// result).
    Cut,
}

/// One event. `t` is seconds since the study was created (simulated epochs
/// under replay's clock); `owner` names a worker process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "lowercase")]
pub enum Event {
    /// The first event.
    Study(Header),
    /// A trial claimed by `owner`, with its configuration: trial numbers
    /// are claimed in order, each once.
    Start {
        trial: usize,
        config: Config,
        seed: u64,
        owner: String,
        t: f64,
    },
    /// A running trial whose owner `from` died, claimed by `owner`; it runs
    /// again (from its last checkpoint).
    Takeover {
        trial: usize,
        owner: String,
        from: String,
        t: f64,
    },
    /// The score after `epoch` (1-based; `null` for a non-finite score),
    /// with the trial's other metrics and attributes of that epoch.
    Epoch {
        trial: usize,
        epoch: usize,
        value: Option<f64>,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        metrics: BTreeMap<String, Option<f64>>,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        attrs: BTreeMap<String, serde_json::Value>,
        t: f64,
    },
    /// A learning-curve assessment after `epoch` (or the error it failed
    /// with).
    Prediction {
        trial: usize,
        epoch: usize,
        p_better: Option<f64>,
        /// Predicted final value (median) and variance, objective units.
        mean: Option<f64>,
        variance: Option<f64>,
        /// `(epoch, q05, median, q95)` over the remaining epochs.
        band: Vec<(usize, f64, f64, f64)>,
        stop: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        t: f64,
    },
    /// A checkpoint after `epoch` was saved.
    Checkpoint { trial: usize, epoch: usize, t: f64 },
    /// A trial interrupted by a crash goes on from `epoch` (0: from scratch).
    Restart { trial: usize, epoch: usize, t: f64 },
    /// A trial ended. `value`/`variance`: what the sampler was told, in
    /// objective units (the final value, or a stopped trial's prediction).
    End {
        trial: usize,
        status: Status,
        value: Option<f64>,
        variance: Option<f64>,
        message: Option<String>,
        t: f64,
    },
}

impl Event {
    /// The event's time stamp (`None` for the header).
    pub fn time(&self) -> Option<f64> {
        match self {
            Event::Study(_) => None,
            Event::Start { t, .. }
            | Event::Takeover { t, .. }
            | Event::Epoch { t, .. }
            | Event::Prediction { t, .. }
            | Event::Checkpoint { t, .. }
            | Event::Restart { t, .. }
            | Event::End { t, .. } => Some(*t),
        }
    }

    /// The trial the event is about (`None` for the header).
    pub fn trial(&self) -> Option<usize> {
        match self {
            Event::Study(_) => None,
            Event::Start { trial, .. }
            | Event::Takeover { trial, .. }
            | Event::Epoch { trial, .. }
            | Event::Prediction { trial, .. }
            | Event::Checkpoint { trial, .. }
            | Event::Restart { trial, .. }
            | Event::End { trial, .. } => Some(*trial),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::study::test_header as header;

    #[test]
    fn a_different_study_is_refused_naming_the_difference() {
        let h = header();
        assert!(h.check(&h, "x").is_ok());
        let mut other = header();
        other.horizon = 20;
        let err = h.check(&other, "x").unwrap_err().to_string();
        assert!(err.contains("horizon is 20, this study's is 10"), "{err}");
        let mut other = header();
        other.policy.settings["threshold"] = serde_json::json!(0.1);
        let err = h.check(&other, "x").unwrap_err().to_string();
        assert!(
            err.contains("stopping policy setting `threshold` is 0.1, this study's is 0.05"),
            "{err}"
        );
        let mut other = header();
        other.policy.settings["predictor"]["walkers"] = serde_json::json!(64);
        let err = h.check(&other, "x").unwrap_err().to_string();
        assert!(err.contains("`predictor.walkers`"), "{err}");
        let mut other = header();
        other.sampler.settings["eta"] = serde_json::json!(1.0);
        let err = h.check(&other, "x").unwrap_err().to_string();
        assert!(err.contains("sampler setting `eta`"), "{err}");
        let mut other = header();
        other.objective = Objective::maximize().range(0.0, 100.0);
        let err = h.check(&other, "x").unwrap_err().to_string();
        assert!(err.contains("objective"), "{err}");
        let mut other = header();
        other.version = 1;
        let err = h.check(&other, "x").unwrap_err().to_string();
        assert!(err.contains("format 1 by an older"), "{err}");
    }

    #[test]
    fn events_round_trip_and_old_lines_read() {
        let e = Event::Epoch {
            trial: 3,
            epoch: 2,
            value: None,
            metrics: BTreeMap::from([("train_loss".to_string(), Some(0.5))]),
            attrs: BTreeMap::new(),
            t: 1.5,
        };
        let text = serde_json::to_string(&e).unwrap();
        assert_eq!(serde_json::from_str::<Event>(&text).unwrap(), e);
        // An epoch line without metrics or attributes reads as empty ones.
        let plain: Event =
            serde_json::from_str(r#"{"event":"epoch","trial":0,"epoch":1,"value":0.5,"t":0}"#)
                .unwrap();
        assert!(matches!(plain, Event::Epoch { ref metrics, .. } if metrics.is_empty()));
        assert_eq!(plain.trial(), Some(0));
    }
}
