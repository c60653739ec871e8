//! A study kept in a folder: `journal.jsonl`, one event per line (JSON),
//! appended as the study runs; the embedded default, no server.
//!
//! Safe for several processes on one machine sharing the folder:
//!
//! * every append takes an exclusive lock on the journal (`flock`), reads
//!   what others appended since its last look (to check the storage's
//!   rules and to hand those events back), writes its whole batch with one
//!   `write`, and releases the lock;
//! * readers take no lock and stop before a line without its newline (one
//!   still being written);
//! * a process killed at any moment (even by SIGKILL) leaves every line it
//!   completed; a line it left half written is removed by the next
//!   appender, under the lock, before it writes;
//! * each worker process holds a lock on `workers/OWNER.lock` while it
//!   lives: the operating system releases it when the process dies, however
//!   it dies, so whether an owner is alive is known exactly, at once (the
//!   file also holds the time of its last heartbeat, for people).
//!
//! A complete line that is not an event is damage, reported with its line
//! number. Checkpoints go to `checkpoints/` in the same folder.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Appended, Cursor, Ledger, Outcome, Storage};
use crate::error::{Error, Result};
use crate::study::{Command, Event};

/// The journal's file name inside a study folder.
pub const FILE: &str = "journal.jsonl";

/// The file in a study folder that records the command which created it.
pub const COMMAND_FILE: &str = "command.json";

/// A study folder. The cursor is a byte offset into the journal.
#[derive(Debug)]
pub struct Journal {
    dir: PathBuf,
    path: PathBuf,
    /// Open for appending (and reading the tail), once the first append
    /// happened.
    file: Option<File>,
    ledger: Ledger,
    /// Bytes of the journal folded into the ledger.
    scanned: u64,
    /// Our own workers' liveness locks.
    workers: HashMap<String, File>,
    /// Reused for the lines of each append.
    buffer: Vec<u8>,
}

impl Journal {
    /// The study in folder `dir`; nothing is created before the first
    /// append.
    pub fn new(dir: impl Into<PathBuf>) -> Journal {
        let dir = dir.into();
        Journal {
            path: dir.join(FILE),
            dir,
            file: None,
            ledger: Ledger::default(),
            scanned: 0,
            workers: HashMap::new(),
            buffer: Vec::new(),
        }
    }

    /// The journal file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, source: std::io::Error) -> Error {
        Error::Io {
            path: self.path.clone(),
            source,
        }
    }

    /// The journal open for appending (taken out of `self` while in use).
    fn open_for_append(&mut self) -> Result<File> {
        if let Some(f) = self.file.take() {
            return Ok(f);
        }
        std::fs::create_dir_all(&self.dir).map_err(|source| Error::Io {
            path: self.dir.clone(),
            source,
        })?;
        OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&self.path)
            .map_err(|e| self.io(e))
    }

    /// The complete lines of `file` in `[from, to)`, parsed, and the offset
    /// after the last complete line.
    fn parse(&self, mut file: &File, from: u64, to: u64) -> Result<(Vec<Event>, u64)> {
        if to <= from {
            return Ok((Vec::new(), from));
        }
        let mut bytes = Vec::with_capacity((to - from) as usize);
        file.seek(SeekFrom::Start(from)).map_err(|e| self.io(e))?;
        file.take(to - from)
            .read_to_end(&mut bytes)
            .map_err(|e| self.io(e))?;
        let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let mut events = Vec::new();
        let mut at = 0;
        for line in bytes[..complete].split_inclusive(|&b| b == b'\n') {
            let text = std::str::from_utf8(line).map_err(|e| e.to_string());
            match text.and_then(|t| serde_json::from_str::<Event>(t).map_err(|e| e.to_string())) {
                Ok(e) => events.push(e),
                Err(message) => {
                    return Err(Error::Format {
                        path: self.path.clone(),
                        line: self.line_number(file, from + at as u64)?,
                        field: "event".into(),
                        message,
                    });
                }
            }
            at += line.len();
        }
        if from == 0 && !matches!(events.first(), None | Some(Event::Study(_))) {
            return Err(Error::Storage {
                storage: self.describe(),
                message: "does not start with a study header".into(),
            });
        }
        Ok((events, from + complete as u64))
    }

    /// The 1-based line number at byte `offset` (for error messages).
    fn line_number(&self, mut file: &File, offset: u64) -> Result<usize> {
        let mut prefix = Vec::new();
        file.seek(SeekFrom::Start(0)).map_err(|e| self.io(e))?;
        file.take(offset)
            .read_to_end(&mut prefix)
            .map_err(|e| self.io(e))?;
        Ok(prefix.iter().filter(|&&b| b == b'\n').count() + 1)
    }

    /// Under the lock: folds what others appended into the ledger (removing
    /// a half-written last line), checks and writes the batch.
    fn append_locked(
        &mut self,
        file: &mut File,
        owner: &str,
        cursor: Cursor,
        events: &[Event],
    ) -> Result<Appended> {
        let len = file.metadata().map_err(|e| self.io(e))?.len();
        let before = self.scanned;
        let (new, good) = self.parse(file, before, len)?;
        if good < len {
            // A writer died in the middle of its write: no one else writes
            // while we hold the lock, so the partial line is garbage.
            file.set_len(good).map_err(|e| self.io(e))?;
        }
        for e in &new {
            self.ledger.note(e);
        }
        self.scanned = good;
        let earlier = if cursor.0 == before {
            new
        } else {
            self.parse(file, cursor.0.min(good), good)?.0
        };
        if let Some(why) = self.ledger.refuse(owner, events) {
            return Ok(Appended {
                earlier,
                outcome: Outcome::Rejected(why),
                cursor: Cursor(good),
            });
        }
        let mut text = std::mem::take(&mut self.buffer);
        text.clear();
        for e in events {
            serde_json::to_writer(&mut text, e).map_err(|e| Error::Storage {
                storage: self.describe(),
                message: e.to_string(),
            })?;
            text.push(b'\n');
        }
        let written = file.write_all(&text).map_err(|e| self.io(e));
        let len = text.len() as u64;
        self.buffer = text;
        written?;
        for e in events {
            self.ledger.note(e);
        }
        self.scanned = good + len;
        Ok(Appended {
            earlier,
            outcome: Outcome::Stored,
            cursor: Cursor(self.scanned),
        })
    }

    fn worker_path(&self, owner: &str) -> PathBuf {
        self.dir.join("workers").join(format!("{owner}.lock"))
    }
}

