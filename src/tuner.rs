//! The tuning loop: a sampler proposes configurations, workers train them
//! epoch by epoch, a stopping policy ends the hopeless ones, and every event
//! goes to the journal.
//!
//! ```text
//!             ask/tell                       check / assess
//!   Sampler ◄──────────► Controller ◄──────────────────────► StoppingPolicy
//!                          ▲    │ start(config), Continue/Stop
//!        epoch scores      │    ▼
//!                       workers (Trainable::train_epoch)
//! ```
//!
//! The `Controller` owns the study's state and makes every decision; it
//! does not know whether it is driven by real threads ([`Tuner::run`]) or by
//! a simulated clock ([`Tuner::simulate`], which replay of logged curves
//! uses). The two executors differ only in how time passes:
//!
//! * real threads: each worker thread trains one trial at a time and, after
//!   every epoch, sends the score to the controller over a channel and waits
//!   for its answer (bookkeeping only: microseconds). Assessments
//!   (learning-curve predictions) run on a thread of their own, so training
//!   never waits for an MCMC fit; a stop decision reaches the worker at the
//!   first epoch boundary after the prediction finished.
//! * simulated clock: one epoch takes one unit of time on one of `W`
//!   virtual workers; assessments run inline and take no time, so a stop
//!   decision applies at the epoch boundary where it was asked for.
//!
//! Reported to the sampler (which minimises; accuracies are negated): a
//! completed trial's final score; a trial stopped by a learning-curve
//! assessment, its predicted final value with the predictive variance
//! (Domhan et al. 2015, Section 4); a trial stopped by another policy, its
//! last score; a diverged trial, the worst score seen in the study. Failed
//! and budget-cut trials are not reported (as Optuna ignores failed trials).

use std::collections::HashSet;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, bounded, unbounded};

use crate::curve::Metric;
use crate::error::{Error, Result};
use crate::journal::{self, Event, Header, Journal, Status};
use crate::policy::{
    AssessJob, Assessment, Check, LearningCurve, StoppingPolicy, StudyView, TrialView,
};
use crate::progress::{Output, Progress};
use crate::sampler::{GpSampler, GpSettings, Sampler};
use crate::seed;
use crate::space::{Config, Space};
use crate::trainable::{Trainable, TrialContext, TrialError};

/// Limits of a study; it ends at the first one reached. With none set, a
/// study runs until the sampler runs out of configurations (replay) —
/// [`Tuner::run`] requires at least one.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Budget {
    /// Trials started.
    pub trials: Option<usize>,
    /// Epochs trained, over all trials.
    pub epochs: Option<usize>,
    /// Wall-clock time (real runs only; a resumed study counts the time
    /// before the crash).
    pub wall: Option<Duration>,
}

/// A prediction made for a trial, as the journal recorded it.
#[derive(Debug, Clone, PartialEq)]
pub struct PredictionRecord {
    /// Epochs observed when it was made.
    pub epoch: usize,
    pub p_better: Option<f64>,
    pub mean: Option<f64>,
    pub variance: Option<f64>,
    pub band: Vec<(usize, f64, f64, f64)>,
    pub stop: bool,
}

/// One trial of a study.
#[derive(Debug, Clone, PartialEq)]
pub struct TrialRecord {
    pub id: usize,
    pub config: Config,
    pub seed: u64,
    /// Scores after epochs `1..=scores.len()` (`NaN` for a non-finite one).
    pub scores: Vec<f64>,
    /// How it ended (`None` while running, or interrupted by a crash).
    pub status: Option<Status>,
    /// What the sampler was told: value and variance, metric units.
    pub told: Option<(f64, f64)>,
    /// The error of a failed trial.
    pub message: Option<String>,
    pub predictions: Vec<PredictionRecord>,
    /// Epoch of the last checkpoint.
    pub checkpoint: Option<usize>,
    /// Time the trial started (seconds, or simulated epochs).
    pub started: f64,
}

impl TrialRecord {
    /// The score after the horizon, for a completed trial.
    pub fn final_score(&self) -> Option<f64> {
        if self.status == Some(Status::Completed) {
            self.scores.last().copied()
        } else {
            None
        }
    }
}

/// A study's state: the fold of its journal's events ([`Study::apply`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Study {
    pub header: Header,
    pub trials: Vec<TrialRecord>,
    /// Epochs trained, over all trials (including epochs lost to a crash).
    pub epochs_used: usize,
    /// Time of the last event.
    pub elapsed: f64,
    /// Trials in the order they ended, with the epochs used by then.
    pub ends: Vec<(usize, usize)>,
    /// The incumbent's trial and final score.
    incumbent: Option<(usize, f64)>,
}

