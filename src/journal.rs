//! The study journal: every event of a study, one JSON object per line,
//! appended to `STUDY_DIR/journal.jsonl` as it happens.
//!
//! The journal is the study's only state on disk. Each event is written with
//! a single `write` of the whole line, so a process killed at any moment
//! (even by SIGKILL) leaves every earlier event intact and at worst a
//! truncated last line, which [`Journal::open`] drops. A study is rebuilt by
//! applying the events in order ([`crate::tuner::Study::apply`]); that is
//! how `foresight resume` and `foresight report` read it.
//!
//! The first line is the [`Header`]: the search space, metric, horizon,
//! seed, sampler and policy. A journal whose header does not match the
//! study being resumed is refused.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::curve::Metric;
use crate::error::{Error, Result};
use crate::space::{Config, Space};

/// The journal's file name inside a study folder.
pub const FILE: &str = "journal.jsonl";

/// Format version written into every header.
pub const VERSION: u32 = 1;

/// What defines a study: a journal is only resumed by a study with the same header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub version: u32,
    pub space: Space,
    pub metric: Metric,
    pub horizon: usize,
    pub seed: u64,
    /// The sampler's name.
    pub sampler: String,
    /// The stopping policy's name.
    pub policy: String,
}

impl Header {
    /// `Ok` if a study described by `self` may continue the journal with
    /// header `journal`; otherwise an error naming what differs.
    pub fn check(&self, journal: &Header, path: &Path) -> Result<()> {
        let differs = |what: &str, a: String, b: String| {
            Err(Error::Journal {
                path: path.to_path_buf(),
                message: format!(
                    "belongs to a different study: its {what} is {b}, this study's is {a}"
                ),
            })
        };
        if journal.version != VERSION {
            return differs(
                "format version",
                VERSION.to_string(),
                journal.version.to_string(),
            );
        }
        if self.space != journal.space {
            let show = |s: &Space| serde_json::to_string(s).unwrap_or_default();
            return differs("search space", show(&self.space), show(&journal.space));
        }
        if self.metric != journal.metric {
            return differs(
                "metric",
                format!("{:?}", self.metric),
                format!("{:?}", journal.metric),
            );
        }
        if self.horizon != journal.horizon {
            return differs(
                "horizon",
                self.horizon.to_string(),
                journal.horizon.to_string(),
            );
        }
        if self.seed != journal.seed {
            return differs("seed", self.seed.to_string(), journal.seed.to_string());
        }
        if self.sampler != journal.sampler {
            return differs("sampler", self.sampler.clone(), journal.sampler.clone());
        }
        if self.policy != journal.policy {
            return differs(
                "stopping policy",
                self.policy.clone(),
                journal.policy.clone(),
            );
        }
        Ok(())
    }
}

/// How a trial ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Ran to the horizon.
    Completed,
    /// Stopped by the stopping policy.
    Stopped,
    /// Returned an error or panicked.
    Failed,
    /// Reported a non-finite score.
    Diverged,
    /// Cut off when the budget ran out (not a result).
    Cut,
}

/// One line of the journal. `t` is seconds since the study was created
/// (simulated epochs under replay's clock).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "lowercase")]
pub enum Event {
    /// The first line.
    Study(Header),
    /// A trial started with `config`.
    Start {
        trial: usize,
        config: Config,
        seed: u64,
        t: f64,
    },
    /// The score after `epoch` (1-based); `null` for a non-finite score.
    Epoch {
        trial: usize,
        epoch: usize,
        value: Option<f64>,
        t: f64,
    },
    /// A learning-curve prediction after `epoch`.
    Prediction {
        trial: usize,
        epoch: usize,
        p_better: Option<f64>,
        /// Predicted final value (mean) and variance.
        mean: Option<f64>,
        variance: Option<f64>,
        /// `(epoch, q05, median, q95)` over the remaining epochs.
        band: Vec<(usize, f64, f64, f64)>,
        stop: bool,
        t: f64,
    },
    /// A checkpoint after `epoch` was saved.
    Checkpoint { trial: usize, epoch: usize, t: f64 },
    /// A trial interrupted by a crash goes on from `epoch` (0: from scratch).
    Restart { trial: usize, epoch: usize, t: f64 },
    /// A trial ended. `value`/`variance`: what the sampler was told, in
    /// metric units (the final value, or a stopped trial's prediction).
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
            | Event::Epoch { t, .. }
            | Event::Prediction { t, .. }
            | Event::Checkpoint { t, .. }
            | Event::Restart { t, .. }
            | Event::End { t, .. } => Some(*t),
        }
    }
}

