//! Offline replay of logged learning curves: protocol R of
//! `docs/benchmarks.md`.
//!
//! A *task* is a pool of configurations whose whole learning curves were
//! logged. Replay runs the real tuner ([`Tuner::simulate`]: the same
//! controller, samplers and stopping policies as real training) on a
//! simulated clock, with each logged curve playing the part of a
//! [`Trainable`]: a trial reveals one logged value per epoch. So a user can
//! measure a tuning strategy on past runs before spending compute on new
//! ones.
//!
//! The pool's configurations are encoded in a unit cube as protocol R says:
//! each numeric hyperparameter by its rank in the pool (the empirical CDF,
//! ties averaged, scaled to `[0, 1]`), each categorical one one-hot. Rank
//! encoding keeps a uniform proposal close to uniform over the pool. Samplers
//! choose among the unused configurations of the pool
//! ([`Sampler::ask_among`], the finite-candidate mode).

use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::acquisition::Acquisition;
use crate::curve::Metric;
use crate::curveset::{CurveRecord, ParamValue};
use crate::error::{Error, Result};
use crate::journal::Status;
use crate::policy::{
    Hyperband, LearningCurve, MedianRule, NoStopping, StoppingPolicy, SuccessiveHalving,
};
use crate::progress::Output;
use crate::sampler::{GpSampler, GpSettings, RandomSampler, Sampler};
use crate::space::{Config, Param, Space, Value};
use crate::stats::median;
use crate::trainable::{Trainable, TrialError};
use crate::tuner::{Budget, Study, Tuner};

/// One task: a pool of configurations with their logged curves.
#[derive(Debug, Clone)]
pub struct Pool {
    pub source: String,
    pub task: String,
    pub metric: Metric,
    /// Length of every curve, `T`.
    pub horizon: usize,
    /// The encoded cube.
    pub space: Space,
    /// Each configuration, encoded (rank or one-hot), in pool order.
    pub configs: Vec<Config>,
    /// Logged values (`NaN` where the run diverged).
    pub curves: Vec<Vec<f64>>,
    /// Each curve's `config_id`.
    pub ids: Vec<u64>,
}

impl Pool {
    /// Groups curve records into pools, one per `(source, task)`, in order of
    /// first appearance. Errors: a task whose curves differ in length or in
    /// metric, or whose configurations name different hyperparameters.
    pub fn from_records(records: Vec<CurveRecord>) -> Result<Vec<Pool>> {
        let mut groups: Vec<((String, String), Vec<CurveRecord>)> = Vec::new();
        for r in records {
            let key = (r.source.clone(), r.task.clone());
            match groups.iter_mut().find(|g| g.0 == key) {
                Some(g) => g.1.push(r),
                None => groups.push((key, vec![r])),
            }
        }
        groups.into_iter().map(|(_, rs)| Pool::new(rs)).collect()
    }

    /// The pool of one task's records.
    pub fn new(records: Vec<CurveRecord>) -> Result<Pool> {
        let first = records
            .first()
            .ok_or_else(|| Error::invalid("pool", "no curves"))?;
        let (source, task) = (first.source.clone(), first.task.clone());
        let what = |m: String| Error::invalid("pool", format!("task `{task}`: {m}"));
        let horizon = first.values.len();
        let names: Vec<String> = first.config.keys().cloned().collect();
        for r in &records {
            if r.values.len() != horizon {
                return Err(what(format!(
                    "curves of different lengths ({} and {}, config {}): replay needs equal lengths",
                    horizon,
                    r.values.len(),
                    r.config_id
                )));
            }
            if r.higher_is_better != first.higher_is_better {
                return Err(what("curves disagree on higher_is_better".into()));
            }
            if !r.config.keys().eq(names.iter()) {
                return Err(what(format!(
                    "config {} names different hyperparameters than config {}",
                    r.config_id, first.config_id
                )));
            }
        }
        if horizon < 2 {
            return Err(what("curves need at least two epochs".into()));
        }
        // Encode each hyperparameter.
        let n = records.len();
        let mut params = Vec::new();
        let mut columns: Vec<Vec<Value>> = Vec::new();
        for name in &names {
            let numbers: Option<Vec<f64>> = records
                .iter()
                .map(|r| match &r.config[name] {
                    ParamValue::Number(x) => Some(*x),
                    ParamValue::Text(_) => None,
                })
                .collect();
            match numbers {
                Some(x) => {
                    params.push(Param {
                        name: name.clone(),
                        domain: crate::space::Domain::Float {
                            low: 0.0,
                            high: 1.0,
                            log: false,
                        },
                        condition: None,
                    });
                    columns.push(ranks(&x).into_iter().map(Value::Float).collect());
                }
                None => {
                    let text: Vec<String> = records
                        .iter()
                        .map(|r| match &r.config[name] {
                            ParamValue::Number(x) => x.to_string(),
                            ParamValue::Text(s) => s.clone(),
                        })
                        .collect();
                    let mut choices = text.clone();
                    choices.sort();
                    choices.dedup();
                    params.push(Param {
                        name: name.clone(),
                        domain: crate::space::Domain::Categorical { choices },
                        condition: None,
                    });
                    columns.push(text.into_iter().map(Value::Str).collect());
                }
            }
        }
        if params.is_empty() {
            return Err(what("configurations have no hyperparameters".into()));
        }
        let space = Space::new(params)?;
        let configs = (0..n)
            .map(|i| {
                names
                    .iter()
                    .zip(&columns)
                    .map(|(name, col)| (name.clone(), col[i].clone()))
                    .collect()
            })
            .collect();
        Ok(Pool {
            source,
            task,
            metric: Metric::from_higher_is_better(first.higher_is_better),
            horizon,
            space,
            configs,
            curves: records.iter().map(|r| r.values.clone()).collect(),
            ids: records.iter().map(|r| r.config_id).collect(),
        })
    }