impl Study {
    /// An empty study.
    pub fn new(header: Header) -> Study {
        Study {
            header,
            trials: Vec::new(),
            epochs_used: 0,
            elapsed: 0.0,
            ends: Vec::new(),
            incumbent: None,
        }
    }

    /// The study recorded in a study folder's journal.
    pub fn load(dir: &Path) -> Result<Study> {
        let (header, events) = Journal::read(dir)?;
        let mut study = Study::new(header);
        for e in &events {
            study.apply(e);
        }
        Ok(study)
    }

    /// Applies one event. Events about unknown trials are ignored.
    pub fn apply(&mut self, event: &Event) {
        if let Some(t) = event.time() {
            self.elapsed = self.elapsed.max(t);
        }
        match event {
            Event::Study(h) => self.header = h.clone(),
            Event::Start {
                trial,
                config,
                seed,
                t,
            } => {
                if *trial == self.trials.len() {
                    self.trials.push(TrialRecord {
                        id: *trial,
                        config: config.clone(),
                        seed: *seed,
                        scores: Vec::new(),
                        status: None,
                        told: None,
                        message: None,
                        predictions: Vec::new(),
                        checkpoint: None,
                        started: *t,
                    });
                }
            }
            Event::Epoch {
                trial,
                epoch,
                value,
                ..
            } => {
                self.epochs_used += 1;
                if let Some(r) = self.trials.get_mut(*trial) {
                    r.scores.truncate(epoch.saturating_sub(1));
                    r.scores.push(value.unwrap_or(f64::NAN));
                }
            }
            Event::Prediction {
                trial,
                epoch,
                p_better,
                mean,
                variance,
                band,
                stop,
                ..
            } => {
                if let Some(r) = self.trials.get_mut(*trial) {
                    r.predictions.push(PredictionRecord {
                        epoch: *epoch,
                        p_better: *p_better,
                        mean: *mean,
                        variance: *variance,
                        band: band.clone(),
                        stop: *stop,
                    });
                }
            }
            Event::Checkpoint { trial, epoch, .. } => {
                if let Some(r) = self.trials.get_mut(*trial) {
                    r.checkpoint = Some(*epoch);
                }
            }
            Event::Restart { trial, epoch, .. } => {
                if let Some(r) = self.trials.get_mut(*trial) {
                    r.scores.truncate(*epoch);
                    r.predictions.retain(|p| p.epoch <= *epoch);
                }
            }
            Event::End {
                trial,
                status,
                value,
                variance,
                message,
                ..
            } => {
                let metric = self.header.metric;
                if let Some(r) = self.trials.get_mut(*trial) {
                    if r.status.is_none() {
                        self.ends.push((*trial, self.epochs_used));
                    }
                    r.status = Some(*status);
                    r.told = value.map(|v| (v, variance.unwrap_or(0.0)));
                    r.message = message.clone();
                    if let Some(f) = r.final_score() {
                        let better = match self.incumbent {
                            None => true,
                            Some((_, b)) => metric.better(f, b),
                        };
                        if f.is_finite() && better {
                            self.incumbent = Some((*trial, f));
                        }
                    }
                }
            }
        }
    }

    /// The incumbent: the completed trial with the best final score.
    pub fn best(&self) -> Option<&TrialRecord> {
        self.incumbent.map(|(i, _)| &self.trials[i])
    }

    /// The incumbent's final score.
    pub fn incumbent(&self) -> Option<f64> {
        self.incumbent.map(|(_, v)| v)
    }

    /// Trials with the given end status.
    pub fn count(&self, status: Option<Status>) -> usize {
        self.trials.iter().filter(|t| t.status == status).count()
    }

    /// Epochs the same trials would have used without early stopping: a
    /// stopped trial counts the whole horizon.
    pub fn epochs_without_stopping(&self) -> usize {
        let stopped_extra: usize = self
            .trials
            .iter()
            .filter(|t| t.status == Some(Status::Stopped))
            .map(|t| self.header.horizon - t.scores.len())
            .sum();
        self.epochs_used + stopped_extra
    }

    /// Running trials (`status == None`).
    pub fn running(&self) -> impl Iterator<Item = &TrialRecord> {
        self.trials.iter().filter(|t| t.status.is_none())
    }
}

/// A trial for a worker to run.
#[derive(Debug, Clone)]
struct Assignment {
    id: usize,
    config: Config,
    seed: u64,
    /// Continue from the checkpoint after this epoch (a resumed study).
    resume_from: Option<usize>,
}

