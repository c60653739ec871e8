//! Where a study is kept: the [`Storage`] seam.
//!
//! A storage holds one study's events, in one order that every reader sees.
//! Many workers (threads of one tuner, processes on one machine, machines
//! sharing a database) append to it; each keeps a [`Cursor`], the
//! position up to which it has read, and folds what it reads into its own
//! [`crate::study::Study`]. The trait asks for what a database that many
//! machines append to can give:
//!
//! * **append** a batch of events atomically — all stored after every event
//!   stored before, or none — and hand back the events others appended
//!   since the caller's cursor, so that every worker applies the same
//!   sequence;
//! * **rules** that make claims safe (the private `Ledger` checks them): the header
//!   comes first and once; trial `n` is started only when `n` trials
//!   exist (two workers racing for the same number: one is rejected, never
//!   both stored); a running trial is taken over only from the owner the
//!   claimer names; the other events of a trial come only from its owner,
//!   and nothing follows its end. A rejected batch is an [`Outcome`], not
//!   an error: the caller catches up and tries again;
//! * **read** the events after a cursor;
//! * **heartbeats**: a worker says it is alive; another asks whether an
//!   owner is, before taking over its trials.
//!
//! Backends: [`Memory`] (one process; the default when no storage is
//! given), [`Journal`] (a study folder; several processes on one machine)
//! and `Postgres` (the `postgres` feature: a database; workers on many
//! machines). [`open`] picks one from a string, as the command line takes
//! it.

mod journal;
mod memory;
#[cfg(feature = "postgres")]
pub mod postgres;

use std::path::Path;
use std::time::Duration;

pub use journal::Journal;
pub use memory::Memory;
#[cfg(feature = "postgres")]
pub use postgres::Postgres;

use crate::error::{Error, Result};
use crate::study::{Command, Event, Study};

/// A position in a study's event sequence: the events after it have not
/// been read. `Cursor::default()` is the start. Its number means something
/// only to the storage that gave it (a byte offset, an index, a row id).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cursor(pub u64);

/// Whether an appended batch was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Stored,
    /// Nothing of the batch was stored, because of the rule named here (a
    /// claim lost its race, the trial has another owner, ...).
    Rejected(String),
}

/// What [`Storage::append`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct Appended {
    /// Events others appended after the caller's cursor: apply them before
    /// the batch (or instead of it, if it was rejected).
    pub earlier: Vec<Event>,
    pub outcome: Outcome,
    /// The cursor after `earlier` and, if stored, the batch.
    pub cursor: Cursor,
}

/// Keeps one study's events. See the module documentation for the
/// contract.
pub trait Storage: Send {
    /// Where the study is kept, for messages (a path; never credentials).
    fn describe(&self) -> String;

    /// Appends `events` on behalf of worker `owner`: all of them, after
    /// every event stored so far, or none (see [`Outcome`]). Returns the
    /// events stored after `cursor` by others first.
    fn append(&mut self, owner: &str, cursor: Cursor, events: &[Event]) -> Result<Appended>;

    /// The events after `cursor`, and the cursor after them.
    fn read(&mut self, cursor: Cursor) -> Result<(Vec<Event>, Cursor)>;

    /// Records that `owner` is alive. A worker calls it before its first
    /// claim and then every few seconds.
    fn heartbeat(&mut self, owner: &str) -> Result<()>;

    /// Whether `owner` is alive: its last heartbeat is within `grace`, or
    /// the backend knows better (the journal asks the operating system
    /// whether the owner's process still holds its lock).
    fn is_alive(&mut self, owner: &str, grace: Duration) -> Result<bool>;

    /// The study's own folder on this machine, if the backend has one
    /// (checkpoints and reports go there).
    fn folder(&self) -> Option<&Path> {
        None
    }

    /// Records the command that created the study (the worker that created
    /// it calls this once), for `foresight resume`. A backend that cannot
    /// keep it ignores it.
    fn record_command(&mut self, command: &Command) -> Result<()> {
        let _ = command;
        Ok(())
    }

    /// The command recorded by [`Storage::record_command`], if any.
    fn command(&mut self) -> Result<Option<Command>> {
        Ok(None)
    }

    /// The study kept here, with its events (header first). Errors: the
    /// storage cannot be read, or holds no study.
    fn load(&mut self) -> Result<(Study, Vec<Event>)> {
        let (events, _) = self.read(Cursor::default())?;
        match Study::from_events(&events) {
            Some(study) => Ok((study, events)),
            None => Err(Error::Storage {
                storage: self.describe(),
                message: "holds no study".into(),
            }),
        }
    }
}

