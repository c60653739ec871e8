//! Studies kept in a folder: resuming, refusing another study, surviving
//! SIGKILL, and several processes sharing one study.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{
    Log, curve, kill_study, kill_study_logged, load, space, synthetic, temp_dir, trials, tuner,
};
use foresight::prelude::*;

#[test]
fn a_journal_resumes_and_refuses_other_studies() {
    let dir = temp_dir("journal");
    let log = Arc::new(Log::default());
    let build = synthetic(Duration::ZERO, &log, |_| None);
    let first = tuner(4, 11)
        .storage(Journal::new(&dir))
        .budget(trials(3))
        .simulate(&build)
        .unwrap();
    assert_eq!(first.trials.len(), 3);
    // A crash mid-write leaves a truncated last line: dropped on resume.
    let path = Journal::new(&dir).path().to_path_buf();
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(r#"{"event":"start","trial":3,"con"#);
    std::fs::write(&path, text).unwrap();
    let resumed = tuner(4, 11)
        .storage(Journal::new(&dir))
        .budget(trials(5))
        .simulate(&build)
        .unwrap();
    assert_eq!(resumed.trials.len(), 5);
    assert_eq!(
        &resumed.trials[..3],
        &first.trials[..],
        "completed trials kept"
    );
    let builds = log.builds.lock().unwrap().clone();
    assert!(
        builds.values().all(|&n| n == 1),
        "no trial trained twice: {builds:?}"
    );
    // The study on disk is the one returned.
    assert_eq!(load(&dir).0, resumed);
    // The same journal under another space, horizon or seed is refused.
    let other = Space::builder()
        .float("x", 0.0, 2.0, Scale::Linear)
        .build()
        .unwrap();
    let err = Tuner::new(other.clone(), Objective::accuracy(), 4)
        .sampler(RandomSampler::new(other, 11))
        .policy(NoStopping)
        .seed(11)
        .output(Output::Quiet)
        .storage(Journal::new(&dir))
        .budget(trials(6))
        .simulate(&build)
        .unwrap_err()
        .to_string();
    assert!(err.contains("search space"), "{err}");
    let err = tuner(6, 11)
        .storage(Journal::new(&dir))
        .budget(trials(6))
        .simulate(&build)
        .unwrap_err()
        .to_string();
    assert!(err.contains("horizon"), "{err}");
    // Corruption before the last line is an error naming the line.
    let mut lines: Vec<String> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    lines[2] = "not json".into();
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let err = tuner(4, 11)
        .storage(Journal::new(&dir))
        .budget(trials(6))
        .simulate(&build)
        .unwrap_err()
        .to_string();
    assert!(err.contains(":3:"), "{err}");
}

/// A study in `dir` of `n` trials (horizon 4, synthetic curves) with the
/// named sampler and policy, run or continued.
fn named_study(dir: &Path, sampler: &str, policy: &str, n: usize) -> foresight::Result<Study> {
    Tuner::new(space(), Objective::accuracy(), 4)
        .sampler(
            sampler
                .parse::<foresight::sampler::SamplerSpec>()
                .unwrap()
                .build(&space(), 0)
                .unwrap(),
        )
        .policy(foresight::policy::parse(policy).unwrap())
        .output(Output::Quiet)
        .storage(Journal::new(dir))
        .budget(trials(n))
        .simulate(synthetic(Duration::ZERO, &Arc::new(Log::default()), |_| {
            None
        }))
}

/// Fault: resuming compared only the names of the sampler and the policy,
/// so a changed threshold or η silently continued another study.
#[test]
fn resuming_compares_every_setting_of_the_sampler_and_the_policy() {
    let dir = temp_dir("settings");
    let study = |policy: &str, sampler: &str| named_study(&dir, sampler, policy, 3);
    study("median", "random").unwrap();
    study("median", "random").expect("the same settings continue");
    let err = study("median(warmup_epochs=2)", "random")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("stopping policy setting `warmup_epochs` is 5, this study's is 2"),
        "{err}"
    );
    let dir2 = temp_dir("settings-gp");
    let gp = |eta: &str| named_study(&dir2, &format!("gp-hedge(eta={eta})"), "none", 2);
    gp("0.1").unwrap();
    let err = gp("1.0").unwrap_err().to_string();
    assert!(err.contains("sampler setting `eta`"), "{err}");
}

