//! The controller: every decision of a study, whoever drives it.
//!
//! It owns this worker's view of the study (a [`Study`] folded from the
//! storage's events), the sampler, the stopping policy and the observers.
//! Every event it makes goes the same way:
//!
//! ```text
//! decision ─▶ storage.append (acknowledged; others' new events come back first)
//!          ─▶ study.apply ─▶ observers (progress, user callbacks)
//! ```
//!
//! Events other workers appended are folded in the same way when they come
//! back, and the sampler replays them (an ask for each start, a tell for
//! each reported end), so that its state follows the study's event order —
//! which is also how a resumed study rebuilds it.
//!
//! What the sampler is told (it minimises; maximised objectives are
//! negated): a completed trial's final score; a trial stopped by a
//! learning-curve assessment, its predicted final value with the predictive
//! variance (Domhan et al. 2015, Section 4); a trial stopped by another
//! policy or pruned by its own code, its last score; a diverged trial, the
//! worst score seen in the study. Failed and cut trials are not reported
//! (as Optuna ignores failed trials).

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::Budget;
use crate::error::{Error, Result};
use crate::observe::{Flow, Observer};
use crate::policy::{AssessJob, Assessment, Check, StoppingPolicy, StudyView, TrialView};
use crate::sampler::Sampler;
use crate::seed;
use crate::space::Config;
use crate::storage::{Cursor, Outcome, Storage};
use crate::study::{Event, Header, Status, Study};
use crate::trial::EpochReport;

/// Attempts at claiming a trial before giving up (each lost race means
/// another worker claimed one).
const CLAIMS: usize = 1000;

/// Proposals of another worker's configuration asked again, at most, before
/// one is trained anyway.
const REPEATS: usize = 20;

/// A trial for a worker to run.
#[derive(Debug, Clone)]
pub(super) struct Assignment {
    pub id: usize,
    pub config: Config,
    pub seed: u64,
    /// Continue from the checkpoint after this epoch (a trial taken over
    /// from a dead worker, or interrupted by a crash).
    pub resume_from: Option<usize>,
}

/// The controller's answer after an epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Directive {
    Continue,
    End,
}

/// A trial this worker runs.
struct Own {
    /// When it was assigned (controller time).
    started: f64,
    /// An assessment that said stop, applied at the next epoch boundary.
    stop_after: Option<Assessment>,
    /// An assessment is running.
    assessing: bool,
}

impl Own {
    fn new(started: f64) -> Own {
        Own {
            started,
            stop_after: None,
            assessing: false,
        }
    }
}

/// The decision state of a study; see the module documentation.
pub(super) struct Controller {
    pub study: Study,
    pub(super) storage: Box<dyn Storage>,
    cursor: Cursor,
    /// This worker's name in the storage.
    owner: String,
    sampler: Box<dyn Sampler>,
    policy: Box<dyn StoppingPolicy>,
    observers: Vec<Box<dyn Observer>>,
    pub budget: Budget,
    /// Current time (seconds, or simulated epochs).
    pub now: f64,
    /// Where trials keep checkpoints (none: no checkpoints).
    pub checkpoints: Option<PathBuf>,
    own: HashMap<usize, Own>,
    /// An observer asked to stop the study.
    stopped: bool,
    last_heartbeat: Instant,
    /// How long another worker may be silent before its trials are taken
    /// over (backends that know better, like the journal's process locks,
    /// answer at once).
    pub grace: Duration,
    /// How often a trial is started again after its worker was lost.
    retries: usize,
}

/// What a controller is made of.
pub(super) struct Parts {
    pub header: Header,
    pub storage: Box<dyn Storage>,
    pub sampler: Box<dyn Sampler>,
    pub policy: Box<dyn StoppingPolicy>,
    pub observers: Vec<Box<dyn Observer>>,
    pub budget: Budget,
    pub grace: Duration,
    pub retries: usize,
}

/// `stored` with the settings it lacks read as their defaults in this
/// version (see [`crate::study::Component::with_defaults`]), for the
/// samplers and policies foresight names; a user-built component's stored
/// settings are taken as they are.
fn with_defaults(stored: &Header, mine: &Header) -> Header {
    let policy = crate::policy::parse(&stored.policy.name)
        .map(|p| p.settings())
        .unwrap_or_default();
    // A GP sampler is named `gp-hedge(ucb,pi)` or `gp(ei)`: its spec name
    // is the part before the arms.
    let spec = stored.sampler.name.split('(').next().unwrap_or_default();
    let sampler = spec
        .parse::<crate::sampler::SamplerSpec>()
        .and_then(|s| s.build(&mine.space, stored.seed))
        .map(|s| s.settings())
        .unwrap_or_default();
    Header {
        sampler: stored.sampler.with_defaults(&sampler),
        policy: stored.policy.with_defaults(&policy),
        ..stored.clone()
    }
}