impl Storage for Box<dyn Storage> {
    fn describe(&self) -> String {
        (**self).describe()
    }
    fn append(&mut self, owner: &str, cursor: Cursor, events: &[Event]) -> Result<Appended> {
        (**self).append(owner, cursor, events)
    }
    fn read(&mut self, cursor: Cursor) -> Result<(Vec<Event>, Cursor)> {
        (**self).read(cursor)
    }
    fn heartbeat(&mut self, owner: &str) -> Result<()> {
        (**self).heartbeat(owner)
    }
    fn is_alive(&mut self, owner: &str, grace: Duration) -> Result<bool> {
        (**self).is_alive(owner, grace)
    }
    fn folder(&self) -> Option<&Path> {
        (**self).folder()
    }
    fn record_command(&mut self, command: &Command) -> Result<()> {
        (**self).record_command(command)
    }
    fn command(&mut self) -> Result<Option<Command>> {
        (**self).command()
    }
}

/// Opens the storage a string names: `postgres://…` (or `postgresql://…`)
/// is study `study` of that database (the `postgres` feature); `memory:` a
/// fresh [`Memory`]; anything else a study folder, a [`Journal`] (created on
/// the first append; the folder is the study, `study` is not needed).
pub fn open(spec: &str, study: Option<&str>) -> Result<Box<dyn Storage>> {
    if spec == "memory:" {
        return Ok(Box::new(Memory::new()));
    }
    if let Some((scheme, _)) = spec.split_once("://") {
        if scheme == "postgres" || scheme == "postgresql" {
            #[cfg(feature = "postgres")]
            {
                let study = study.ok_or_else(|| {
                    Error::invalid(
                        "storage",
                        "a study in PostgreSQL needs a name (--study NAME)",
                    )
                })?;
                return Ok(Box::new(Postgres::new(spec, study)?));
            }
            #[cfg(not(feature = "postgres"))]
            {
                let _ = study;
                return Err(Error::invalid(
                    "storage",
                    "this foresight was built without the `postgres` feature",
                ));
            }
        }
        return Err(Error::invalid(
            "storage",
            format!("`{scheme}://` storages are not supported; give a study folder or postgres://"),
        ));
    }
    Ok(Box::new(Journal::new(spec)))
}

/// The state a storage checks a batch against (the rules of the module
/// documentation), kept by the backends that enforce them themselves.
#[derive(Debug, Clone, Default)]
pub(crate) struct Ledger {
    header: bool,
    /// Each trial's owner and whether it has ended.
    trials: Vec<(String, bool)>,
}

impl Ledger {
    /// Notes a stored event.
    pub(crate) fn note(&mut self, e: &Event) {
        match e {
            Event::Study(_) => self.header = true,
            Event::Start { trial, owner, .. } if *trial == self.trials.len() => {
                self.trials.push((owner.clone(), false));
            }
            Event::Takeover { trial, owner, .. } => {
                if let Some(t) = self.trials.get_mut(*trial) {
                    t.0 = owner.clone();
                }
            }
            Event::End { trial, .. } => {
                if let Some(t) = self.trials.get_mut(*trial) {
                    t.1 = true;
                }
            }
            _ => {}
        }
    }

    /// Why `events` appended by `owner` break a rule (`None`: they may be
    /// stored).
    pub(crate) fn refuse(&self, owner: &str, events: &[Event]) -> Option<String> {
        refuse(self, owner, events)
    }
}

/// What the rules need to know of the stored study (a backend that keeps
/// its state elsewhere, like a database, answers from there).
pub(crate) trait Known {
    /// Whether the header is stored.
    fn has_header(&self) -> bool;
    /// How many trials were started.
    fn trial_count(&self) -> usize;
    /// Trial `id`'s owner and whether it has ended (`None`: not started, or
    /// unknown to this answer).
    fn trial(&self, id: usize) -> Option<(&str, bool)>;
}

impl Known for Ledger {
    fn has_header(&self) -> bool {
        self.header
    }
    fn trial_count(&self) -> usize {
        self.trials.len()
    }
    fn trial(&self, id: usize) -> Option<(&str, bool)> {
        self.trials.get(id).map(|(o, e)| (o.as_str(), *e))
    }
}

