//! The tuner end to end, with a fast synthetic `Trainable` (no candle).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use foresight::curve::Metric;
use foresight::journal::{Event, Journal, Status};
use foresight::policy::{Assessment, Check, LearningCurve, NoStopping, StoppingPolicy, StudyView};
use foresight::progress::Output;
use foresight::sampler::RandomSampler;
use foresight::space::{Config, Space};
use foresight::trainable::{Trainable, TrialContext, TrialError};
use foresight::tuner::{Budget, Study, Tuner};

fn space() -> Space {
    Space::builder()
        .float("x", 0.0, 1.0, false)
        .build()
        .unwrap()
}

/// The synthetic validation accuracy of `x` after `epoch` epochs: a
/// saturating curve whose limit peaks at `x = 0.3`.
fn curve(x: f64, epoch: usize) -> f64 {
    let limit = 0.95 - 0.8 * (x - 0.3).powi(2);
    limit * (1.0 - (-(epoch as f64) / 3.0).exp())
}

/// What a synthetic trial does wrong, and when.
#[derive(Clone, Copy, Debug)]
enum Fault {
    Panic(usize),
    Error(usize),
    Nan(usize),
}

#[derive(Default)]
struct Log {
    /// Epochs trained, per trial.
    epochs: Mutex<HashMap<usize, usize>>,
    /// Builds, per trial.
    builds: Mutex<HashMap<usize, usize>>,
    threads: Mutex<HashMap<usize, std::thread::ThreadId>>,
    running: AtomicUsize,
    max_running: AtomicUsize,
}

struct Synthetic {
    trial: usize,
    x: f64,
    epoch: usize,
    sleep: Duration,
    fault: Option<Fault>,
    log: Arc<Log>,
}

impl Synthetic {
    fn new(
        config: &Config,
        ctx: &TrialContext,
        sleep: Duration,
        fault: Option<Fault>,
        log: &Arc<Log>,
    ) -> Synthetic {
        *log.builds.lock().unwrap().entry(ctx.trial).or_default() += 1;
        log.threads
            .lock()
            .unwrap()
            .insert(ctx.trial, std::thread::current().id());
        let now = log.running.fetch_add(1, Ordering::SeqCst) + 1;
        log.max_running.fetch_max(now, Ordering::SeqCst);
        Synthetic {
            trial: ctx.trial,
            x: config["x"].as_f64(),
            epoch: 0,
            sleep,
            fault,
            log: log.clone(),
        }
    }
}

