//! Protocol S of BENCHMARKS.md: where a study is kept, measured side by
//! side in one run — a study folder (the journal), a PostgreSQL database
//! (the local server, a schema of the benchmark's own), and Optuna 5 with
//! its PostgreSQL storage (`benches/optuna_storage.py`, called once per
//! figure; it makes its own virtual environment and database).
//!
//! ```sh
//! cargo bench --bench storage                   # both measurements, a table each (15 minutes)
//! cargo bench --bench storage -- roundtrip      # or one of them
//! cargo bench --bench storage -- throughput --json   # one JSON object instead
//! ```
//!
//! Trivial trials: 20 epochs of a saturating curve `x (1 - e^{-e/3})`, a
//! 1-D float space, random search, the median rule (Optuna: `MedianPruner`
//! with the same startup trials and warm-up), so that the storage is what
//! is measured.
//!
//! 1. **Round trip with N finished trials in the store** (N = 1,000 and
//!    10,000): the store is filled beforehand (in batches; Optuna: see its
//!    script), then a worker joins — reads every event and folds them into
//!    its study, timed — and runs 200 round trips, each timed alone: the
//!    sampler's ask, the claim (`Start`) appended, the end (`End`)
//!    appended, the tell. Median and 95th percentile.
//! 2. **Throughput of K worker processes** (K = 1, 2, 4, 8; this program
//!    started K times, one worker thread each) on one study of 400 trials:
//!    epochs per second from the first process's start to the last one's
//!    exit, and the trials started twice or never ended (must be 0).

use std::path::PathBuf;
use std::time::Instant;

use foresight::prelude::*;
use foresight::stats::percentile;
use foresight::storage::{Cursor, Outcome, Postgres};
use foresight::study::{Component, Header, VERSION};
use serde::{Deserialize, Serialize};
#[path = "../tests/common/schema.rs"]
mod schema;
use schema::Schema;

const EPOCHS: usize = 20;

fn space() -> Space {
    Space::builder()
        .float("x", 0.0, 1.0, Scale::Linear)
        .build()
        .unwrap()
}

fn header() -> Header {
    Header {
        version: VERSION,
        space: space(),
        objective: Objective::accuracy(),
        horizon: EPOCHS,
        seed: 0,
        sampler: Component {
            name: "random".into(),
            settings: serde_json::Value::Null,
        },
        policy: Component {
            name: "none".into(),
            settings: serde_json::Value::Null,
        },
    }
}

/// The events of finished trial `id` with configuration `x`.
fn trial_events(id: usize, x: f64, owner: &str) -> Vec<Event> {
    let mut events = vec![Event::Start {
        trial: id,
        config: Config::from([("x".to_string(), Value::Float(x))]),
        seed: id as u64,
        owner: owner.into(),
        t: id as f64,
    }];
    for e in 1..=EPOCHS {
        events.push(Event::Epoch {
            trial: id,
            epoch: e,
            value: Some(x * e as f64 / EPOCHS as f64),
            metrics: Default::default(),
            attrs: Default::default(),
            t: id as f64,
        });
    }
    events.push(Event::End {
        trial: id,
        status: Status::Completed,
        value: Some(x),
        variance: Some(0.0),
        message: None,
        t: id as f64,
    });
    events
}

/// Fills `store` with the header and `n` finished trials; returns the
/// cursor after them and the seconds it took.
fn fill(store: &mut dyn Storage, n: usize) -> (Cursor, f64) {
    let start = Instant::now();
    let mut cursor = store
        .append("filler", Cursor::default(), &[Event::Study(header())])
        .unwrap()
        .cursor;
    for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
        let events: Vec<Event> = chunk
            .iter()
            .flat_map(|&i| trial_events(i, (i as f64 * 0.618).fract(), "filler"))
            .collect();
        let a = store.append("filler", cursor, &events).unwrap();
        assert!(matches!(a.outcome, Outcome::Stored));
        cursor = a.cursor;
    }
    (cursor, start.elapsed().as_secs_f64())
}

/// One figure of the round-trip measurement.
#[derive(Serialize, Deserialize)]
struct RoundTrip {
    store: String,
    trials: usize,
    round_trips: usize,
    fill_seconds: f64,
    join_seconds: f64,
    median_ms: f64,
    p95_ms: f64,
}

const ROUND_TRIPS: usize = 200;

