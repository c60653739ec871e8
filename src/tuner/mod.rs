//! The tuning loop: a sampler proposes configurations, workers train them
//! epoch by epoch, a stopping policy ends the hopeless ones, and every event
//! goes to the study's storage and then to its observers.
//!
//! ```text
//!             ask/tell                       check / assess
//!   Sampler ◄──────────► Controller ◄──────────────────────► StoppingPolicy
//!                          ▲    │ start(config), Continue/End
//!        epoch reports     │    ▼               events ──▶ Storage ──▶ Study ──▶ observers
//!                 executor: worker threads | simulated clock
//! ```
//!
//! * [`Tuner`] (here): the builder users see, and [`Budget`];
//! * `controller.rs`: every decision, whatever drives it;
//! * `threads.rs`: real training on worker threads ([`Tuner::run`]);
//! * `simulated.rs`: a simulated clock ([`Tuner::simulate`], which replay
//!   of logged curves uses).
//!
//! Nothing outside this module knows the executors.

mod controller;
mod simulated;
mod threads;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::observe::{Measure, Observer, Output, Progress};
use crate::policy::{LearningCurve, StoppingPolicy};
use crate::sampler::{GpSampler, GpSettings, Sampler};
use crate::space::{Config, Space};
use crate::storage::{Memory, Storage};
use crate::study::{Component, Header, Objective, Study, VERSION};
use crate::trial::{Pruned, Trainable, TrialContext, TrialError};
use controller::{Controller, Parts};

/// Limits of a study; it ends at the first one reached. With none set, a
/// study runs until the sampler runs out of configurations (replay) —
/// [`Tuner::run`] requires at least one of trials, epochs and wall time.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Budget {
    /// Trials started (by every worker of the study).
    pub trials: Option<usize>,
    /// Epochs trained, over all trials.
    pub epochs: Option<usize>,
    /// Wall-clock time (real runs only; a resumed study counts the time
    /// before the crash). Running trials are cut when it is spent.
    pub wall: Option<Duration>,
    /// Wall-clock time one trial may take, from its start (real runs only):
    /// a trial past it fails with that reason, even if its epoch hangs.
    pub trial_time: Option<Duration>,
}

/// A switch that stops a running study at once — what Ctrl-C should do.
/// The study's storage keeps everything recorded so far; its running
/// trials are left unfinished there, and a later run of the study takes them
/// over and starts them again (from their checkpoints). [`Tuner::run`]
/// returns [`Error::Interrupted`] within a tenth of a second of
/// [`Interrupt::interrupt`]; trials still inside an epoch are not waited
/// for (a command trial's program is stopped by
/// [`crate::trial::command::TrainingCommand::stop_all`]).
#[derive(Debug, Clone, Default)]
pub struct Interrupt(Arc<AtomicBool>);

impl Interrupt {
    pub fn new() -> Interrupt {
        Interrupt::default()
    }