/// Why `events` appended by `owner` break a rule of the module
/// documentation (`None`: they may be stored). Checks the batch in order,
/// as if each were stored (its own effects kept aside, so that nothing is
/// copied on the hot path of one epoch).
pub(crate) fn refuse(known: &dyn Known, owner: &str, events: &[Event]) -> Option<String> {
    let mut batch = Batch {
        ledger: known,
        header: known.has_header(),
        touched: Vec::new(),
        started: 0,
    };
    for e in events {
        if let Some(why) = batch.refuse_one(owner, e) {
            return Some(why);
        }
        batch.note(e);
    }
    None
}

/// A batch's effects on top of what is stored, while it is checked.
struct Batch<'a> {
    ledger: &'a dyn Known,
    header: bool,
    /// Trials the batch started or changed: number, owner, ended.
    touched: Vec<(usize, String, bool)>,
    /// Trials the batch started.
    started: usize,
}

impl Batch<'_> {
    fn trials(&self) -> usize {
        self.ledger.trial_count() + self.started
    }

    /// A trial's owner and whether it has ended.
    fn trial(&self, id: usize) -> Option<(&str, bool)> {
        match self.touched.iter().rev().find(|t| t.0 == id) {
            Some((_, owner, ended)) => Some((owner, *ended)),
            None => self.ledger.trial(id),
        }
    }

    fn note(&mut self, e: &Event) {
        match e {
            Event::Study(_) => self.header = true,
            Event::Start { trial, owner, .. } => {
                self.touched.push((*trial, owner.clone(), false));
                self.started += 1;
            }
            Event::Takeover { trial, owner, .. } => {
                let ended = self.trial(*trial).is_some_and(|t| t.1);
                self.touched.push((*trial, owner.clone(), ended));
            }
            Event::End { trial, .. } => {
                if let Some((owner, _)) = self.trial(*trial) {
                    let owner = owner.to_string();
                    self.touched.push((*trial, owner, true));
                }
            }
            _ => {}
        }
    }

    fn refuse_one(&self, owner: &str, e: &Event) -> Option<String> {
        if let Event::Study(_) = e {
            return self.header.then(|| "the study already exists".to_string());
        }
        if !self.header {
            return Some("no study header yet".into());
        }
        let trial = e.trial().expect("a trial event");
        match e {
            Event::Start { owner: o, .. } => {
                if o != owner {
                    Some(format!("a start for {o} appended by {owner}"))
                } else if trial != self.trials() {
                    Some(format!(
                        "trial {trial} cannot start: {} trials exist",
                        self.trials()
                    ))
                } else {
                    None
                }
            }
            Event::Takeover { owner: o, from, .. } => match self.trial(trial) {
                _ if o != owner => Some(format!("a takeover for {o} appended by {owner}")),
                None => Some(format!("trial {trial} does not exist")),
                Some((_, true)) => Some(format!("trial {trial} has ended")),
                Some((current, _)) if current != from => {
                    Some(format!("trial {trial} is owned by {current}, not {from}"))
                }
                _ => None,
            },
            _ => match self.trial(trial) {
                None => Some(format!("trial {trial} does not exist")),
                Some((_, true)) => Some(format!("trial {trial} has ended")),
                Some((current, _)) if current != owner => {
                    Some(format!("trial {trial} is owned by {current}, not {owner}"))
                }
                _ => None,
            },
        }
    }
}