/// The controller's answer after an epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Directive {
    Continue,
    End,
}

/// The decision state of a study; see the module documentation.
struct Controller {
    study: Study,
    sampler: Box<dyn Sampler + Send>,
    policy: Box<dyn StoppingPolicy>,
    journal: Option<Journal>,
    checkpoints: Option<PathBuf>,
    progress: Progress,
    budget: Budget,
    /// Current time (seconds, or simulated epochs).
    now: f64,
    /// Assessments that said stop, applied at the trial's next boundary.
    stop_after: Vec<Option<Assessment>>,
    assessing: HashSet<usize>,
}

impl Controller {
    fn emit(&mut self, event: Event) -> Result<()> {
        if let Some(j) = &mut self.journal {
            j.append(&event)?;
        }
        self.study.apply(&event);
        self.progress.on_event(&event, &self.study);
        Ok(())
    }

    /// Whether a new trial may start / a running trial may go on.
    fn budget_left(&self) -> bool {
        let b = &self.budget;
        b.trials
            .is_none_or(|n| self.study.trials.len() < n || self.study.running().count() > 0)
            && b.epochs.is_none_or(|n| self.study.epochs_used < n)
            && b.wall.is_none_or(|w| self.now < w.as_secs_f64())
    }

    fn may_start(&self) -> bool {
        self.budget_left()
            && self
                .budget
                .trials
                .is_none_or(|n| self.study.trials.len() < n)
    }

    /// The sampler's sign: it minimises.
    fn sign(&self) -> f64 {
        match self.study.header.metric {
            Metric::Accuracy => -1.0,
            Metric::Loss => 1.0,
        }
    }

    fn pending(&self) -> Vec<Config> {
        self.study.running().map(|t| t.config.clone()).collect()
    }

    /// Starts a new trial, if the budget allows and the sampler has one.
    fn start(&mut self) -> Result<Option<Assignment>> {
        if !self.may_start() {
            return Ok(None);
        }
        let pending = self.pending();
        let config = match self.sampler.ask(&pending) {
            Ok(c) => c,
            // A finite pool that is used up ends the study.
            Err(Error::Exhausted) => return Ok(None),
            Err(e) => return Err(e),
        };
        let id = self.study.trials.len();
        let seed = trial_seed(self.study.header.seed, id);
        self.emit(Event::Start {
            trial: id,
            config: config.clone(),
            seed,
            t: self.now,
        })?;
        self.stop_after.push(None);
        Ok(Some(Assignment {
            id,
            config,
            seed,
            resume_from: None,
        }))
    }

    /// Trials a crash interrupted, to run again.
    fn interrupted(&self) -> Vec<Assignment> {
        self.study
            .running()
            .map(|t| Assignment {
                id: t.id,
                config: t.config.clone(),
                seed: t.seed,
                resume_from: Some(t.checkpoint.unwrap_or(0)),
            })
            .collect()
    }

    /// Records the score after `epoch` and decides whether the trial goes
    /// on; may hand back an assessment to run.
    fn epoch(
        &mut self,
        id: usize,
        epoch: usize,
        value: f64,
    ) -> Result<(Directive, Option<AssessJob>)> {
        self.emit(Event::Epoch {
            trial: id,
            epoch,
            value: value.is_finite().then_some(value),
            t: self.now,
        })?;
        if !value.is_finite() {
            let worst = self.worst_score();
            self.end(id, Status::Diverged, worst.map(|w| (w, 0.0)), None)?;
            return Ok((Directive::End, None));
        }
        if epoch >= self.study.header.horizon {
            self.end(id, Status::Completed, Some((value, 0.0)), None)?;
            return Ok((Directive::End, None));
        }
        if !self.budget_left() {
            self.end(id, Status::Cut, None, None)?;
            return Ok((Directive::End, None));
        }
        if self.stop_after[id].is_some() {
            self.stop_now(id)?;
            return Ok((Directive::End, None));
        }
        let check = {
            let views: Vec<TrialView> = self
                .study
                .trials
                .iter()
                .map(|t| TrialView {
                    id: t.id,
                    scores: &t.scores,
                    completed: t.status == Some(Status::Completed),
                    running: t.status.is_none(),
                })
                .collect();
            let view = StudyView {
                metric: self.study.header.metric,
                horizon: self.study.header.horizon,
                trials: &views,
                incumbent: self.study.incumbent(),
            };
            self.policy.check(id, &view)
        };
        match check {
            Check::Continue => Ok((Directive::Continue, None)),
            Check::Stop => {
                self.end(id, Status::Stopped, Some((value, 0.0)), None)?;
                Ok((Directive::End, None))
            }
            Check::Assess(job) => {
                let job = self.assessing.insert(id).then_some(job);
                Ok((Directive::Continue, job))
            }
        }
    }

