//! The learning-curve policy's stopping trade-off, measured by replay
//! (protocol R) with GP-Hedge: the default policy against variants with a
//! lower threshold or a later first check, per task.
//!
//! ```sh
//! cargo run --release --example stopping_tradeoff -- CURVES RUNS TASKS SEEDS VARIANTS
//! # e.g.
//! cargo run --release --example stopping_tradeoff -- ../shared/curves/taskset.jsonl \
//!     runs.jsonl patch128_LSTM128_bs64,VRNN128_tanh 10 threshold=0.01,min_epochs=6
//! ```
//!
//! `TASKS` are substrings of task names; `VARIANTS` are comma-separated,
//! each `threshold=P` or `min_epochs=N` (or both, joined with `+`); the
//! default `lc` and `none` are always run. `RUNS` is a `runs.jsonl` file
//! (the format of `foresight replay --out`): runs recorded there are
//! reused, new ones appended. Prints one summary table per task.

use foresight::policy::{self, StoppingPolicy};
use foresight::sampler::SamplerSpec;
use foresight_protocols::curveset;
use foresight_protocols::replay::{self, Pool, RunFigures};
use rayon::prelude::*;
use std::io::Write;
use std::sync::Mutex;

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// The policy of a variant name: `none`, `lc`, or `lc+threshold=P` (and
/// `+min_epochs=N`), which is `lc(threshold=P, min_epochs=N)`.
fn policy(variant: &str) -> Res<Box<dyn StoppingPolicy>> {
    if variant == "none" {
        return Ok(policy::parse("none")?);
    }
    let settings: Vec<&str> = variant.split('+').filter(|p| *p != "lc").collect();
    if settings.is_empty() {
        return Ok(policy::parse("lc")?);
    }
    Ok(policy::parse(&format!("lc({})", settings.join(",")))?)
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [curves, runs_path, tasks, seeds, variants] = args.as_slice() else {
        return Err("usage: stopping_tradeoff CURVES RUNS TASKS SEEDS VARIANTS".into());
    };
    let pools = Pool::from_records(curveset::read(curves)?)?;
    let tasks: Vec<&str> = tasks.split(',').collect();
    let seeds: u64 = seeds.parse()?;
    let mut names = vec!["none".to_string(), "lc".to_string()];
    names.extend(variants.split(',').map(|v| format!("lc+{v}")));
    let runs_path = std::path::Path::new(runs_path);
    let done = replay::read_runs(runs_path)?;
    let out = Mutex::new(
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(runs_path)?,
    );
    let pools: Vec<&Pool> = pools
        .iter()
        .filter(|p| tasks.iter().any(|t| p.task.contains(t)))
        .collect();
    let mut jobs = Vec::new();
    for p in &pools {
        for v in &names {
            for s in 0..seeds {
                jobs.push((*p, v.as_str(), s));
            }
        }
    }
    let runs: Vec<RunFigures> = jobs
        .par_iter()
        .map(|&(pool, variant, seed)| -> Res<RunFigures> {
            let gp_hedge: SamplerSpec = "gp-hedge".parse()?;
            if let Some(r) = replay::recorded(&done, pool, "gp-hedge", variant, seed, 1) {
                return Ok(r.clone());
            }
            let sampler = gp_hedge.build(&pool.space, seed)?;
            let (mut fig, _) = replay::run(pool, sampler, policy(variant)?, seed, 1)?;
            fig.sampler = "gp-hedge".into();
            fig.policy = variant.into();
            writeln!(
                out.lock().expect("not poisoned"),
                "{}",
                serde_json::to_string(&fig)?
            )?;
            eprintln!("{} {variant} seed {seed}", pool.task);
            Ok(fig)
        })
        .collect::<Res<_>>()?;
    for p in &pools {
        let mine: Vec<RunFigures> = runs.iter().filter(|r| r.task == p.task).cloned().collect();
        println!(
            "{}\n\n{}",
            p.task,
            replay::summary_table(&replay::summarise(&mine))
        );
    }
    Ok(())
}
