//! Offline replay of logged learning curves: protocol R of
//! `docs/benchmarks.md` (`foresight replay`).
//!
//! A *task* is a pool of configurations whose whole learning curves were
//! logged. Replay runs the real tuner ([`Tuner::simulate`]: the same
//! controller, samplers and stopping policies as real training) on a
//! simulated clock, with each logged curve playing the part of a
//! [`Trainable`](foresight::trial::Trainable): a trial reveals one logged
//! value per epoch. So a user can measure a tuning strategy on past runs
//! before spending compute on new ones.
//!
//! The pool's configurations are encoded in a unit cube as protocol R says:
//! each numeric hyperparameter by its rank in the pool (the empirical CDF,
//! ties averaged, scaled to `[0, 1]`), each categorical one one-hot. Rank
//! encoding keeps a uniform proposal close to uniform over the pool. Samplers
//! choose among the unused configurations of the pool
//! ([`Sampler::ask_among`], the finite-candidate mode).
//!
//! * `pool.rs`: a task's [`Pool`], [`PoolSampler`], [`LoggedCurve`];
//! * `figures.rs`: [`RunFigures`], [`speedup`], [`Summary`];
//! * `output.rs`: `runs.jsonl`, `summary.md`, `regret.svg`;
//! * here: one replayed run ([`run`]) and all of them ([`run_all`]).

mod figures;
mod output;
mod pool;

pub use figures::{RunFigures, Summary, inf, regret_curves, speedup, summarise};
pub use output::{read_runs, summary_table, write_outputs};
pub use pool::{LoggedCurve, Pool, PoolSampler};

use foresight::error::{Error, Result};
use foresight::observe::Output;
use foresight::policy::{self, NoStopping, StoppingPolicy};
use foresight::sampler::{Sampler, SamplerSpec};
use foresight::study::{Status, Study};
use foresight::trial::TrialError;
use foresight::tuner::{Budget, Tuner};

use figures::{epochs_to, regret_at};

/// Replays one tuning run on `pool` with budget `50·T` epochs and
/// `workers` simulated workers, and scores it as protocol R does.
pub fn run(
    pool: &Pool,
    sampler: Box<dyn Sampler>,
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
    let study = Tuner::new(pool.space.clone(), pool.objective, t)
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
        })
        .map_err(|e| Error::invalid("replay", format!("task `{}`: {e}", pool.task)))?;
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
                if incumbent.is_none_or(|b| pool.objective.better(f, b)) {
                    incumbent = Some(f);
                    let r = pool.regret(incumbent);
                    if traj.last().is_none_or(|p| p.1 != r) {
                        traj.push((epochs, r));
                    }
                }
            }
            Some(Status::Stopped) => {
                let truth = pool.final_value(chosen[trial]);
                if incumbent.is_some_and(|b| pool.objective.better(truth, b)) {
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

/// A sampler or policy as replay names it: the text it was given (which
/// names the figures) and what it parsed to.
#[derive(Debug, Clone)]
pub struct Named<T> {
    pub name: String,
    pub spec: T,
}

/// Parses sampler names (`random`, `gp`, `gp-hedge`, with optional
/// settings: [`SamplerSpec`]).
pub fn samplers(names: &[String]) -> Result<Vec<Named<SamplerSpec>>> {
    names
        .iter()
        .map(|n| {
            Ok(Named {
                name: n.clone(),
                spec: n.parse()?,
            })
        })
        .collect()
}

/// Parses policy names ([`policy::parse`]); `none` comes first, always
/// (speedups are measured against it), and each name once.
pub fn policies(names: &[String]) -> Result<Vec<String>> {
    let mut out = vec![NoStopping::NAME.to_string()];
    for n in names {
        policy::parse(n)?;
        if !out.contains(n) {
            out.push(n.clone());
        }
    }
    Ok(out)
}

/// Every (pool, sampler, policy, seed) run, in parallel over runs (each run
/// on one thread), in that order. A run found in `done` (same task,
/// sampler, policy, seed and workers) is taken from there instead of being
/// replayed again; `on_run` is called with each run as it is done and
/// whether it is new (`false`: taken from `done`).
pub fn run_all(
    pools: &[Pool],
    samplers: &[Named<SamplerSpec>],
    policies: &[String],
    seeds: u64,
    workers: usize,
    done: &[RunFigures],
    on_run: impl Fn(&RunFigures, bool) + Sync,
) -> Result<Vec<RunFigures>> {
    use rayon::prelude::*;
    let mut jobs = Vec::new();
    for p in 0..pools.len() {
        for s in samplers {
            for pol in policies {
                for seed in 0..seeds {
                    jobs.push((p, s, pol, seed));
                }
            }
        }
    }
    jobs.par_iter()
        .map(|&(p, s, pol, seed)| {
            let pool = &pools[p];
            if let Some(r) = recorded(done, pool, &s.name, pol, seed, workers) {
                on_run(r, false);
                return Ok(r.clone());
            }
            let sampler = s.spec.build(&pool.space, seed)?;
            let (mut fig, _) = run(pool, sampler, policy::parse(pol)?, seed, workers)?;
            fig.sampler = s.name.clone();
            fig.policy = pol.clone();
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

#[cfg(test)]
mod tests {
    use super::pool::tests::pool;
    use super::*;
    use foresight::sampler::RandomSampler;
    use foresight::study::Objective;

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

    #[test]
    fn percentage_curves_are_stopped_like_fractions() {
        let fraction = pool(60, 12);
        let mut percent = fraction.clone();
        percent.objective = Objective::maximize().range(0.0, 100.0);
        for c in &mut percent.curves {
            for v in c.iter_mut() {
                *v *= 100.0;
            }
        }
        let lc = || {
            policy::parse("lc(predictor.walkers=16, predictor.steps=150, predictor.burn_in=75)")
                .unwrap()
        };
        let sampler =
            |p: &Pool| -> Box<dyn Sampler> { Box::new(RandomSampler::new(p.space.clone(), 3)) };
        let (a, _) = run(&fraction, sampler(&fraction), lc(), 3, 1).unwrap();
        let (b, _) = run(&percent, sampler(&percent), lc(), 3, 1).unwrap();
        // The same decisions, up to the last bits of the inputs (x·100/100
        // is not always x), which can move a stop by an epoch.
        assert!(a.trials_stopped > 0, "{a:?}");
        assert!(
            a.trials_stopped.abs_diff(b.trials_stopped) <= 2,
            "{a:?} {b:?}"
        );
        assert_eq!(a.traj.len(), b.traj.len());
        for (x, y) in a.traj.iter().zip(&b.traj) {
            assert!(
                x.0.abs_diff(y.0) <= 2 && (x.1 - y.1).abs() < 1e-9,
                "{a:?} {b:?}"
            );
        }
        // A metric without a bound on its good side is refused, naming the task.
        let mut unbounded = fraction.clone();
        unbounded.objective = Objective::maximize();
        let err = run(&unbounded, sampler(&unbounded), lc(), 3, 1)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("task `a`") && err.contains("best value"),
            "{err}"
        );
    }
}
