//! What protocol R measures of a replayed run ([`RunFigures`]: regret
//! after multiples of `T`, epochs to a regret, stops and false stops), how
//! runs compare ([`speedup`]) and summarise ([`Summary`], [`summarise`],
//! [`regret_curves`]), in protocol R's JSON form (`inf` as `"inf"`).

use serde::{Deserialize, Serialize};

use foresight::policy::NoStopping;
use foresight::stats::median;

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
    #[serde(rename = "r_5T", with = "inf")]
    pub r_5t: f64,
    #[serde(rename = "r_10T", with = "inf")]
    pub r_10t: f64,
    #[serde(rename = "r_20T", with = "inf")]
    pub r_20t: f64,
    #[serde(rename = "r_50T", with = "inf")]
    pub r_50t: f64,
    #[serde(rename = "epochs_to_r0.1", with = "inf")]
    pub epochs_to_r01: f64,
    #[serde(rename = "epochs_to_r0.01", with = "inf")]
    pub epochs_to_r001: f64,
    pub trials_started: usize,
    pub trials_stopped: usize,
    pub false_stops: usize,
    /// `(epochs, regret)` at every change of the regret.
    #[serde(with = "trajectory")]
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

pub(crate) fn regret_at(traj: &[(usize, f64)], epochs: usize) -> f64 {
    traj.iter()
        .take_while(|p| p.0 <= epochs)
        .last()
        .map_or(f64::INFINITY, |p| p.1)
}

pub(crate) fn epochs_to(traj: &[(usize, f64)], target: f64) -> f64 {
    traj.iter()
        .find(|p| p.1 <= target)
        .map_or(f64::INFINITY, |p| p.0 as f64)
}

/// A number with every non-finite value written as the string `"inf"`, as
/// protocol R's JSON has it (for serde's `with`).
pub mod inf {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_finite() {
            s.serialize_f64(*v)
        } else {
            s.serialize_str("inf")
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        NumberOrInf::deserialize(d)?.value()
    }

    /// A number, or `"inf"`.
    #[derive(Deserialize)]
    #[serde(untagged)]
    pub(super) enum NumberOrInf {
        Number(f64),
        Text(String),
    }

    impl NumberOrInf {
        pub(super) fn value<E: serde::de::Error>(self) -> Result<f64, E> {
            match self {
                NumberOrInf::Number(v) => Ok(v),
                NumberOrInf::Text(t) if t == "inf" => Ok(f64::INFINITY),
                NumberOrInf::Text(t) => Err(E::custom(format!(
                    "expected a number or \"inf\", got {t:?}"
                ))),
            }
        }
    }
}

/// A trajectory `(epochs, regret)`, regrets as [`inf`] writes them.
mod trajectory {
    use serde::ser::SerializeSeq;
    use serde::{Deserialize, Deserializer, Serializer};

    use super::inf::NumberOrInf;

    pub fn serialize<S: Serializer>(t: &[(usize, f64)], s: S) -> Result<S::Ok, S::Error> {
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

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(usize, f64)>, D::Error> {
        Vec::<(usize, NumberOrInf)>::deserialize(d)?
            .into_iter()
            .map(|(e, r)| Ok((e, r.value()?)))
            .collect()
    }
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

/// The summary of one (sampler, policy) over tasks and seeds: medians over
/// tasks of the per-task medians over seeds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub sampler: String,
    pub policy: String,
    #[serde(rename = "r_10T", with = "inf")]
    pub r_10t: f64,
    #[serde(rename = "r_20T", with = "inf")]
    pub r_20t: f64,
    #[serde(rename = "r_50T", with = "inf")]
    pub r_50t: f64,
    #[serde(rename = "epochs_to_r0.1", with = "inf")]
    pub epochs_to_r01: f64,
    /// Against `none` with the same sampler (`NaN` if `none` was not run).
    #[serde(with = "inf")]
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
            n.policy == NoStopping::NAME
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