impl Controller {
    /// Opens the study in `parts.storage`: creates it, or checks that the
    /// stored one is this study and folds its events in (the sampler
    /// replaying them). Returns whether this worker created it.
    pub fn open(parts: Parts) -> Result<(Controller, bool)> {
        let Parts {
            header,
            mut storage,
            mut sampler,
            policy,
            observers,
            budget,
            grace,
            retries,
        } = parts;
        header.objective.validate()?;
        policy.accepts(&header.objective)?;
        sampler.reseed(header.seed);
        let owner = crate::storage::worker_name();
        storage.heartbeat(&owner)?;
        let (mut events, mut cursor) = storage.read(Cursor::default())?;
        let mut created = false;
        if events.is_empty() {
            let a = storage.append(&owner, cursor, &[Event::Study(header.clone())])?;
            cursor = a.cursor;
            match a.outcome {
                Outcome::Stored => created = true,
                // Another worker created it first.
                Outcome::Rejected(_) => events = a.earlier,
            }
        }
        if !created {
            match events.first() {
                Some(Event::Study(stored)) => {
                    header.check(&with_defaults(stored, &header), &storage.describe())?
                }
                _ => {
                    return Err(Error::Storage {
                        storage: storage.describe(),
                        message: "does not start with a study header".into(),
                    });
                }
            }
        }
        let mut ctl = Controller {
            study: Study::new(header),
            storage,
            cursor,
            owner,
            sampler,
            policy,
            observers,
            budget,
            now: 0.0,
            checkpoints: None,
            own: HashMap::new(),
            stopped: false,
            last_heartbeat: Instant::now(),
            grace,
            retries,
        };
        for e in events.iter().skip(1) {
            ctl.absorb(e, false)?;
        }
        ctl.now = ctl.study.elapsed;
        for o in &mut ctl.observers {
            o.on_open(&ctl.study);
        }
        Ok((ctl, created))
    }

    /// The study's own folder, if its storage has one.
    pub fn folder(&self) -> Option<&Path> {
        self.storage.folder()
    }

    /// Tells the observers this worker is done.
    pub fn finish(&mut self) {
        for o in &mut self.observers {
            o.on_finish(&self.study);
        }
    }

    /// Folds in an event another worker (or an earlier run) appended; the
    /// sampler replays it.
    fn absorb(&mut self, e: &Event, notify: bool) -> Result<()> {
        match e {
            Event::Start { .. } => {
                let pending = self.pending();
                match self.sampler.ask(&pending) {
                    Ok(_) | Err(Error::Exhausted) => {}
                    Err(e) => return Err(e),
                }
            }
            Event::End {
                trial,
                value: Some(v),
                variance,
                ..
            } => {
                if let Some(t) = self.study.trials.get(*trial)
                    && t.status.is_none()
                {
                    let config = t.config.clone();
                    let sign = self.study.header.objective.sign();
                    self.sampler
                        .tell(&config, sign * v, variance.unwrap_or(0.0))?;
                }
            }
            _ => {}
        }
        self.study.apply(e);
        if notify {
            self.notify(e);
        }
        Ok(())
    }

    /// Appends `events`; returns whether they were stored (a rejected
    /// batch changes nothing but what others appended, which is folded in).
    fn emit(&mut self, events: &[Event]) -> Result<bool> {
        let a = self.storage.append(&self.owner, self.cursor, events)?;
        self.cursor = a.cursor;
        for e in &a.earlier {
            self.absorb(e, true)?;
        }
        match a.outcome {
            Outcome::Stored => {
                for e in events {
                    self.study.apply(e);
                    self.notify(e);
                }
                Ok(true)
            }
            Outcome::Rejected(_) => Ok(false),
        }
    }

    /// Publishes an event to the observers; a panicking observer is
    /// dropped.
    fn notify(&mut self, e: &Event) {
        let study = &self.study;
        let mut stop = false;
        self.observers.retain_mut(|o| {
            match catch_unwind(AssertUnwindSafe(|| o.on_event(e, study))) {
                Ok(Flow::Continue) => true,
                Ok(Flow::Stop) => {
                    stop = true;
                    true
                }
                Err(p) => {
                    eprintln!(
                        "foresight: an observer {}; it is dropped and the study goes on",
                        panic_message(p)
                    );
                    false
                }
            }
        });
        self.stopped |= stop;
    }