    /// Final value of configuration `i`; the metric's worst for a curve
    /// that diverged.
    pub fn final_value(&self, i: usize) -> f64 {
        let c = &self.curves[i];
        if c.iter().all(|v| v.is_finite()) {
            c[self.horizon - 1]
        } else {
            self.metric.worst()
        }
    }

    /// `(y*, y_med)`: the best and the median final value of the pool
    /// (non-finite finals count as worst).
    pub fn reference_values(&self) -> (f64, f64) {
        let mut finals: Vec<f64> = (0..self.curves.len())
            .map(|i| self.final_value(i))
            .collect();
        // Best first.
        finals.sort_by(|a, b| match self.metric {
            Metric::Accuracy => b.total_cmp(a),
            Metric::Loss => a.total_cmp(b),
        });
        let n = finals.len();
        let med = if n % 2 == 1 {
            finals[n / 2]
        } else {
            let (a, b) = (finals[n / 2 - 1], finals[n / 2]);
            if a.is_finite() && b.is_finite() {
                0.5 * (a + b)
            } else {
                b
            }
        };
        (finals[0], med)
    }

    /// Normalised regret `|y* − y| / |y* − y_med|` of an incumbent value
    /// (`inf` without one).
    pub fn regret(&self, incumbent: Option<f64>) -> f64 {
        let (best, med) = self.reference_values();
        match incumbent {
            None => f64::INFINITY,
            Some(y) => {
                let scale = (best - med).abs();
                if scale > 0.0 && scale.is_finite() {
                    (best - y).abs() / scale
                } else {
                    (best - y).abs()
                }
            }
        }
    }
}

/// Ranks scaled to `[0, 1]`, ties averaged.
fn ranks(x: &[f64]) -> Vec<f64> {
    let n = x.len();
    if n < 2 {
        return vec![0.5; n];
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    let mut r = vec![0.0; n];
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j + 1 < n && x[order[j + 1]] == x[order[i]] {
            j += 1;
        }
        let avg = 0.5 * (i + j) as f64;
        for &k in &order[i..=j] {
            r[k] = avg / (n - 1) as f64;
        }
        i = j + 1;
    }
    r
}

/// A sampler restricted to a pool: each ask chooses among the unused
/// configurations (via the inner sampler's finite-candidate mode); an
/// exhausted pool ends the study. The chosen pool indices, in order of
/// asking, are shared with the code that builds the trials.
pub struct PoolSampler {
    inner: Box<dyn Sampler + Send>,
    configs: Vec<Config>,
    used: Vec<bool>,
    chosen: Arc<Mutex<Vec<usize>>>,
}

impl PoolSampler {
    pub fn new(inner: Box<dyn Sampler + Send>, configs: Vec<Config>) -> PoolSampler {
        PoolSampler {
            inner,
            used: vec![false; configs.len()],
            configs,
            chosen: Arc::default(),
        }
    }

    /// Pool indices chosen so far, in order (trial `k` runs `chosen[k]`).
    pub fn chosen(&self) -> Arc<Mutex<Vec<usize>>> {
        self.chosen.clone()
    }
}

impl Sampler for PoolSampler {
    fn name(&self) -> String {
        self.inner.name()
    }

