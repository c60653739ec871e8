//! Studies kept in PostgreSQL (the `postgres` feature): one database, any
//! number of studies by name, any number of workers on any machines.
//!
//! The client is the synchronous [`postgres`] crate: the [`Storage`] trait
//! is synchronous and each worker process talks to its study through one
//! connection from one controller thread, so an async client and a pool
//! would add a runtime to every user's program for nothing (the crate runs
//! its own small runtime inside).
//!
//! The schema is foresight's own, created and migrated by it, versioned in
//! `foresight_schema`; a database written by a newer schema is refused:
//!
//! * `foresight_studies`: one row a study (name, events so far, trials
//!   started, whether its header is stored, the command that created it);
//! * `foresight_events`: the study's events in order (`seq` from 1), each
//!   the JSON line the journal would hold, with the batch it came in;
//! * `foresight_trials`: each trial's owner and whether it has ended — what
//!   the claim rules need;
//! * `foresight_workers`: each worker's last heartbeat.
//!
//! An append is one transaction that takes the study row `FOR UPDATE`
//! (appends to one study are serialised; their `seq` is their order),
//! reads the events after the caller's cursor, checks the batch against the
//! rules (`storage::refuse` on the trials the batch names), and writes it.
//! Connection loss (a restarted server, a dropped connection) is retried
//! with backoff for up to two minutes. A batch whose commit may or may not
//! have happened is looked up by its batch name on the new connection
//! before it is tried again, so that an acknowledged event is never lost
//! and never stored twice. Credentials are never shown: [`Storage::describe`]
//! drops the password.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use postgres::error::SqlState;
use postgres::{Client, NoTls, Transaction};

use super::{Appended, Cursor, Known, Outcome, Storage};
use crate::error::{Error, Result};
use crate::study::{Command, Event};

/// The schema version this foresight writes and reads.
pub const SCHEMA_VERSION: i32 = 1;

/// How long a lost connection is retried before the storage gives up.
const RETRY_FOR: Duration = Duration::from_secs(120);

/// A study in a PostgreSQL database.
pub struct Postgres {
    config: postgres::Config,
    shown: String,
    study: String,
    client: Option<Client>,
    /// The study's row id, once it exists.
    id: Option<i64>,
    /// Batches appended by this handle (names them for retries).
    batches: u64,
    /// Workers whose heartbeat this handle wrote (removed when it is
    /// dropped: a worker that stops cleanly leaves nothing behind).
    workers: Vec<String>,
}

impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

/// A study of a database, as `foresight studies` lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct StudyRow {
    pub name: String,
    pub created: String,
    pub events: i64,
    pub trials: i64,
    pub running: i64,
    /// Workers whose last heartbeat is within a minute.
    pub workers: i64,
}

/// A PostgreSQL error as foresight's, naming the storage.
fn db(shown: &str, e: impl std::fmt::Display) -> Error {
    Error::Storage {
        storage: shown.to_string(),
        message: e.to_string(),
    }
}

/// Whether an error means the connection is gone (retry on a new one) rather
/// than a refusal of the statement.
fn lost(e: &postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.code() {
        // No SQL state: an I/O error, a timeout, a closed socket.
        None => true,
        Some(code) => {
            code.code().starts_with("08")
                || *code == SqlState::ADMIN_SHUTDOWN
                || *code == SqlState::CRASH_SHUTDOWN
                || *code == SqlState::CANNOT_CONNECT_NOW
        }
    }
}

impl Postgres {
    /// Study `study` in the database at `url` (`postgres://user@host/db`,
    /// with any of the client's connection parameters). Nothing is
    /// connected before the first use. Errors: an unreadable URL.
    pub fn new(url: &str, study: &str) -> Result<Postgres> {
        let mut config: postgres::Config = url
            .parse()
            .map_err(|e| Error::invalid("storage", format!("not a PostgreSQL URL: {e}")))?;
        if config.get_application_name().is_none() {
            config.application_name("foresight");
        }
        if study.is_empty() {
            return Err(Error::invalid(
                "storage",
                "a study in PostgreSQL needs a name",
            ));
        }
        let shown = shown_url(&config);
        Ok(Postgres {
            config,
            shown,
            study: study.to_string(),
            client: None,
            id: None,
            batches: 0,
            workers: Vec::new(),
        })
    }