impl Drop for Synthetic {
    fn drop(&mut self) {
        self.log.running.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Trainable for Synthetic {
    fn train_epoch(&mut self) -> Result<f64, TrialError> {
        std::thread::sleep(self.sleep);
        self.epoch += 1;
        *self
            .log
            .epochs
            .lock()
            .unwrap()
            .entry(self.trial)
            .or_default() += 1;
        match self.fault {
            Some(Fault::Panic(e)) if e == self.epoch => panic!("synthetic panic"),
            Some(Fault::Error(e)) if e == self.epoch => Err("synthetic error".into()),
            Some(Fault::Nan(e)) if e == self.epoch => Ok(f64::NAN),
            _ => Ok(curve(self.x, self.epoch)),
        }
    }

    fn save(&mut self, dir: &Path) -> Result<bool, TrialError> {
        std::fs::write(dir.join("state"), format!("{} {}", self.epoch, self.x))?;
        Ok(true)
    }

    fn restore(&mut self, dir: &Path) -> Result<bool, TrialError> {
        let text = std::fs::read_to_string(dir.join("state"))?;
        let mut parts = text.split_whitespace();
        self.epoch = parts.next().ok_or("no epoch")?.parse()?;
        let x: f64 = parts.next().ok_or("no x")?.parse()?;
        if x != self.x {
            return Err("checkpoint of another configuration".into());
        }
        Ok(true)
    }
}

fn tuner(horizon: usize, seed: u64) -> Tuner {
    Tuner::new(space(), Metric::Accuracy, horizon)
        .sampler(RandomSampler::new(space(), seed))
        .policy(NoStopping)
        .seed(seed)
        .output(Output::Quiet)
}

fn trials(n: usize) -> Budget {
    Budget {
        trials: Some(n),
        ..Budget::default()
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("foresight-tuner-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn parallel_workers_train_trials_at_the_same_time() {
    let log = Arc::new(Log::default());
    let study = tuner(6, 1)
        .workers(2)
        .budget(trials(6))
        .run(|c, ctx| {
            Ok::<_, TrialError>(Synthetic::new(c, ctx, Duration::from_millis(5), None, &log))
        })
        .unwrap();
    assert_eq!(study.trials.len(), 6);
    assert_eq!(study.count(Some(Status::Completed)), 6);
    assert_eq!(log.max_running.load(Ordering::SeqCst), 2);
    let threads: std::collections::HashSet<_> =
        log.threads.lock().unwrap().values().copied().collect();
    assert_eq!(threads.len(), 2, "two worker threads trained");
    assert_eq!(study.epochs_used, 36);
    // Every trial's scores are its own curve, in order.
    for t in &study.trials {
        let x = t.config["x"].as_f64();
        let want: Vec<f64> = (1..=6).map(|e| curve(x, e)).collect();
        assert_eq!(t.scores, want);
    }
}

/// Stops one chosen trial after a chosen epoch.
struct StopOne {
    trial: usize,
    after: usize,
    assess: bool,
}

impl StoppingPolicy for StopOne {
    fn name(&self) -> &'static str {
        "stop-one"
    }

    fn check(&mut self, trial: usize, study: &StudyView) -> Check {
        if trial != self.trial || study.trials[trial].scores.len() != self.after {
            return Check::Continue;
        }
        if !self.assess {
            return Check::Stop;
        }
        Check::Assess(Box::new(|| {
            std::thread::sleep(Duration::from_millis(30));
            Assessment {
                stop: true,
                p_better: Some(0.01),
                final_value: Some((0.1, 0.01)),
                band: vec![(5, 0.05, 0.1, 0.15)],
            }
        }))
    }
}

#[test]
fn a_stop_reaches_the_right_worker() {
    let log = Arc::new(Log::default());
    let study = tuner(8, 2)
        .workers(2)
        .policy(StopOne {
            trial: 1,
            after: 3,
            assess: false,
        })
        .budget(trials(4))
        .run(|c, ctx| {
            Ok::<_, TrialError>(Synthetic::new(c, ctx, Duration::from_millis(2), None, &log))
        })
        .unwrap();
    let epochs = log.epochs.lock().unwrap().clone();
    assert_eq!(epochs[&1], 3, "stopped right after epoch 3");
    for t in [0, 2, 3] {
        assert_eq!(epochs[&t], 8);
    }
    assert_eq!(study.trials[1].status, Some(Status::Stopped));
    assert_eq!(study.epochs_without_stopping() - study.epochs_used, 5);
}

#[test]
fn an_assessment_stops_its_trial_at_a_later_epoch_boundary() {
    let log = Arc::new(Log::default());
    let study = tuner(12, 3)
        .workers(1)
        .policy(StopOne {
            trial: 0,
            after: 2,
            assess: true,
        })
        .budget(trials(2))
        .run(|c, ctx| {
            Ok::<_, TrialError>(Synthetic::new(
                c,
                ctx,
                Duration::from_millis(20),
                None,
                &log,
            ))
        })
        .unwrap();
    let t = &study.trials[0];
    assert_eq!(t.status, Some(Status::Stopped));
    // Training went on while the assessment ran (30 ms, epochs of 20 ms),
    // and the stop arrived within a few epochs.
    let n = t.scores.len();
    assert!((3..=5).contains(&n), "stopped after {n} epochs");
    assert_eq!(t.predictions.len(), 1);
    assert_eq!(t.predictions[0].epoch, 2);
    assert_eq!(t.told, Some((0.1, 0.01)), "told the predicted final value");
    assert_eq!(study.trials[1].status, Some(Status::Completed));
}

#[test]
fn failures_do_not_stop_the_study() {
    let log = Arc::new(Log::default());
    let study = tuner(5, 4)
        .workers(2)
        .budget(trials(8))
        .run(|c, ctx| {
            let fault = match ctx.trial {
                1 => Some(Fault::Panic(2)),
                2 => return Err("no such model".into()),
                3 => Some(Fault::Nan(3)),
                4 => Some(Fault::Error(1)),
                _ => None,
            };
            Ok(Synthetic::new(
                c,
                ctx,
                Duration::from_millis(1),
                fault,
                &log,
            ))
        })
        .unwrap();
    let status: Vec<_> = study.trials.iter().map(|t| t.status.unwrap()).collect();
    use Status::*;
    assert_eq!(
        status,
        vec![
            Completed, Failed, Failed, Diverged, Failed, Completed, Completed, Completed
        ]
    );
    assert!(
        study.trials[1]
            .message
            .as_deref()
            .unwrap()
            .contains("synthetic panic")
    );
    assert!(
        study.trials[2]
            .message
            .as_deref()
            .unwrap()
            .contains("no such model")
    );
    assert!(
        study.trials[4]
            .message
            .as_deref()
            .unwrap()
            .contains("synthetic error")
    );
    assert!(study.trials[3].scores[2].is_nan());
    assert!(study.best().is_some());
}

#[test]
fn budgets_end_the_study() {
    let log = Arc::new(Log::default());
    let build = |c: &Config, ctx: &TrialContext| {
        Ok::<_, TrialError>(Synthetic::new(c, ctx, Duration::ZERO, None, &log))
    };
    // Epochs: 17 with a horizon of 5 is three full trials and two epochs of a
    // fourth, which is cut off.
    let study = tuner(5, 5)
        .budget(Budget {
            epochs: Some(17),
            ..Budget::default()
        })
        .run(build)
        .unwrap();
    assert_eq!(study.epochs_used, 17);
    assert_eq!(study.count(Some(Status::Completed)), 3);
    assert_eq!(study.count(Some(Status::Cut)), 1);
    // Wall time.
    let slow = |c: &Config, ctx: &TrialContext| {
        Ok::<_, TrialError>(Synthetic::new(
            c,
            ctx,
            Duration::from_millis(40),
            None,
            &log,
        ))
    };
    let t0 = Instant::now();
    let study = tuner(5, 6)
        .budget(Budget {
            wall: Some(Duration::from_millis(500)),
            ..Budget::default()
        })
        .run(slow)
        .unwrap();
    let secs = t0.elapsed().as_secs_f64();
    assert!((0.5..1.5).contains(&secs), "{secs} s");
    assert_eq!(study.count(Some(Status::Cut)), 1);
    assert!(study.count(Some(Status::Completed)) >= 1);
    // No budget at all is refused.
    assert!(tuner(5, 7).run(build).is_err());
}

#[test]
fn simulated_studies_are_reproducible_and_learning_curves_save_epochs() {
    let run = || {
        let log = Arc::new(Log::default());
        let mut policy = LearningCurve::seeded(9);
        policy.predictor.walkers = 16;
        policy.predictor.steps = 150;
        policy.predictor.burn_in = 75;
        Tuner::new(space(), Metric::Accuracy, 20)
            .seed(9)
            .policy(policy)
            .budget(trials(16))
            .output(Output::Quiet)
            .simulate(|c, ctx| {
                Ok::<_, TrialError>(Synthetic::new(c, ctx, Duration::ZERO, None, &log))
            })
            .unwrap()
    };
    let (a, b) = (run(), run());
    assert_eq!(a, b, "same seed, same study");
    assert_eq!(a.trials.len(), 16);
    assert!(
        a.count(Some(Status::Stopped)) >= 3,
        "{:?}",
        a.trials.iter().map(|t| t.status).collect::<Vec<_>>()
    );
    assert!(a.epochs_used * 10 < a.epochs_without_stopping() * 9);
    // The GP sampler found a good region: the incumbent's limit is near the top.
    let best = a.best().unwrap();
    assert!(best.final_score().unwrap() > 0.9 * 0.95, "{best:?}");
}

#[test]
fn a_journal_resumes_and_refuses_other_studies() {
    let dir = temp_dir("journal");
    let log = Arc::new(Log::default());
    let build = |c: &Config, ctx: &TrialContext| {
        Ok::<_, TrialError>(Synthetic::new(c, ctx, Duration::ZERO, None, &log))
    };
    let first = tuner(4, 11)
        .study_dir(&dir)
        .budget(trials(3))
        .simulate(build)
        .unwrap();
    assert_eq!(first.trials.len(), 3);
    // A crash mid-write leaves a truncated last line: dropped on resume.
    let path = Journal::path_in(&dir);
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(r#"{"event":"start","trial":3,"con"#);
    std::fs::write(&path, text).unwrap();
    let resumed = tuner(4, 11)
        .study_dir(&dir)
        .budget(trials(5))
        .simulate(build)
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
    assert_eq!(Study::load(&dir).unwrap(), resumed);
    // The same journal under another space, horizon or seed is refused.
    let other = Space::builder()
        .float("x", 0.0, 2.0, false)
        .build()
        .unwrap();
    let err = Tuner::new(other.clone(), Metric::Accuracy, 4)
        .sampler(RandomSampler::new(other, 11))
        .policy(NoStopping)
        .seed(11)
        .output(Output::Quiet)
        .study_dir(&dir)
        .budget(trials(6))
        .simulate(build)
        .unwrap_err()
        .to_string();
    assert!(err.contains("search space"), "{err}");
    let err = tuner(6, 11)
        .study_dir(&dir)
        .budget(trials(6))
        .simulate(build)
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
        .study_dir(&dir)
        .budget(trials(6))
        .simulate(build)
        .unwrap_err()
        .to_string();
    assert!(err.contains(":3:"), "{err}");
}

/// Settings of the study the kill test runs in a child process.
fn kill_study(dir: &Path, log: &Arc<Log>) -> foresight::Result<Study> {
    tuner(8, 21).study_dir(dir).budget(trials(6)).run(|c, ctx| {
        Ok::<_, TrialError>(Synthetic::new(c, ctx, Duration::from_millis(40), None, log))
    })
}

#[test]
#[ignore = "the child process of resume_after_sigkill"]
fn child_study() {
    let dir = std::env::var("FORESIGHT_KILL_DIR").expect("run by resume_after_sigkill");
    kill_study(Path::new(&dir), &Arc::new(Log::default())).unwrap();
}

#[test]
fn resume_after_sigkill() {
    let dir = temp_dir("kill");
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "child_study", "--test-threads", "1"])
        .env("FORESIGHT_KILL_DIR", &dir)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once two trials have completed and the third has a checkpoint.
    let deadline = Instant::now() + Duration::from_secs(60);
    let ready = |dir: &Path| {
        Study::load(dir).is_ok_and(|s| {
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
    let before = Study::load(&dir).unwrap();
    let done: Vec<usize> = before
        .trials
        .iter()
        .filter(|t| t.status == Some(Status::Completed))
        .map(|t| t.id)
        .collect();
    let interrupted = before.running().next().unwrap().id;
    let log = Arc::new(Log::default());
    let after = kill_study(&dir, &log).unwrap();
    assert_eq!(after.trials.len(), 6);
    assert_eq!(after.count(Some(Status::Completed)), 6);
    let builds = log.builds.lock().unwrap().clone();
    for id in &done {
        assert!(!builds.contains_key(id), "completed trial {id} ran again");
    }
    // The interrupted trial went on from its checkpoint, not from scratch.
    let (_, events) = Journal::read(&dir).unwrap();
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
        .simulate(|c, ctx| {
            Ok::<_, TrialError>(Synthetic::new(
                c,
                ctx,
                Duration::ZERO,
                None,
                &Arc::new(Log::default()),
            ))
        })
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
fn the_command_line_resumes_and_reports_a_killed_study() {
    let dir = temp_dir("cli");
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "child_study", "--test-threads", "1"])
        .env("FORESIGHT_KILL_DIR", &dir)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let ready = |dir: &Path| Study::load(dir).is_ok_and(|s| s.count(Some(Status::Completed)) >= 1);
    while !ready(&dir) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(ready(&dir), "the child study made no progress");
    let before = Study::load(&dir).unwrap();
    assert!(before.trials.len() < 6);
    // `foresight resume` runs the recorded command again: this test binary's
    // child_study, which reads its study folder from the environment.
    let foresight = env!("CARGO_BIN_EXE_foresight");
    let status = std::process::Command::new(foresight)
        .args(["resume", dir.to_str().unwrap()])
        .env("FORESIGHT_KILL_DIR", &dir)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let after = Study::load(&dir).unwrap();
    assert_eq!(after.count(Some(Status::Completed)), 6);
    let (_, events) = Journal::read(&dir).unwrap();
    let starts = events
        .iter()
        .filter(|e| matches!(e, Event::Start { .. }))
        .count();
    assert_eq!(starts, 6, "every trial started once");
    // The report: a summary naming the best trial, and two figures.
    let out = std::process::Command::new(foresight)
        .args(["report", dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let best = after.best().unwrap().id;
    assert!(text.contains(&format!("trial {best}")), "{text}");
    for f in ["curves.svg", "incumbent.svg"] {
        let svg = std::fs::read_to_string(dir.join("report").join(f)).unwrap();
        assert!(svg.contains("<svg"));
    }
    // A folder without a journal is a clear error.
    let out = std::process::Command::new(foresight)
        .args(["report", temp_dir("nothing").to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("journal.jsonl"));
}

/// Stops every trial after epoch 2 with a non-finite predicted final value.
struct StopWithInfinity;

impl StoppingPolicy for StopWithInfinity {
    fn name(&self) -> &'static str {
        "stop-with-infinity"
    }

    fn check(&mut self, trial: usize, study: &StudyView) -> Check {
        if trial == 0 || study.trials[trial].scores.len() != 2 {
            return Check::Continue;
        }
        Check::Assess(Box::new(|| Assessment {
            stop: true,
            p_better: Some(0.0),
            final_value: Some((f64::INFINITY, f64::INFINITY)),
            band: Vec::new(),
        }))
    }
}

#[test]
fn a_non_finite_prediction_does_not_reach_the_sampler() {
    let log = Arc::new(Log::default());
    // The GP sampler refuses non-finite observations: the study must not
    // hand it one.
    let study = Tuner::new(space(), Metric::Accuracy, 5)
        .policy(StopWithInfinity)
        .seed(3)
        .budget(trials(4))
        .output(Output::Quiet)
        .simulate(|c, ctx| Ok::<_, TrialError>(Synthetic::new(c, ctx, Duration::ZERO, None, &log)))
        .unwrap();
    assert_eq!(study.count(Some(Status::Stopped)), 3);
    assert!(study.trials[1..].iter().all(|t| t.told.is_none()));
}