    fn ask(&mut self, pending: &[Config]) -> Result<Config> {
        let unused: Vec<usize> = (0..self.configs.len()).filter(|&i| !self.used[i]).collect();
        if unused.is_empty() {
            return Err(Error::Exhausted);
        }
        let candidates: Vec<Config> = unused.iter().map(|&i| self.configs[i].clone()).collect();
        let k = self.inner.ask_among(&candidates, pending)?;
        let i = unused[k];
        self.used[i] = true;
        self.chosen.lock().expect("not poisoned").push(i);
        Ok(self.configs[i].clone())
    }

    fn ask_among(&mut self, candidates: &[Config], pending: &[Config]) -> Result<usize> {
        self.inner.ask_among(candidates, pending)
    }

    fn tell(&mut self, config: &Config, value: f64, variance: f64) -> Result<()> {
        self.inner.tell(config, value, variance)
    }
}

/// A logged curve as a [`Trainable`]: epoch `e` reveals `values[e - 1]`.
#[derive(Debug, Clone)]
pub struct LoggedCurve<'a> {
    values: &'a [f64],
    epoch: usize,
}

impl<'a> LoggedCurve<'a> {
    pub fn new(values: &'a [f64]) -> Self {
        LoggedCurve { values, epoch: 0 }
    }
}

impl Trainable for LoggedCurve<'_> {
    fn train_epoch(&mut self) -> std::result::Result<f64, TrialError> {
        let v = self
            .values
            .get(self.epoch)
            .copied()
            .ok_or("the logged curve has no more epochs")?;
        self.epoch += 1;
        Ok(v)
    }
}

/// The figures of one replayed tuning run (protocol R).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunFigures {
    pub source: String,
    pub task: String,
    pub sampler: String,
    pub policy: String,
    pub seed: u64,
    /// Simulated parallel workers.
    pub workers: usize,
    #[serde(rename = "T")]
    pub horizon: usize,
    pub budget: usize,
    /// Regret after 5T, 10T, 20T and 50T epochs.
    #[serde(
        rename = "r_5T",
        serialize_with = "finite_or_inf",
        deserialize_with = "de_inf"
    )]
    pub r_5t: f64,
    #[serde(
        rename = "r_10T",
        serialize_with = "finite_or_inf",
        deserialize_with = "de_inf"
    )]
    pub r_10t: f64,
    #[serde(
        rename = "r_20T",
        serialize_with = "finite_or_inf",
        deserialize_with = "de_inf"
    )]
    pub r_20t: f64,
    #[serde(
        rename = "r_50T",
        serialize_with = "finite_or_inf",
        deserialize_with = "de_inf"
    )]
    pub r_50t: f64,
    #[serde(
        rename = "epochs_to_r0.1",
        serialize_with = "finite_or_inf",
        deserialize_with = "de_inf"
    )]
    pub epochs_to_r01: f64,
    #[serde(
        rename = "epochs_to_r0.01",
        serialize_with = "finite_or_inf",
        deserialize_with = "de_inf"
    )]
    pub epochs_to_r001: f64,
    pub trials_started: usize,
    pub trials_stopped: usize,
    pub false_stops: usize,
    /// `(epochs, regret)` at every change of the regret.
    #[serde(serialize_with = "traj_inf", deserialize_with = "de_traj")]
    pub traj: Vec<(usize, f64)>,
}

impl RunFigures {
    /// Regret after `epochs` epochs.
    pub fn regret_at(&self, epochs: usize) -> f64 {
        regret_at(&self.traj, epochs)
    }

    /// Epochs the run needed to first reach a regret `<= target`.
    pub fn epochs_to(&self, target: f64) -> f64 {
        epochs_to(&self.traj, target)
    }
}

fn regret_at(traj: &[(usize, f64)], epochs: usize) -> f64 {
    traj.iter()
        .take_while(|p| p.0 <= epochs)
        .last()
        .map_or(f64::INFINITY, |p| p.1)
}

fn epochs_to(traj: &[(usize, f64)], target: f64) -> f64 {
    traj.iter()
        .find(|p| p.1 <= target)
        .map_or(f64::INFINITY, |p| p.0 as f64)
}

/// `inf` as the string `"inf"`, as protocol R's JSON has it.
pub fn finite_or_inf<S: serde::Serializer>(v: &f64, s: S) -> std::result::Result<S::Ok, S::Error> {
    if v.is_finite() {
        s.serialize_f64(*v)
    } else {
        s.serialize_str("inf")
    }
}