    /// The studies of the database at `url`, oldest first.
    pub fn studies(url: &str) -> Result<Vec<StudyRow>> {
        let mut p = Postgres::new(url, "-")?;
        p.retrying(|c, _| {
            c.query(
                "SELECT s.name, to_char(s.created, 'YYYY-MM-DD HH24:MI:SS'), s.events, s.next_trial, \
                 (SELECT count(*) FROM foresight_trials t WHERE t.study = s.id AND NOT t.ended), \
                 (SELECT count(*) FROM foresight_workers w WHERE w.study = s.id \
                    AND w.heartbeat > now() - interval '1 minute') \
                 FROM foresight_studies s ORDER BY s.id",
                &[],
            )
        })
        .map(|rows| {
            rows.iter()
                .map(|r| StudyRow {
                    name: r.get(0),
                    created: r.get(1),
                    events: r.get(2),
                    trials: r.get::<_, i32>(3) as i64,
                    running: r.get(4),
                    workers: r.get(5),
                })
                .collect()
        })
    }

    /// The connection, connected (with the schema in place) if it was not.
    fn connect(&mut self) -> std::result::Result<&mut Client, ConnectError> {
        if self.client.is_none() {
            let mut client = self.config.connect(NoTls).map_err(ConnectError::Db)?;
            migrate(&mut client, &self.shown)?;
            self.client = Some(client);
        }
        Ok(self.client.as_mut().expect("connected"))
    }

