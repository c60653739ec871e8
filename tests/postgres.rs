//! Studies in the real local PostgreSQL server (the `postgres` feature):
//! connections killed in the middle of a study lose nothing.

#![cfg(feature = "postgres")]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{Log, curve, synthetic, trials, tuner};
use foresight::prelude::*;
use foresight::storage::Postgres;
use schema::Schema;

#[path = "common/schema.rs"]
mod schema;

#[test]
fn a_study_finishes_with_nothing_lost_while_its_connections_are_killed() {
    let schema = Schema::new("kill");
    let app = format!("fs-kill-{}", std::process::id());
    let url = format!("{}&application_name={app}", schema.url);
    // Terminate the study's backend every 100 ms while it runs.
    let done = Arc::new(AtomicBool::new(false));
    let mut admin = schema.admin();
    let killer = std::thread::spawn({
        let done = done.clone();
        move || {
            let mut kills = 0u64;
            while !done.load(Ordering::SeqCst) {
                let n: i64 = admin
                    .query_one(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                         WHERE application_name = $1",
                        &[&app],
                    )
                    .unwrap()
                    .get(0);
                kills += n as u64;
                std::thread::sleep(Duration::from_millis(100));
            }
            kills
        }
    });
    let log = Arc::new(Log::default());
    let study = tuner(10, 4)
        .workers(2)
        .budget(trials(12))
        .storage(Postgres::new(&url, "study").unwrap())
        .run(synthetic(Duration::from_millis(5), &log, |_| None))
        .unwrap();
    done.store(true, Ordering::SeqCst);
    let kills = killer.join().unwrap();
    assert!(kills >= 3, "the connection was killed {kills} times only");
    // Read back by another connection: the same study, whole.
    let (stored, events) = Postgres::new(&schema.url, "study").unwrap().load().unwrap();
    assert_eq!(stored.epochs_used, 120, "every epoch once");
    assert_eq!(stored.count(Some(Status::Completed)), 12);
    for t in &stored.trials {
        let x = t.config["x"].as_f64();
        let want: Vec<f64> = (1..=10).map(|e| curve(x, e)).collect();
        assert_eq!(t.scores, want, "trial {}", t.id);
    }
    let mut mine = study.clone();
    let mut theirs = stored.clone();
    // Elapsed times differ by when each fold last heard; the rest is equal.
    mine.elapsed = 0.0;
    theirs.elapsed = 0.0;
    assert_eq!(mine, theirs, "the tuner's study is the stored one");
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, Event::End { .. }))
            .count(),
        12
    );
}