    /// Records an assessment of `id` made after `epoch`; returns whether it
    /// asks to stop a trial that is still running.
    fn assessed(&mut self, id: usize, epoch: usize, a: Assessment) -> Result<bool> {
        self.assessing.remove(&id);
        if self.study.trials[id].status.is_some() {
            return Ok(false);
        }
        self.emit(Event::Prediction {
            trial: id,
            epoch,
            p_better: a.p_better,
            mean: a.final_value.map(|f| f.0),
            variance: a.final_value.map(|f| f.1),
            band: a.band.clone(),
            stop: a.stop,
            t: self.now,
        })?;
        let stop = a.stop;
        if stop {
            self.stop_after[id] = Some(a);
        }
        Ok(stop)
    }

    /// Stops `id` on the assessment that asked for it.
    fn stop_now(&mut self, id: usize) -> Result<()> {
        let a = self.stop_after[id].take();
        let last = self.study.trials[id].scores.last().copied();
        let told = a.and_then(|a| a.final_value).or(last.map(|v| (v, 0.0)));
        self.end(id, Status::Stopped, told, None)
    }

    fn failed(&mut self, id: usize, message: String) -> Result<()> {
        self.end(id, Status::Failed, None, Some(message))
    }

    fn cut(&mut self, id: usize) -> Result<()> {
        self.end(id, Status::Cut, None, None)
    }

    fn checkpoint(&mut self, id: usize, epoch: usize) -> Result<()> {
        let previous = self.study.trials[id].checkpoint;
        self.emit(Event::Checkpoint {
            trial: id,
            epoch,
            t: self.now,
        })?;
        if let (Some(root), Some(p)) = (&self.checkpoints, previous)
            && p != epoch
        {
            let _ = std::fs::remove_dir_all(epoch_dir(&trial_dir(root, id), p));
        }
        Ok(())
    }

    fn restarted(&mut self, id: usize, epoch: usize) -> Result<()> {
        self.emit(Event::Restart {
            trial: id,
            epoch,
            t: self.now,
        })
    }

    /// Ends a trial, telling the sampler `told` (metric units) if given.
    fn end(
        &mut self,
        id: usize,
        status: Status,
        told: Option<(f64, f64)>,
        message: Option<String>,
    ) -> Result<()> {
        // Only finite results reach the sampler.
        let told = told.filter(|(v, var)| v.is_finite() && var.is_finite() && *var >= 0.0);
        if let Some((v, var)) = told {
            let config = self.study.trials[id].config.clone();
            self.sampler.tell(&config, self.sign() * v, var)?;
        }
        self.emit(Event::End {
            trial: id,
            status,
            value: told.map(|t| t.0),
            variance: told.map(|t| t.1),
            message,
            t: self.now,
        })?;
        if let Some(root) = &self.checkpoints {
            let _ = std::fs::remove_dir_all(trial_dir(root, id));
        }
        Ok(())
    }

    /// The worst finite score of the study so far.
    fn worst_score(&self) -> Option<f64> {
        let metric = self.study.header.metric;
        self.study
            .trials
            .iter()
            .flat_map(|t| t.scores.iter().copied())
            .filter(|v| v.is_finite())
            .reduce(|a, b| if metric.better(a, b) { b } else { a })
    }