    /// How often this worker says it is alive: a quarter of the grace, at
    /// most every 10 s.
    pub fn heartbeat_every(&self) -> Duration {
        (self.grace / 4).min(Duration::from_secs(10))
    }

    /// Says this worker is alive, if it is time to.
    pub fn heartbeat(&mut self) -> Result<()> {
        if self.last_heartbeat.elapsed() >= self.heartbeat_every() {
            self.storage.heartbeat(&self.owner)?;
            self.last_heartbeat = Instant::now();
        }
        Ok(())
    }

    /// Folds in what other workers appended since this worker last heard
    /// from the storage.
    pub fn sync(&mut self) -> Result<()> {
        let (events, cursor) = self.storage.read(self.cursor)?;
        self.cursor = cursor;
        for e in &events {
            self.absorb(e, true)?;
        }
        Ok(())
    }

    /// Whether other workers' trials are running (this worker stays for
    /// them: their worker may be lost, and the trials taken over).
    pub fn others_running(&self) -> bool {
        self.study.running().any(|t| !self.own.contains_key(&t.id))
    }

    /// Whether a running trial may go on.
    pub fn budget_left(&self) -> bool {
        let b = &self.budget;
        !self.stopped
            && b.trials
                .is_none_or(|n| self.study.trials.len() < n || self.study.running().count() > 0)
            && b.epochs.is_none_or(|n| self.study.epochs_used < n)
            && b.wall.is_none_or(|w| self.now < w.as_secs_f64())
    }

    /// Whether a new trial may start.
    fn may_start(&self) -> bool {
        self.budget_left()
            && self
                .budget
                .trials
                .is_none_or(|n| self.study.trials.len() < n)
    }

    /// Whether the wall-clock budget is spent.
    pub fn wall_over(&self) -> bool {
        self.budget
            .wall
            .is_some_and(|w| self.now >= w.as_secs_f64())
    }

    fn pending(&self) -> Vec<Config> {
        self.study.running().map(|t| t.config.clone()).collect()
    }

    /// Starts a new trial, if the budget allows and the sampler has one.
    pub fn start(&mut self) -> Result<Option<Assignment>> {
        let mut repeats = 0;
        for _ in 0..CLAIMS {
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
            // Another worker with the same sampler state may have proposed
            // it already: ask again rather than train it twice (unless the
            // sampler insists: a small discrete space can run out).
            if repeats < REPEATS
                && self
                    .study
                    .trials
                    .iter()
                    .any(|t| t.owner != self.owner && t.config == config)
            {
                repeats += 1;
                continue;
            }
            let id = self.study.trials.len();
            let seed = trial_seed(self.study.header.seed, id);
            let claimed = self.emit(&[Event::Start {
                trial: id,
                config: config.clone(),
                seed,
                owner: self.owner.clone(),
                t: self.now,
            }])?;
            if claimed {
                self.own.insert(id, Own::new(self.now));
                return Ok(Some(Assignment {
                    id,
                    config,
                    seed,
                    resume_from: None,
                }));
            }
            // Another worker claimed trial `id`; its start is folded in now.
        }
        Err(Error::Storage {
            storage: self.storage.describe(),
            message: format!("no trial could be claimed in {CLAIMS} attempts"),
        })
    }

    /// Running trials whose owner is gone (a crash, a killed process): up
    /// to `limit` are claimed for this worker, to run again from their last
    /// checkpoint.
    pub fn orphans(&mut self, limit: usize) -> Result<Vec<Assignment>> {
        let mut found = Vec::new();
        let candidates: Vec<(usize, String)> = self
            .study
            .running()
            .filter(|t| t.owner != self.owner && !self.own.contains_key(&t.id))
            .map(|t| (t.id, t.owner.clone()))
            .collect();
        for (id, from) in candidates {
            if found.len() >= limit || !self.budget_left() {
                break;
            }
            if self.storage.is_alive(&from, self.grace)? {
                continue;
            }
            let claimed = self.emit(&[Event::Takeover {
                trial: id,
                owner: self.owner.clone(),
                from: from.clone(),
                t: self.now,
            }])?;
            if claimed {
                self.own.insert(id, Own::new(self.now));
                let lost = self.study.trials[id].restarts;
                if lost > self.retries {
                    self.failed(
                        id,
                        format!(
                            "its worker was lost {lost} times (last {from}); not started again"
                        ),
                    )?;
                    continue;
                }
                let t = &self.study.trials[id];
                found.push(Assignment {
                    id,
                    config: t.config.clone(),
                    seed: t.seed,
                    resume_from: Some(t.checkpoint.unwrap_or(0)),
                });
            }
        }
        Ok(found)
    }