/// Fault: a study folder begun before `lc` had its `calibrate` setting
/// refused to resume ("its stopping policy setting `calibrate` is null").
/// A setting missing from the stored header is read as its default.
#[test]
fn a_study_begun_before_a_setting_existed_resumes_with_its_default() {
    let dir = temp_dir("older");
    let study = |policy: &str, n: usize| named_study(&dir, "gp-hedge", policy, n);
    study("lc", 2).unwrap();
    // Remove a setting of each component from the header, as an earlier
    // version wrote it.
    let path = Journal::new(&dir).path().to_path_buf();
    let text = std::fs::read_to_string(&path).unwrap();
    let (first, rest) = text.split_once('\n').unwrap();
    let mut header: serde_json::Value = serde_json::from_str(first).unwrap();
    for (component, key) in [("policy", "calibrate"), ("sampler", "max_observations")] {
        let removed = header[component]["settings"]
            .as_object_mut()
            .unwrap()
            .remove(key);
        assert!(removed.is_some(), "the header records {component}.{key}");
    }
    std::fs::write(&path, format!("{header}\n{rest}")).unwrap();
    let resumed = study("lc", 3).expect("the defaults continue the older study");
    assert_eq!(resumed.trials.len(), 3);
    let err = study("lc(calibrate=true)", 4).unwrap_err().to_string();
    assert!(
        err.contains("stopping policy setting `calibrate` is false, this study's is true"),
        "{err}"
    );
}

/// Settings of the study several processes share: `workers` threads each,
/// random search with the same seed in every process (so that their
/// samplers propose the same configurations unless the claims work).
fn shared_study(dir: &Path, workers: usize) -> foresight::Result<Study> {
    tuner(6, 5)
        .workers(workers)
        .storage(Journal::new(dir))
        .budget(trials(16))
        .run(synthetic(
            Duration::from_millis(15),
            &Arc::new(Log::default()),
            |_| None,
        ))
}

#[test]
#[ignore = "the child process of the tests that kill or share a study"]
fn child_study() {
    let dir = std::env::var("FORESIGHT_TEST_DIR").expect("run by a parent test");
    let dir = Path::new(&dir);
    match std::env::var("FORESIGHT_TEST_STUDY").as_deref() {
        Ok("shared") => {
            // Wait for the other process, so that both really share.
            let me = std::process::id();
            std::fs::create_dir_all(dir).unwrap();
            std::fs::write(dir.join(format!("ready-{me}")), "").unwrap();
            let deadline = Instant::now() + Duration::from_secs(60);
            while std::fs::read_dir(dir)
                .unwrap()
                .filter(|e| {
                    e.as_ref()
                        .unwrap()
                        .file_name()
                        .to_string_lossy()
                        .starts_with("ready-")
                })
                .count()
                < 2
                && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            shared_study(dir, 2).unwrap();
        }
        _ => {
            kill_study(dir).unwrap();
        }
    }
}

