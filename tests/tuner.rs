//! The tuner end to end: executors, decisions, failures, the trial API,
//! observers and the objective, with fast synthetic trainables.

mod common;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Fault, Log, Synthetic, curve, space, synthetic, trials, tuner};
use foresight::policy::{Assessment, Check, StudyView};
use foresight::prelude::*;
use foresight::storage::Cursor;

#[test]
fn parallel_workers_train_trials_at_the_same_time() {
    let log = Arc::new(Log::default());
    let study = tuner(6, 1)
        .workers(2)
        .budget(trials(6))
        .run(synthetic(Duration::from_millis(5), &log, |_| None))
        .unwrap();
    assert_eq!(study.trials.len(), 6);
    assert_eq!(study.count(Some(Status::Completed)), 6);
    assert_eq!(log.max_running.load(Ordering::SeqCst), 2);
    let threads: std::collections::HashSet<_> =
        log.threads.lock().unwrap().values().copied().collect();
    assert!(threads.len() >= 2, "two worker threads trained");
    assert_eq!(study.epochs_used, 36);
    // Every trial's scores are its own curve, in order.
    for t in &study.trials {
        let x = t.config["x"].as_f64();
        let want: Vec<f64> = (1..=6).map(|e| curve(x, e)).collect();
        assert_eq!(t.scores, want);
    }
    // Each trial knows its worker slot (to pin a device) and its threads.
    let contexts = log.contexts.lock().unwrap();
    let workers: std::collections::BTreeSet<usize> = contexts.values().map(|c| c.worker).collect();
    assert_eq!(workers, [0, 1].into());
    assert!(contexts.values().all(|c| c.threads >= 1));
}

/// Stops one chosen trial after a chosen epoch, at once or by an
/// assessment that takes `delay`.
struct StopOne {
    trial: usize,
    after: usize,
    assess: Option<Duration>,
}