    /// Records the report after `epoch` and decides whether the trial goes
    /// on; may hand back an assessment to run.
    pub fn epoch(
        &mut self,
        id: usize,
        epoch: usize,
        report: EpochReport,
    ) -> Result<(Directive, Option<AssessJob>)> {
        if !self.own.contains_key(&id) {
            // It ended meanwhile (a time limit, the budget, a lost claim).
            return Ok((Directive::End, None));
        }
        let value = report.score;
        let objective = self.study.header.objective;
        if value.is_finite() && !objective.contains(value) {
            return Err(objective.out_of_range(value, id, epoch));
        }
        let stored = self.emit(&[Event::Epoch {
            trial: id,
            epoch,
            value: value.is_finite().then_some(value),
            metrics: report
                .metrics
                .into_iter()
                .map(|(k, v)| (k, v.is_finite().then_some(v)))
                .collect(),
            attrs: report.attrs,
            t: self.now,
        }])?;
        if !stored {
            // Another worker owns the trial now.
            self.own.remove(&id);
            return Ok((Directive::End, None));
        }
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
            self.cut(id)?;
            return Ok((Directive::End, None));
        }
        if self.own[&id].stop_after.is_some() && self.apply_stop(id)? {
            return Ok((Directive::End, None));
        }
        let views = trial_views(&self.study);
        let check = self.policy.check(id, &study_view(&self.study, &views));
        match check {
            Check::Continue => Ok((Directive::Continue, None)),
            Check::Stop => {
                self.end(id, Status::Stopped, Some((value, 0.0)), None)?;
                Ok((Directive::End, None))
            }
            Check::Assess(job) => {
                let own = self.own.get_mut(&id).expect("own");
                let job = (!own.assessing).then_some(job);
                own.assessing = true;
                Ok((Directive::Continue, job))
            }
        }
    }

    /// Records an assessment of `id` made after `epoch` (or why it failed);
    /// returns whether it asks to stop a trial that is still running. A
    /// failed assessment clears the way for the next check.
    pub fn assessed(
        &mut self,
        id: usize,
        epoch: usize,
        result: std::result::Result<Assessment, String>,
    ) -> Result<bool> {
        let Some(own) = self.own.get_mut(&id) else {
            return Ok(false);
        };
        own.assessing = false;
        let event = match &result {
            Ok(a) => Event::Prediction {
                trial: id,
                epoch,
                p_better: a.p_better,
                mean: a.final_value.map(|f| f.0),
                variance: a.final_value.map(|f| f.1),
                band: a.band.clone(),
                stop: a.stop,
                error: None,
                t: self.now,
            },
            Err(message) => Event::Prediction {
                trial: id,
                epoch,
                p_better: None,
                mean: None,
                variance: None,
                band: Vec::new(),
                stop: false,
                error: Some(message.clone()),
                t: self.now,
            },
        };
        if !self.emit(&[event])? {
            self.own.remove(&id);
            return Ok(false);
        }
        match result {
            Ok(a) if a.stop => {
                if let Some(own) = self.own.get_mut(&id) {
                    own.stop_after = Some(a);
                }
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Stops `id` on the assessment that asked for it, if the policy says
    /// the stop still holds against the trial's newest scores (it may have
    /// improved while the assessment ran); returns whether it stopped.
    pub fn apply_stop(&mut self, id: usize) -> Result<bool> {
        let Some(a) = self.own.get_mut(&id).and_then(|o| o.stop_after.take()) else {
            return Ok(false);
        };
        let views = trial_views(&self.study);
        if !self
            .policy
            .still_stops(id, &study_view(&self.study, &views))
        {
            return Ok(false);
        }
        let last = self.study.trials[id].scores.last().copied();
        let told = a.final_value.or(last.map(|v| (v, 0.0)));
        self.end(id, Status::Stopped, told, None)?;
        Ok(true)
    }

    pub fn failed(&mut self, id: usize, message: String) -> Result<()> {
        self.end(id, Status::Failed, None, Some(message))
    }

    /// The trial asked to be pruned: its last score goes to the sampler.
    pub fn pruned(&mut self, id: usize, reason: String) -> Result<()> {
        let last = self
            .study
            .trials
            .get(id)
            .and_then(|t| t.scores.last().copied());
        self.end(id, Status::Pruned, last.map(|v| (v, 0.0)), Some(reason))
    }

    pub fn cut(&mut self, id: usize) -> Result<()> {
        self.end(id, Status::Cut, None, None)
    }

    /// This worker's trials that have run longer than the per-trial limit.
    pub fn overdue(&self) -> Vec<usize> {
        let Some(limit) = self.budget.trial_time else {
            return Vec::new();
        };
        let mut ids: Vec<usize> = self
            .own
            .iter()
            .filter(|(_, o)| self.now - o.started >= limit.as_secs_f64())
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        ids
    }

    /// When the first of this worker's trials reaches the per-trial limit.
    pub fn next_deadline(&self) -> Option<f64> {
        let limit = self.budget.trial_time?.as_secs_f64();
        self.own
            .values()
            .map(|o| o.started + limit)
            .min_by(f64::total_cmp)
    }

    pub fn checkpoint(&mut self, id: usize, epoch: usize) -> Result<()> {
        if !self.own.contains_key(&id) {
            return Ok(());
        }
        let previous = self.study.trials[id].checkpoint;
        self.emit(&[Event::Checkpoint {
            trial: id,
            epoch,
            t: self.now,
        }])?;
        if let (Some(root), Some(p)) = (&self.checkpoints, previous)
            && p != epoch
        {
            let _ = std::fs::remove_dir_all(epoch_dir(&trial_dir(root, id), p));
        }
        Ok(())
    }

    pub fn restarted(&mut self, id: usize, epoch: usize) -> Result<()> {
        if !self.own.contains_key(&id) {
            return Ok(());
        }
        self.emit(&[Event::Restart {
            trial: id,
            epoch,
            t: self.now,
        }])?;
        Ok(())
    }

    /// Ends a trial, telling the sampler `told` (objective units) if given.
    fn end(
        &mut self,
        id: usize,
        status: Status,
        told: Option<(f64, f64)>,
        message: Option<String>,
    ) -> Result<()> {
        if self.own.remove(&id).is_none() {
            return Ok(());
        }
        // Only finite results reach the sampler.
        let told = told.filter(|(v, var)| v.is_finite() && var.is_finite() && *var >= 0.0);
        let stored = self.emit(&[Event::End {
            trial: id,
            status,
            value: told.map(|t| t.0),
            variance: told.map(|t| t.1),
            message,
            t: self.now,
        }])?;
        if stored && let Some((v, var)) = told {
            let config = self.study.trials[id].config.clone();
            let sign = self.study.header.objective.sign();
            self.sampler.tell(&config, sign * v, var)?;
        }
        if let Some(root) = &self.checkpoints {
            let _ = std::fs::remove_dir_all(trial_dir(root, id));
        }
        Ok(())
    }

    /// The worst finite score of the study so far.
    fn worst_score(&self) -> Option<f64> {
        let objective = self.study.header.objective;
        self.study
            .trials
            .iter()
            .flat_map(|t| t.scores.iter().copied())
            .filter(|v| v.is_finite())
            .reduce(|a, b| if objective.better(a, b) { b } else { a })
    }
}

/// Every trial as policies see it.
fn trial_views(study: &Study) -> Vec<TrialView<'_>> {
    study
        .trials
        .iter()
        .map(|t| TrialView {
            id: t.id,
            scores: &t.scores,
            completed: t.status == Some(Status::Completed),
            running: t.status.is_none(),
        })
        .collect()
}

/// The study as policies see it.
fn study_view<'a>(study: &Study, trials: &'a [TrialView<'a>]) -> StudyView<'a> {
    StudyView {
        objective: study.header.objective,
        horizon: study.header.horizon,
        trials,
        incumbent: study.incumbent(),
        seed: study.header.seed,
    }
}

/// The seed of trial `id` (SplitMix64 of the study seed and the number).
fn trial_seed(seed: u64, id: usize) -> u64 {
    seed::mix64(seed ^ (id as u64 + 1).wrapping_mul(seed::GOLDEN))
}

pub(super) fn trial_dir(root: &Path, id: usize) -> PathBuf {
    root.join(format!("trial-{id:04}"))
}

pub(super) fn epoch_dir(trial: &Path, epoch: usize) -> PathBuf {
    trial.join(format!("epoch-{epoch:04}"))
}

/// The message of a panic payload.
pub(super) fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    let text = p
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into());
    format!("panicked: {text}")
}