    /// Rebuilds the sampler's state from a journal's events by repeating
    /// its asks and tells in their original order.
    fn replay_sampler(&mut self, events: &[Event]) -> Result<()> {
        let mut pending: Vec<(usize, Config)> = Vec::new();
        let sign = self.sign();
        for e in events {
            match e {
                Event::Start { trial, config, .. } => {
                    let p: Vec<Config> = pending.iter().map(|p| p.1.clone()).collect();
                    match self.sampler.ask(&p) {
                        Ok(_) | Err(Error::Exhausted) => {}
                        Err(e) => return Err(e),
                    }
                    pending.push((*trial, config.clone()));
                }
                Event::End {
                    trial,
                    value,
                    variance,
                    ..
                } => {
                    if let Some(i) = pending.iter().position(|p| p.0 == *trial) {
                        let (_, config) = pending.remove(i);
                        if let Some(v) = value {
                            self.sampler
                                .tell(&config, sign * v, variance.unwrap_or(0.0))?;
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// The file in a study folder that records the command which created it
/// (`foresight resume` runs it again).
pub const COMMAND_FILE: &str = "command.json";

/// The command that created a study, as `foresight resume` runs it again.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Command {
    /// The program (absolute path) and its arguments.
    pub argv: Vec<String>,
    /// The working directory it ran in.
    pub cwd: PathBuf,
}

impl Command {
    /// The command recorded in a study folder.
    pub fn load(dir: &Path) -> Result<Command> {
        let path = dir.join(COMMAND_FILE);
        let text = std::fs::read_to_string(&path).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|e| Error::Journal {
            path,
            message: e.to_string(),
        })
    }
}

/// Writes the running program's command into a new study folder.
fn record_command(dir: &Path) -> Result<()> {
    let io = |path: &Path, source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let mut argv: Vec<String> = std::env::args().collect();
    if let (Some(first), Ok(exe)) = (argv.first_mut(), std::env::current_exe()) {
        *first = exe.to_string_lossy().into_owned();
    }
    let cwd = std::env::current_dir().map_err(|e| io(dir, e))?;
    let text = serde_json::to_string_pretty(&Command { argv, cwd }).expect("serialisable");
    let path = dir.join(COMMAND_FILE);
    std::fs::write(&path, text).map_err(|e| io(&path, e))
}

/// The seed of trial `id` (SplitMix64 of the study seed and the number).
fn trial_seed(seed: u64, id: usize) -> u64 {
    seed::mix64(seed ^ (id as u64 + 1).wrapping_mul(seed::GOLDEN))
}

fn trial_dir(root: &Path, id: usize) -> PathBuf {
    root.join(format!("trial-{id:04}"))
}

fn epoch_dir(trial: &Path, epoch: usize) -> PathBuf {
    trial.join(format!("epoch-{epoch:04}"))
}

/// The message of a panic payload.
fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    let text = p
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into());
    format!("panicked: {text}")
}

/// Runs `f` and turns a panic into an error.
fn guarded<R>(
    f: impl FnOnce() -> std::result::Result<R, TrialError>,
) -> std::result::Result<R, String> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(e)) => Err(e.to_string()),
        Err(p) => Err(panic_message(p)),
    }
}

/// Builds and runs tuning studies.
///
/// ```no_run
/// use foresight::curve::Metric;
/// use foresight::space::Space;
/// use foresight::trainable::{Trainable, TrialContext, TrialError};
/// use foresight::tuner::{Budget, Tuner};
///
/// struct Model { lr: f64, epoch: usize }
/// impl Trainable for Model {
///     fn train_epoch(&mut self) -> Result<f64, TrialError> {
///         self.epoch += 1;
///         Ok(1.0 - (-self.lr * self.epoch as f64).exp())
///     }
/// }
///
/// let space = Space::builder().float("lr", 1e-3, 1.0, true).build()?;
/// let study = Tuner::new(space, Metric::Accuracy, 20)
///     .budget(Budget { trials: Some(30), ..Budget::default() })
///     .study_dir("runs/toy")
///     .run(|config, _ctx: &TrialContext| {
///         Ok::<_, TrialError>(Model { lr: config["lr"].as_f64(), epoch: 0 })
///     })?;
/// println!("best: {:?}", study.best().map(|t| &t.config));
/// # Ok::<(), foresight::Error>(())
/// ```
pub struct Tuner {
    space: Space,
    metric: Metric,
    horizon: usize,
    sampler: Option<Box<dyn Sampler + Send>>,
    policy: Option<Box<dyn StoppingPolicy>>,
    workers: usize,
    budget: Budget,
    seed: u64,
    dir: Option<PathBuf>,
    output: Output,
}

impl Tuner {
    /// A study over `space` whose trials train for `horizon` epochs and
    /// report `metric`. Defaults: GP-Hedge sampler and learning-curve
    /// stopping (both seeded from the study's seed), one worker, seed 0, no
    /// study folder (nothing saved), progress bars.
    pub fn new(space: Space, metric: Metric, horizon: usize) -> Tuner {
        Tuner {
            space,
            metric,
            horizon,
            sampler: None,
            policy: None,
            workers: 1,
            budget: Budget::default(),
            seed: 0,
            dir: None,
            output: Output::Bars,
        }
    }

    /// The sampler (default: [`GpSampler`] with [`GpSettings::default`]).
    pub fn sampler(mut self, sampler: impl Sampler + Send + 'static) -> Tuner {
        self.sampler = Some(Box::new(sampler));
        self
    }

