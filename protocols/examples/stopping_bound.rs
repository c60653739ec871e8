//! How much can stopping save with GP-Hedge (or another sampler)? The
//! speedup of an *oracle* stopping policy on the path the sampler takes
//! without stopping, measured by replay (protocol R).
//!
//! ```sh
//! cargo run --release -p foresight-protocols --example stopping_bound -- CURVES TASKS SEEDS EPOCHS [DELTAS [SAMPLER]]
//! # e.g. the first 8 LCBench-surrogate tasks, 3 seeds, stops after 3, 6 and 10 epochs:
//! cargo run --release -p foresight-protocols --example stopping_bound -- \
//!     ../shared/curves/yahpo_lcbench_surrogate.jsonl 8 3 3,6,10
//! # the same with resolutions 0, 0.05 and 0.1:
//! cargo run --release -p foresight-protocols --example stopping_bound -- \
//!     ../shared/curves/yahpo_lcbench_surrogate.jsonl 8 3 3,6,10 0,0.05,0.1
//! # and on random search's path (the sampler as `foresight replay --sampler` names it):
//! cargo run --release -p foresight-protocols --example stopping_bound -- \
//!     ../shared/curves/yahpo_lcbench_surrogate.jsonl 8 3 3,6,10 0,0.05,0.1 random
//! ```
//!
//! For each task (the first `TASKS` of the file) and seed, the sampler
//! (GP-Hedge unless `SAMPLER` names another) runs
//! without stopping. The oracle sees the same trials in the same order and
//! knows their final values: a trial that improves the incumbent so far
//! runs to the horizon `T` (it must, to become the incumbent), every other
//! one is stopped after `m` epochs. Its speedup is protocol R's: the epochs
//! `none` needed to first reach the regret it ends with, over the epochs the
//! oracle needed to reach it on the same path. Printed per task (the median
//! over seeds) and summarised as protocol R summarises (the median over
//! tasks), with the smallest task.
//!
//! With `DELTAS`, the oracle resolves final values only to `δ` (regret
//! units, protocol R's: `|y* − y_med| = 1`): it stops after `m` epochs only
//! the trials that end more than `δ` behind the incumbent of their time and
//! runs every other one to the horizon, as a policy must run a trial it
//! cannot tell from an improvement (`δ = 0`, the default, is the exact
//! oracle). For each `m` it also forecasts every trial the exact oracle
//! stops from its first `m` epochs (foresight's default predictor) and
//! prints the median error of the forecast's median and the share that the
//! `lc` rule, `P(better) < 0.05`, would stop there: of all of them and of
//! the contenders, those that ended within 0.1 behind the incumbent.
//!
//! This bounds what a stopping policy can save *on this path*: a real
//! policy stops later, keeps some trials that do not improve, and changes
//! the path (a stopped trial tells the GP a predicted final value, not the
//! true one), which can cost or, rarely, help.