impl StoppingPolicy for StopOne {
    fn name(&self) -> &'static str {
        "stop-one"
    }

    fn check(&mut self, trial: usize, study: &StudyView) -> Check {
        if trial != self.trial || study.trials[trial].scores.len() != self.after {
            return Check::Continue;
        }
        let Some(delay) = self.assess else {
            return Check::Stop;
        };
        Check::Assess(Box::new(move || {
            std::thread::sleep(delay);
            Ok(Assessment {
                stop: true,
                p_better: Some(0.01),
                final_value: Some((0.1, 0.01)),
                band: vec![(5, 0.05, 0.1, 0.15)],
            })
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
            assess: None,
        })
        .budget(trials(4))
        .run(synthetic(Duration::from_millis(2), &log, |_| None))
        .unwrap();
    let epochs = log.epochs.lock().unwrap().clone();
    assert_eq!(epochs[&1], 3, "stopped right after epoch 3");
    for t in [0, 2, 3] {
        assert_eq!(epochs[&t], 8);
    }
    assert_eq!(study.trials[1].status, Some(Status::Stopped));
    assert_eq!(study.epochs_without_stopping() - study.epochs_used, 5);
}

/// Accuracy rising slowly, in epochs of `pause`; epochs `waits_at` wait
/// until the storage holds an event that `awaited(epoch, event)` accepts
/// (so that an assessment has arrived by then, whatever the machine's load).
struct Awaiting {
    store: Memory,
    epoch: usize,
    pause: Duration,
    waits_at: std::ops::RangeInclusive<usize>,
    awaited: fn(usize, &Event) -> bool,
}

impl Trainable for Awaiting {
    type Report = f64;
    fn train_epoch(&mut self) -> Result<f64, TrialError> {
        self.epoch += 1;
        std::thread::sleep(self.pause);
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.waits_at.contains(&self.epoch) && Instant::now() < deadline {
            let (events, _) = self.store.read(Cursor::default())?;
            if events.iter().any(|e| (self.awaited)(self.epoch, e)) {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(0.05 * self.epoch as f64)
    }
}

/// Builds [`Awaiting`] trials on `store`.
fn awaiting(
    store: &Memory,
    pause: Duration,
    waits_at: std::ops::RangeInclusive<usize>,
    awaited: fn(usize, &Event) -> bool,
) -> impl Fn(&Config, &TrialContext) -> Result<Awaiting, TrialError> + Send + Sync + 'static {
    let store = store.clone();
    move |_, _| {
        Ok(Awaiting {
            store: store.clone(),
            epoch: 0,
            pause,
            waits_at: waits_at.clone(),
            awaited,
        })
    }
}

#[test]
fn an_assessment_stops_its_trial_at_a_later_epoch_boundary() {
    let store = Memory::new();
    let study = tuner(12, 3)
        .workers(1)
        .storage(store.clone())
        .policy(StopOne {
            trial: 0,
            after: 2,
            assess: Some(Duration::from_millis(30)),
        })
        .budget(trials(2))
        // The fourth epoch waits for the prediction.
        .run(awaiting(
            &store,
            Duration::from_millis(20),
            4..=4,
            |_, e| matches!(e, Event::Prediction { .. }),
        ))
        .unwrap();
    let t = &study.trials[0];
    assert_eq!(t.status, Some(Status::Stopped));
    // Training went on while the assessment ran, and the stop took effect
    // at the first epoch boundary after it arrived.
    let n = t.scores.len();
    assert!((3..=4).contains(&n), "stopped after {n} epochs");
    assert_eq!(t.predictions.len(), 1);
    assert_eq!(t.predictions[0].epoch, 2);
    assert_eq!(t.told, Some((0.1, 0.01)), "told the predicted final value");
    assert_eq!(study.trials[1].status, Some(Status::Completed));
}

/// Accuracy 0.9 throughout for trial 0; trial 1 stays at 0.2 for three
/// epochs and then jumps to 0.95, past trial 0.
struct Jump {
    trial: usize,
    epoch: usize,
}

impl Trainable for Jump {
    type Report = f64;
    fn train_epoch(&mut self) -> Result<f64, TrialError> {
        std::thread::sleep(Duration::from_millis(15));
        self.epoch += 1;
        Ok(match (self.trial, self.epoch) {
            (0, _) => 0.9,
            (_, e) if e <= 3 => 0.2,
            _ => 0.95,
        })
    }
}

/// The learning-curve policy's guards, with an assessment (made after epoch
/// 3, when the trial looked hopeless) that says stop and arrives late.
struct LateStop(LearningCurve);

impl StoppingPolicy for LateStop {
    fn name(&self) -> &'static str {
        "late-stop"
    }

    fn check(&mut self, trial: usize, study: &StudyView) -> Check {
        if trial != 1 || study.trials[1].scores.len() != 3 {
            return Check::Continue;
        }
        Check::Assess(Box::new(|| {
            std::thread::sleep(Duration::from_millis(120));
            Ok(Assessment {
                stop: true,
                p_better: Some(0.001),
                final_value: Some((0.2, 0.001)),
                band: Vec::new(),
            })
        }))
    }

    fn still_stops(&self, trial: usize, study: &StudyView) -> bool {
        self.0.still_stops(trial, study)
    }
}

/// Fault of the main job (trial 15 stopped "after epoch 19: score 0.7064"
/// with the incumbent at 0.6789): a stop decided on an old prefix must not
/// end a trial whose newest score beats the incumbent.
#[test]
fn a_stale_stop_does_not_end_a_trial_that_now_beats_the_incumbent() {
    let study = Tuner::new(space(), Objective::accuracy(), 14)
        .sampler(RandomSampler::new(space(), 0))
        .policy(LateStop(LearningCurve::default()))
        .budget(trials(2))
        .output(Output::Quiet)
        .run(|_, ctx| {
            Ok(Jump {
                trial: ctx.trial,
                epoch: 0,
            })
        })
        .unwrap();
    let t = &study.trials[1];
    assert_eq!(t.predictions.len(), 1, "the assessment was made");
    assert!(t.predictions[0].stop);
    assert!(t.scores.len() > 4, "it arrived after the jump");
    assert_eq!(
        t.status,
        Some(Status::Completed),
        "{:?} after {} epochs",
        t.status,
        t.scores.len()
    );
    assert_eq!(study.best().map(|b| b.id), Some(1));
}

/// Assesses every trial after every epoch from the second; the first
/// assessment of the study panics.
struct PanicOnce(Arc<std::sync::atomic::AtomicBool>);

impl StoppingPolicy for PanicOnce {
    fn name(&self) -> &'static str {
        "panic-once"
    }

    fn check(&mut self, _trial: usize, study: &StudyView) -> Check {
        let _ = study;
        let first = !self.0.swap(true, Ordering::SeqCst);
        Check::Assess(Box::new(move || {
            if first {
                panic!("the predictor fell over");
            }
            Ok(Assessment {
                stop: false,
                p_better: Some(0.5),
                final_value: None,
                band: Vec::new(),
            })
        }))
    }
}

