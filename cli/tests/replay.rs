//! `foresight replay` end to end on a user's CSV log.

use std::path::Path;
use std::process::Command;

/// A log of 40 trials × 8 epochs: a loss that levels off at a level set by
/// the learning rate, and one trial that diverges.
fn write_log(path: &Path) {
    let mut text = String::from("trial,epoch,value,lr,optimizer\n");
    for t in 0..40 {
        let lr = 10f64.powf(-4.0 + 3.0 * t as f64 / 39.0);
        let opt = if t % 2 == 0 { "adam" } else { "sgd" };
        let floor = 0.2 + (lr.log10() + 2.5).powi(2) * 0.1;
        for e in 1..=8 {
            let v = if t == 7 && e >= 5 {
                "nan".to_string()
            } else {
                format!("{}", floor + 0.8 * (-(e as f64) / 2.0).exp())
            };
            text += &format!("t{t},{e},{v},{lr},{opt}\n");
        }
    }
    std::fs::write(path, text).unwrap();
}

/// `foresight replay` of the CSV `log` with two samplers, the `policies`
/// and two seeds, writing into `dir/out`.
fn replay(log: &Path, dir: &Path, policies: &str, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_foresight"))
        .args(["replay", "--curves", log.to_str().unwrap()])
        .args([
            "--metric",
            "loss",
            "--sampler",
            "random,gp",
            "--policy",
            policies,
        ])
        .args(["--seeds", "2", "--out", dir.join("out").to_str().unwrap()])
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn replay_of_a_csv_log_prints_protocol_r_json() {
    let dir = std::env::temp_dir().join(format!("foresight-replay-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("runs.csv");
    write_log(&log);
    let out = replay(&log, &dir, "median,asha", &["--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let runs = json["runs"].as_array().unwrap();
    // 2 samplers × 3 policies (none is always run) × 2 seeds.
    assert_eq!(runs.len(), 12);
    for r in runs {
        for key in [
            "source", "task", "sampler", "policy", "seed", "T", "budget", "r_5T", "r_10T", "r_20T",
            "r_50T",
        ] {
            assert!(!r[key].is_null(), "{key} missing");
        }
        assert_eq!(r["T"], 8);
        assert_eq!(r["budget"], 400);
        assert_eq!(r["task"], "runs");
        assert!(r["traj"].is_array());
        assert!(r["epochs_to_r0.1"].is_number() || r["epochs_to_r0.1"] == "inf");
    }
    // A pool of 40 is used up before the budget of 50·T without stopping.
    let none = runs.iter().find(|r| r["policy"] == "none").unwrap();
    assert_eq!(none["trials_started"], 40);
    assert_eq!(none["r_50T"], 0.0);
    let summary = json["summary"].as_array().unwrap();
    assert_eq!(summary.len(), 6);
    assert!(summary.iter().all(|s| s["speedup"].is_number()));
    assert!(dir.join("out/summary.md").exists());
    assert!(
        std::fs::read_to_string(dir.join("out/regret.svg"))
            .unwrap()
            .contains("<svg")
    );
    // Interrupted: runs.jsonl lost its last four runs, the one before them
    // half written. Run again, it replays only what is missing and prints
    // what the uninterrupted replay printed.
    let kept = dir.join("out/runs.jsonl");
    let text = std::fs::read_to_string(&kept).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 12);
    let mut cut = lines[..7].join("\n");
    cut += "\n";
    cut += &lines[7][..lines[7].len() / 2];
    std::fs::write(&kept, cut).unwrap();
    let again = replay(&log, &dir, "median,asha", &["--json"]);
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("7 runs reused"));
    let json_again: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(json_again, json);
    // Damage before the last line is an error naming the line.
    std::fs::write(&kept, "{not json}\n{}\n").unwrap();
    let damaged = replay(&log, &dir, "median,asha", &[]);
    assert!(!damaged.status.success());
    assert!(String::from_utf8_lossy(&damaged.stderr).contains("line 1"));
    // A CSV without --metric is refused with a clear message.
    let out = Command::new(env!("CARGO_BIN_EXE_foresight"))
        .args(["replay", "--curves", log.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--metric"));
    // A policy setting that cannot work is refused before any run.
    let out = replay(&log, &dir.join("fresh"), "lc(threshold=1)", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("threshold 1 must lie in (0, 1)"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}
