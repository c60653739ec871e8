//! Many workers on one study in the real local PostgreSQL server: four
//! `foresight tune` processes of two workers each, one of them killed with
//! SIGKILL in the middle of a trial.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use foresight::prelude::*;
use foresight::storage::Postgres;
#[path = "../../tests/common/schema.rs"]
mod schema;
use schema::Schema;

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("foresight-pg-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn study_file(dir: &Path) -> PathBuf {
    let script = format!(
        "{}/../tests/scripts/scripted.py",
        env!("CARGO_MANIFEST_DIR")
    );
    let path = dir.join("study.toml");
    std::fs::write(
        &path,
        format!(
            r#"
command = ["python3", "{script}", "--x", "{{x}}", "--seconds-per-epoch", "0.1"]
metric = "val_accuracy"
direction = "maximize"
low = 0.0
high = 1.0
horizon = 8
workers = 2
seed = 5
sampler = "random"
policy = "none"
grace_seconds = 1

[budget]
trials = 16

[[param]]
name = "x"
type = "float"
low = 0.0
high = 1.0
"#
        ),
    )
    .unwrap();
    path
}

fn worker(file: &Path, url: &str, dir: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_foresight"))
        .args(["tune", file.to_str().unwrap(), "--quiet", "--storage", url])
        .args(["--study", "shared", "--worker-grace", "2", "--dir"])
        .arg(dir.join("trials"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The scripted curve of `x` at `epoch`.
fn curve(x: f64, epoch: usize) -> f64 {
    (0.95 - 0.8 * (x - 0.3f64).powi(2)) * (1.0 - (-(epoch as f64) / 3.0).exp())
}

#[test]
fn four_workers_one_killed_finish_one_study() {
    let schema = Schema::new("four");
    let dir = temp_dir("four");
    let file = study_file(&dir);
    let mut workers: Vec<Child> = (0..4).map(|_| worker(&file, &schema.url, &dir)).collect();
    // Kill the first worker once one of its trials is two epochs in.
    let victim = workers[0].id();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut killed_trial = None;
    while killed_trial.is_none() && Instant::now() < deadline {
        if let Ok((s, _)) = Postgres::new(&schema.url, "shared").unwrap().load() {
            killed_trial = s
                .running()
                .find(|t| t.owner.contains(&format!("-{victim}-")) && t.scores.len() >= 2)
                .map(|t| t.id);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let killed_trial = killed_trial.expect("the first worker ran a trial");
    workers[0].kill().unwrap();
    workers[0].wait().unwrap();
    for w in &mut workers[1..] {
        let out = w.wait().unwrap();
        assert!(out.success(), "a worker failed");
    }
    let (study, events) = Postgres::new(&schema.url, "shared")
        .unwrap()
        .load()
        .unwrap();
    // Every trial number once, every trial ended once, all completed.
    let starts: Vec<usize> = events
        .iter()
        .filter_map(|e| match e {
            Event::Start { trial, .. } => Some(*trial),
            _ => None,
        })
        .collect();
    assert_eq!(starts, (0..16).collect::<Vec<_>>());
    for id in 0..16 {
        let ends = events
            .iter()
            .filter(|e| matches!(e, Event::End { trial, .. } if *trial == id))
            .count();
        assert_eq!(ends, 1, "trial {id}");
    }
    assert_eq!(
        study.count(Some(Status::Completed)),
        16,
        "{:?}",
        study
            .trials
            .iter()
            .map(|t| (t.status, t.message.clone()))
            .collect::<Vec<_>>()
    );
    // The killed trial was taken over and finished, from its checkpoint,
    // with its whole curve.
    let t = &study.trials[killed_trial];
    assert_eq!(t.restarts, 1);
    assert!(!t.owner.contains(&format!("-{victim}-")));
    let x = t.config["x"].as_f64();
    let want: Vec<f64> = (1..=8).map(|e| curve(x, e)).collect();
    assert_eq!(t.scores, want);
    // All four workers worked on it; no configuration started twice.
    let owners: std::collections::BTreeSet<String> = events
        .iter()
        .filter_map(|e| match e {
            Event::Start { owner, .. } => Some(owner.split('-').nth(1).unwrap_or("").to_string()),
            _ => None,
        })
        .collect();
    assert!(owners.len() >= 3, "{owners:?}");
    for (i, a) in study.trials.iter().enumerate() {
        for b in &study.trials[i + 1..] {
            assert_ne!(a.config, b.config, "trials {} and {}", a.id, b.id);
        }
    }
    // The store's events fold to the study the report computes.
    let out = Command::new(env!("CARGO_BIN_EXE_foresight"))
        .args(["report", &schema.url, "--study", "shared", "--out"])
        .arg(dir.join("report"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.starts_with(&foresight::report::summary(&study)),
        "{printed}"
    );
    // `foresight studies` lists it: 16 trials, none running; the three
    // workers that stopped cleanly are gone (the killed one is heard of
    // until its last heartbeat is a minute old).
    let out = Command::new(env!("CARGO_BIN_EXE_foresight"))
        .args(["studies", "--storage", &schema.url])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&out.stdout);
    let row = listed.lines().find(|l| l.starts_with("shared")).unwrap();
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        &cells[cells.len() - 3..cells.len() - 1],
        ["16", "0"],
        "{listed}"
    );
    assert!(cells[cells.len() - 1] <= "1", "{listed}");
    // `foresight resume` shows the command that created the study (one of
    // the four `foresight tune` lines) and runs nothing without --yes.
    let out = Command::new(env!("CARGO_BIN_EXE_foresight"))
        .args(["resume", &schema.url, "--study", "shared"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains("16 trials so far") && said.contains(" tune ") && said.contains("--yes"),
        "{said}"
    );
}