/// An open journal, appending.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: File,
}

impl Journal {
    /// The journal path of a study folder.
    pub fn path_in(dir: &Path) -> PathBuf {
        dir.join(FILE)
    }

    /// Creates the study folder (if needed) and a new journal with its header.
    pub fn create(dir: &Path, header: &Header) -> Result<Journal> {
        let path = Self::path_in(dir);
        let io = |source| Error::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .map_err(io)?;
        let mut j = Journal { path, file };
        j.append(&Event::Study(header.clone()))?;
        Ok(j)
    }

    /// Reads a study folder's journal: its header and events. A truncated
    /// or unreadable *last* line (a crash mid-write) is dropped; any other
    /// unreadable line is an error naming it.
    pub fn read(dir: &Path) -> Result<(Header, Vec<Event>)> {
        Ok(Self::read_lines(dir)?.0)
    }

    /// Opens a journal to continue it: its header and events, with a
    /// truncated last line removed from the file.
    pub fn open(dir: &Path) -> Result<(Journal, Header, Vec<Event>)> {
        let ((header, events), good_len) = Self::read_lines(dir)?;
        let path = Self::path_in(dir);
        let io = |source| Error::Io {
            path: path.clone(),
            source,
        };
        let file = OpenOptions::new().write(true).open(&path).map_err(io)?;
        file.set_len(good_len).map_err(io)?;
        drop(file);
        let file = OpenOptions::new().append(true).open(&path).map_err(io)?;
        Ok((Journal { path, file }, header, events))
    }

    /// Header, events, and the byte length of the well-formed prefix.
    #[allow(clippy::type_complexity)]
    fn read_lines(dir: &Path) -> Result<((Header, Vec<Event>), u64)> {
        let path = Self::path_in(dir);
        let io = |source| Error::Io {
            path: path.clone(),
            source,
        };
        let mut reader = BufReader::new(File::open(&path).map_err(io)?);
        let mut events = Vec::new();
        let mut good_len = 0u64;
        let mut line = String::new();
        let mut number = 0;
        let mut bad: Option<(usize, String)> = None;
        loop {
            line.clear();
            let n = reader.read_line(&mut line).map_err(io)?;
            if n == 0 {
                break;
            }
            number += 1;
            if let Some((at, message)) = bad.take() {
                // An unreadable line followed by more lines is corruption,
                // not a crash mid-write.
                return Err(Error::Format {
                    path: path.clone(),
                    line: at,
                    field: "event".into(),
                    message,
                });
            }
            let complete = line.ends_with('\n');
            match serde_json::from_str::<Event>(line.trim_end()) {
                Ok(e) if complete => {
                    events.push(e);
                    good_len += n as u64;
                }
                Ok(_) => bad = Some((number, "truncated line".into())),
                Err(e) => bad = Some((number, e.to_string())),
            }
        }
        let header = match events.first() {
            Some(Event::Study(h)) => h.clone(),
            _ => {
                return Err(Error::Journal {
                    path,
                    message: "does not start with a study header".into(),
                });
            }
        };
        events.remove(0);
        Ok(((header, events), good_len))
    }

