//! `foresight predict` (protocol P) from the command line.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::{Log, synthetic, temp_dir, trials, tuner};
use foresight::prelude::*;

use serde_json::Value;

/// A bundled curve set, from the repository root.
fn set(name: &str) -> String {
    format!("{}/../curves/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// The summary rows `foresight predict ARGS --json` prints; it must succeed.
fn predict_json(args: &[&str]) -> Vec<Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_foresight"))
        .arg("predict")
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["by_source_cutoff"].as_array().unwrap().clone()
}

#[test]
fn command_line_prints_protocol_json() {
    let rows = predict_json(&[
        "--curves",
        &set("lcbench-4.jsonl.gz"),
        "--per-task",
        "1",
        "--cutoffs",
        "0.2",
    ]);
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(row["source"], "yahpo_lcbench_surrogate");
    assert_eq!(row["n"], 4);
    for field in [
        "cutoff",
        "mae",
        "median_abs_err",
        "mean_log_density",
        "median_log_density",
        "coverage90",
        "false_stops",
        "true_better",
        "stopped_worse_frac",
        "median_seconds",
    ] {
        assert!(row.get(field).is_some(), "missing {field}");
    }
}

#[test]
fn command_line_reports_bad_input() {
    let out = Command::new(env!("CARGO_BIN_EXE_foresight"))
        .args(["predict", "--curves", "no/such/file.jsonl"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no/such/file.jsonl"));
    let out = Command::new(env!("CARGO_BIN_EXE_foresight"))
        .args([
            "predict",
            "--curves",
            &set("lcbench-4.jsonl.gz"),
            "--cutoffs",
            "1.5",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

/// Fault: an empty file printed an empty table.
#[test]
fn an_empty_curve_set_is_an_error_that_says_so() {
    let dir = std::env::temp_dir().join(format!("foresight-cli-empty-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, text, says) in [
        ("empty.jsonl", "", "holds no curves"),
        ("blank.jsonl", "\n\n", "holds no curves"),
        ("header.csv", "trial,epoch,value,lr\n", "no rows"),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        let command = if name.ends_with(".csv") {
            vec![
                "replay",
                "--curves",
                path.to_str().unwrap(),
                "--metric",
                "loss",
            ]
        } else {
            vec!["predict", "--curves", path.to_str().unwrap()]
        };
        let out = Command::new(env!("CARGO_BIN_EXE_foresight"))
            .args(&command)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{name}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{name}: {err}");
        assert!(out.stdout.is_empty(), "{name}: no table");
    }
}

/// A user measures the predictor on the runs of their own study: a study
/// folder is read as `replay` reads it (its completed trials).
#[test]
fn a_study_folder_is_a_curve_set() {
    let dir = temp_dir("predict-study");
    let study = tuner(20, 5)
        .storage(Journal::new(&dir))
        .budget(trials(12))
        .simulate(synthetic(Duration::ZERO, &Arc::new(Log::default()), |_| {
            None
        }))
        .unwrap();
    assert_eq!(study.count(Some(Status::Completed)), 12);
    let rows = predict_json(&[
        "--curves",
        dir.to_str().unwrap(),
        "--per-task",
        "12",
        "--cutoffs",
        "0.2,0.4",
    ]);
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r["n"] == 12), "{rows:?}");
    assert_eq!(rows[0]["cutoff"], 0.2);
}