    /// Runs `op` on a connection, retrying on a new one with backoff while
    /// the connection is lost (for up to [`RETRY_FOR`]); `op` learns whether
    /// an earlier attempt was cut off.
    fn retrying<T>(
        &mut self,
        mut op: impl FnMut(&mut Client, bool) -> std::result::Result<T, postgres::Error>,
    ) -> Result<T> {
        let start = Instant::now();
        let mut backoff = Duration::from_millis(50);
        let mut cut_off = false;
        loop {
            let attempt = match self.connect() {
                Ok(client) => op(client, cut_off).map_err(ConnectError::Db),
                Err(e) => Err(e),
            };
            match attempt {
                Ok(v) => return Ok(v),
                Err(ConnectError::Refused(e)) => return Err(e),
                Err(ConnectError::Db(e)) if lost(&e) && start.elapsed() < RETRY_FOR => {
                    self.client = None;
                    cut_off = true;
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
                Err(ConnectError::Db(e)) => return Err(db(&self.shown, e)),
            }
        }
    }

    /// The study's row id (creating the row if `create`); `None` if it does
    /// not exist and was not to be created.
    fn study_id(&mut self, create: bool) -> Result<Option<i64>> {
        if let Some(id) = self.id {
            return Ok(Some(id));
        }
        let name = self.study.clone();
        let id = self.retrying(|c, _| {
            if create {
                c.execute(
                    "INSERT INTO foresight_studies (name) VALUES ($1) ON CONFLICT (name) DO NOTHING",
                    &[&name],
                )?;
            }
            c.query_opt("SELECT id FROM foresight_studies WHERE name = $1", &[&name])
                .map(|r| r.map(|r| r.get::<_, i64>(0)))
        })?;
        self.id = id;
        Ok(id)
    }
}

/// A connection's failure: the database's (maybe retried), or foresight's
/// refusal (a schema too new).
enum ConnectError {
    Db(postgres::Error),
    Refused(Error),
}

/// The URL without its password.
fn shown_url(config: &postgres::Config) -> String {
    let host = config
        .get_hosts()
        .first()
        .map(|h| match h {
            postgres::config::Host::Tcp(h) => h.clone(),
            postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .unwrap_or_default();
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "postgres://{}@{host}:{port}/{}",
        config.get_user().unwrap_or(""),
        config.get_dbname().unwrap_or("")
    )
}

/// Creates or migrates foresight's tables (one process at a time: an
/// advisory lock), and refuses a schema newer than this foresight's.
fn migrate(client: &mut Client, shown: &str) -> std::result::Result<(), ConnectError> {
    let mut tx = client.transaction().map_err(ConnectError::Db)?;
    // The number is foresight's (the bytes of "fsight").
    tx.execute("SELECT pg_advisory_xact_lock(112101941635188)", &[])
        .map_err(ConnectError::Db)?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS foresight_schema (version integer NOT NULL)")
        .map_err(ConnectError::Db)?;
    let version: Option<i32> = tx
        .query_opt("SELECT max(version) FROM foresight_schema", &[])
        .map_err(ConnectError::Db)?
        .and_then(|r| r.get(0));
    match version {
        Some(v) if v > SCHEMA_VERSION => {
            return Err(ConnectError::Refused(db(
                shown,
                format!(
                    "the database holds foresight's schema version {v}, written by a newer \
                     foresight; this one reads up to version {SCHEMA_VERSION}: upgrade foresight"
                ),
            )));
        }
        Some(_) => {}
        None => {
            tx.batch_execute(
                "CREATE TABLE foresight_studies (
                     id bigserial PRIMARY KEY,
                     name text NOT NULL UNIQUE,
                     created timestamptz NOT NULL DEFAULT now(),
                     events bigint NOT NULL DEFAULT 0,
                     next_trial integer NOT NULL DEFAULT 0,
                     has_header boolean NOT NULL DEFAULT false,
                     command text);
                 CREATE TABLE foresight_events (
                     study bigint NOT NULL REFERENCES foresight_studies (id) ON DELETE CASCADE,
                     seq bigint NOT NULL,
                     batch text NOT NULL,
                     body text NOT NULL,
                     PRIMARY KEY (study, seq));
                 CREATE INDEX foresight_events_batch ON foresight_events (study, batch);
                 CREATE TABLE foresight_trials (
                     study bigint NOT NULL REFERENCES foresight_studies (id) ON DELETE CASCADE,
                     number integer NOT NULL,
                     owner text NOT NULL,
                     ended boolean NOT NULL DEFAULT false,
                     PRIMARY KEY (study, number));
                 CREATE TABLE foresight_workers (
                     study bigint NOT NULL REFERENCES foresight_studies (id) ON DELETE CASCADE,
                     owner text NOT NULL,
                     heartbeat timestamptz NOT NULL,
                     PRIMARY KEY (study, owner));
                 INSERT INTO foresight_schema (version) VALUES (1);",
            )
            .map_err(ConnectError::Db)?;
        }
    }
    tx.commit().map_err(ConnectError::Db)
}

/// The trials a batch names, as the database has them.
struct Snapshot {
    header: bool,
    count: usize,
    trials: HashMap<usize, (String, bool)>,
}

impl Known for Snapshot {
    fn has_header(&self) -> bool {
        self.header
    }
    fn trial_count(&self) -> usize {
        self.count
    }
    fn trial(&self, id: usize) -> Option<(&str, bool)> {
        self.trials.get(&id).map(|(o, e)| (o.as_str(), *e))
    }
}

/// Parses stored event rows `(seq, body)`.
fn events(shown: &str, rows: &[postgres::Row]) -> Result<(Vec<Event>, Option<i64>)> {
    let mut out = Vec::with_capacity(rows.len());
    let mut last = None;
    for r in rows {
        let seq: i64 = r.get(0);
        let body: &str = r.get(1);
        let e = serde_json::from_str(body)
            .map_err(|e| db(shown, format!("event {seq} is damaged: {e}")))?;
        out.push(e);
        last = Some(seq);
    }
    Ok((out, last))
}

/// One attempt at an append, in its transaction.
fn append_in(
    tx: &mut Transaction,
    study: i64,
    owner: &str,
    cursor: i64,
    batch: &str,
    lines: &[String],
    events_in: &[Event],
) -> std::result::Result<(Vec<postgres::Row>, Option<String>, i64), postgres::Error> {
    let row = tx.query_one(
        "SELECT events, next_trial, has_header FROM foresight_studies WHERE id = $1 FOR UPDATE",
        &[&study],
    )?;
    let (stored, next_trial, header): (i64, i32, bool) = (row.get(0), row.get(1), row.get(2));
    let earlier = tx.query(
        "SELECT seq, body FROM foresight_events WHERE study = $1 AND seq > $2 ORDER BY seq",
        &[&study, &cursor],
    )?;
    let mut named: Vec<i32> = events_in
        .iter()
        .filter_map(|e| e.trial())
        .map(|t| t as i32)
        .collect();
    named.sort_unstable();
    named.dedup();
    let trials = if named.is_empty() {
        HashMap::new()
    } else {
        tx.query(
            "SELECT number, owner, ended FROM foresight_trials WHERE study = $1 AND number = ANY($2)",
            &[&study, &named],
        )?
        .iter()
        .map(|r| (r.get::<_, i32>(0) as usize, (r.get(1), r.get(2))))
        .collect()
    };
    let snapshot = Snapshot {
        header,
        count: next_trial as usize,
        trials,
    };
    if let Some(why) = super::refuse(&snapshot, owner, events_in) {
        return Ok((earlier, Some(why), stored));
    }
    // Set-based writes: one statement per kind, whatever the batch's size.
    let seq = stored + events_in.len() as i64;
    tx.execute(
        "INSERT INTO foresight_events (study, seq, batch, body) \
         SELECT $1, $2 + n, $3, body FROM unnest($4::text[]) WITH ORDINALITY AS t(body, n)",
        &[&study, &stored, &batch, &lines],
    )?;
    let (mut numbers, mut owners, mut ended) = (Vec::new(), Vec::new(), Vec::new());
    for e in events_in {
        match e {
            Event::Start { trial, owner, .. } => {
                numbers.push(*trial as i32);
                owners.push(owner.as_str());
            }
            Event::End { trial, .. } => ended.push(*trial as i32),
            _ => {}
        }
    }
    let next = next_trial + numbers.len() as i32;
    if !numbers.is_empty() {
        tx.execute(
            "INSERT INTO foresight_trials (study, number, owner) \
             SELECT $1, number, owner FROM unnest($2::int4[], $3::text[]) AS t(number, owner)",
            &[&study, &numbers, &owners],
        )?;
    }
    for e in events_in {
        if let Event::Takeover { trial, owner, .. } = e {
            tx.execute(
                "UPDATE foresight_trials SET owner = $3 WHERE study = $1 AND number = $2",
                &[&study, &(*trial as i32), owner],
            )?;
        }
    }
    if !ended.is_empty() {
        tx.execute(
            "UPDATE foresight_trials SET ended = true WHERE study = $1 AND number = ANY($2)",
            &[&study, &ended],
        )?;
    }
    let has_header = header || matches!(events_in.first(), Some(Event::Study(_)));
    tx.execute(
        "UPDATE foresight_studies SET events = $2, next_trial = $3, has_header = $4 WHERE id = $1",
        &[&study, &seq, &next, &has_header],
    )?;
    Ok((earlier, None, seq))
}

impl Storage for Postgres {
    fn describe(&self) -> String {
        format!("{} (study {})", self.shown, self.study)
    }