    /// The stopping policy (default: [`LearningCurve::default`]).
    pub fn policy(mut self, policy: impl StoppingPolicy + 'static) -> Tuner {
        self.policy = Some(Box::new(policy));
        self
    }

    /// Trials trained at the same time, one per worker thread.
    pub fn workers(mut self, workers: usize) -> Tuner {
        self.workers = workers;
        self
    }

    pub fn budget(mut self, budget: Budget) -> Tuner {
        self.budget = budget;
        self
    }

    /// The seed every random choice of the study flows from.
    pub fn seed(mut self, seed: u64) -> Tuner {
        self.seed = seed;
        self
    }

    /// The study folder: journal and checkpoints. If it holds a journal of
    /// the same study, the study is resumed: completed trials are kept,
    /// trials a crash interrupted run again (from their last checkpoint, if
    /// the model saves them).
    pub fn study_dir(mut self, dir: impl Into<PathBuf>) -> Tuner {
        self.dir = Some(dir.into());
        self
    }

    /// What is shown on the terminal.
    pub fn output(mut self, output: Output) -> Tuner {
        self.output = output;
        self
    }

    /// Runs the study with real training on worker threads; `build` makes a
    /// trial's model from its configuration and context.
    ///
    /// Errors: invalid settings, no budget, an unusable study folder or
    /// journal, a sampler failure. Failures inside trials are recorded, not
    /// returned.
    pub fn run<T, F>(self, build: F) -> Result<Study>
    where
        T: Trainable,
        F: Fn(&Config, &TrialContext) -> std::result::Result<T, TrialError> + Sync,
    {
        if self.budget == Budget::default() {
            return Err(Error::invalid(
                "budget",
                "set at least one of trials, epochs and wall time",
            ));
        }
        let workers = self.workers;
        if let Some(dir) = &self.dir
            && !Journal::path_in(dir).exists()
        {
            record_command(dir)?;
        }
        let mut ctl = self.controller()?;
        let start = Instant::now();
        let offset = ctl.study.elapsed;
        let clock = move || offset + start.elapsed().as_secs_f64();
        let result = run_threads(&mut ctl, &build, workers, &clock);
        ctl.progress.finish(&ctl.study);
        result.map(|_| ctl.study)
    }

    /// Runs the study on a simulated clock (one epoch = one unit of time on
    /// one of the workers), as replay of logged curves does. The wall-clock
    /// budget does not apply; checkpoints are not used.
    pub fn simulate<T, F>(self, build: F) -> Result<Study>
    where
        T: Trainable,
        F: Fn(&Config, &TrialContext) -> std::result::Result<T, TrialError>,
    {
        let workers = self.workers;
        let mut ctl = self.controller()?;
        ctl.budget.wall = None;
        let result = run_simulated(&mut ctl, &build, workers);
        ctl.progress.finish(&ctl.study);
        result.map(|_| ctl.study)
    }

    /// The controller, with a new or resumed study.
    fn controller(self) -> Result<Controller> {
        if self.horizon == 0 {
            return Err(Error::invalid("horizon", "must be at least one epoch"));
        }
        if self.workers == 0 {
            return Err(Error::invalid("workers", "need at least one worker"));
        }
        let seed = self.seed;
        let sampler = match self.sampler {
            Some(s) => s,
            None => Box::new(GpSampler::new(
                self.space.clone(),
                GpSettings {
                    seed,
                    ..GpSettings::default()
                },
            )?),
        };
        let policy = self
            .policy
            .unwrap_or_else(|| Box::new(LearningCurve::seeded(seed)));
        let header = Header {
            version: journal::VERSION,
            space: self.space,
            metric: self.metric,
            horizon: self.horizon,
            seed,
            sampler: sampler.name(),
            policy: policy.name().to_string(),
        };
        let mut events = Vec::new();
        let journal = match &self.dir {
            Some(dir) if Journal::path_in(dir).exists() => {
                let (j, h, ev) = Journal::open(dir)?;
                header.check(&h, &Journal::path_in(dir))?;
                events = ev;
                Some(j)
            }
            Some(dir) => Some(Journal::create(dir, &header)?),
            None => None,
        };
        let mut ctl = Controller {
            study: Study::new(header),
            sampler,
            policy,
            journal,
            checkpoints: self.dir.as_ref().map(|d| d.join("checkpoints")),
            progress: Progress::new(self.output, self.budget, self.horizon),
            budget: self.budget,
            now: 0.0,
            stop_after: Vec::new(),
            assessing: HashSet::new(),
        };
        for e in &events {
            ctl.study.apply(e);
        }
        ctl.stop_after = vec![None; ctl.study.trials.len()];
        ctl.now = ctl.study.elapsed;
        ctl.replay_sampler(&events)?;
        if !events.is_empty() {
            ctl.progress.resumed(&ctl.study);
        }
        Ok(ctl)
    }
}

