//! A fast synthetic `Trainable` (no candle) and the helpers the tuner and
//! study tests share.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use foresight::prelude::*;

pub fn space() -> Space {
    Space::builder()
        .float("x", 0.0, 1.0, Scale::Linear)
        .build()
        .unwrap()
}

/// The synthetic validation accuracy of `x` after `epoch` epochs: a
/// saturating curve whose limit peaks at `x = 0.3`.
pub fn curve(x: f64, epoch: usize) -> f64 {
    let limit = 0.95 - 0.8 * (x - 0.3).powi(2);
    limit * (1.0 - (-(epoch as f64) / 3.0).exp())
}

/// What a synthetic trial does wrong, and when.
#[derive(Clone, Copy, Debug)]
pub enum Fault {
    Panic(usize),
    Error(usize),
    Nan(usize),
    /// Its epoch never returns (well, after an hour).
    Hang(usize),
    /// It asks to be pruned.
    Prune(usize),
}

#[derive(Default)]
pub struct Log {
    /// Epochs trained, per trial.
    pub epochs: Mutex<HashMap<usize, usize>>,
    /// Builds, per trial.
    pub builds: Mutex<HashMap<usize, usize>>,
    pub threads: Mutex<HashMap<usize, std::thread::ThreadId>>,
    /// The context each trial was built with.
    pub contexts: Mutex<HashMap<usize, TrialContext>>,
    pub running: AtomicUsize,
    pub max_running: AtomicUsize,
}

pub struct Synthetic {
    trial: usize,
    x: f64,
    epoch: usize,
    sleep: Duration,
    fault: Option<Fault>,
    log: Arc<Log>,
}

impl Synthetic {
    pub fn new(
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
        log.contexts.lock().unwrap().insert(ctx.trial, ctx.clone());
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
    type Report = EpochReport;

    fn train_epoch(&mut self) -> Result<EpochReport, TrialError> {
        std::thread::sleep(self.sleep);
        self.epoch += 1;
        *self
            .log
            .epochs
            .lock()
            .unwrap()
            .entry(self.trial)
            .or_default() += 1;
        let score = match self.fault {
            Some(Fault::Panic(e)) if e == self.epoch => panic!("synthetic panic"),
            Some(Fault::Error(e)) if e == self.epoch => return Err("synthetic error".into()),
            Some(Fault::Nan(e)) if e == self.epoch => f64::NAN,
            Some(Fault::Hang(e)) if e == self.epoch => {
                std::thread::sleep(Duration::from_secs(3600));
                0.0
            }
            Some(Fault::Prune(e)) if e == self.epoch => {
                return Err(Pruned::because("synthetic prune").into());
            }
            _ => curve(self.x, self.epoch),
        };
        Ok(EpochReport::new(score)
            .metric("train_loss", 1.0 / self.epoch as f64)
            .attr("x", self.x))
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

/// A study over [`space`] with random search, no stopping, quiet.
pub fn tuner(horizon: usize, seed: u64) -> Tuner {
    Tuner::new(space(), Objective::accuracy(), horizon)
        .sampler(RandomSampler::new(space(), seed))
        .policy(NoStopping)
        .seed(seed)
        .output(Output::Quiet)
}

pub fn trials(n: usize) -> Budget {
    Budget {
        trials: Some(n),
        ..Budget::default()
    }
}

pub fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("foresight-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// A build function for `Tuner::run`: synthetic trials with epochs of
/// `sleep`, faults by trial number.
pub fn synthetic(
    sleep: Duration,
    log: &Arc<Log>,
    faults: impl Fn(usize) -> Option<Fault> + Send + Sync + 'static,
) -> impl Fn(&Config, &TrialContext) -> Result<Synthetic, TrialError> + Send + Sync + 'static {
    let log = log.clone();
    move |c, ctx| Ok(Synthetic::new(c, ctx, sleep, faults(ctx.trial), &log))
}

/// The study in a folder, with its events.
pub fn load(dir: &Path) -> (Study, Vec<Event>) {
    Journal::new(dir).load().unwrap()
}

/// The study the kill-and-resume tests run, in a child process and then in
/// the test itself: random search, no stopping, 6 trials of 8 epochs of 40
/// ms, checkpoints.
pub fn kill_study(dir: &Path) -> foresight::Result<Study> {
    kill_study_logged(dir, &Arc::new(Log::default()))
}

/// [`kill_study`], logging into `log`.
pub fn kill_study_logged(dir: &Path, log: &Arc<Log>) -> foresight::Result<Study> {
    tuner(8, 21)
        .storage(Journal::new(dir))
        .budget(trials(6))
        .run(synthetic(Duration::from_millis(40), log, |_| None))
}
