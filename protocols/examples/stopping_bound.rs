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

use foresight::curve::{PredictorConfig, StoppingRule};
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
            forecasts: vec![Vec::new(); epochs.len()],
        });
    };
    let (y_best, y_med) = pool.reference_values();
    let scale = (y_best - y_med).abs();
    let units = pool
        .objective
        .curve_units()
        .ok_or("the objective has no curve units")?;
    // The trials in the order they ended, each with the incumbent before it.
    let mut walk = Vec::with_capacity(study.ends.len());
    let mut incumbent = None::<f64>;
    for &(trial, _) in &study.ends {
        let record = &study.trials[trial];
        let step = match record.status {
            Some(Status::Completed) => {
                let last = *record.scores.last().expect("completed");
                let improves = incumbent.is_none_or(|b| pool.objective.better(last, b));
                let step = Step::Completed {
                    trial,
                    last,
                    incumbent,
                    improves,
                };
                if improves {
                    incumbent = Some(last);
                }
                step
            }
            // Diverged or cut: the same cost as without stopping.
            _ => Step::Other(record.scores.len()),
        };
        walk.push(step);
    }
    let speedup = |m: usize, delta: f64| {
        let mut cost = 0usize;
        for step in &walk {
            match *step {
                Step::Other(epochs) => cost += epochs,
                Step::Completed {
                    last,
                    improves: true,
                    ..
                } => {
                    cost += t;
                    if pool.regret(Some(last)) <= r_none {
                        return e_none as f64 / cost as f64;
                    }
                }
                Step::Completed {
                    last, incumbent, ..
                } => {
                    // A near-tie: an oracle that resolves finals only to
                    // `δ` cannot tell it from an improvement.
                    let near_tie = pool.regret(Some(last)) - pool.regret(incumbent) < delta;
                    cost += if near_tie { t } else { m.min(t) };
                }
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
    let threshold = StoppingRule::default().threshold;
    let mut forecasts = vec![Vec::new(); epochs.len()];
    for step in &walk {
        let Step::Completed {
            trial,
            last,
            incumbent: Some(incumbent),
            improves: false,
        } = *step
        else {
            continue;
        };
        let scores = &study.trials[trial].scores;
        for (k, &m) in epochs.iter().enumerate() {
            let observed: Vec<f64> = scores[..m.min(t)]
                .iter()
                .map(|&v| units.to_curve(v))
                .collect();
            let predictor = PredictorConfig {
                parallel: false,
                seed: foresight::seed::mix64(seed ^ trial as u64 ^ (m as u64) << 32),
                ..PredictorConfig::default()
            };
            let forecast = predictor.predict(&observed, t, units.metric)?;
            let final_value = forecast.final_value();
            let median = units.from_curve(final_value.quantile(0.5));
            forecasts[k].push(Forecasted {
                error: (median - last).abs() / scale,
                gap: pool.regret(Some(last)) - pool.regret(Some(incumbent)),
                // Would the `lc` rule stop it here?
                stops: !forecast.is_fallback()
                    && final_value.prob_better(units.to_curve(incumbent)) < threshold,
            });
        }
    }
    Ok(Run {
        speedups,
        forecasts,
    })
}

/// A trial of the run without stopping, in the order trials ended.
enum Step {
    /// Ran to the horizon, ending at `last`; `incumbent` is the best final
    /// before it.
    Completed {
        trial: usize,
        last: f64,
        incumbent: Option<f64>,
        improves: bool,
    },
    /// Diverged or cut after this many epochs.
    Other(usize),
}

/// The forecast of a trial the oracle stops (regret units).
#[derive(Clone, Copy)]
struct Forecasted {
    /// Of the forecast's median, against the final value.
    error: f64,
    /// How far the trial ended behind the incumbent.
    gap: f64,
    /// Whether the `lc` rule would stop the trial there.
    stops: bool,
}

/// One run's oracle speedups `[m][δ]`, and `[m]` the forecasts of the
/// trials it stops.
struct Run {
    speedups: Vec<Vec<f64>>,
    forecasts: Vec<Vec<Forecasted>>,
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
        let all: Vec<Forecasted> = runs.iter().flat_map(|r| r.forecasts[i].clone()).collect();
        let close: Vec<Forecasted> = all.iter().copied().filter(|f| f.gap < near).collect();
        let error = |v: &[Forecasted]| median(&v.iter().map(|f| f.error).collect::<Vec<_>>());
        let share =
            |v: &[Forecasted]| v.iter().filter(|f| f.stops).count() as f64 / v.len().max(1) as f64;
        println!(
            "forecast after {m} epochs of the trials the oracle stops ({} forecasts): median error {:.3} in regret units, `lc` stops {:.0}%; of those that ended within {near} of the incumbent ({}): median error {:.3}, `lc` stops {:.0}%",
            all.len(),
            error(&all),
            100.0 * share(&all),
            close.len(),
            error(&close),
            100.0 * share(&close),
        );
    }
    Ok(())
}