/// A number, or `"inf"` (what [`finite_or_inf`] writes).
#[derive(Deserialize)]
#[serde(untagged)]
enum NumberOrInf {
    Number(f64),
    Text(String),
}

impl NumberOrInf {
    fn value<E: serde::de::Error>(self) -> std::result::Result<f64, E> {
        match self {
            NumberOrInf::Number(v) => Ok(v),
            NumberOrInf::Text(t) if t == "inf" => Ok(f64::INFINITY),
            NumberOrInf::Text(t) => Err(E::custom(format!(
                "expected a number or \"inf\", got {t:?}"
            ))),
        }
    }
}

fn de_inf<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<f64, D::Error> {
    NumberOrInf::deserialize(d)?.value()
}

fn de_traj<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Vec<(usize, f64)>, D::Error> {
    Vec::<(usize, NumberOrInf)>::deserialize(d)?
        .into_iter()
        .map(|(e, r)| Ok((e, r.value()?)))
        .collect()
}

fn traj_inf<S: serde::Serializer>(
    t: &[(usize, f64)],
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let mut seq = s.serialize_seq(Some(t.len()))?;
    for &(e, r) in t {
        if r.is_finite() {
            seq.serialize_element(&(e, r))?;
        } else {
            seq.serialize_element(&(e, "inf"))?;
        }
    }
    seq.end()
}

/// Replays one tuning run on `pool` with budget `50·T` epochs and
/// `workers` simulated workers, and scores it as protocol R does.
pub fn run(
    pool: &Pool,
    sampler: Box<dyn Sampler + Send>,
    policy: Box<dyn StoppingPolicy>,
    seed: u64,
    workers: usize,
) -> Result<(RunFigures, Study)> {
    let t = pool.horizon;
    let budget = 50 * t;
    let sampler_name = sampler.name();
    let policy_name = policy.name().to_string();
    let pool_sampler = PoolSampler::new(sampler, pool.configs.clone());
    let chosen = pool_sampler.chosen();
    let study = Tuner::new(pool.space.clone(), pool.metric, t)
        .sampler(pool_sampler)
        .policy(policy)
        .workers(workers)
        .seed(seed)
        .budget(Budget {
            epochs: Some(budget),
            ..Budget::default()
        })
        .output(Output::Quiet)
        .simulate(|_config, ctx| {
            let i = *chosen
                .lock()
                .expect("not poisoned")
                .get(ctx.trial)
                .ok_or("no pool configuration for this trial")?;
            Ok::<_, TrialError>(LoggedCurve::new(&pool.curves[i]))
        })?;
    let chosen = chosen.lock().expect("not poisoned").clone();
    // Regret trajectory and false stops, walking the trials in the order
    // they ended.
    let mut traj: Vec<(usize, f64)> = Vec::new();
    let mut incumbent: Option<f64> = None;
    let mut false_stops = 0;
    for &(trial, epochs) in &study.ends {
        let record = &study.trials[trial];
        match record.status {
            Some(Status::Completed) => {
                let f = *record.scores.last().expect("completed");
                if incumbent.is_none_or(|b| pool.metric.better(f, b)) {
                    incumbent = Some(f);
                    let r = pool.regret(incumbent);
                    if traj.last().is_none_or(|p| p.1 != r) {
                        traj.push((epochs, r));
                    }
                }
            }
            Some(Status::Stopped) => {
                let truth = pool.final_value(chosen[trial]);
                if incumbent.is_some_and(|b| pool.metric.better(truth, b)) {
                    false_stops += 1;
                }
            }
            _ => {}
        }
    }
    let figures = RunFigures {
        source: pool.source.clone(),
        task: pool.task.clone(),
        sampler: sampler_name,
        policy: policy_name,
        seed,
        workers,
        horizon: t,
        budget,
        r_5t: regret_at(&traj, 5 * t),
        r_10t: regret_at(&traj, 10 * t),
        r_20t: regret_at(&traj, 20 * t),
        r_50t: regret_at(&traj, 50 * t),
        epochs_to_r01: epochs_to(&traj, 0.1),
        epochs_to_r001: epochs_to(&traj, 0.01),
        trials_started: study.trials.len(),
        trials_stopped: study.count(Some(Status::Stopped)),
        false_stops,
        traj,
    };
    Ok((figures, study))
}

