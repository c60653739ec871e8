//! `foresight predict` (protocol P) from the command line.

use std::process::Command;

use serde_json::Value;

/// A bundled curve set, from the repository root.
fn set(name: &str) -> String {
    format!("{}/../curves/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn command_line_prints_protocol_json() {
    let out = Command::new(env!("CARGO_BIN_EXE_foresight"))
        .args([
            "predict",
            "--curves",
            &set("lcbench-4.jsonl.gz"),
            "--per-task",
            "1",
            "--cutoffs",
            "0.2",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = v["by_source_cutoff"].as_array().unwrap();
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
