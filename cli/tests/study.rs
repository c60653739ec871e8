//! `foresight report` and `foresight resume` on a study folder whose
//! program was killed.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{kill_study, load, temp_dir};
use foresight::prelude::*;

#[test]
#[ignore = "the child process of the command-line tests"]
fn child_study() {
    let dir = std::env::var("FORESIGHT_TEST_DIR").expect("run by a parent test");
    kill_study(Path::new(&dir)).unwrap();
}

fn foresight(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_foresight"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn the_command_line_reports_and_resumes_a_killed_study() {
    let dir = temp_dir("cli");
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "child_study", "--test-threads", "1"])
        .env("FORESIGHT_TEST_DIR", &dir)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let ready = |dir: &Path| {
        Journal::new(dir)
            .load()
            .is_ok_and(|(s, _)| s.count(Some(Status::Completed)) >= 1)
    };
    while !ready(&dir) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(ready(&dir), "the child study made no progress");
    let (before, _) = load(&dir);
    assert!(before.trials.len() < 6);
    let d = dir.to_str().unwrap();

    // Fault: `resume` ran whatever command the folder held. Now it shows
    // the command and runs nothing without --yes.
    let out = foresight(&["resume", d]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("child_study"), "shows the command: {err}");
    assert!(err.contains("--yes"), "{err}");
    assert_eq!(load(&dir).0, before, "nothing ran");

    // With --yes it runs the recorded command again: this test binary's
    // child_study, which reads its study folder from the environment.
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_foresight"))
        .args(["resume", d, "--yes"])
        .env("FORESIGHT_TEST_DIR", &dir)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let (after, events) = load(&dir);
    assert_eq!(after.count(Some(Status::Completed)), 6);
    let starts = events
        .iter()
        .filter(|e| matches!(e, Event::Start { .. }))
        .count();
    assert_eq!(starts, 6, "every trial started once");

    // The report: a summary naming the best trial and the trials' metrics,
    // and two figures.
    let out = foresight(&["report", d]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let best = after.best().unwrap().id;
    assert!(text.contains(&format!("trial {best}")), "{text}");
    assert!(text.contains("train_loss"), "{text}");
    for f in ["curves.svg", "incumbent.svg"] {
        let svg = std::fs::read_to_string(dir.join("report").join(f)).unwrap();
        assert!(svg.contains("<svg"));
    }
    // A folder without a study is a clear error, and stays empty.
    let nothing = temp_dir("nothing");
    let out = foresight(&["report", nothing.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("journal.jsonl") && err.contains("no study"),
        "{err}"
    );
    assert!(!nothing.exists());
}