/// Fills `store` with `n` finished trials, joins and times round trips.
fn roundtrip(label: &str, store: &mut dyn Storage, n: usize) -> RoundTrip {
    let (_, filled) = fill(store, n);
    // A worker joins: every event read and folded.
    let start = Instant::now();
    let (events, mut cursor) = store.read(Cursor::default()).unwrap();
    let study = Study::from_events(&events).unwrap();
    let joined = start.elapsed().as_secs_f64();
    assert_eq!(study.trials.len(), n);
    let mut sampler = RandomSampler::new(space(), 1);
    for t in &study.trials {
        sampler.tell(&t.config, -t.told.unwrap().0, 0.0).unwrap();
    }
    let mut times = Vec::new();
    for k in 0..ROUND_TRIPS {
        let start = Instant::now();
        let config = sampler.ask(&[]).unwrap();
        let id = n + k;
        let start_event = Event::Start {
            trial: id,
            config: config.clone(),
            seed: 0,
            owner: "bench".into(),
            t: 0.0,
        };
        let a = store.append("bench", cursor, &[start_event]).unwrap();
        assert!(matches!(a.outcome, Outcome::Stored));
        let end = Event::End {
            trial: id,
            status: Status::Completed,
            value: Some(0.5),
            variance: Some(0.0),
            message: None,
            t: 0.0,
        };
        let a = store.append("bench", a.cursor, &[end]).unwrap();
        assert!(matches!(a.outcome, Outcome::Stored));
        cursor = a.cursor;
        sampler.tell(&config, -0.5, 0.0).unwrap();
        times.push(1e3 * start.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    RoundTrip {
        store: label.into(),
        trials: n,
        round_trips: ROUND_TRIPS,
        fill_seconds: filled,
        join_seconds: joined,
        median_ms: percentile(&times, 0.5),
        p95_ms: percentile(&times, 0.95),
    }
}

/// Optuna's figure: its script's JSON object, with the fields shared with
/// ours read into the same row (the rest kept in the JSON output).
fn optuna<T: serde::de::DeserializeOwned>(args: &[String]) -> (T, serde_json::Value) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/optuna_storage.py");
    eprintln!(
        "optuna: python3 benches/optuna_storage.py {}",
        args.join(" ")
    );
    let out = std::process::Command::new("python3")
        .arg(script)
        .args(args)
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("python3 runs benches/optuna_storage.py");
    assert!(
        out.status.success(),
        "benches/optuna_storage.py failed ({})",
        out.status
    );
    let value: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("one JSON object from optuna_storage.py");
    (serde_json::from_value(value.clone()).unwrap(), value)
}

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "foresight-bench-storage-{tag}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// A trivial epoch: a point of a saturating curve.
struct Trivial {
    x: f64,
    epoch: usize,
}

impl Trainable for Trivial {
    type Report = f64;
    fn train_epoch(&mut self) -> Result<f64, TrialError> {
        self.epoch += 1;
        Ok(self.x * (1.0 - (-(self.epoch as f64) / 3.0).exp()))
    }
}

/// One worker process of the throughput measurement (this program, started
/// with FORESIGHT_BENCH_WORKER=STORAGE).
fn worker(spec: &str) {
    let store = foresight::storage::open(spec, Some("throughput")).unwrap();
    Tuner::new(space(), Objective::accuracy(), EPOCHS)
        .sampler(RandomSampler::new(space(), 0))
        .policy(MedianRule::default())
        .budget(Budget {
            trials: Some(TRIALS),
            ..Budget::default()
        })
        .threads_per_trial(1)
        .storage(store)
        .output(Output::Quiet)
        .run(|c: &Config, _: &TrialContext| {
            Ok(Trivial {
                x: c["x"].as_f64(),
                epoch: 0,
            })
        })
        .unwrap();
}

const TRIALS: usize = 400;

/// One figure of the throughput measurement.
#[derive(Serialize, Deserialize)]
struct Throughput {
    store: String,
    workers: usize,
    trials: usize,
    epochs: usize,
    seconds: f64,
    epochs_per_second: f64,
    started_twice: usize,
    never_ended: usize,
}

/// `k` worker processes on the study at `spec`.
fn throughput(label: &str, spec: &str, k: usize, load: impl Fn() -> Study) -> Throughput {
    let start = Instant::now();
    let children: Vec<_> = (0..k)
        .map(|_| {
            std::process::Command::new(std::env::current_exe().unwrap())
                .env("FORESIGHT_BENCH_WORKER", spec)
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let seconds = start.elapsed().as_secs_f64();
    let study = load();
    Throughput {
        store: label.into(),
        workers: k,
        trials: study.trials.len(),
        epochs: study.epochs_used,
        seconds,
        epochs_per_second: study.epochs_used as f64 / seconds,
        started_twice: study.trials.iter().filter(|t| t.restarts > 0).count(),
        never_ended: study.trials.iter().filter(|t| t.status.is_none()).count(),
    }
}

fn main() {
    if let Ok(spec) = std::env::var("FORESIGHT_BENCH_WORKER") {
        return worker(&spec);
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let json = args.iter().any(|a| a == "--json");
    let which: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let wants = |m: &str| which.is_empty() || which.iter().any(|w| *w == m);
    let mut output = serde_json::Map::new();
    if wants("roundtrip") {
        let mut rows = Vec::new();
        let mut optuna_rows = Vec::new();
        for n in [1000, 10_000] {
            let dir = temp_dir(&format!("rt{n}"));
            rows.push(roundtrip("journal", &mut Journal::new(&dir), n));
            let _ = std::fs::remove_dir_all(&dir);
            let schema = Schema::new(&format!("rt{n}"));
            let mut pg = Postgres::new(&schema.url, "rt").unwrap();
            rows.push(roundtrip("postgres", &mut pg, n));
            let (row, full): (RoundTrip, _) = optuna(&[
                "roundtrip".into(),
                "--trials".into(),
                n.to_string(),
                "--round-trips".into(),
                ROUND_TRIPS.to_string(),
            ]);
            rows.push(row);
            optuna_rows.push(full);
        }
        if !json {
            println!(
                "| store | finished trials | fill s | join s | ask + tell, median ms | p95 ms |"
            );
            println!("|---|---:|---:|---:|---:|---:|");
            for r in &rows {
                println!(
                    "| {} | {} | {:.2} | {:.3} | {:.3} | {:.3} |",
                    r.store, r.trials, r.fill_seconds, r.join_seconds, r.median_ms, r.p95_ms
                );
            }
            for o in &optuna_rows {
                println!(
                    "\nOptuna {}, {} trials: {} of them written through `add_trials`, {:.1} ms \
                     a trial; the rest copied in SQL.",
                    o["optuna"],
                    o["trials"],
                    o["fill_add_trials"],
                    o["fill_add_trials_ms_per_trial"]
                );
            }
        }
        output.insert("roundtrip".into(), serde_json::to_value(&rows).unwrap());
        output.insert("optuna_roundtrip".into(), optuna_rows.into());
    }
    if wants("throughput") {
        let mut rows = Vec::new();
        let mut optuna_rows = Vec::new();
        for k in [1, 2, 4, 8] {
            let dir = temp_dir(&format!("tp{k}"));
            let spec = dir.to_string_lossy().into_owned();
            rows.push(throughput("journal", &spec, k, || {
                Journal::new(&dir).load().unwrap().0
            }));
            let _ = std::fs::remove_dir_all(&dir);
            let schema = Schema::new(&format!("tp{k}"));
            let url = schema.url.clone();
            rows.push(throughput("postgres", &url, k, || {
                Postgres::new(&url, "throughput").unwrap().load().unwrap().0
            }));
            let (row, full): (Throughput, _) = optuna(&[
                "throughput".into(),
                "--workers".into(),
                k.to_string(),
                "--trials".into(),
                TRIALS.to_string(),
                "--epochs".into(),
                EPOCHS.to_string(),
            ]);
            rows.push(row);
            optuna_rows.push(full);
        }
        if !json {
            println!(
                "| store | worker processes | trials | epochs | seconds | epochs per second | started twice | never ended |"
            );
            println!("|---|---:|---:|---:|---:|---:|---:|---:|");
            for r in &rows {
                println!(
                    "| {} | {} | {} | {} | {:.2} | {:.0} | {} | {} |",
                    r.store,
                    r.workers,
                    r.trials,
                    r.epochs,
                    r.seconds,
                    r.epochs_per_second,
                    r.started_twice,
                    r.never_ended
                );
            }
        }
        output.insert("throughput".into(), serde_json::to_value(&rows).unwrap());
        output.insert("optuna_throughput".into(), optuna_rows.into());
    }
    if json {
        println!("{}", serde_json::Value::Object(output));
    }
}