use foresight::curve::PredictorConfig;
use foresight::policy;
use foresight::sampler::SamplerSpec;
use foresight::stats::median;
use foresight::study::Status;
use foresight_protocols::curveset;
use foresight_protocols::replay::{self, Pool};
use rayon::prelude::*;

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// The oracle's speedups for each stop epoch in `epochs` and resolution in
/// `deltas` (`[m][δ]`), on one run of `sampler` without stopping, and for
/// each `m` the forecast's errors on the trials it stops, with how far
/// each ended behind the incumbent (both in regret units) and whether
/// the `lc` rule (`P(better) < 0.05`) would stop it there.
fn oracle(
    pool: &Pool,
    sampler: &SamplerSpec,
    seed: u64,
    epochs: &[usize],
    deltas: &[f64],
) -> Res<Run> {
    let t = pool.horizon;
    let sampler = sampler.build(&pool.space, seed)?;
    let (fig, study) = replay::run(pool, sampler, policy::parse("none")?, seed, 1)?;
    let Some(&(e_none, r_none)) = fig.traj.last() else {
        return Ok(Run {
            speedups: vec![vec![f64::NAN; deltas.len()]; epochs.len()],
            errors: vec![Vec::new(); epochs.len()],
        });
    };
    let (y_best, y_med) = pool.reference_values();
    let scale = (y_best - y_med).abs();
    let units = pool
        .objective
        .curve_units()
        .ok_or("the objective has no curve units")?;
    let speedup = |m: usize, delta: f64| {
        let (mut incumbent, mut cost) = (None::<f64>, 0usize);
        for &(trial, _) in &study.ends {
            let record = &study.trials[trial];
            if record.status != Some(Status::Completed) {
                // Diverged or cut: the same cost as without stopping.
                cost += record.scores.len();
                continue;
            }
            let last = *record.scores.last().expect("completed");
            if incumbent.is_none_or(|b| pool.objective.better(last, b)) {
                incumbent = Some(last);
                cost += t;
                if pool.regret(incumbent) <= r_none {
                    return e_none as f64 / cost as f64;
                }
            } else if pool.regret(Some(last)) - pool.regret(incumbent) < delta {
                // A near-tie: an oracle that resolves finals only to `δ`
                // cannot tell it from an improvement.
                cost += t;
            } else {
                cost += m.min(t);
            }
        }
        f64::NAN
    };
    let speedups = epochs
        .iter()
        .map(|&m| deltas.iter().map(|&d| speedup(m, d)).collect())
        .collect();
    // The forecast after `m` epochs of each trial the oracle stops
    // (completed, not an improvement), against its final value.
    let mut errors = vec![Vec::new(); epochs.len()];
    let mut incumbent = None::<f64>;
    for &(trial, _) in &study.ends {
        let record = &study.trials[trial];
        if record.status != Some(Status::Completed) {
            continue;
        }
        let last = *record.scores.last().expect("completed");
        if incumbent.is_none_or(|b| pool.objective.better(last, b)) {
            incumbent = Some(last);
            continue;
        }
        for (k, &m) in epochs.iter().enumerate() {
            let observed: Vec<f64> = record.scores[..m.min(t)]
                .iter()
                .map(|&v| units.to_curve(v))
                .collect();
            let predictor = PredictorConfig {
                parallel: false,
                seed: foresight::seed::mix64(seed ^ trial as u64 ^ (m as u64) << 32),
                ..PredictorConfig::default()
            };
            let forecast = predictor.predict(&observed, t, units.metric)?;
            let last_forecast = forecast.final_value();
            let median = units.from_curve(last_forecast.quantile(0.5));
            let gap = pool.regret(Some(last)) - pool.regret(incumbent);
            // Would the `lc` rule stop it here?
            let best = units.to_curve(incumbent.expect("not an improvement"));
            let stops = !forecast.is_fallback() && last_forecast.prob_better(best) < 0.05;
            errors[k].push(((median - last).abs() / scale, gap, stops));
        }
    }
    Ok(Run { speedups, errors })
}

/// One run's oracle speedups `[m][δ]`, and `[m]` the forecasts of the
/// trials it stops: error, gap to the incumbent, whether `lc` stops.
struct Run {
    speedups: Vec<Vec<f64>>,
    errors: Vec<Vec<(f64, f64, bool)>>,
}

