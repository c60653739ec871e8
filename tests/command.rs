//! Command trials with real processes: `tests/scripts/scripted.py` (Python
//! 3, no dependencies) as the training program.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::temp_dir;
use foresight::policy::{Check, StudyView};
use foresight::prelude::*;
use foresight::trial::command::{CommandTrial, TrainingCommand};

fn script() -> String {
    format!("{}/tests/scripts/scripted.py", env!("CARGO_MANIFEST_DIR"))
}

fn space() -> Space {
    Space::builder()
        .float("x", 0.0, 1.0, Scale::Linear)
        .build()
        .unwrap()
}

/// The scripted program, with `faults` by trial ("2:fail,4:hang").
fn command(dir: &Path, faults: &str, seconds_per_epoch: f64) -> TrainingCommand {
    let mut c = TrainingCommand::new(
        [
            "python3",
            &script(),
            "--x",
            "{x}",
            "--faults",
            faults,
            "--seconds-per-epoch",
            &seconds_per_epoch.to_string(),
        ]
        .map(String::from)
        .to_vec(),
        "val_accuracy",
        dir.join("trials"),
    );
    c.grace = Duration::from_secs(2);
    c
}

/// Stops the given trials after their third epoch.
struct StopAt3(Vec<usize>);

impl StoppingPolicy for StopAt3 {
    fn name(&self) -> &'static str {
        "stop-at-3"
    }

    fn check(&mut self, trial: usize, study: &StudyView) -> Check {
        if self.0.contains(&trial) && study.trials[trial].scores.len() == 3 {
            Check::Stop
        } else {
            Check::Continue
        }
    }
}

/// Processes of this test's trials still alive (their environment names a
/// trial folder under `dir`): pid and command line.
fn survivors(dir: &Path) -> Vec<(u32, String)> {
    let marker = format!("FORESIGHT_TRIAL_DIR={}", dir.display());
    let mut found = Vec::new();
    for p in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = p.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if !alive(pid) {
            continue;
        }
        let env = std::fs::read(p.path().join("environ")).unwrap_or_default();
        if env
            .split(|&b| b == 0)
            .any(|v| String::from_utf8_lossy(v).starts_with(&marker))
        {
            let cmd = std::fs::read(p.path().join("cmdline")).unwrap_or_default();
            found.push((pid, String::from_utf8_lossy(&cmd).replace('\0', " ")));
        }
    }
    found
}

/// Whether a process is alive (not gone, not a zombie).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X")
    })
}

#[test]
fn a_dozen_scripted_trials_run_to_the_end_with_failures_recorded() {
    let dir = temp_dir("command-dozen");
    let cmd = command(&dir, "2:fail,4:hang,6:nan,8:garbage,9:silent", 0.02);
    cmd.check(&space()).unwrap();
    let runner = cmd.clone();
    let study = Tuner::new(space(), Objective::accuracy(), 8)
        .sampler(RandomSampler::new(space(), 0))
        .policy(StopAt3(vec![10, 11]))
        .workers(2)
        .budget(Budget {
            trials: Some(12),
            trial_time: Some(Duration::from_secs(4)),
            ..Budget::default()
        })
        .storage(Journal::new(&dir))
        .output(Output::Quiet)
        .run(move |config, ctx| runner.start(config, ctx))
        .unwrap();
    cmd.stop_all();
    let status: Vec<Status> = study.trials.iter().map(|t| t.status.unwrap()).collect();
    use Status::*;
    assert_eq!(
        status,
        vec![
            Completed, Completed, Failed, Completed, Failed, Completed, Diverged, Completed,
            Failed, Failed, Stopped, Stopped
        ]
    );
    let message = |i: usize| study.trials[i].message.clone().unwrap_or_default();
    assert!(
        message(2).contains("exit status: 3") && message(2).contains("after 2 of 8 epochs"),
        "{}",
        message(2)
    );
    assert!(message(2).contains("boom: out of memory"), "{}", message(2));
    assert!(
        message(4).contains("time limit of 4 s after 1 epochs"),
        "{}",
        message(4)
    );
    assert!(
        message(8).contains("printed 5 lines, none with `val_accuracy`"),
        "{}",
        message(8)
    );
    assert!(message(9).contains("printed nothing"), "{}", message(9));
    assert!(study.trials[6].scores[2].is_nan());
    // Every completed trial holds its script's curve, epochs in order.
    for t in study.trials.iter().filter(|t| t.status == Some(Completed)) {
        let x = t.config["x"].as_f64();
        let limit = 0.95 - 0.8 * (x - 0.3f64).powi(2);
        for (e, s) in t.scores.iter().enumerate() {
            let want = limit * (1.0 - (-((e + 1) as f64) / 3.0).exp());
            assert!((s - want).abs() < 1e-9, "trial {} epoch {}", t.id, e + 1);
        }
    }
    // Each trial's folder keeps its output and configuration.
    let folder = cmd.trial_dir(0);
    let out = std::fs::read_to_string(folder.join("stdout.log")).unwrap();
    assert_eq!(out.lines().count(), 8);
    assert!(folder.join("config.json").exists());
    let err = std::fs::read_to_string(cmd.trial_dir(2).join("stderr.log")).unwrap();
    assert!(err.contains("boom"));
    // Nothing is left running, the hung one included.
    assert_eq!(survivors(&dir), vec![]);
}

