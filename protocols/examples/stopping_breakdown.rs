//! Where a replayed run's epochs go (protocol R, GP-Hedge), up to the
//! moment it first reaches the regret the same seed's run without stopping
//! ends with — the epochs protocol R's speedup counts.
//!
//! ```sh
//! cargo run --release -p foresight-protocols --example stopping_breakdown -- CURVES TASKS SEEDS POLICY [truth]
//! # e.g. the first 8 LCBench-surrogate tasks, seeds 0 and 1:
//! cargo run --release -p foresight-protocols --example stopping_breakdown -- \
//!     ../shared/curves/yahpo_lcbench_surrogate.jsonl 8 2 lc
//! ```
//!
//! `TASKS` is how many tasks of the file (from the first), `POLICY` a
//! policy as `foresight replay --policy` names it (`lc`,
//! `lc(threshold=0.2)`, ...). With `truth`, the sampler of both runs is told
//! every trial's true final value instead of what the tuner tells it (a
//! stopped trial's forecast): an oracle that isolates what the forecast a
//! stop reports costs, from what the stops themselves cost.
//!
//! One line per run: its speedup, then the epochs spent on trials that
//! improved the incumbent, on other completed trials, and on stopped ones
//! (with the median epoch of a stop), and the run's false stops; then the
//! median speedup and the epochs of each kind summed over runs.

use foresight::error::Result as FsResult;
use foresight::policy;
use foresight::report::{self, EpochsByOutcome};
use foresight::sampler::{Sampler, SamplerSpec};
use foresight::space::Config;
use foresight_protocols::curveset;
use foresight_protocols::replay::{self, Pool};
use rayon::prelude::*;

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// A sampler told every trial's true final value (minimised units)
/// whatever the tuner tells it.
struct TruthTeller {
    inner: Box<dyn Sampler>,
    configs: Vec<Config>,
    finals: Vec<f64>,
}

impl Sampler for TruthTeller {
    fn name(&self) -> String {
        self.inner.name()
    }
    fn reseed(&mut self, seed: u64) {
        self.inner.reseed(seed)
    }
    fn ask(&mut self, pending: &[Config]) -> FsResult<Config> {
        self.inner.ask(pending)
    }
    fn ask_among(&mut self, candidates: &[Config], pending: &[Config]) -> FsResult<usize> {
        self.inner.ask_among(candidates, pending)
    }
    fn tell(&mut self, config: &Config, value: f64, variance: f64) -> FsResult<()> {
        match self.configs.iter().position(|c| c == config) {
            Some(i) if self.finals[i].is_finite() => self.inner.tell(config, self.finals[i], 0.0),
            _ => self.inner.tell(config, value, variance),
        }
    }
}

fn sampler(pool: &Pool, seed: u64, truth: bool) -> Res<Box<dyn Sampler>> {
    let spec: SamplerSpec = "gp-hedge".parse()?;
    let inner = spec.build(&pool.space, seed)?;
    if !truth {
        return Ok(inner);
    }
    let sign = pool.objective.sign();
    Ok(Box::new(TruthTeller {
        inner,
        configs: pool.configs.clone(),
        finals: (0..pool.configs.len())
            .map(|i| sign * pool.final_value(i))
            .collect(),
    }))
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (curves, tasks, seeds, pol, truth) = match args.as_slice() {
        [c, t, s, p] => (c, t, s, p, false),
        [c, t, s, p, x] if x == "truth" => (c, t, s, p, true),
        _ => return Err("usage: stopping_breakdown CURVES TASKS SEEDS POLICY [truth]".into()),
    };
    let pools = Pool::from_records(curveset::read(curves)?)?;
    let tasks: usize = tasks.parse()?;
    let seeds: u64 = seeds.parse()?;
    policy::parse(pol)?;
    let jobs: Vec<(&Pool, u64)> = pools
        .iter()
        .take(tasks)
        .flat_map(|p| (0..seeds).map(move |s| (p, s)))
        .collect();
    let rows: Vec<(String, f64, EpochsByOutcome)> = jobs
        .par_iter()
        .map(|&(pool, seed)| -> Res<(String, f64, EpochsByOutcome)> {
            let (none, _) = replay::run(pool, sampler(pool, seed, truth)?, policy::parse("none")?, seed, 1)?;
            let (fig, study) = replay::run(pool, sampler(pool, seed, truth)?, policy::parse(pol)?, seed, 1)?;
            let speedup = replay::speedup(&none, &fig);
            let target = none.regret_at(none.budget);
            let limit = fig.epochs_to(target).min(fig.budget as f64);
            let b = report::epochs_by_outcome(&study, limit as usize);
            let line = format!(
                "{:<28} seed {seed}  to target: none {:>5}  {pol} {:>5}  speedup {speedup:.2} | improving {:>4} | other completed {:>4} ({:>2} trials) | stopped {:>4} ({:>3} trials, median at epoch {:>2}) | false stops {}",
                pool.task,
                none.epochs_to(target),
                fig.epochs_to(target),
                b.improving.epochs,
                b.completed.epochs,
                b.completed.trials,
                b.stopped().epochs,
                b.stopped().trials,
                b.median_stop().unwrap_or(0),
                fig.false_stops,
            );
            Ok((line, speedup, b))
        })
        .collect::<Res<_>>()?;
    for (line, _, _) in &rows {
        println!("{line}");
    }
    let speedups: Vec<f64> = rows.iter().map(|r| r.1).collect();
    let mut sum = EpochsByOutcome::default();
    for (_, _, b) in &rows {
        sum.merge(b);
    }
    println!(
        "{} runs: median speedup over runs {:.2}; epochs to target, summed: improving {}, other completed {} ({} trials), stopped {} ({} trials)",
        rows.len(),
        foresight::stats::median(&speedups),
        sum.improving.epochs,
        sum.completed.epochs,
        sum.completed.trials,
        sum.stopped().epochs,
        sum.stopped().trials,
    );
    Ok(())
}