    fn record_command(&mut self, command: &Command) -> Result<()> {
        let study = self.study_id(true)?.expect("created");
        let text = serde_json::to_string(command).expect("serialisable");
        self.retrying(|c, _| {
            c.execute(
                "UPDATE foresight_studies SET command = $2 WHERE id = $1",
                &[&study, &text],
            )
        })?;
        Ok(())
    }

    fn command(&mut self) -> Result<Option<Command>> {
        let Some(study) = self.study_id(false)? else {
            return Ok(None);
        };
        let text: Option<String> = self.retrying(|c, _| {
            c.query_one(
                "SELECT command FROM foresight_studies WHERE id = $1",
                &[&study],
            )
            .map(|r| r.get(0))
        })?;
        text.map(|t| serde_json::from_str(&t).map_err(|e| db(&self.shown, e)))
            .transpose()
    }

    fn append(&mut self, owner: &str, cursor: Cursor, events: &[Event]) -> Result<Appended> {
        let study = self.study_id(true)?.expect("created");
        self.batches += 1;
        let batch = format!("{owner}/{}", self.batches);
        let lines: Vec<String> = events
            .iter()
            .map(|e| serde_json::to_string(e).map_err(|e| db(&self.shown, e)))
            .collect::<Result<_>>()?;
        let cursor = cursor.0 as i64;
        let shown = self.shown.clone();
        let (rows, refused, end) = self.retrying(|c, cut_off| {
            if cut_off {
                // The last attempt may have committed before the connection
                // went: if its batch is there, it was stored.
                let found = c.query_opt(
                    "SELECT min(seq), max(seq) FROM foresight_events WHERE study = $1 AND batch = $2 \
                     HAVING count(*) > 0",
                    &[&study, &batch],
                )?;
                if let Some(r) = found {
                    let (first, last): (i64, i64) = (r.get(0), r.get(1));
                    let earlier = c.query(
                        "SELECT seq, body FROM foresight_events WHERE study = $1 AND seq > $2 \
                         AND seq < $3 ORDER BY seq",
                        &[&study, &cursor, &first],
                    )?;
                    return Ok((earlier, None, last));
                }
            }
            let mut tx = c.transaction()?;
            let result = append_in(&mut tx, study, owner, cursor, &batch, &lines, events)?;
            if result.1.is_some() {
                tx.rollback()?;
            } else {
                tx.commit()?;
            }
            Ok(result)
        })?;
        let (earlier, _) = self::events(&shown, &rows)?;
        Ok(Appended {
            earlier,
            outcome: match refused {
                Some(why) => Outcome::Rejected(why),
                None => Outcome::Stored,
            },
            cursor: Cursor(end.max(cursor) as u64),
        })
    }