/// A name for this worker process that no other process shares: host, pid
/// and the time it was made.
pub fn worker_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    // Unique within the process too (two tuners at once).
    static COUNT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let clean: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!(
        "{clean}-{}-{:x}{n}",
        std::process::id(),
        nanos % 0xFFFF_FFFF
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::space::{Config, Value};
    use crate::study::Status;

    pub(crate) fn start(trial: usize, owner: &str) -> Event {
        Event::Start {
            trial,
            config: Config::from([("x".to_string(), Value::Float(trial as f64))]),
            seed: 0,
            owner: owner.into(),
            t: 0.0,
        }
    }

    pub(crate) fn epoch(trial: usize, epoch: usize) -> Event {
        Event::Epoch {
            trial,
            epoch,
            value: Some(0.5),
            metrics: Default::default(),
            attrs: Default::default(),
            t: 1.0,
        }
    }

    pub(crate) fn end(trial: usize) -> Event {
        Event::End {
            trial,
            status: Status::Completed,
            value: Some(0.5),
            variance: Some(0.0),
            message: None,
            t: 2.0,
        }
    }

    pub(crate) fn header() -> Event {
        Event::Study(crate::study::test_header())
    }

    /// A backend that keeps the command that created its study, fresh.
    pub(crate) fn keeps_its_command(storage: &mut dyn Storage) {
        storage.append("w", Cursor::default(), &[header()]).unwrap();
        assert_eq!(storage.command().unwrap(), None);
        let command = crate::study::Command {
            argv: vec![
                "/bin/train".into(),
                "--storage".into(),
                "postgres://u:pw@h/db".into(),
            ],
            cwd: "/work".into(),
        };
        storage.record_command(&command).unwrap();
        assert_eq!(storage.command().unwrap(), Some(command));
    }

    /// The contract every backend keeps, run against a fresh `storage`.
    pub(crate) fn contract(mut storage: Box<dyn Storage>) {
        let s = storage.as_mut();
        let stored = |a: &Appended| a.outcome == Outcome::Stored;
        // Nothing before the header.
        let a = s.append("a", Cursor::default(), &[start(0, "a")]).unwrap();
        assert!(!stored(&a));
        let a = s.append("a", Cursor::default(), &[header()]).unwrap();
        assert!(stored(&a) && a.earlier.is_empty());
        let ca = a.cursor;
        // b, behind, creates the study again: rejected, and it gets the header.
        let b = s.append("b", Cursor::default(), &[header()]).unwrap();
        assert!(!stored(&b));
        assert_eq!(b.earlier, vec![header()]);
        assert_eq!(b.cursor, ca);
        let cb = b.cursor;
        // Both claim trial 0: the first wins, the second gets its start.
        let a = s.append("a", ca, &[start(0, "a"), epoch(0, 1)]).unwrap();
        assert!(stored(&a));
        let ca = a.cursor;
        let b = s.append("b", cb, &[start(0, "b")]).unwrap();
        assert!(!stored(&b), "a claim that loses is rejected");
        assert_eq!(b.earlier, vec![start(0, "a"), epoch(0, 1)]);
        let b = s.append("b", b.cursor, &[start(1, "b")]).unwrap();
        assert!(stored(&b));
        let cb = b.cursor;
        // Only the owner writes a trial's events.
        let b2 = s.append("b", cb, &[epoch(0, 2)]).unwrap();
        assert!(matches!(b2.outcome, Outcome::Rejected(ref w) if w.contains("owned by a")));
        // A batch is all or nothing.
        let a = s.append("a", ca, &[epoch(0, 2), epoch(1, 1)]).unwrap();
        assert!(!stored(&a));
        assert_eq!(a.earlier, vec![start(1, "b")]);
        let a = s.append("a", a.cursor, &[epoch(0, 2), end(0)]).unwrap();
        assert!(stored(&a));
        // Nothing follows an end; a takeover names the current owner.
        let a2 = s.append("a", a.cursor, &[epoch(0, 3)]).unwrap();
        assert!(!stored(&a2));
        let take = |from: &str| Event::Takeover {
            trial: 1,
            owner: "a".into(),
            from: from.into(),
            t: 3.0,
        };
        let a3 = s.append("a", a.cursor, &[take("c")]).unwrap();
        assert!(!stored(&a3));
        let a4 = s.append("a", a.cursor, &[take("b")]).unwrap();
        assert!(stored(&a4));
        let b = s.append("b", cb, &[epoch(1, 1)]).unwrap();
        assert!(!stored(&b), "the old owner lost the trial");
        // Everything reads back in order.
        let (all, end_cursor) = s.read(Cursor::default()).unwrap();
        assert_eq!(
            all,
            vec![
                header(),
                start(0, "a"),
                epoch(0, 1),
                start(1, "b"),
                epoch(0, 2),
                end(0),
                take("b")
            ]
        );
        assert_eq!(end_cursor, a4.cursor);
        let (tail, _) = s.read(ca).unwrap();
        assert_eq!(tail.len(), 4);
        let (none, c) = s.read(end_cursor).unwrap();
        assert!(none.is_empty() && c == end_cursor);
        // Heartbeats.
        s.heartbeat("a").unwrap();
        assert!(s.is_alive("a", Duration::from_secs(60)).unwrap());
        assert!(!s.is_alive("nobody", Duration::from_secs(60)).unwrap());
    }
}