    /// Stops the studies that watch this switch (callable from a signal
    /// handler's thread).
    pub fn interrupt(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_interrupted(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Builds and runs tuning studies.
///
/// ```no_run
/// use foresight::prelude::*;
///
/// struct Model { lr: f64, epoch: usize }
/// impl Trainable for Model {
///     type Report = f64;
///     fn train_epoch(&mut self) -> Result<f64, TrialError> {
///         self.epoch += 1;
///         Ok(1.0 - (-self.lr * self.epoch as f64).exp())
///     }
/// }
///
/// let space = Space::builder().float("lr", 1e-3, 1.0, Scale::Log).build()?;
/// let study = Tuner::new(space, Objective::accuracy(), 20)
///     .budget(Budget { trials: Some(30), ..Budget::default() })
///     .storage(Journal::new("runs/toy"))
///     .run(|config, _ctx| Ok(Model { lr: config["lr"].as_f64(), epoch: 0 }))?;
/// println!("best: {:?}", study.best().map(|t| &t.config));
/// # Ok::<(), foresight::Error>(())
/// ```
pub struct Tuner {
    space: Space,
    objective: Objective,
    horizon: usize,
    sampler: Option<Box<dyn Sampler>>,
    policy: Option<Box<dyn StoppingPolicy>>,
    workers: usize,
    threads: Option<usize>,
    budget: Budget,
    seed: u64,
    storage: Option<Box<dyn Storage>>,
    output: Output,
    observers: Vec<Box<dyn Observer>>,
    interrupt: Option<Interrupt>,
    grace: Duration,
    retries: usize,
    checkpoints: Option<std::path::PathBuf>,
}

impl Tuner {
    /// A study over `space` whose trials train for `horizon` epochs and
    /// report a score in `objective` ([`Objective`], or a
    /// [`crate::curve::Metric`]). Defaults: GP-Hedge sampler and
    /// learning-curve stopping, one worker, seed 0, kept in memory (nothing
    /// saved), progress bars.
    pub fn new(space: Space, objective: impl Into<Objective>, horizon: usize) -> Tuner {
        Tuner {
            space,
            objective: objective.into(),
            horizon,
            sampler: None,
            policy: None,
            workers: 1,
            threads: None,
            budget: Budget::default(),
            seed: 0,
            storage: None,
            output: Output::Bars,
            observers: Vec::new(),
            interrupt: None,
            grace: Duration::from_secs(60),
            retries: 3,
            checkpoints: None,
        }
    }

    /// The sampler (default: [`GpSampler`] with [`GpSettings::default`]).
    /// It is reseeded with the study's seed.
    pub fn sampler(mut self, sampler: impl Sampler + 'static) -> Tuner {
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

    /// Compute threads per trial (default: the machine's cores divided
    /// among the workers, at least one). Each trial runs inside a rayon
    /// pool of that size and is told it in [`TrialContext::threads`].
    pub fn threads_per_trial(mut self, threads: usize) -> Tuner {
        self.threads = Some(threads);
        self
    }

    pub fn budget(mut self, budget: Budget) -> Tuner {
        self.budget = budget;
        self
    }

    /// The seed every random choice of the study flows from (the sampler's,
    /// each trial's [`TrialContext::seed`], each prediction's).
    pub fn seed(mut self, seed: u64) -> Tuner {
        self.seed = seed;
        self
    }

    /// Where the study is kept (default: [`Memory`]). A storage that holds
    /// this study already continues it: completed trials are kept, and
    /// trials whose worker is gone run again (from their last checkpoint, if
    /// the model saves them); workers in other processes sharing the storage
    /// work on the same study. A storage holding a different study is an
    /// error naming the difference.
    pub fn storage(mut self, storage: impl Storage + 'static) -> Tuner {
        self.storage = Some(Box::new(storage));
        self
    }

    /// What is shown on the terminal.
    pub fn output(mut self, output: Output) -> Tuner {
        self.output = output;
        self
    }

    /// Registers an observer: a closure `FnMut(&Event, &Study) -> Flow` or
    /// an [`Observer`], called after every event (see [`crate::observe`]).
    pub fn observe(mut self, observer: impl Observer + 'static) -> Tuner {
        self.observers.push(Box::new(observer));
        self
    }

    /// How long another worker of the study may send no heartbeat before
    /// its running trials are taken over (default 60 s; this worker's own
    /// heartbeat goes every quarter of it, at most every 10 s). A study
    /// folder knows at once when a worker's process is gone; a database
    /// needs the silence.
    pub fn worker_grace(mut self, grace: Duration) -> Tuner {
        self.grace = grace;
        self
    }

    /// How often a trial whose worker was lost is started again (default
    /// 3); after that it fails.
    pub fn retries(mut self, retries: usize) -> Tuner {
        self.retries = retries;
        self
    }

    /// Where trials keep checkpoints (default: `checkpoints/` in the study's
    /// folder, none for a storage without one). Trials taken over on another
    /// machine continue from their checkpoints only if this folder is shared
    /// (a network file system); otherwise they start over.
    pub fn checkpoints(mut self, dir: impl Into<std::path::PathBuf>) -> Tuner {
        self.checkpoints = Some(dir.into());
        self
    }

    /// Watches `switch`: when it is flipped, the study stops at once (see
    /// [`Interrupt`]).
    pub fn interrupt(mut self, switch: Interrupt) -> Tuner {
        self.interrupt = Some(switch);
        self
    }

    /// Runs the study with real training on worker threads; `build` makes a
    /// trial's model from its configuration and context. It runs on the
    /// worker threads, which the tuner does not wait for when a trial hangs,
    /// so it owns what it uses (`move` an `Arc` of your data into it).
    ///
    /// Errors: invalid settings, no budget, an unusable storage or one that
    /// holds another study, an objective the policy cannot use, a score
    /// outside the objective's range, a sampler failure. Failures inside
    /// trials (errors, panics, non-finite scores, time limits) are recorded,
    /// not returned.
    pub fn run<T, F>(self, build: F) -> Result<Study>
    where
        T: Trainable + 'static,
        F: Fn(&Config, &TrialContext) -> std::result::Result<T, TrialError> + Send + Sync + 'static,
    {
        let b = self.budget;
        if b.trials.is_none() && b.epochs.is_none() && b.wall.is_none() {
            return Err(Error::invalid(
                "budget",
                "set at least one of trials, epochs and wall time",
            ));
        }
        if b.trial_time == Some(Duration::ZERO) {
            return Err(Error::invalid(
                "budget",
                "a trial time of zero would fail every trial",
            ));
        }
        let workers = self.workers;
        let threads = self.threads.unwrap_or_else(|| {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            (cores / workers.max(1)).max(1)
        });
        if threads == 0 {
            return Err(Error::invalid("threads", "need at least one per trial"));
        }
        let interrupt = self.interrupt.clone();
        let checkpoints = self.checkpoints.clone();
        let (mut ctl, created) = self.controller()?;
        if created {
            ctl.storage
                .record_command(&crate::study::Command::current()?)?;
        }
        if let Some(dir) = ctl.folder().map(|d| d.to_path_buf()) {
            ctl.checkpoints = Some(dir.join("checkpoints"));
        }
        if let Some(dir) = checkpoints {
            ctl.checkpoints = Some(dir);
        }
        let start = Instant::now();
        let offset = ctl.study.elapsed;
        let clock = move || offset + start.elapsed().as_secs_f64();
        let result = threads::run(
            &mut ctl,
            build,
            workers,
            threads,
            &clock,
            interrupt.as_ref(),
        );
        ctl.finish();
        result.map(|_| ctl.study)
    }

    /// Runs the study on a simulated clock (one epoch = one unit of time on
    /// one of the workers), as replay of logged curves does. The wall-clock
    /// budgets do not apply; checkpoints are not used.
    pub fn simulate<T, F>(self, build: F) -> Result<Study>
    where
        T: Trainable,
        F: Fn(&Config, &TrialContext) -> std::result::Result<T, TrialError>,
    {
        let workers = self.workers;
        let interrupt = self.interrupt.clone();
        let (mut ctl, _) = self.controller()?;
        ctl.budget.wall = None;
        ctl.budget.trial_time = None;
        let result = simulated::run(&mut ctl, &build, workers, interrupt.as_ref());
        ctl.finish();
        result.map(|_| ctl.study)
    }

    /// The controller, with a new or continued study.
    fn controller(self) -> Result<(Controller, bool)> {
        if self.horizon == 0 {
            return Err(Error::invalid("horizon", "must be at least one epoch"));
        }
        if self.workers == 0 {
            return Err(Error::invalid("workers", "need at least one worker"));
        }
        let sampler = match self.sampler {
            Some(s) => s,
            None => Box::new(GpSampler::new(self.space.clone(), GpSettings::default())?),
        };
        let policy = self
            .policy
            .unwrap_or_else(|| Box::new(LearningCurve::default()));
        let header = Header {
            version: VERSION,
            space: self.space,
            objective: self.objective,
            horizon: self.horizon,
            seed: self.seed,
            sampler: Component {
                name: sampler.name(),
                settings: sampler.settings(),
            },
            policy: Component {
                name: policy.name().to_string(),
                settings: policy.settings(),
            },
        };
        let measure = match (self.budget.epochs, self.budget.trials, self.budget.wall) {
            (Some(e), _, _) => Some(Measure::Epochs(e as u64)),
            (None, Some(t), _) => Some(Measure::Epochs((t * self.horizon) as u64)),
            (None, None, Some(w)) => Some(Measure::Seconds(w.as_secs())),
            _ => None,
        };
        let mut observers: Vec<Box<dyn Observer>> =
            vec![Box::new(Progress::new(self.output, self.horizon, measure))];
        observers.extend(self.observers);
        Controller::open(Parts {
            header,
            storage: self.storage.unwrap_or_else(|| Box::new(Memory::new())),
            sampler,
            policy,
            observers,
            budget: self.budget,
            grace: self.grace,
            retries: self.retries,
        })
    }
}

/// How a trial's own code ended it.
#[derive(Debug)]
enum Failure {
    /// An error or a panic.
    Error(String),
    /// It asked to be pruned ([`Pruned`]).
    Pruned(String),
}

/// Runs `f` and turns an error or a panic into a [`Failure`].
fn guarded<R>(
    f: impl FnOnce() -> std::result::Result<R, TrialError>,
) -> std::result::Result<R, Failure> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(e)) => Err(match e.downcast_ref::<Pruned>() {
            Some(p) => Failure::Pruned(p.reason.clone()),
            None => Failure::Error(e.to_string()),
        }),
        Err(p) => Err(Failure::Error(controller::panic_message(p))),
    }
}