fn check_panic_recorded(study: &Study) {
    let preds = &study.trials[0].predictions;
    assert!(
        preds[0]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("the predictor fell over")),
        "{preds:?}"
    );
    assert!(
        preds[1..].iter().any(|p| p.error.is_none()),
        "assessed again after the panic: {preds:?}"
    );
    assert_eq!(study.count(Some(Status::Completed)), study.trials.len());
}

#[test]
fn a_panicking_assessment_is_recorded_and_the_trial_assessed_again() {
    let store = Memory::new();
    let flag = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let study = tuner(8, 5)
        .storage(store.clone())
        .policy(PanicOnce(flag))
        .budget(trials(2))
        // The second epoch waits until the storage holds a failed
        // assessment (so that the next check comes after it), the third
        // until it holds a successful one (so that the trial is still
        // running when that assessment arrives).
        .run(awaiting(&store, Duration::ZERO, 2..=3, |epoch, e| {
            matches!(e, Event::Prediction { error, .. } if (epoch == 2) == error.is_some())
        }))
        .unwrap();
    check_panic_recorded(&study);
    // The simulated clock (replay) records it too, instead of aborting.
    let log = Arc::new(Log::default());
    let flag = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let study = tuner(8, 5)
        .policy(PanicOnce(flag))
        .budget(trials(2))
        .simulate(synthetic(Duration::ZERO, &log, |_| None))
        .unwrap();
    check_panic_recorded(&study);
}

#[test]
fn a_hung_epoch_fails_its_trial_at_the_time_limit() {
    let log = Arc::new(Log::default());
    let start = Instant::now();
    let study = tuner(5, 6)
        .workers(2)
        .budget(Budget {
            trials: Some(6),
            trial_time: Some(Duration::from_secs(3)),
            ..Budget::default()
        })
        .run(synthetic(Duration::from_millis(1), &log, |t| {
            (t == 1).then_some(Fault::Hang(2))
        }))
        .unwrap();
    let hung = &study.trials[1];
    assert_eq!(hung.status, Some(Status::Failed));
    assert!(
        hung.message
            .as_deref()
            .unwrap()
            .contains("time limit of 3 s"),
        "{:?}",
        hung.message
    );
    assert_eq!(study.trials.len(), 6, "the study went on");
    assert_eq!(study.count(Some(Status::Completed)), 5);
    assert!(start.elapsed() < Duration::from_secs(600));
    // A hang does not hold the wall-clock budget either.
    let start = Instant::now();
    let study = tuner(5, 7)
        .budget(Budget {
            wall: Some(Duration::from_millis(500)),
            ..Budget::default()
        })
        .run(synthetic(Duration::from_millis(1), &log, |_| {
            Some(Fault::Hang(1))
        }))
        .unwrap();
    assert!(start.elapsed() < Duration::from_secs(600));
    assert_eq!(study.trials[0].status, Some(Status::Cut));
}

#[test]
fn failures_do_not_stop_the_study() {
    let log = Arc::new(Log::default());
    let study = tuner(5, 4)
        .workers(2)
        .budget(trials(9))
        .run({
            let log = log.clone();
            move |c, ctx| {
                let fault = match ctx.trial {
                    1 => Some(Fault::Panic(2)),
                    2 => return Err("no such model".into()),
                    3 => Some(Fault::Nan(3)),
                    4 => Some(Fault::Error(1)),
                    5 => Some(Fault::Prune(2)),
                    _ => None,
                };
                Ok(Synthetic::new(
                    c,
                    ctx,
                    Duration::from_millis(1),
                    fault,
                    &log,
                ))
            }
        })
        .unwrap();
    let status: Vec<_> = study.trials.iter().map(|t| t.status.unwrap()).collect();
    use Status::*;
    assert_eq!(
        status,
        vec![
            Completed, Failed, Failed, Diverged, Failed, Pruned, Completed, Completed, Completed
        ]
    );
    let message = |i: usize| study.trials[i].message.clone().unwrap();
    assert!(message(1).contains("synthetic panic"));
    assert!(message(2).contains("no such model"));
    assert!(message(4).contains("synthetic error"));
    assert!(study.trials[3].scores[2].is_nan());
    // A trial that prunes itself is not a failure: its last score goes to
    // the sampler, as a stopped trial's does.
    assert_eq!(message(5), "synthetic prune");
    assert_eq!(study.trials[5].scores.len(), 1);
    assert_eq!(
        study.trials[5].told.map(|t| t.0),
        Some(curve(study.trials[5].config["x"].as_f64(), 1))
    );
    assert!(study.best().is_some());
}