impl Storage for Journal {
    fn describe(&self) -> String {
        self.path.display().to_string()
    }

    fn append(&mut self, owner: &str, cursor: Cursor, events: &[Event]) -> Result<Appended> {
        let mut file = self.open_for_append()?;
        let result = match file.lock() {
            Ok(()) => {
                let r = self.append_locked(&mut file, owner, cursor, events);
                let unlocked = file.unlock().map_err(|e| self.io(e));
                r.and_then(|a| unlocked.map(|_| a))
            }
            Err(e) => Err(self.io(e)),
        };
        self.file = Some(file);
        result
    }

    fn read(&mut self, cursor: Cursor) -> Result<(Vec<Event>, Cursor)> {
        let file = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok((Vec::new(), Cursor::default()));
            }
            Err(e) => return Err(self.io(e)),
        };
        let len = file.metadata().map_err(|e| self.io(e))?.len();
        let (events, end) = self.parse(&file, cursor.0.min(len), len)?;
        Ok((events, Cursor(end)))
    }

    fn heartbeat(&mut self, owner: &str) -> Result<()> {
        let path = self.worker_path(owner);
        let io = |source| Error::Io {
            path: path.clone(),
            source,
        };
        if !self.workers.contains_key(owner) {
            std::fs::create_dir_all(path.parent().expect("in workers/")).map_err(io)?;
            let f = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .map_err(io)?;
            f.try_lock().map_err(|e| {
                io(std::io::Error::other(format!(
                    "another process holds worker name {owner}: {e}"
                )))
            })?;
            self.workers.insert(owner.to_string(), f);
        }
        let mut f = &self.workers[owner];
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let line = format!(
            "{{\"pid\":{},\"heartbeat\":{now:.3}}}\n",
            std::process::id()
        );
        f.set_len(0)
            .and_then(|_| f.seek(SeekFrom::Start(0)))
            .and_then(|_| f.write_all(line.as_bytes()))
            .map_err(io)?;
        Ok(())
    }

    fn is_alive(&mut self, owner: &str, _grace: Duration) -> Result<bool> {
        if self.workers.contains_key(owner) {
            return Ok(true);
        }
        let path = self.worker_path(owner);
        let f = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(source) => return Err(Error::Io { path, source }),
        };
        match f.try_lock() {
            Ok(()) => {
                // Dead: nobody holds its lock. The name is never used again.
                let _ = f.unlock();
                let _ = std::fs::remove_file(&path);
                Ok(false)
            }
            Err(std::fs::TryLockError::WouldBlock) => Ok(true),
            Err(std::fs::TryLockError::Error(source)) => Err(Error::Io { path, source }),
        }
    }

    fn folder(&self) -> Option<&Path> {
        Some(&self.dir)
    }

    fn record_command(&mut self, command: &Command) -> Result<()> {
        let path = self.dir.join(COMMAND_FILE);
        let text = serde_json::to_string_pretty(command).expect("serialisable");
        std::fs::write(&path, text).map_err(|source| Error::Io { path, source })
    }

    fn command(&mut self) -> Result<Option<Command>> {
        let path = self.dir.join(COMMAND_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| Error::Storage {
                    storage: path.display().to_string(),
                    message: e.to_string(),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(Error::Io { path, source }),
        }
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        // A worker that stops cleanly removes its liveness file (its lock
        // goes with the file handle).
        for owner in self.workers.keys() {
            let _ = std::fs::remove_file(self.worker_path(owner));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::tests::{end, epoch, header, start};

    fn dir(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("foresight-journal-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn keeps_the_storage_contract() {
        crate::storage::tests::contract(Box::new(Journal::new(dir("contract"))));
        crate::storage::tests::keeps_its_command(&mut Journal::new(dir("command")));
    }

    #[test]
    fn two_handles_on_one_folder_see_each_other() {
        let d = dir("two");
        let (mut a, mut b) = (Journal::new(&d), Journal::new(&d));
        let r = a.append("a", Cursor::default(), &[header()]).unwrap();
        let r = a.append("a", r.cursor, &[start(0, "a")]).unwrap();
        let ca = r.cursor;
        let r = b.append("b", Cursor::default(), &[start(0, "b")]).unwrap();
        assert!(matches!(r.outcome, Outcome::Rejected(_)));
        assert_eq!(r.earlier, vec![header(), start(0, "a")]);
        let r = b.append("b", r.cursor, &[start(1, "b")]).unwrap();
        assert_eq!(r.outcome, Outcome::Stored);
        let r = a.append("a", ca, &[epoch(0, 1), end(0)]).unwrap();
        assert_eq!(r.earlier, vec![start(1, "b")]);
        assert_eq!(r.outcome, Outcome::Stored);
    }

    #[test]
    fn a_half_written_line_is_ignored_then_removed() {
        let d = dir("torn");
        let mut j = Journal::new(&d);
        let r = j.append("a", Cursor::default(), &[header()]).unwrap();
        let r = j.append("a", r.cursor, &[start(0, "a")]).unwrap();
        let mut f = OpenOptions::new().append(true).open(j.path()).unwrap();
        f.write_all(br#"{"event":"epoch","trial":0,"ep"#).unwrap();
        drop(f);
        // A reader stops before it.
        let mut reader = Journal::new(&d);
        let (all, c) = reader.read(Cursor::default()).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(c, r.cursor);
        // The next appender removes it (here another handle, as after a
        // restart) and goes on.
        let mut again = Journal::new(&d);
        let r2 = again.append("a", c, &[epoch(0, 1)]).unwrap();
        assert_eq!(r2.outcome, Outcome::Stored);
        let text = std::fs::read_to_string(j.path()).unwrap();
        assert_eq!(text.lines().count(), 3);
        assert!(!text.contains("\"ep{"));
    }

    #[test]
    fn damage_is_an_error_naming_the_line() {
        let d = dir("damage");
        let mut j = Journal::new(&d);
        let r = j.append("a", Cursor::default(), &[header()]).unwrap();
        j.append("a", r.cursor, &[start(0, "a")]).unwrap();
        let mut text = std::fs::read_to_string(j.path()).unwrap();
        text += "garbage\n";
        std::fs::write(j.path(), &text).unwrap();
        let err = Journal::new(&d)
            .read(Cursor::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains(":3:"), "{err}");
        // Not a journal at all.
        std::fs::write(
            j.path(),
            serde_json::to_string(&epoch(0, 1)).unwrap() + "\n",
        )
        .unwrap();
        let err = Journal::new(&d)
            .read(Cursor::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("header"), "{err}");
        // No journal: no events.
        let (none, _) = Journal::new(dir("none")).read(Cursor::default()).unwrap();
        assert!(none.is_empty());
    }

    #[test]
    fn liveness_follows_the_process_lock() {
        let d = dir("alive");
        let mut a = Journal::new(&d);
        a.heartbeat("w1").unwrap();
        let mut b = Journal::new(&d);
        let grace = Duration::from_secs(1);
        assert!(b.is_alive("w1", grace).unwrap(), "held by a");
        assert!(!b.is_alive("w2", grace).unwrap(), "never seen");
        drop(a);
        assert!(!b.is_alive("w1", grace).unwrap(), "a is gone");
    }
}