/// Protocol R's speedup of a policy's run against the run of policy `none`
/// with the same task, sampler and seed: `E_none / E_pol`, where `E_none` is
/// the epochs `none` needed to first reach the regret it ends with and
/// `E_pol` the epochs the policy needed to reach a regret at least as low
/// (the budget if it never did).
pub fn speedup(none: &RunFigures, policy: &RunFigures) -> f64 {
    let target = none.regret_at(none.budget);
    if !target.is_finite() {
        return f64::NAN;
    }
    let e_none = none.epochs_to(target);
    let e_pol = policy.epochs_to(target).min(policy.budget as f64);
    e_none / e_pol
}

/// The samplers replay can run, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SamplerKind {
    /// Uniform among the unused configurations.
    Random,
    /// GP with expected improvement.
    Gp,
    /// GP-Hedge over UCB and PI (foresight's default).
    GpHedge,
}

impl SamplerKind {
    pub fn parse(name: &str) -> Result<SamplerKind> {
        match name {
            "random" => Ok(SamplerKind::Random),
            "gp" => Ok(SamplerKind::Gp),
            "gp-hedge" => Ok(SamplerKind::GpHedge),
            other => Err(Error::invalid(
                "sampler",
                format!("`{other}`: expected random, gp or gp-hedge"),
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SamplerKind::Random => "random",
            SamplerKind::Gp => "gp",
            SamplerKind::GpHedge => "gp-hedge",
        }
    }

    /// The sampler over `space`, seeded.
    pub fn build(self, space: &Space, seed: u64) -> Result<Box<dyn Sampler + Send>> {
        Ok(match self {
            SamplerKind::Random => Box::new(RandomSampler::new(space.clone(), seed)),
            SamplerKind::Gp => Box::new(GpSampler::new(
                space.clone(),
                GpSettings {
                    arms: vec![Acquisition::Ei],
                    seed,
                    ..GpSettings::default()
                },
            )?),
            SamplerKind::GpHedge => Box::new(GpSampler::new(
                space.clone(),
                GpSettings {
                    seed,
                    ..GpSettings::default()
                },
            )?),
        })
    }
}

/// The stopping policies replay can run, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PolicyKind {
    None,
    Median,
    Asha,
    Hyperband,
    Lc,
}

impl PolicyKind {
    pub fn parse(name: &str) -> Result<PolicyKind> {
        match name {
            "none" => Ok(PolicyKind::None),
            "median" => Ok(PolicyKind::Median),
            "asha" => Ok(PolicyKind::Asha),
            "hyperband" => Ok(PolicyKind::Hyperband),
            "lc" => Ok(PolicyKind::Lc),
            other => Err(Error::invalid(
                "policy",
                format!("`{other}`: expected none, median, asha, hyperband or lc"),
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            PolicyKind::None => "none",
            PolicyKind::Median => "median",
            PolicyKind::Asha => "asha",
            PolicyKind::Hyperband => "hyperband",
            PolicyKind::Lc => "lc",
        }
    }

    /// The policy, seeded. The median rule gets 5 startup trials and 5
    /// warm-up epochs, as the Optuna pruner it is compared with; ASHA and
    /// Hyperband their defaults (`r = 1`, `η = 3`); the learning-curve
    /// policy its default.
    pub fn build(self, seed: u64) -> Box<dyn StoppingPolicy> {
        match self {
            PolicyKind::None => Box::new(NoStopping),
            PolicyKind::Median => Box::new(MedianRule {
                startup_trials: 5,
                warmup_epochs: 5,
            }),
            PolicyKind::Asha => Box::new(SuccessiveHalving::default()),
            PolicyKind::Hyperband => Box::new(Hyperband {
                seed,
                ..Hyperband::default()
            }),
            PolicyKind::Lc => Box::new(LearningCurve::seeded(seed)),
        }
    }
}

/// The summary of one (sampler, policy) over tasks and seeds: medians over
/// tasks of the per-task medians over seeds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub sampler: String,
    pub policy: String,
    #[serde(
        rename = "r_10T",
        serialize_with = "finite_or_inf",
        deserialize_with = "de_inf"
    )]
    pub r_10t: f64,
    #[serde(
        rename = "r_20T",
        serialize_with = "finite_or_inf",
        deserialize_with = "de_inf"
    )]
    pub r_20t: f64,
    #[serde(
        rename = "r_50T",
        serialize_with = "finite_or_inf",
        deserialize_with = "de_inf"
    )]
    pub r_50t: f64,
    #[serde(
        rename = "epochs_to_r0.1",
        serialize_with = "finite_or_inf",
        deserialize_with = "de_inf"
    )]
    pub epochs_to_r01: f64,
    /// Against `none` with the same sampler (`NaN` if `none` was not run).
    #[serde(serialize_with = "finite_or_inf")]
    pub speedup: f64,
    pub trials_started: f64,
    /// False stops over stopped trials, pooled over tasks and seeds.
    pub false_stop_rate: f64,
}