fn spawn_child(dir: &Path, study: &str) -> std::process::Child {
    std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "child_study", "--test-threads", "1"])
        .env("FORESIGHT_TEST_DIR", dir)
        .env("FORESIGHT_TEST_STUDY", study)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn resume_after_sigkill() {
    let dir = temp_dir("kill");
    let mut child = spawn_child(&dir, "kill");
    // Kill it once two trials have completed and the third has a checkpoint.
    let deadline = Instant::now() + Duration::from_secs(60);
    let ready = |dir: &Path| {
        Journal::new(dir).load().is_ok_and(|(s, _)| {
            s.count(Some(Status::Completed)) >= 2
                && s.running().any(|t| t.checkpoint.unwrap_or(0) >= 2)
        })
    };
    while !ready(&dir) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(ready(&dir), "the child study made no progress");
    let (before, _) = load(&dir);
    let done: Vec<usize> = before
        .trials
        .iter()
        .filter(|t| t.status == Some(Status::Completed))
        .map(|t| t.id)
        .collect();
    let interrupted = before.running().next().unwrap().id;
    let log = Arc::new(Log::default());
    let after = kill_study_logged(&dir, &log).unwrap();
    assert_eq!(after.trials.len(), 6);
    assert_eq!(after.count(Some(Status::Completed)), 6);
    let builds = log.builds.lock().unwrap().clone();
    for id in &done {
        assert!(!builds.contains_key(id), "completed trial {id} ran again");
    }
    // The interrupted trial was taken over from the dead process and went
    // on from its checkpoint, not from scratch.
    let (_, events) = load(&dir);
    assert!(events.iter().any(|e| matches!(e,
        Event::Takeover { trial, .. } if *trial == interrupted)));
    let restart = events.iter().find_map(|e| match e {
        Event::Restart { trial, epoch, .. } if *trial == interrupted => Some(*epoch),
        _ => None,
    });
    assert!(restart.unwrap() >= 2, "{restart:?}");
    // Nothing lost, nothing duplicated: every trial holds its whole curve,
    // and the configurations are those of an uninterrupted study.
    for t in &after.trials {
        let x = t.config["x"].as_f64();
        let want: Vec<f64> = (1..=8).map(|e| curve(x, e)).collect();
        assert_eq!(t.scores, want, "trial {}", t.id);
    }
    let fresh = tuner(8, 21)
        .budget(trials(6))
        .simulate(synthetic(Duration::ZERO, &Arc::new(Log::default()), |_| {
            None
        }))
        .unwrap();
    let configs = |s: &Study| {
        s.trials
            .iter()
            .map(|t| t.config.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(configs(&after), configs(&fresh));
}

#[test]
fn two_processes_share_one_study_folder() {
    let dir = temp_dir("shared");
    let children: Vec<_> = (0..2).map(|_| spawn_child(&dir, "shared")).collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let (study, events) = load(&dir);
    // Every trial number once, in order.
    let starts: Vec<usize> = events
        .iter()
        .filter_map(|e| match e {
            Event::Start { trial, .. } => Some(*trial),
            _ => None,
        })
        .collect();
    assert_eq!(starts, (0..16).collect::<Vec<_>>());
    // Every claimed trial ends exactly once, completed.
    for id in 0..16 {
        let ends = events
            .iter()
            .filter(|e| matches!(e, Event::End { trial, .. } if *trial == id))
            .count();
        assert_eq!(ends, 1, "trial {id}");
    }
    assert_eq!(study.count(Some(Status::Completed)), 16);
    // Both processes worked on it, and no configuration started twice
    // (their samplers had the same seed).
    let owners: std::collections::BTreeSet<&str> =
        study.trials.iter().map(|t| t.owner.as_str()).collect();
    assert_eq!(owners.len(), 2, "{owners:?}");
    for (i, a) in study.trials.iter().enumerate() {
        for b in &study.trials[i + 1..] {
            assert_ne!(a.config, b.config, "trials {} and {}", a.id, b.id);
        }
    }
    // Each trial's epochs are its own curve, whole.
    for t in &study.trials {
        let x = t.config["x"].as_f64();
        let want: Vec<f64> = (1..=6).map(|e| curve(x, e)).collect();
        assert_eq!(t.scores, want, "trial {}", t.id);
    }
    // Nothing is left claimed: both workers left cleanly.
    let workers = std::fs::read_dir(dir.join("workers"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(workers, 0);
}
