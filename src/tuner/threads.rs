//! The real-thread executor: each worker slot has a thread that trains one
//! trial at a time and, after every epoch, sends the report to the
//! controller and waits for its answer (bookkeeping only: microseconds).
//! Assessments (learning-curve predictions) run on a thread of their own,
//! so training never waits for an MCMC fit; a stop reaches the worker at the
//! first epoch boundary after the prediction finished.
//!
//! The controller waits for messages with a timeout, so time passes even
//! while every trial is inside a long (or hung) epoch:
//! * at the wall-clock budget, running trials are cut at once and the run
//!   returns; their threads finish the epoch they are in, unobserved;
//! * a trial past the per-trial time limit fails with that reason, and its
//!   slot gets a fresh thread; the old one cannot be killed (nothing can
//!   stop a thread from outside), so it is left to finish or hang, and
//!   whatever it reports later is ignored.
//!
//! Worker threads are detached, so a hung one never holds up the study.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{RecvTimeoutError, Sender, bounded, unbounded};

use super::controller::{Assignment, Controller, Directive, epoch_dir, panic_message, trial_dir};
use super::{Failure, Interrupt, guarded};
use crate::error::{Error, Result};
use crate::policy::{AssessJob, Assessment};
use crate::space::Config;
use crate::trial::{EpochReport, Trainable, TrialContext, TrialError};

/// What workers and the assessor tell the controller.
enum Msg {
    Epoch {
        trial: usize,
        epoch: usize,
        report: EpochReport,
        reply: Sender<Directive>,
    },
    Ended {
        trial: usize,
        failure: Failure,
    },
    Checkpoint {
        trial: usize,
        epoch: usize,
    },
    Restored {
        trial: usize,
        epoch: usize,
    },
    Assessed {
        trial: usize,
        epoch: usize,
        result: std::result::Result<Assessment, String>,
    },
}

/// One worker slot: its thread and the trial it runs.
struct Slot {
    tx: Sender<Assignment>,
    handle: Option<JoinHandle<()>>,
    trial: Option<usize>,
}

/// What every worker thread needs.
struct Shared<F> {
    build: Arc<F>,
    msg: Sender<Msg>,
    horizon: usize,
    threads: usize,
    time_limit: Option<Duration>,
    checkpoints: Option<PathBuf>,
}

impl<F> Clone for Shared<F> {
    fn clone(&self) -> Self {
        Shared {
            build: self.build.clone(),
            msg: self.msg.clone(),
            horizon: self.horizon,
            threads: self.threads,
            time_limit: self.time_limit,
            checkpoints: self.checkpoints.clone(),
        }
    }
}

impl Slot {
    fn spawn<T, F>(index: usize, shared: Shared<F>) -> Result<Slot>
    where
        T: Trainable + 'static,
        F: Fn(&Config, &TrialContext) -> std::result::Result<T, TrialError> + Send + Sync + 'static,
    {
        let (tx, rx) = unbounded::<Assignment>();
        let handle = std::thread::Builder::new()
            .name(format!("foresight-worker-{index}"))
            .spawn(move || {
                // The trial's compute threads: rayon-parallel code inside
                // the model (candle's CPU kernels) stays in this pool.
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(shared.threads)
                    .build()
                    .ok();
                for a in rx {
                    match &pool {
                        Some(p) => p.install(|| run_trial(a, index, &shared)),
                        None => run_trial(a, index, &shared),
                    }
                }
            })
            .map_err(|source| Error::Io {
                path: PathBuf::from("<worker thread>"),
                source,
            })?;
        Ok(Slot {
            tx,
            handle: Some(handle),
            trial: None,
        })
    }
}