/// What workers and the assessor tell the controller.
enum Msg {
    Epoch {
        trial: usize,
        epoch: usize,
        value: f64,
        reply: Sender<Directive>,
    },
    Failed {
        trial: usize,
        message: String,
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
        assessment: Assessment,
    },
}

/// The real-thread executor.
fn run_threads<T, F>(
    ctl: &mut Controller,
    build: &F,
    workers: usize,
    clock: &(dyn Fn() -> f64 + Sync),
) -> Result<()>
where
    T: Trainable,
    F: Fn(&Config, &TrialContext) -> std::result::Result<T, TrialError> + Sync,
{
    let horizon = ctl.study.header.horizon;
    let checkpoints = ctl.checkpoints.clone();
    let (assign_tx, assign_rx) = unbounded::<Assignment>();
    let (msg_tx, msg_rx) = unbounded::<Msg>();
    let (job_tx, job_rx) = unbounded::<(usize, usize, AssessJob)>();
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let (rx, tx, ck) = (assign_rx.clone(), msg_tx.clone(), checkpoints.clone());
            scope.spawn(move || {
                // One compute thread per trial: rayon-parallel code inside
                // the model (candle's CPU kernels) stays on this worker.
                let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().ok();
                for a in rx {
                    match &pool {
                        Some(p) => p.install(|| run_trial(a, build, horizon, ck.as_deref(), &tx)),
                        None => run_trial(a, build, horizon, ck.as_deref(), &tx),
                    }
                }
            });
        }
        let tx = msg_tx.clone();
        scope.spawn(move || {
            for (trial, epoch, job) in job_rx {
                let assessment = match catch_unwind(AssertUnwindSafe(job)) {
                    Ok(a) => a,
                    Err(_) => continue,
                };
                if tx
                    .send(Msg::Assessed {
                        trial,
                        epoch,
                        assessment,
                    })
                    .is_err()
                {
                    break;
                }
            }
        });
        drop(msg_tx);
        drop(assign_rx);
        let result = (|| -> Result<()> {
            let mut running = 0;
            for a in ctl.interrupted() {
                assign_tx.send(a).expect("workers alive");
                running += 1;
            }
            let top_up = |ctl: &mut Controller, running: &mut usize| -> Result<()> {
                while *running < workers {
                    ctl.now = clock();
                    match ctl.start()? {
                        Some(a) => {
                            assign_tx.send(a).expect("workers alive");
                            *running += 1;
                        }
                        None => break,
                    }
                }
                Ok(())
            };
            top_up(ctl, &mut running)?;
            while running > 0 {
                let Ok(msg) = msg_rx.recv() else { break };
                ctl.now = clock();
                match msg {
                    Msg::Epoch {
                        trial,
                        epoch,
                        value,
                        reply,
                    } => {
                        let (directive, job) = ctl.epoch(trial, epoch, value)?;
                        if let Some(job) = job {
                            let _ = job_tx.send((trial, epoch, job));
                        }
                        let _ = reply.send(directive);
                        if directive == Directive::End {
                            running -= 1;
                            top_up(ctl, &mut running)?;
                        }
                    }
                    Msg::Failed { trial, message } => {
                        ctl.failed(trial, message)?;
                        running -= 1;
                        top_up(ctl, &mut running)?;
                    }
                    Msg::Checkpoint { trial, epoch } => ctl.checkpoint(trial, epoch)?,
                    Msg::Restored { trial, epoch } => ctl.restarted(trial, epoch)?,
                    Msg::Assessed {
                        trial,
                        epoch,
                        assessment,
                    } => {
                        ctl.assessed(trial, epoch, assessment)?;
                    }
                }
            }
            Ok(())
        })();
        // Closing the channels lets every thread finish its current epoch
        // and exit.
        drop(assign_tx);
        drop(job_tx);
        drop(msg_rx);
        result
    })
}