/// Summaries per (sampler, policy), in the order the runs list them.
pub fn summarise(runs: &[RunFigures]) -> Vec<Summary> {
    let mut keys: Vec<(String, String)> = Vec::new();
    for r in runs {
        let k = (r.sampler.clone(), r.policy.clone());
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    let mut tasks: Vec<(String, String)> = Vec::new();
    for r in runs {
        let k = (r.source.clone(), r.task.clone());
        if !tasks.contains(&k) {
            tasks.push(k);
        }
    }
    let none_of = |r: &RunFigures| {
        runs.iter().find(|n| {
            n.policy == PolicyKind::None.name()
                && n.sampler == r.sampler
                && n.task == r.task
                && n.source == r.source
                && n.seed == r.seed
        })
    };
    keys.into_iter()
        .map(|(sampler, policy)| {
            let mine: Vec<&RunFigures> = runs
                .iter()
                .filter(|r| r.sampler == sampler && r.policy == policy)
                .collect();
            let per_task = |f: &dyn Fn(&RunFigures) -> f64| -> f64 {
                let medians: Vec<f64> = tasks
                    .iter()
                    .filter_map(|(src, task)| {
                        let v: Vec<f64> = mine
                            .iter()
                            .filter(|r| &r.source == src && &r.task == task)
                            .map(|r| f(r))
                            .collect();
                        (!v.is_empty()).then(|| median(&v))
                    })
                    .collect();
                median(&medians)
            };
            let stopped: usize = mine.iter().map(|r| r.trials_stopped).sum();
            let false_stops: usize = mine.iter().map(|r| r.false_stops).sum();
            Summary {
                r_10t: per_task(&|r| r.r_10t),
                r_20t: per_task(&|r| r.r_20t),
                r_50t: per_task(&|r| r.r_50t),
                epochs_to_r01: per_task(&|r| r.epochs_to_r01),
                speedup: per_task(&|r| none_of(r).map_or(f64::NAN, |n| speedup(n, r))),
                trials_started: per_task(&|r| r.trials_started as f64),
                false_stop_rate: if stopped == 0 {
                    0.0
                } else {
                    false_stops as f64 / stopped as f64
                },
                sampler,
                policy,
            }
        })
        .collect()
}

/// Every (pool, sampler, policy, seed) run, in parallel over runs (each run
/// on one thread), in that order. A run found in `done` (same task,
/// sampler, policy, seed and workers) is taken from there instead of being
/// replayed again; `on_run` is called with each run as it is done and
/// whether it is new (`false`: taken from `done`).
pub fn run_all(
    pools: &[Pool],
    samplers: &[SamplerKind],
    policies: &[PolicyKind],
    seeds: u64,
    workers: usize,
    done: &[RunFigures],
    on_run: impl Fn(&RunFigures, bool) + Sync,
) -> Result<Vec<RunFigures>> {
    use rayon::prelude::*;
    let mut jobs = Vec::new();
    for (p, _) in pools.iter().enumerate() {
        for &s in samplers {
            for &pol in policies {
                for seed in 0..seeds {
                    jobs.push((p, s, pol, seed));
                }
            }
        }
    }
    jobs.par_iter()
        .map(|&(p, s, pol, seed)| {
            let pool = &pools[p];
            if let Some(r) = recorded(done, pool, s.name(), pol.name(), seed, workers) {
                on_run(r, false);
                return Ok(r.clone());
            }
            let sampler = s.build(&pool.space, seed)?;
            let (mut fig, _) = run(pool, sampler, pol.build(seed), seed, workers)?;
            fig.sampler = s.name().to_string();
            fig.policy = pol.name().to_string();
            on_run(&fig, true);
            Ok(fig)
        })
        .collect()
}

/// The run of `done` with this task, sampler, policy, seed and workers, if
/// any (how a resumed replay finds what it need not replay again).
pub fn recorded<'a>(
    done: &'a [RunFigures],
    pool: &Pool,
    sampler: &str,
    policy: &str,
    seed: u64,
    workers: usize,
) -> Option<&'a RunFigures> {
    done.iter().find(|r| {
        r.source == pool.source
            && r.task == pool.task
            && r.sampler == sampler
            && r.policy == policy
            && r.seed == seed
            && r.workers == workers
    })
}