/// Runs the study on `workers` threads until the budget or the sampler is
/// spent. `clock` gives the controller's time.
pub(super) fn run<T, F>(
    ctl: &mut Controller,
    build: F,
    workers: usize,
    threads: usize,
    clock: &dyn Fn() -> f64,
    interrupt: Option<&Interrupt>,
) -> Result<()>
where
    T: Trainable + 'static,
    F: Fn(&Config, &TrialContext) -> std::result::Result<T, TrialError> + Send + Sync + 'static,
{
    let (msg_tx, msg_rx) = unbounded::<Msg>();
    let (job_tx, job_rx) = unbounded::<(usize, usize, AssessJob)>();
    let shared = Shared {
        build: Arc::new(build),
        msg: msg_tx.clone(),
        horizon: ctl.study.header.horizon,
        threads,
        time_limit: ctl.budget.trial_time,
        checkpoints: ctl.checkpoints.clone(),
    };
    // The assessor: a panic inside an assessment is an error recorded for
    // that trial, never a lost assessment.
    let assessor = msg_tx;
    std::thread::Builder::new()
        .name("foresight-assessor".into())
        .spawn(move || {
            for (trial, epoch, job) in job_rx {
                let result =
                    catch_unwind(AssertUnwindSafe(job)).unwrap_or_else(|p| Err(panic_message(p)));
                if assessor
                    .send(Msg::Assessed {
                        trial,
                        epoch,
                        result,
                    })
                    .is_err()
                {
                    break;
                }
            }
        })
        .map_err(|source| Error::Io {
            path: PathBuf::from("<assessment thread>"),
            source,
        })?;
    let mut slots = Vec::with_capacity(workers);
    for w in 0..workers {
        slots.push(Slot::spawn(w, shared.clone())?);
    }
    let mut last_orphan_check: Option<Instant> = None;
    let result = (|| -> Result<()> {
        let mut top_up = |ctl: &mut Controller, slots: &mut [Slot]| -> Result<()> {
            ctl.now = clock();
            let idle = slots.iter().filter(|s| s.trial.is_none()).count();
            if idle == 0 {
                return Ok(());
            }
            let mut queue = Vec::new();
            // Trials of lost workers: looked for every half grace, at most
            // every 5 s.
            let every = (ctl.grace / 2).min(Duration::from_secs(5));
            if last_orphan_check.is_none_or(|t| t.elapsed() >= every) {
                queue = ctl.orphans(idle)?;
                last_orphan_check = Some(Instant::now());
            }
            queue.reverse();
            for slot in slots.iter_mut().filter(|s| s.trial.is_none()) {
                let a = match queue.pop() {
                    Some(a) => a,
                    None => match ctl.start()? {
                        Some(a) => a,
                        None => break,
                    },
                };
                slot.trial = Some(a.id);
                slot.tx.send(a).map_err(|_| Error::Io {
                    path: PathBuf::from("<worker thread>"),
                    source: std::io::Error::other("a worker thread is gone"),
                })?;
            }
            Ok(())
        };
        top_up(ctl, &mut slots)?;
        // Until this worker's trials have ended, and the other workers' too
        // (one of them may be lost, and its trials taken over here) — or
        // the budget or an interruption ends the study.
        while slots.iter().any(|s| s.trial.is_some()) || (ctl.others_running() && ctl.budget_left())
        {
            let idle = slots.iter().all(|s| s.trial.is_none());
            let mut wait = next_wait(ctl, clock());
            if interrupt.is_some() {
                wait = wait.min(Duration::from_millis(100));
            }
            if idle {
                // Nothing of its own: listen to the study now and then.
                wait = wait.min(ctl.heartbeat_every().min(Duration::from_secs(1)));
            }
            let msg = match msg_rx.recv_timeout(wait) {
                Ok(m) => Some(m),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            if interrupt.is_some_and(|i| i.is_interrupted()) {
                // Nothing more is recorded: the running trials stay
                // unfinished for a later run to take over.
                for slot in slots.iter_mut() {
                    if slot.trial.take().is_some() {
                        slot.handle = None;
                    }
                }
                return Err(Error::Interrupted);
            }
            ctl.now = clock();
            let freed = |slots: &mut [Slot], trial: usize| {
                if let Some(s) = slots.iter_mut().find(|s| s.trial == Some(trial)) {
                    s.trial = None;
                }
            };
            match msg {
                Some(Msg::Epoch {
                    trial,
                    epoch,
                    report,
                    reply,
                }) => {
                    let (directive, job) = ctl.epoch(trial, epoch, report)?;
                    if let Some(job) = job {
                        let _ = job_tx.send((trial, epoch, job));
                    }
                    let _ = reply.send(directive);
                    if directive == Directive::End {
                        freed(&mut slots, trial);
                    }
                }
                Some(Msg::Ended { trial, failure }) => {
                    match failure {
                        Failure::Error(m) => ctl.failed(trial, m)?,
                        Failure::Pruned(r) => ctl.pruned(trial, r)?,
                    }
                    freed(&mut slots, trial);
                }
                Some(Msg::Checkpoint { trial, epoch }) => ctl.checkpoint(trial, epoch)?,
                Some(Msg::Restored { trial, epoch }) => ctl.restarted(trial, epoch)?,
                Some(Msg::Assessed {
                    trial,
                    epoch,
                    result,
                }) => {
                    ctl.assessed(trial, epoch, result)?;
                }
                None => {
                    if idle {
                        ctl.sync()?;
                    }
                }
            }
            ctl.heartbeat()?;
            if ctl.wall_over() {
                // Cut every running trial now; their threads finish the
                // epoch they are in unobserved.
                for slot in slots.iter_mut() {
                    if let Some(trial) = slot.trial.take() {
                        ctl.cut(trial)?;
                        slot.handle = None;
                    }
                }
                break;
            }
            for trial in ctl.overdue() {
                let limit = ctl.budget.trial_time.unwrap_or_default();
                let n = ctl.study.trials[trial].scores.len();
                ctl.failed(
                    trial,
                    format!(
                        "exceeded the per-trial time limit of {} s after {n} epochs",
                        limit.as_secs_f64()
                    ),
                )?;
                if let Some(w) = slots.iter().position(|s| s.trial == Some(trial)) {
                    // The old thread is left behind; the slot starts afresh.
                    slots[w] = Slot::spawn(w, shared.clone())?;
                }
            }
            top_up(ctl, &mut slots)?;
        }
        Ok(())
    })();
    // Closing the channels lets idle threads exit; threads still inside an
    // epoch (an error or the wall-clock budget ended the run) are not
    // waited for.
    drop(job_tx);
    drop(msg_rx);
    let handles: Vec<JoinHandle<()>> = slots
        .into_iter()
        .filter(|s| s.trial.is_none())
        .filter_map(|s| {
            drop(s.tx);
            s.handle
        })
        .collect();
    for h in handles {
        let _ = h.join();
    }
    result
}

/// How long the controller may wait for the next message: until the
/// wall-clock budget, the first per-trial deadline or the next heartbeat.
fn next_wait(ctl: &Controller, now: f64) -> Duration {
    let mut until = ctl.heartbeat_every().as_secs_f64();
    if let Some(w) = ctl.budget.wall {
        until = until.min(w.as_secs_f64() - now);
    }
    if let Some(d) = ctl.next_deadline() {
        until = until.min(d - now);
    }
    Duration::from_secs_f64(until.max(0.001))
}

/// One trial on a worker thread.
fn run_trial<T, F>(a: Assignment, worker: usize, shared: &Shared<F>)
where
    T: Trainable,
    F: Fn(&Config, &TrialContext) -> std::result::Result<T, TrialError> + Sync,
{
    let trial = a.id;
    let tx = &shared.msg;
    let end = |failure: Failure| {
        let _ = tx.send(Msg::Ended { trial, failure });
    };
    let fail = |message: String| end(Failure::Error(message));
    let dir = shared
        .checkpoints
        .as_deref()
        .map(|root| trial_dir(root, trial));
    let ctx = TrialContext {
        trial,
        seed: a.seed,
        horizon: shared.horizon,
        worker,
        threads: shared.threads,
        time_limit: shared.time_limit,
        checkpoint_dir: dir.clone().unwrap_or_default(),
    };
    let mut model = match guarded(|| (shared.build)(&a.config, &ctx)) {
        Ok(m) => m,
        Err(f) => return end(f),
    };
    let mut epoch = 0;
    if let Some(from) = a.resume_from {
        if let (Some(d), true) = (&dir, from > 0) {
            match guarded(|| model.restore(&epoch_dir(d, from))) {
                Ok(true) => epoch = from,
                Ok(false) => {}
                Err(Failure::Error(m)) => return fail(format!("restoring the checkpoint: {m}")),
                Err(f) => return end(f),
            }
        }
        let _ = tx.send(Msg::Restored { trial, epoch });
    }
    let mut saves = dir.is_some();
    while epoch < shared.horizon {
        let report = match guarded(|| model.train_epoch().map(Into::into)) {
            Ok(r) => r,
            Err(f) => return end(f),
        };
        epoch += 1;
        let (reply_tx, reply_rx) = bounded(1);
        let sent = tx.send(Msg::Epoch {
            trial,
            epoch,
            report,
            reply: reply_tx,
        });
        if sent.is_err() || reply_rx.recv() != Ok(Directive::Continue) {
            return;
        }
        if let (Some(d), true) = (&dir, saves) {
            match save(&mut model, d, epoch) {
                Ok(true) => {
                    let _ = tx.send(Msg::Checkpoint { trial, epoch });
                }
                Ok(false) => {
                    saves = false;
                    let _ = std::fs::remove_dir_all(d);
                }
                Err(f) => return end(f),
            }
        }
    }
}

/// Saves a checkpoint after `epoch` into its own folder under `dir`.
fn save<T: Trainable>(
    model: &mut T,
    dir: &Path,
    epoch: usize,
) -> std::result::Result<bool, Failure> {
    let target = epoch_dir(dir, epoch);
    std::fs::create_dir_all(&target)
        .map_err(|e| Failure::Error(format!("checkpoint folder {}: {e}", target.display())))?;
    guarded(|| model.save(&target)).map_err(|f| match f {
        Failure::Error(m) => Failure::Error(format!("saving a checkpoint: {m}")),
        other => other,
    })
}