#[test]
fn epoch_reports_carry_metrics_and_attributes() {
    let log = Arc::new(Log::default());
    let store = Memory::new();
    let study = tuner(3, 8)
        .storage(store.clone())
        .budget(trials(2))
        .run(synthetic(Duration::ZERO, &log, |_| None))
        .unwrap();
    let t = &study.trials[0];
    assert_eq!(
        t.metrics["train_loss"],
        vec![(1, 1.0), (2, 0.5), (3, 1.0 / 3.0)]
    );
    assert_eq!(t.attrs["x"], serde_json::json!(t.config["x"].as_f64()));
    // They are in the stored events, so a report shows them.
    let (events, _) = store.clone().read(Cursor::default()).unwrap();
    assert!(events.iter().any(|e| matches!(e,
        Event::Epoch { metrics, .. } if metrics.contains_key("train_loss"))));
    assert!(foresight::report::summary(&study).contains("train_loss"));
}

#[test]
fn budgets_end_the_study() {
    let log = Arc::new(Log::default());
    // Epochs: 17 with a horizon of 5 is three full trials and two epochs of a
    // fourth, which is cut off.
    let study = tuner(5, 5)
        .budget(Budget {
            epochs: Some(17),
            ..Budget::default()
        })
        .run(synthetic(Duration::ZERO, &log, |_| None))
        .unwrap();
    assert_eq!(study.epochs_used, 17);
    assert_eq!(study.count(Some(Status::Completed)), 3);
    assert_eq!(study.count(Some(Status::Cut)), 1);
    // Wall time.
    let t0 = Instant::now();
    let study = tuner(5, 6)
        .budget(Budget {
            wall: Some(Duration::from_millis(500)),
            ..Budget::default()
        })
        .run(synthetic(Duration::from_millis(40), &log, |_| None))
        .unwrap();
    let secs = t0.elapsed().as_secs_f64();
    assert!(secs >= 0.5, "{secs} s");
    // The trial running at the limit is cut (none is, if the limit fell
    // between two trials: how many ran in 0.5 s depends on the load).
    assert!(study.count(Some(Status::Cut)) <= 1);
    assert_eq!(
        study.count(Some(Status::Completed)) + study.count(Some(Status::Cut)),
        study.trials.len()
    );
    assert!(study.epochs_used >= 1);
    // No budget at all is refused.
    let err = tuner(5, 7)
        .run(synthetic(Duration::ZERO, &log, |_| None))
        .unwrap_err();
    assert!(err.to_string().contains("budget"), "{err}");
    // Nor is a trial time of zero, which would fail every trial.
    let err = tuner(5, 7)
        .budget(Budget {
            trials: Some(3),
            trial_time: Some(Duration::ZERO),
            ..Budget::default()
        })
        .run(synthetic(Duration::ZERO, &log, |_| None))
        .unwrap_err();
    assert!(err.to_string().contains("trial time of zero"), "{err}");
}

#[test]
fn observers_see_every_event_and_can_stop_the_study() {
    let log = Arc::new(Log::default());
    let store = Memory::new();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let study = tuner(4, 9)
        .storage(store.clone())
        .budget(trials(50))
        .observe({
            let seen = seen.clone();
            move |e: &Event, _: &Study| {
                seen.lock().unwrap().push(e.clone());
                Flow::Continue
            }
        })
        // Stop once three trials have completed.
        .observe(|e: &Event, s: &Study| match e {
            Event::End { .. } if s.count(Some(Status::Completed)) >= 3 => Flow::Stop,
            _ => Flow::Continue,
        })
        // An observer that panics is dropped; the study goes on.
        .observe(|_: &Event, _: &Study| -> Flow { panic!("observer bug") })
        .run(synthetic(Duration::ZERO, &log, |_| None))
        .unwrap();
    assert_eq!(study.count(Some(Status::Completed)), 3);
    assert_eq!(study.trials.len(), 3, "no trial started after the stop");
    let (events, _) = store.clone().read(Cursor::default()).unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        events[1..],
        "every event after the header"
    );
}

