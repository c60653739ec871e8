//! `foresight tune` end to end, with real processes: a run to the end, a
//! SIGKILL and a Ctrl-C in the middle, each continued by running the same
//! command again. The training program is `tests/scripts/scripted.py`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use foresight::prelude::*;

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("foresight-tune-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A study file in `dir` for the scripted program.
fn study_file(dir: &Path, trials: usize, seconds_per_epoch: f64, extra: &str) -> PathBuf {
    let script = format!(
        "{}/../tests/scripts/scripted.py",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = format!(
        r#"
command = ["python3", "{script}", "--x", "{{x}}", "--seconds-per-epoch", "{seconds_per_epoch}"]
metric = "val_accuracy"
direction = "maximize"
low = 0.0
high = 1.0
horizon = 8
workers = 2
seed = 3
sampler = "random"
policy = "none"
storage = "{storage}"
grace_seconds = 2
{extra}

[budget]
trials = {trials}

[[param]]
name = "x"
type = "float"
low = 0.0
high = 1.0
"#,
        storage = dir.join("study").display()
    );
    let path = dir.join("study.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// `foresight ARGS` (in `cwd`), which must succeed: its stdout.
fn foresight_ok(cwd: &str, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_foresight"))
        .current_dir(cwd)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "foresight {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn tune(file: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_foresight"))
        .args(["tune", file.to_str().unwrap(), "--quiet"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn load(dir: &Path) -> (Study, Vec<Event>) {
    Journal::new(dir.join("study")).load().unwrap()
}

/// Waits until the study in `dir` satisfies `ready` (or a minute passes).
fn wait_for(dir: &Path, ready: impl Fn(&Study) -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if Journal::new(dir.join("study"))
            .load()
            .is_ok_and(|(s, _)| ready(&s))
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Scripts of this study still running.
fn scripts_alive(dir: &Path) -> usize {
    let marker = format!("FORESIGHT_TRIAL_DIR={}", dir.display());
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|p| {
            let stat = std::fs::read_to_string(p.path().join("stat")).unwrap_or_default();
            let zombie = stat
                .rsplit_once(')')
                .is_some_and(|(_, r)| r.trim_start().starts_with('Z'));
            !zombie
                && std::fs::read(p.path().join("environ")).is_ok_and(|env| {
                    env.split(|&b| b == 0)
                        .any(|v| String::from_utf8_lossy(v).starts_with(&marker))
                })
        })
        .count()
}

/// The scripted curve of `x` at `epoch`.
fn curve(x: f64, epoch: usize) -> f64 {
    (0.95 - 0.8 * (x - 0.3f64).powi(2)) * (1.0 - (-(epoch as f64) / 3.0).exp())
}

/// Every trial started once, ended once, completed with its whole curve.
fn check_complete(study: &Study, events: &[Event], trials: usize) {
    let starts: Vec<usize> = events
        .iter()
        .filter_map(|e| match e {
            Event::Start { trial, .. } => Some(*trial),
            _ => None,
        })
        .collect();
    assert_eq!(starts, (0..trials).collect::<Vec<_>>());
    assert_eq!(
        study.count(Some(Status::Completed)),
        trials,
        "{:?}",
        study
            .trials
            .iter()
            .map(|t| (t.status, t.message.clone()))
            .collect::<Vec<_>>()
    );
    for t in &study.trials {
        let x = t.config["x"].as_f64();
        assert_eq!(t.scores.len(), 8, "trial {}", t.id);
        for (e, s) in t.scores.iter().enumerate() {
            assert!(
                (s - curve(x, e + 1)).abs() < 1e-9,
                "trial {} epoch {}",
                t.id,
                e + 1
            );
        }
    }
}

#[test]
fn a_study_file_runs_to_the_end_and_reports() {
    let dir = temp_dir("run");
    let file = study_file(&dir, 4, 0.01, "");
    let here = ".";
    let text = foresight_ok(
        here,
        &["tune", file.to_str().unwrap(), "--quiet", "--trials", "5"],
    );
    assert!(text.contains("best: trial"), "{text}");
    let (study, events) = load(&dir);
    check_complete(&study, &events, 5);
    // A flag overrode the file (5 trials); the report and replay read it.
    let folder = dir.join("study");
    let folder = folder.to_str().unwrap();
    assert!(foresight_ok(here, &["report", folder]).contains("5 (5 completed"));
    let replay = [
        "replay",
        "--curves",
        folder,
        "--seeds",
        "1",
        "--sampler",
        "random",
        "--policy",
        "median",
        "--json",
    ];
    assert!(foresight_ok(here, &replay).contains("\"runs\""));
    // The help shows a complete study file.
    let help = foresight_ok(here, &["tune", "--help"]);
    assert!(
        help.contains("[[param]]") && help.contains("command = "),
        "{help}"
    );
}

#[test]
fn a_placeholder_without_a_parameter_stops_before_anything_starts() {
    let dir = temp_dir("placeholder");
    let file = study_file(&dir, 2, 0.01, "");
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("{x}", "{learning_rate}");
    std::fs::write(&file, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_foresight"))
        .args(["tune", file.to_str().unwrap(), "--quiet"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`{learning_rate}`") && err.contains("names no parameter"),
        "{err}"
    );
    assert!(
        !dir.join("study").join("trials").exists(),
        "nothing started"
    );
}

#[test]
fn sigkill_then_the_same_command_continues_the_study() {
    let dir = temp_dir("kill");
    let file = study_file(&dir, 6, 0.1, "");
    let mut child = tune(&file);
    assert!(
        wait_for(&dir, |s| s.count(Some(Status::Completed)) >= 2
            && s.running().any(|t| t.scores.len() >= 2)),
        "no progress"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let (before, _) = load(&dir);
    let done: Vec<usize> = before
        .trials
        .iter()
        .filter(|t| t.status == Some(Status::Completed))
        .map(|t| t.id)
        .collect();
    let interrupted: Vec<usize> = before.running().map(|t| t.id).collect();
    assert!(!interrupted.is_empty());
    // Its programs died with it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while scripts_alive(&dir) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(scripts_alive(&dir), 0, "a program outlived the tuner");
    // The same command continues it.
    let out = tune(&file).wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (after, events) = load(&dir);
    check_complete(&after, &events, 6);
    for id in &done {
        assert!(
            !events
                .iter()
                .any(|e| matches!(e, Event::Takeover { trial, .. } if trial == id)),
            "completed trial {id} ran again"
        );
        assert_eq!(
            after.trials[*id], before.trials[*id],
            "trial {id} kept as it was"
        );
    }
    for id in &interrupted {
        assert!(
            events
                .iter()
                .any(|e| matches!(e, Event::Takeover { trial, .. } if trial == id))
        );
        // Its program went on from its checkpoint: the second run's first
        // line is not epoch 1.
        let log = std::fs::read_to_string(
            dir.join("study/trials")
                .join(format!("trial-{id:04}/stdout.log")),
        )
        .unwrap();
        let epochs: Vec<u64> = log
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| v["epoch"].as_u64())
            .collect();
        let restart = epochs.windows(2).position(|w| w[1] <= w[0]);
        if let Some(i) = restart {
            assert!(epochs[i + 1] > 1, "trial {id} started over: {epochs:?}");
        }
    }
    assert_eq!(scripts_alive(&dir), 0);
}

#[test]
fn ctrl_c_stops_every_trial_and_the_study_continues_later() {
    let dir = temp_dir("interrupt");
    let file = study_file(&dir, 4, 0.2, "");
    let mut child = tune(&file);
    assert!(
        wait_for(&dir, |s| s.running().any(|t| t.scores.len() >= 2)),
        "no progress"
    );
    // SAFETY: kill sends a signal; the child is ours.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let started = Instant::now();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "interrupted");
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(scripts_alive(&dir), 0, "every trial stopped");
    let mut err = String::new();
    use std::io::Read;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(err.contains("run the same command again"), "{err}");
    let (before, _) = load(&dir);
    assert!(before.running().count() > 0, "left for the next run");
    let out = tune(&file).wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (after, events) = load(&dir);
    check_complete(&after, &events, 4);
}

#[test]
fn the_bundled_study_files_are_valid_and_the_synthetic_one_runs() {
    let dir = temp_dir("bundled");
    let root = format!("{}/..", env!("CARGO_MANIFEST_DIR"));
    // The dependency-free example, briefly (it runs from the repository
    // root, as its README line says).
    let synthetic = dir.join("synthetic");
    foresight_ok(
        &root,
        &[
            "tune",
            "examples/command/study.toml",
            "--trials",
            "3",
            "--horizon",
            "3",
            "--quiet",
            "--storage",
            synthetic.to_str().unwrap(),
        ],
    );
    let (study, _) = Journal::new(&synthetic).load().unwrap();
    assert_eq!(study.trials.len(), 3);
    assert!(study.count(Some(Status::Completed)) >= 1);
    // The PyTorch one (not run: its packages are not installed here): the
    // file, its space, command and policy are checked, and no trial starts.
    let digits = dir.join("digits");
    let out = foresight_ok(
        &root,
        &[
            "tune",
            "examples/command/digits.toml",
            "--trials",
            "0",
            "--quiet",
            "--storage",
            digits.to_str().unwrap(),
        ],
    );
    assert!(out.contains("no trial completed"));
}