/// Runs recorded one JSON object per line (what `foresight replay --out`
/// keeps in `runs.jsonl`, so that an interrupted replay resumes). A missing
/// file holds no runs; a truncated last line (a run cut off while being
/// written) is dropped; damage elsewhere is an error naming the line.
pub fn read_runs(path: &std::path::Path) -> Result<Vec<RunFigures>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(Error::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let lines: Vec<&str> = text.lines().collect();
    let mut runs = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str(line) {
            Ok(r) => runs.push(r),
            Err(_) if i + 1 == lines.len() && !text.ends_with('\n') => {}
            Err(e) => {
                return Err(Error::Format {
                    path: path.to_path_buf(),
                    line: i + 1,
                    field: String::new(),
                    message: e.to_string(),
                });
            }
        }
    }
    Ok(runs)
}

/// The summary as a markdown table.
pub fn summary_table(summary: &[Summary]) -> String {
    let num = |v: f64| {
        if v.is_nan() {
            "—".to_string()
        } else if v.is_infinite() {
            "inf".to_string()
        } else if v == 0.0 || (0.01..1000.0).contains(&v.abs()) {
            format!("{v:.3}")
        } else {
            format!("{v:.2e}")
        }
    };
    let mut out = String::from(
        "| sampler | policy | r@10T | r@20T | r@50T | epochs to r≤0.1 | speedup | trials | false-stop rate |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for s in summary {
        out += &format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            s.sampler,
            s.policy,
            num(s.r_10t),
            num(s.r_20t),
            num(s.r_50t),
            num(s.epochs_to_r01),
            num(s.speedup),
            num(s.trials_started),
            num(s.false_stop_rate)
        );
    }
    out
}

/// Median normalised regret after `x·T` epochs, `x = 0.5, 1, ..., 50`, per
/// (sampler, policy): the median over tasks of the per-task median over
/// seeds.
pub fn regret_curves(runs: &[RunFigures]) -> Vec<(String, Vec<(f64, f64)>)> {
    let summary = summarise(runs);
    summary
        .iter()
        .map(|s| {
            let mine: Vec<&RunFigures> = runs
                .iter()
                .filter(|r| r.sampler == s.sampler && r.policy == s.policy)
                .collect();
            let mut tasks: Vec<(&str, &str)> = mine
                .iter()
                .map(|r| (r.source.as_str(), r.task.as_str()))
                .collect();
            tasks.sort();
            tasks.dedup();
            let points = (1..=100)
                .map(|k| {
                    let x = 0.5 * k as f64;
                    let per_task: Vec<f64> = tasks
                        .iter()
                        .map(|&(src, task)| {
                            let v: Vec<f64> = mine
                                .iter()
                                .filter(|r| r.source == src && r.task == task)
                                .map(|r| r.regret_at((x * r.horizon as f64) as usize))
                                .collect();
                            median(&v)
                        })
                        .collect();
                    (x, median(&per_task))
                })
                .collect();
            (format!("{} + {}", s.sampler, s.policy), points)
        })
        .collect()
}