    /// Appends one event (one `write` of the whole line).
    pub fn append(&mut self, event: &Event) -> Result<()> {
        let mut line = serde_json::to_string(event).map_err(|e| Error::Journal {
            path: self.path.clone(),
            message: e.to_string(),
        })?;
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .and_then(|_| self.file.flush())
            .map_err(|source| Error::Io {
                path: self.path.clone(),
                source,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header {
            version: VERSION,
            space: Space::builder()
                .float("lr", 1e-3, 1e-1, true)
                .build()
                .unwrap(),
            metric: Metric::Accuracy,
            horizon: 10,
            seed: 1,
            sampler: "gp-hedge".into(),
            policy: "lc".into(),
        }
    }

    fn dir(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("foresight-journal-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn epoch(trial: usize, epoch: usize) -> Event {
        Event::Epoch {
            trial,
            epoch,
            value: Some(0.5),
            t: 1.0,
        }
    }

    #[test]
    fn round_trip_and_append_after_reopen() {
        let d = dir("rt");
        let mut j = Journal::create(&d, &header()).unwrap();
        j.append(&epoch(0, 1)).unwrap();
        drop(j);
        assert!(
            Journal::create(&d, &header()).is_err(),
            "never overwrites a journal"
        );
        let (mut j, h, ev) = Journal::open(&d).unwrap();
        assert_eq!(h, header());
        assert_eq!(ev, vec![epoch(0, 1)]);
        j.append(&epoch(0, 2)).unwrap();
        let (_, ev) = Journal::read(&d).unwrap();
        assert_eq!(ev, vec![epoch(0, 1), epoch(0, 2)]);
        // A non-finite score is written as null.
        let text = std::fs::read_to_string(Journal::path_in(&d)).unwrap();
        assert!(text.lines().count() == 3);
    }

    #[test]
    fn a_truncated_last_line_is_dropped_and_removed() {
        let d = dir("trunc");
        let mut j = Journal::create(&d, &header()).unwrap();
        j.append(&epoch(0, 1)).unwrap();
        drop(j);
        let path = Journal::path_in(&d);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(br#"{"event":"epoch","trial":0,"ep"#).unwrap();
        drop(f);
        let (mut j, _, ev) = Journal::open(&d).unwrap();
        assert_eq!(ev, vec![epoch(0, 1)]);
        j.append(&epoch(0, 2)).unwrap();
        let (_, ev) = Journal::read(&d).unwrap();
        assert_eq!(ev, vec![epoch(0, 1), epoch(0, 2)]);
    }

    #[test]
    fn corruption_in_the_middle_is_an_error_naming_the_line() {
        let d = dir("corrupt");
        let mut j = Journal::create(&d, &header()).unwrap();
        j.append(&epoch(0, 1)).unwrap();
        drop(j);
        let path = Journal::path_in(&d);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"garbage\n").unwrap();
        drop(f);
        let mut j = OpenOptions::new().append(true).open(&path).unwrap();
        j.write_all((serde_json::to_string(&epoch(0, 2)).unwrap() + "\n").as_bytes())
            .unwrap();
        let err = Journal::read(&d).unwrap_err().to_string();
        assert!(err.contains(":3:"), "{err}");
    }

    #[test]
    fn a_different_study_is_refused() {
        let h = header();
        let p = Path::new("x");
        assert!(h.check(&h, p).is_ok());
        let mut other = header();
        other.space = Space::builder()
            .float("lr", 1e-4, 1e-1, true)
            .build()
            .unwrap();
        let err = h.check(&other, p).unwrap_err().to_string();
        assert!(err.contains("search space"), "{err}");
        let mut other = header();
        other.horizon = 20;
        assert!(
            h.check(&other, p)
                .unwrap_err()
                .to_string()
                .contains("horizon")
        );
        // Not a journal at all.
        let d = dir("notjournal");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            Journal::path_in(&d),
            "{\"event\":\"epoch\",\"trial\":0,\"epoch\":1,\"value\":1.0,\"t\":0.0}\n",
        )
        .unwrap();
        assert!(
            Journal::read(&d)
                .unwrap_err()
                .to_string()
                .contains("header")
        );
    }
}