/// A comma-separated list (`3,6,10`).
fn list<T: std::str::FromStr>(text: &str) -> Res<Vec<T>>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    Ok(text
        .split(',')
        .map(|e| e.trim().parse())
        .collect::<Result<_, _>>()?)
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (curves, tasks, seeds, epochs, deltas, sampler) = match args.as_slice() {
        [c, t, s, e] => (c, t, s, e, "0", "gp-hedge"),
        [c, t, s, e, d] => (c, t, s, e, d.as_str(), "gp-hedge"),
        [c, t, s, e, d, k] => (c, t, s, e, d.as_str(), k.as_str()),
        _ => {
            return Err(
                "usage: stopping_bound CURVES TASKS SEEDS EPOCHS [DELTAS [SAMPLER]] (e.g. 3,6,10 0,0.1 random)"
                    .into(),
            );
        }
    };
    let sampler: SamplerSpec = sampler.parse()?;
    let pools = Pool::from_records(curveset::read(curves)?)?;
    let pools = &pools[..tasks.parse::<usize>()?.min(pools.len())];
    let seeds: u64 = seeds.parse()?;
    if seeds == 0 || pools.is_empty() {
        return Err("need at least one task and one seed".into());
    }
    let epochs: Vec<usize> = list(epochs)?;
    let deltas: Vec<f64> = list(deltas)?;
    let jobs: Vec<(usize, u64)> = (0..pools.len())
        .flat_map(|p| (0..seeds).map(move |s| (p, s)))
        .collect();
    let runs: Vec<Run> = jobs
        .par_iter()
        .map(|&(p, s)| {
            let r = oracle(&pools[p], &sampler, s, &epochs, &deltas);
            eprintln!("{} seed {s}", pools[p].task);
            r
        })
        .collect::<Res<_>>()?;
    // Columns: every (m, δ), m-major.
    let columns: Vec<(usize, usize)> = (0..epochs.len())
        .flat_map(|i| (0..deltas.len()).map(move |j| (i, j)))
        .collect();
    let header: Vec<String> = columns
        .iter()
        .map(|&(i, j)| match deltas.as_slice() {
            [d] if *d == 0.0 => format!("stop after {}", epochs[i]),
            _ => format!("after {}, δ = {}", epochs[i], deltas[j]),
        })
        .collect();
    println!("| task | {} |", header.join(" | "));
    println!("|---|{}", "---:|".repeat(columns.len()));
    // Jobs are task-major: each task's seeds are one chunk.
    let per_task: Vec<Vec<f64>> = runs
        .chunks(seeds as usize)
        .map(|runs| {
            columns
                .iter()
                .map(|&(i, j)| median(&runs.iter().map(|r| r.speedups[i][j]).collect::<Vec<_>>()))
                .collect()
        })
        .collect();
    for (pool, row) in pools.iter().zip(&per_task) {
        let cells: Vec<String> = row.iter().map(|m| format!("{m:.2}")).collect();
        println!("| {} | {} |", pool.task, cells.join(" | "));
    }
    let summary = |f: fn(&[f64]) -> f64| -> String {
        (0..columns.len())
            .map(|c| {
                format!(
                    "{:.2}",
                    f(&per_task.iter().map(|r| r[c]).collect::<Vec<_>>())
                )
            })
            .collect::<Vec<_>>()
            .join(" | ")
    };
    println!("| median over tasks | {} |", summary(median));
    println!(
        "| smallest task | {} |",
        summary(|v| v.iter().copied().fold(f64::INFINITY, f64::min))
    );
    // Contenders: trials that ended close behind the incumbent, those a
    // policy must tell from improvements.
    let near = 0.1;
    for (i, m) in epochs.iter().enumerate() {
        let all: Vec<(f64, f64, bool)> = runs.iter().flat_map(|r| r.errors[i].clone()).collect();
        let errors: Vec<f64> = all.iter().map(|e| e.0).collect();
        let close: Vec<&(f64, f64, bool)> = all.iter().filter(|e| e.1 < near).collect();
        let close_errors: Vec<f64> = close.iter().map(|e| e.0).collect();
        let share = |v: &[&(f64, f64, bool)]| {
            v.iter().filter(|e| e.2).count() as f64 / v.len().max(1) as f64
        };
        println!(
            "forecast after {m} epochs of the trials the oracle stops ({} forecasts): median error {:.3} in regret units, `lc` stops {:.0}%; of those that ended within {near} of the incumbent ({}): median error {:.3}, `lc` stops {:.0}%",
            all.len(),
            median(&errors),
            100.0 * share(&all.iter().collect::<Vec<_>>()),
            close.len(),
            median(&close_errors),
            100.0 * share(&close),
        );
    }
    Ok(())
}