/// Writes `summary.md` and `regret.svg` (median normalised regret against
/// epochs in multiples of `T`, one line per sampler and policy) into `dir`.
pub fn write_outputs(
    runs: &[RunFigures],
    summary: &[Summary],
    dir: &std::path::Path,
) -> Result<Vec<std::path::PathBuf>> {
    use plotters::prelude::*;
    let io = |path: &std::path::Path, source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let md = dir.join("summary.md");
    std::fs::write(&md, summary_table(summary)).map_err(|e| io(&md, e))?;
    let curves = regret_curves(runs);
    let floor = 1e-4f64;
    let y = |r: f64| {
        if r.is_nan() || r.is_infinite() {
            1.0
        } else {
            r.max(floor).log10().min(1.0)
        }
    };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 560)).into_drawing_area();
        let drawn = (|| -> std::result::Result<(), Box<dyn std::error::Error>> {
            root.fill(&WHITE)?;
            let mut chart = ChartBuilder::on(&root)
                .caption("Median normalised regret", ("sans-serif", 22))
                .margin(15)
                .x_label_area_size(45)
                .y_label_area_size(70)
                .build_cartesian_2d(0.0..50.0, floor.log10()..1.0)?;
            chart
                .configure_mesh()
                .x_desc("epochs used, in multiples of T")
                .y_desc("log10 regret (top: none completed yet)")
                .draw()?;
            for (i, (label, points)) in curves.iter().enumerate() {
                let colour = Palette99::pick(i).to_rgba();
                chart
                    .draw_series(LineSeries::new(
                        points.iter().map(|&(x, r)| (x, y(r))),
                        colour.stroke_width(2),
                    ))?
                    .label(label.clone())
                    .legend(move |(x, yy)| {
                        PathElement::new(vec![(x, yy), (x + 20, yy)], colour.stroke_width(2))
                    });
            }
            chart
                .configure_series_labels()
                // Regret falls from the top left: the top right is clear.
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()?;
            root.present()?;
            Ok(())
        })();
        drawn.map_err(|e| Error::invalid("plot", e.to_string()))?;
    }
    let plot = dir.join("regret.svg");
    std::fs::write(&plot, svg).map_err(|e| io(&plot, e))?;
    Ok(vec![md, plot])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(task: &str, id: u64, x: f64, values: Vec<f64>) -> CurveRecord {
        CurveRecord {
            source: "test".into(),
            task: task.into(),
            config_id: id,
            config: [("x".to_string(), ParamValue::Number(x))].into(),
            metric: "val_accuracy".into(),
            higher_is_better: true,
            values,
        }
    }

    fn pool(n: usize, t: usize) -> Pool {
        let recs = (0..n)
            .map(|i| {
                let limit = 0.5 + 0.4 * (i as f64 / n as f64);
                let values = (1..=t)
                    .map(|e| limit * (1.0 - (-(e as f64) / 3.0).exp()))
                    .collect();
                record("a", i as u64, i as f64 * 0.1, values)
            })
            .collect();
        Pool::new(recs).unwrap()
    }

    #[test]
    fn ranks_average_ties_and_span_the_unit_interval() {
        assert_eq!(ranks(&[3.0, 1.0, 2.0]), vec![1.0, 0.0, 0.5]);
        assert_eq!(ranks(&[1.0, 1.0, 5.0]), vec![0.25, 0.25, 1.0]);
    }

    #[test]
    fn ragged_and_mixed_pools_are_refused() {
        let err = Pool::new(vec![
            record("a", 0, 0.1, vec![0.1, 0.2]),
            record("a", 1, 0.2, vec![0.1]),
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("different lengths"), "{err}");
        let pools = Pool::from_records(vec![
            record("a", 0, 0.1, vec![0.1, 0.2]),
            record("b", 0, 0.1, vec![0.1, 0.2]),
            record("a", 1, 0.3, vec![0.3, 0.4]),
        ])
        .unwrap();
        assert_eq!(pools.len(), 2);
        assert_eq!(pools[0].curves.len(), 2);
    }

    #[test]
    fn regret_is_normalised_by_the_median() {
        let p = pool(5, 10);
        let (best, med) = p.reference_values();
        assert!(best > med);
        assert_eq!(p.regret(Some(best)), 0.0);
        assert!((p.regret(Some(med)) - 1.0).abs() < 1e-12);
        assert_eq!(p.regret(None), f64::INFINITY);
    }

    #[test]
    fn a_run_without_stopping_uses_the_budget_and_scores_it() {
        let p = pool(100, 10);
        let sampler = Box::new(RandomSampler::new(p.space.clone(), 1));
        let (fig, study) = run(&p, sampler, Box::new(NoStopping), 1, 1).unwrap();
        // 50T epochs: 50 complete trials of T epochs.
        assert_eq!(study.epochs_used, 500);
        assert_eq!(fig.trials_started, 50);
        assert_eq!(fig.trials_stopped, 0);
        // Regret only falls; the first point is the first completed trial.
        assert_eq!(fig.traj[0].0, 10);
        assert!(
            fig.traj
                .windows(2)
                .all(|w| w[1].1 < w[0].1 && w[1].0 > w[0].0)
        );
        assert_eq!(fig.r_50t, fig.traj.last().unwrap().1);
        // Each trial replayed its own logged curve.
        for t in &study.trials {
            let i = p.configs.iter().position(|c| *c == t.config).unwrap();
            assert_eq!(t.scores, p.curves[i]);
        }
        // Speedup of a run against itself is 1.
        assert_eq!(speedup(&fig, &fig), 1.0);
    }

    #[test]
    fn a_small_pool_ends_the_run_when_used_up() {
        let p = pool(7, 10);
        let sampler = Box::new(RandomSampler::new(p.space.clone(), 2));
        let (fig, study) = run(&p, sampler, Box::new(NoStopping), 2, 2).unwrap();
        assert_eq!(fig.trials_started, 7);
        assert_eq!(study.epochs_used, 70);
        assert_eq!(fig.r_50t, 0.0, "the whole pool was tried");
    }
}
