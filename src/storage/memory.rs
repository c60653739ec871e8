//! A study kept in memory: the default when a tuner is given no storage
//! (replay, tests, a study nobody needs to resume). Clones share the same
//! study, so tuners on several threads of one process can work on one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{Appended, Cursor, Ledger, Outcome, Storage};
use crate::error::Result;
use crate::study::Event;

/// A study in memory. The cursor is an index into the event list.
#[derive(Debug, Clone, Default)]
pub struct Memory {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    events: Vec<Event>,
    ledger: Ledger,
    heartbeats: HashMap<String, Instant>,
}

impl Memory {
    /// An empty study.
    pub fn new() -> Memory {
        Memory::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the list half
        // written (pushes happen after the checks), so a poisoned lock is
        // still consistent.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Storage for Memory {
    fn describe(&self) -> String {
        "memory".into()
    }

    fn append(&mut self, owner: &str, cursor: Cursor, events: &[Event]) -> Result<Appended> {
        let mut inner = self.lock();
        let from = (cursor.0 as usize).min(inner.events.len());
        let earlier = inner.events[from..].to_vec();
        let outcome = match inner.ledger.refuse(owner, events) {
            Some(why) => Outcome::Rejected(why),
            None => {
                for e in events {
                    inner.ledger.note(e);
                    inner.events.push(e.clone());
                }
                Outcome::Stored
            }
        };
        Ok(Appended {
            earlier,
            outcome,
            cursor: Cursor(inner.events.len() as u64),
        })
    }

    fn read(&mut self, cursor: Cursor) -> Result<(Vec<Event>, Cursor)> {
        let inner = self.lock();
        let from = (cursor.0 as usize).min(inner.events.len());
        Ok((
            inner.events[from..].to_vec(),
            Cursor(inner.events.len() as u64),
        ))
    }

    fn heartbeat(&mut self, owner: &str) -> Result<()> {
        self.lock()
            .heartbeats
            .insert(owner.to_string(), Instant::now());
        Ok(())
    }

    fn is_alive(&mut self, owner: &str, grace: Duration) -> Result<bool> {
        Ok(self
            .lock()
            .heartbeats
            .get(owner)
            .is_some_and(|t| t.elapsed() <= grace))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_storage_contract() {
        crate::storage::tests::contract(Box::new(Memory::new()));
    }
}
