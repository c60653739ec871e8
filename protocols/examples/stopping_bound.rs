//! How much can stopping save with GP-Hedge? The speedup of an *oracle*
//! stopping policy on the path GP-Hedge takes without stopping, measured by
//! replay (protocol R).
//!
//! ```sh
//! cargo run --release -p foresight-protocols --example stopping_bound -- CURVES TASKS SEEDS EPOCHS
//! # e.g. the first 8 LCBench-surrogate tasks, 3 seeds, stops after 3, 6 and 10 epochs:
//! cargo run --release -p foresight-protocols --example stopping_bound -- \
//!     ../shared/curves/yahpo_lcbench_surrogate.jsonl 8 3 3,6,10
//! ```
//!
//! For each task (the first `TASKS` of the file) and seed, GP-Hedge runs
//! without stopping. The oracle sees the same trials in the same order and
//! knows their final values: a trial that improves the incumbent so far
//! runs to the horizon `T` (it must, to become the incumbent), every other
//! one is stopped after `m` epochs. Its speedup is protocol R's: the epochs
//! `none` needed to first reach the regret it ends with, over the epochs the
//! oracle needed to reach it on the same path. Printed per task (the median
//! over seeds) and summarised as protocol R summarises (the median over
//! tasks), with the smallest task.
//!
//! This bounds what a stopping policy can save *on this path*: a real
//! policy stops later, keeps some trials that do not improve, and changes
//! the path (a stopped trial tells the GP a predicted final value, not the
//! true one), which can cost or, rarely, help.

use foresight::policy;
use foresight::sampler::SamplerSpec;
use foresight::stats::median;
use foresight::study::Status;
use foresight_protocols::curveset;
use foresight_protocols::replay::{self, Pool};
use rayon::prelude::*;

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// The oracle's speedups for each stop epoch in `epochs`, on one run of
/// GP-Hedge without stopping.
fn oracle(pool: &Pool, seed: u64, epochs: &[usize]) -> Res<Vec<f64>> {
    let t = pool.horizon;
    let sampler = "gp-hedge"
        .parse::<SamplerSpec>()?
        .build(&pool.space, seed)?;
    let (fig, study) = replay::run(pool, sampler, policy::parse("none")?, seed, 1)?;
    let Some(&(e_none, r_none)) = fig.traj.last() else {
        return Ok(vec![f64::NAN; epochs.len()]);
    };
    Ok(epochs
        .iter()
        .map(|&m| {
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
                } else {
                    cost += m.min(t);
                }
            }
            f64::NAN
        })
        .collect())
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [curves, tasks, seeds, epochs] = args.as_slice() else {
        return Err("usage: stopping_bound CURVES TASKS SEEDS EPOCHS (e.g. 3,6,10)".into());
    };
    let pools = Pool::from_records(curveset::read(curves)?)?;
    let pools = &pools[..tasks.parse::<usize>()?.min(pools.len())];
    let seeds: u64 = seeds.parse()?;
    if seeds == 0 || pools.is_empty() {
        return Err("need at least one task and one seed".into());
    }
    let epochs: Vec<usize> = epochs
        .split(',')
        .map(|e| e.trim().parse())
        .collect::<Result<_, _>>()?;
    let jobs: Vec<(usize, u64)> = (0..pools.len())
        .flat_map(|p| (0..seeds).map(move |s| (p, s)))
        .collect();
    let speedups: Vec<Vec<f64>> = jobs
        .par_iter()
        .map(|&(p, s)| {
            let r = oracle(&pools[p], s, &epochs);
            eprintln!("{} seed {s}", pools[p].task);
            r
        })
        .collect::<Res<_>>()?;
    let header: Vec<String> = epochs.iter().map(|m| format!("stop after {m}")).collect();
    println!("| task | {} |", header.join(" | "));
    println!("|---|{}", "---:|".repeat(epochs.len()));
    // Jobs are task-major: each task's seeds are one chunk.
    let per_task: Vec<Vec<f64>> = speedups
        .chunks(seeds as usize)
        .map(|runs| {
            (0..epochs.len())
                .map(|i| median(&runs.iter().map(|s| s[i]).collect::<Vec<_>>()))
                .collect()
        })
        .collect();
    for (pool, row) in pools.iter().zip(&per_task) {
        let cells: Vec<String> = row.iter().map(|m| format!("{m:.2}")).collect();
        println!("| {} | {} |", pool.task, cells.join(" | "));
    }
    let summary = |f: fn(&[f64]) -> f64| -> String {
        (0..epochs.len())
            .map(|i| {
                format!(
                    "{:.2}",
                    f(&per_task.iter().map(|r| r[i]).collect::<Vec<_>>())
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
    Ok(())
}