#[test]
fn a_program_that_does_not_exist_fails_each_trial_and_the_study_goes_on() {
    let dir = temp_dir("command-missing");
    let runner = TrainingCommand::new(
        vec!["/no/such/program".into(), "{x}".into()],
        "val_accuracy",
        dir.join("trials"),
    );
    let study = Tuner::new(space(), Objective::accuracy(), 3)
        .sampler(RandomSampler::new(space(), 0))
        .policy(NoStopping)
        .budget(common::trials(3))
        .output(Output::Quiet)
        .run(move |c, ctx| runner.start(c, ctx))
        .unwrap();
    assert_eq!(study.count(Some(Status::Failed)), 3);
    let m = study.trials[0].message.clone().unwrap();
    assert!(m.contains("cannot start `/no/such/program`"), "{m}");
}

#[test]
fn a_stop_takes_the_whole_process_tree_with_it() {
    let dir = temp_dir("command-tree");
    let cmd = command(&dir, "0:spawn", 0.05);
    let runner = cmd.clone();
    let study = Tuner::new(space(), Objective::accuracy(), 40)
        .sampler(RandomSampler::new(space(), 0))
        .policy(StopAt3(vec![0]))
        .budget(common::trials(1))
        .storage(Journal::new(&dir))
        .output(Output::Quiet)
        .run(move |c, ctx| runner.start(c, ctx))
        .unwrap();
    assert_eq!(study.trials[0].status, Some(Status::Stopped));
    let read_pid = |name: &str| -> u32 {
        std::fs::read_to_string(cmd.trial_dir(0).join(name))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let (script, grandchild) = (read_pid("pid"), read_pid("grandchild.pid"));
    // Stopped, and reaped: neither alive nor a zombie of ours.
    assert!(!alive(script), "the script {script} survived");
    assert!(
        !PathBuf::from(format!("/proc/{script}")).exists(),
        "not reaped"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while alive(grandchild) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!alive(grandchild), "its child {grandchild} survived");
    assert_eq!(survivors(&dir), vec![]);
}

#[test]
fn each_worker_gets_its_own_device() {
    let dir = temp_dir("command-gpus");
    let mut cmd = command(&dir, "", 0.02);
    cmd.gpus = vec!["3".into(), "5".into()];
    let runner = cmd.clone();
    let study = Tuner::new(space(), Objective::accuracy(), 2)
        .sampler(RandomSampler::new(space(), 0))
        .policy(NoStopping)
        .workers(2)
        .budget(common::trials(4))
        .storage(Journal::new(&dir))
        .output(Output::Quiet)
        .run(move |c, ctx| runner.start(c, ctx))
        .unwrap();
    for t in &study.trials {
        let worker: usize = t.attrs["worker"].as_str().unwrap().parse().unwrap();
        let want = ["3", "5"][worker];
        assert_eq!(t.attrs["cuda"], want, "trial {}", t.id);
    }
}

/// A trial started again after its tuner died: the epochs the study has are
/// skipped, the ones its program printed that the study had not recorded
/// yet are read back from its log, and the program goes on from its own
/// checkpoint.
/// Trial 0 of `cmd` at `x = 0.3`, started by hand (as a worker that took
/// it over would), with `horizon` epochs.
fn start_trial_0(cmd: &TrainingCommand, dir: &Path, horizon: usize) -> CommandTrial {
    let config = Config::from([("x".to_string(), Value::Float(0.3))]);
    let ctx = TrialContext {
        trial: 0,
        seed: 1,
        horizon,
        worker: 0,
        threads: 1,
        time_limit: None,
        checkpoint_dir: dir.to_path_buf(),
    };
    cmd.start(&config, &ctx).unwrap()
}

#[test]
fn a_trial_started_again_goes_on_where_its_output_ends() {
    let dir = temp_dir("command-again");
    let cmd = command(&dir, "", 0.0);
    let folder = cmd.trial_dir(0);
    std::fs::create_dir_all(folder.join("checkpoint")).unwrap();
    // The earlier run printed epochs 1-4 and checkpointed epoch 4; the
    // study recorded 2 of them.
    let earlier: String = [0.111, 0.222, 0.333, 0.444]
        .iter()
        .enumerate()
        .map(|(i, v)| format!("{{\"epoch\": {}, \"val_accuracy\": {v}}}\n", i + 1))
        .collect();
    std::fs::write(folder.join("stdout.log"), earlier).unwrap();
    std::fs::write(folder.join("checkpoint/state.json"), r#"{"epoch": 4}"#).unwrap();
    let recorded = dir.join("epoch-0002");
    std::fs::create_dir_all(&recorded).unwrap();
    std::fs::write(recorded.join("epochs"), "2").unwrap();
    let mut trial = start_trial_0(&cmd, &dir, 6);
    assert!(trial.restore(&recorded).unwrap());
    let scores: Vec<f64> = (0..4).map(|_| trial.train_epoch().unwrap().score).collect();
    let limit = 0.95;
    let curve = |e: f64| limit * (1.0 - (-e / 3.0).exp());
    assert_eq!(&scores[..2], &[0.333, 0.444], "read back from the log");
    assert!((scores[2] - curve(5.0)).abs() < 1e-12, "{scores:?}");
    assert!((scores[3] - curve(6.0)).abs() < 1e-12, "{scores:?}");
    drop(trial);
    assert_eq!(survivors(&dir), vec![]);
}

/// Killed after its program printed (and checkpointed) epoch 1 but before
/// the study recorded it: the study has no checkpoint of this trial, so
/// nothing is restored, and the report is read back from the log all the
/// same (the program goes on at epoch 2).
#[test]
fn a_trial_killed_before_its_first_epoch_was_recorded_goes_on_too() {
    let dir = temp_dir("command-first");
    let cmd = command(&dir, "", 0.0);
    let folder = cmd.trial_dir(0);
    std::fs::create_dir_all(folder.join("checkpoint")).unwrap();
    std::fs::write(
        folder.join("stdout.log"),
        "{\"epoch\": 1, \"val_accuracy\": 0.111}\n",
    )
    .unwrap();
    std::fs::write(folder.join("checkpoint/state.json"), r#"{"epoch": 1}"#).unwrap();
    let mut trial = start_trial_0(&cmd, &dir, 3);
    let scores: Vec<f64> = (0..3).map(|_| trial.train_epoch().unwrap().score).collect();
    let curve = |e: f64| 0.95 * (1.0 - (-e / 3.0).exp());
    assert_eq!(scores[0], 0.111, "read back from the log");
    assert!((scores[1] - curve(2.0)).abs() < 1e-12, "{scores:?}");
    assert!((scores[2] - curve(3.0)).abs() < 1e-12, "{scores:?}");
    drop(trial);
    assert_eq!(survivors(&dir), vec![]);
}