/// One trial on a worker thread.
fn run_trial<T, F>(
    a: Assignment,
    build: &F,
    horizon: usize,
    checkpoints: Option<&Path>,
    tx: &Sender<Msg>,
) where
    T: Trainable,
    F: Fn(&Config, &TrialContext) -> std::result::Result<T, TrialError> + Sync,
{
    let trial = a.id;
    let fail = |message: String| {
        let _ = tx.send(Msg::Failed { trial, message });
    };
    let dir = checkpoints.map(|root| trial_dir(root, trial));
    let ctx = TrialContext {
        trial,
        seed: a.seed,
        horizon,
        checkpoint_dir: dir.clone().unwrap_or_default(),
    };
    let mut model = match guarded(|| build(&a.config, &ctx)) {
        Ok(m) => m,
        Err(m) => return fail(m),
    };
    let mut epoch = 0;
    if let Some(from) = a.resume_from {
        if let (Some(d), true) = (&dir, from > 0) {
            match guarded(|| model.restore(&epoch_dir(d, from))) {
                Ok(true) => epoch = from,
                Ok(false) => {}
                Err(m) => return fail(format!("restoring the checkpoint: {m}")),
            }
        }
        let _ = tx.send(Msg::Restored { trial, epoch });
    }
    let mut saves = dir.is_some();
    while epoch < horizon {
        let value = match guarded(|| model.train_epoch()) {
            Ok(v) => v,
            Err(m) => return fail(m),
        };
        epoch += 1;
        let (reply_tx, reply_rx) = bounded(1);
        let sent = tx.send(Msg::Epoch {
            trial,
            epoch,
            value,
            reply: reply_tx,
        });
        if sent.is_err() || reply_rx.recv() != Ok(Directive::Continue) {
            return;
        }
        if let (Some(d), true) = (&dir, saves) {
            let target = epoch_dir(d, epoch);
            if let Err(e) = std::fs::create_dir_all(&target) {
                return fail(format!("checkpoint folder {}: {e}", target.display()));
            }
            match guarded(|| model.save(&target)) {
                Ok(true) => {
                    let _ = tx.send(Msg::Checkpoint { trial, epoch });
                }
                Ok(false) => {
                    saves = false;
                    let _ = std::fs::remove_dir_all(d);
                }
                Err(m) => return fail(format!("saving a checkpoint: {m}")),
            }
        }
    }
}

/// The simulated-clock executor.
fn run_simulated<T, F>(ctl: &mut Controller, build: &F, workers: usize) -> Result<()>
where
    T: Trainable,
    F: Fn(&Config, &TrialContext) -> std::result::Result<T, TrialError>,
{
    struct Slot<T> {
        time: f64,
        trial: Option<(usize, T, usize)>,
    }
    let horizon = ctl.study.header.horizon;
    let start_time = ctl.now;
    let mut slots: Vec<Slot<T>> = (0..workers)
        .map(|_| Slot {
            time: start_time,
            trial: None,
        })
        .collect();
    let mut queue: Vec<Assignment> = ctl.interrupted();
    queue.reverse();
    loop {
        // Fill idle workers.
        for slot in slots.iter_mut().filter(|s| s.trial.is_none()) {
            while slot.trial.is_none() {
                ctl.now = slot.time;
                let a = match queue.pop() {
                    Some(a) => {
                        ctl.restarted(a.id, 0)?;
                        a
                    }
                    None => match ctl.start()? {
                        Some(a) => a,
                        None => break,
                    },
                };
                let ctx = TrialContext {
                    trial: a.id,
                    seed: a.seed,
                    horizon,
                    checkpoint_dir: PathBuf::new(),
                };
                match guarded(|| build(&a.config, &ctx)) {
                    Ok(m) => slot.trial = Some((a.id, m, 0)),
                    Err(m) => ctl.failed(a.id, m)?,
                }
            }
        }
        // The busy worker whose epoch ends first.
        let Some(w) = (0..workers)
            .filter(|&w| slots[w].trial.is_some())
            .min_by(|&a, &b| slots[a].time.total_cmp(&slots[b].time))
        else {
            return Ok(());
        };
        let slot = &mut slots[w];
        slot.time += 1.0;
        ctl.now = slot.time;
        let (id, model, epoch) = slot.trial.as_mut().expect("busy");
        let id = *id;
        let value = match guarded(|| model.train_epoch()) {
            Ok(v) => v,
            Err(m) => {
                ctl.failed(id, m)?;
                slot.trial = None;
                continue;
            }
        };
        *epoch += 1;
        let (mut directive, job) = ctl.epoch(id, *epoch, value)?;
        if let Some(job) = job
            && ctl.assessed(id, *epoch, job())?
        {
            ctl.stop_now(id)?;
            directive = Directive::End;
        }
        if directive == Directive::End {
            slot.trial = None;
        }
        if !ctl.budget_left() {
            for s in slots.iter_mut() {
                if let Some((id, _, _)) = s.trial.take() {
                    ctl.cut(id)?;
                }
            }
            return Ok(());
        }
    }
}