#[test]
fn the_objective_is_checked() {
    let log = Arc::new(Log::default());
    // A percentage declared as an accuracy stops the study with what to do.
    let percent =
        |_: &Config, _: &TrialContext| -> Result<Constant, TrialError> { Ok(Constant(60.0)) };
    let err = tuner(5, 1)
        .budget(trials(3))
        .run(percent)
        .unwrap_err()
        .to_string();
    assert!(err.contains("range(0.0, 100.0)"), "{err}");
    // Learning-curve stopping refuses an objective without a best value.
    let err = Tuner::new(space(), Objective::maximize(), 5)
        .budget(trials(3))
        .output(Output::Quiet)
        .run(synthetic(Duration::ZERO, &log, |_| None))
        .unwrap_err()
        .to_string();
    assert!(err.contains("best value"), "{err}");
    // Declared as a percentage, the same scores are a study.
    let study = Tuner::new(space(), Objective::maximize().range(0.0, 100.0), 5)
        .sampler(RandomSampler::new(space(), 1))
        .policy(NoStopping)
        .budget(trials(3))
        .output(Output::Quiet)
        .run(percent)
        .unwrap();
    assert_eq!(study.incumbent(), Some(60.0));
}

/// A constant score.
struct Constant(f64);

impl Trainable for Constant {
    type Report = f64;
    fn train_epoch(&mut self) -> Result<f64, TrialError> {
        Ok(self.0)
    }
}

#[test]
fn simulated_studies_are_reproducible_and_learning_curves_save_epochs() {
    let run = || {
        let log = Arc::new(Log::default());
        let mut policy = LearningCurve::default();
        policy.predictor.walkers = 16;
        policy.predictor.steps = 150;
        policy.predictor.burn_in = 75;
        Tuner::new(space(), Objective::accuracy(), 20)
            .seed(9)
            .policy(policy)
            .budget(trials(16))
            .output(Output::Quiet)
            .simulate(synthetic(Duration::ZERO, &log, |_| None))
            .unwrap()
    };
    let (a, b) = (run(), run());
    assert_eq!(
        strip_owners(a.clone()),
        strip_owners(b),
        "same seed, same study"
    );
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

/// A study without its worker names (they differ from run to run).
fn strip_owners(mut s: Study) -> Study {
    for t in &mut s.trials {
        t.owner.clear();
    }
    s
}

#[test]
fn every_random_choice_flows_from_the_study_seed() {
    let log = Arc::new(Log::default());
    let configs = |sampler_seed: u64, study_seed: u64| {
        let s = Tuner::new(space(), Objective::accuracy(), 3)
            .sampler(RandomSampler::new(space(), sampler_seed))
            .policy(Hyperband::default())
            .seed(study_seed)
            .budget(trials(5))
            .output(Output::Quiet)
            .simulate(synthetic(Duration::ZERO, &log, |_| None))
            .unwrap();
        s.trials
            .iter()
            .map(|t| (t.config.clone(), t.seed))
            .collect::<Vec<_>>()
    };
    // A user-built sampler's own seed is replaced by the study's.
    assert_eq!(configs(1, 7), configs(2, 7));
    assert_ne!(configs(1, 7), configs(1, 8));
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
        Check::Assess(Box::new(|| {
            Ok(Assessment {
                stop: true,
                p_better: Some(0.0),
                final_value: Some((f64::INFINITY, f64::INFINITY)),
                band: Vec::new(),
            })
        }))
    }
}

#[test]
fn a_non_finite_prediction_does_not_reach_the_sampler() {
    let log = Arc::new(Log::default());
    // The GP sampler refuses non-finite observations: the study must not
    // hand it one.
    let study = Tuner::new(space(), Objective::accuracy(), 5)
        .policy(StopWithInfinity)
        .seed(3)
        .budget(trials(4))
        .output(Output::Quiet)
        .simulate(synthetic(Duration::ZERO, &log, |_| None))
        .unwrap();
    assert_eq!(study.count(Some(Status::Stopped)), 3);
    assert!(study.trials[1..].iter().all(|t| t.told.is_none()));
}