    fn read(&mut self, cursor: Cursor) -> Result<(Vec<Event>, Cursor)> {
        let Some(study) = self.study_id(false)? else {
            return Ok((Vec::new(), cursor));
        };
        let from = cursor.0 as i64;
        let shown = self.shown.clone();
        let rows = self.retrying(|c, _| {
            c.query(
                "SELECT seq, body FROM foresight_events WHERE study = $1 AND seq > $2 ORDER BY seq",
                &[&study, &from],
            )
        })?;
        let (events, last) = self::events(&shown, &rows)?;
        Ok((events, Cursor(last.map_or(cursor.0, |l| l as u64))))
    }

    fn heartbeat(&mut self, owner: &str) -> Result<()> {
        let study = self.study_id(true)?.expect("created");
        self.retrying(|c, _| {
            c.execute(
                "INSERT INTO foresight_workers (study, owner, heartbeat) VALUES ($1, $2, now()) \
                 ON CONFLICT (study, owner) DO UPDATE SET heartbeat = now()",
                &[&study, &owner],
            )
        })?;
        if !self.workers.iter().any(|w| w == owner) {
            self.workers.push(owner.to_string());
        }
        Ok(())
    }

    fn is_alive(&mut self, owner: &str, grace: Duration) -> Result<bool> {
        let Some(study) = self.study_id(false)? else {
            return Ok(false);
        };
        let seconds = grace.as_secs_f64();
        Ok(self
            .retrying(|c, _| {
                c.query_opt(
                    "SELECT heartbeat > now() - make_interval(secs => $3) FROM foresight_workers \
                     WHERE study = $1 AND owner = $2",
                    &[&study, &owner, &seconds],
                )
            })?
            .is_some_and(|r| r.get::<_, bool>(0)))
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // A worker that stops cleanly is gone at once, not after a grace.
        if let (Some(client), Some(study)) = (self.client.as_mut(), self.id) {
            for owner in &self.workers {
                let _ = client.execute(
                    "DELETE FROM foresight_workers WHERE study = $1 AND owner = $2",
                    &[&study, owner],
                );
            }
        }
    }
}

#[cfg(test)]
#[path = "../../tests/common/schema.rs"]
mod test_schema;

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) use super::test_schema::Schema;

    #[test]
    fn keeps_the_storage_contract() {
        let schema = Schema::new("contract");
        crate::storage::tests::contract(Box::new(Postgres::new(&schema.url, "s").unwrap()));
        crate::storage::tests::keeps_its_command(&mut Postgres::new(&schema.url, "c").unwrap());
    }

    #[test]
    fn studies_are_kept_apart_and_listed() {
        let schema = Schema::new("list");
        let mut a = Postgres::new(&schema.url, "a").unwrap();
        let mut b = Postgres::new(&schema.url, "b").unwrap();
        let header = crate::storage::tests::header();
        a.append("w", Cursor::default(), std::slice::from_ref(&header))
            .unwrap();
        let r = b
            .append("w", Cursor::default(), std::slice::from_ref(&header))
            .unwrap();
        assert_eq!(r.outcome, Outcome::Stored, "another study");
        assert!(r.earlier.is_empty());
        a.heartbeat("w").unwrap();
        let rows = Postgres::studies(&schema.url).unwrap();
        let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!((rows[0].events, rows[0].workers), (1, 1));
        // A worker that stops cleanly is gone at once.
        drop(a);
        assert_eq!(Postgres::studies(&schema.url).unwrap()[0].workers, 0);
        // A study nobody wrote reads as empty, and is not created.
        let mut c = Postgres::new(&schema.url, "c").unwrap();
        assert!(c.read(Cursor::default()).unwrap().0.is_empty());
        assert_eq!(Postgres::studies(&schema.url).unwrap().len(), 2);
    }

    #[test]
    fn a_newer_schema_is_refused_and_credentials_are_not_shown() {
        let schema = Schema::new("newer");
        let mut p = Postgres::new(&schema.url, "s").unwrap();
        p.read(Cursor::default()).unwrap();
        let mut admin = Client::connect(&schema.url, NoTls).unwrap();
        admin
            .execute("UPDATE foresight_schema SET version = 99", &[])
            .unwrap();
        let err = Postgres::new(&schema.url, "s")
            .unwrap()
            .read(Cursor::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("version 99") && err.contains("upgrade foresight"),
            "{err}"
        );
        let secret = Postgres::new("postgres://alice:hunter2@db.example:5433/x", "s").unwrap();
        let shown = format!("{} {secret:?}", secret.describe());
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(
            shown.contains("postgres://alice@db.example:5433/x"),
            "{shown}"
        );
    }

    /// An acknowledged event survives its connection being killed, and a
    /// batch cut off after its commit is not stored twice.
    #[test]
    fn a_lost_connection_loses_and_doubles_nothing() {
        let schema = Schema::new("lost");
        let url = format!(
            "{}&application_name=fs-lost-{}",
            schema.url,
            std::process::id()
        );
        let mut p = Postgres::new(&url, "s").unwrap();
        let r = p
            .append("w", Cursor::default(), &[crate::storage::tests::header()])
            .unwrap();
        let mut cursor = r.cursor;
        let mut admin = Client::connect(&schema.url, NoTls).unwrap();
        let kill = |admin: &mut Client| {
            admin
                .execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
                    &[&format!("fs-lost-{}", std::process::id())],
                )
                .unwrap();
        };
        for trial in 0..5 {
            kill(&mut admin);
            let r = p
                .append("w", cursor, &[crate::storage::tests::start(trial, "w")])
                .unwrap();
            assert_eq!(r.outcome, Outcome::Stored);
            cursor = r.cursor;
        }
        kill(&mut admin);
        let (all, _) = p.read(Cursor::default()).unwrap();
        assert_eq!(all.len(), 6);
        // The same batch retried after a cut-off commit is found, not
        // stored again.
        let batch = format!("w/{}", p.batches);
        let id = p.id.unwrap();
        let again: i64 = admin
            .query_one(
                "SELECT count(*) FROM foresight_events WHERE study = $1 AND batch = $2",
                &[&id, &batch],
            )
            .unwrap()
            .get(0);
        assert_eq!(again, 1);
    }
}
