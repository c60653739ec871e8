//! What pausing instead of stopping (freeze-thaw), a threshold weighed
//! by what a stop saves, or the sampler's view of a configuration as a
//! prior for its forecast, could save with GP-Hedge:
//! a stand-alone simulation of protocol R, for deciding whether to build them
//! into the tuner — not the tuner's own loop (`foresight replay` is).
//!
//! ```sh
//! cargo run --release -p foresight-protocols --example freeze_thaw -- CURVES TASKS SEEDS VARIANTS
//! # e.g. the first 8 LCBench-surrogate tasks, seeds 0 and 1:
//! cargo run --release -p foresight-protocols --example freeze_thaw -- \
//!     ../shared/curves/yahpo_lcbench_surrogate.jsonl 8 2 stop0.05,pause0.05,pause0.2
//! cargo run --release -p foresight-protocols --example freeze_thaw -- \
//!     ../shared/curves/yahpo_lcbench_surrogate.jsonl 8 2 stop0.05,resume0.05,resume0.2
//! cargo run --release -p foresight-protocols --example freeze_thaw -- \
//!     ../shared/curves/yahpo_lcbench_surrogate.jsonl 8 2 stop0.05,stop0.1,weigh0.1,weigh0.2
//! cargo run --release -p foresight-protocols --example freeze_thaw -- \
//!     ../shared/curves/yahpo_lcbench_surrogate.jsonl 8 2 stop0.05,prior0.05
//! ```
//!
//! One worker runs trials one after another, with the learning-curve rule
//! of the `lc` policy (after every epoch from the third, with an incumbent
//! and no score yet better than it, forecast the curve with foresight's
//! default predictor and act when `P(better) < θ`). A variant `stopθ`
//! ends such a trial for good; `pauseθ` pauses it (its forecast is kept),
//! and before each new trial resumes the paused trial with the most
//! probability of beating the current incumbent per epoch still to run,
//! `P(better) / (T − n)`, if that beats what a new trial has brought in
//! this study: improvements of the incumbent per epoch over the last 20
//! trials, counting one pseudo-improvement per `T` epochs of prior (so
//! that early on new trials win); a resumed trial runs to the horizon.
//! `resumeθ` pauses in the same way but lets the sampler decide: every
//! paused configuration joins the candidates of each proposal (all of them
//! scored, with a seeded subset of the unused pool filling the rest of
//! GP-Hedge's 512), and a paused one that is picked is resumed to the
//! horizon — a resume driven by the sampler's posterior at the paused
//! configuration, after its neighbours have run (the evidence freeze-thaw
//! Bayesian optimisation uses, Swersky, Snoek & Adams 2014, in its
//! simplest form: no joint model of curves, no cost per epoch).
//! `weighθ` stops (for good) when `P(better) < θ (T − n) / (T − 3)`: the
//! risk a stop may take shrinks with the share of the run it still saves
//! (issue 16's "weigh what a stop saves"), from θ at the first check to 0
//! at the horizon.
//! `priorθ` stops (for good) on the forecast combined with the sampler's
//! view of the configuration (issue 16's "the sampler's view of its
//! configuration"): the GP's predictive of the final value at the
//! configuration when it started (observation noise included) is a prior
//! for the curve's forecast, which the families make under a flat one, so
//! `P(better)` is taken under the product of the two (importance weights
//! on 4000 draws of the forecast). `guardθ` uses that combined
//! probability only where it is the larger: the sampler's view can keep a
//! trial going but never stops one.
//! In every variant the sampler is told the
//! forecast's median with the variance of its 90% interval, as the tuner
//! tells it; a resumed trial that completes tells its true final value as
//! a second observation. `none` never acts. Each variant's speedup is
//! against `none` of the same simulation (protocol R's definition);
//! printed per run and as the median over runs.

use foresight::curve::{Predictive, PredictorConfig};
use foresight::sampler::{GpSampler, GpSettings, Sampler, SamplerSpec};
use foresight_protocols::curveset;
use foresight_protocols::replay::{self, Pool, RunFigures};
use rayon::prelude::*;
use std::collections::VecDeque;

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

#[derive(Clone, Copy, Debug)]
enum Variant {
    None,
    Stop(f64),
    Pause(f64),
    Resume(f64),
    Weigh(f64),
    Prior(f64),
    Guard(f64),
}

impl Variant {
    fn parse(s: &str) -> Res<Variant> {
        Ok(match s {
            "none" => Variant::None,
            _ if s.starts_with("stop") => Variant::Stop(s[4..].parse()?),
            _ if s.starts_with("pause") => Variant::Pause(s[5..].parse()?),
            _ if s.starts_with("resume") => Variant::Resume(s[6..].parse()?),
            _ if s.starts_with("weigh") => Variant::Weigh(s[5..].parse()?),
            _ if s.starts_with("prior") => Variant::Prior(s[5..].parse()?),
            _ if s.starts_with("guard") => Variant::Guard(s[5..].parse()?),
            _ => return Err(format!("unknown variant `{s}`").into()),
        })
    }
}

/// A paused trial: its pool index, epochs run, and final-value forecast.
struct Paused {
    pool_index: usize,
    epochs: usize,
    forecast: Predictive,
}

/// The first epoch after which a trial is assessed (as the `lc` policy).
const FIRST_CHECK: usize = 3;

/// Trials remembered for the rate of improvement a new trial brings.
const RECENT: usize = 20;

/// The most candidates GP-Hedge scores for one proposal (as its own
/// subset of a larger pool).
const MAX_SCORED: usize = 512;

/// A seeded random subset of `k` of `from` (all of them when `k` is
/// larger), in their order.
fn subset(from: &[usize], k: usize, seed: u64, trial: u64) -> Vec<usize> {
    use rand::{RngExt, SeedableRng};
    if from.len() <= k {
        return from.to_vec();
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(foresight::seed::mix64(
        seed ^ trial.wrapping_mul(foresight::seed::GOLDEN) ^ 0x5EED,
    ));
    let mut idx = from.to_vec();
    for i in 0..k {
        let j = rng.random_range(i..idx.len());
        idx.swap(i, j);
    }
    idx.truncate(k);
    idx.sort_unstable();
    idx
}

fn simulate(pool: &Pool, seed: u64, variant: Variant) -> Res<(RunFigures, usize)> {
    let t = pool.horizon;
    let budget = 50 * t;
    let objective = pool.objective;
    let units = objective
        .curve_units()
        .ok_or("the objective has no curve units")?;
    let SamplerSpec::Gp(settings) = "gp-hedge".parse()? else {
        return Err("gp-hedge is a GP sampler".into());
    };
    let mut sampler = GpSampler::new(pool.space.clone(), GpSettings { seed, ..settings })?;
    sampler.reseed(seed);
    let mut used = vec![false; pool.configs.len()];
    let predictor = PredictorConfig {
        parallel: false,
        ..PredictorConfig::default()
    };
    let sign = objective.sign();
    let mut spent_total = 0;
    let mut incumbent: Option<f64> = None;
    let mut worst: Option<f64> = None;
    let mut traj: Vec<(usize, f64)> = Vec::new();
    let mut paused: Vec<Paused> = Vec::new();
    let mut recent: VecDeque<(usize, bool)> = VecDeque::new();
    let mut trials = 0u64;
    let mut resumed = 0;
    'study: while spent_total < budget {
        // A paused trial to resume, or a new one.
        let rate_new = {
            let (epochs, improved) = recent.iter().fold((t, 1usize), |(e, i), &(de, di)| {
                (e + de, i + usize::from(di))
            });
            improved as f64 / epochs as f64
        };
        let resume = match (variant, incumbent) {
            (Variant::Pause(_), Some(best)) => paused
                .iter()
                .enumerate()
                .map(|(k, p)| {
                    let value =
                        p.forecast.prob_better(units.to_curve(best)) / (t - p.epochs) as f64;
                    (k, value)
                })
                .filter(|&(_, v)| v > rate_new)
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .map(|(k, _)| paused.swap_remove(k)),
            _ => None,
        };
        let (i, start) = match resume {
            Some(p) => {
                resumed += 1;
                (p.pool_index, p.epochs)
            }
            None => {
                let unused: Vec<usize> = (0..pool.configs.len()).filter(|&i| !used[i]).collect();
                // `resumeθ`: the paused configurations compete with the new
                // ones for the sampler's pick, all of them scored.
                let paused_now: Vec<usize> = match variant {
                    Variant::Resume(_) => paused.iter().map(|p| p.pool_index).collect(),
                    _ => Vec::new(),
                };
                let fresh = if paused_now.is_empty() {
                    unused
                } else {
                    subset(
                        &unused,
                        MAX_SCORED.saturating_sub(paused_now.len()),
                        seed,
                        trials,
                    )
                };
                let candidates: Vec<usize> = paused_now.iter().chain(&fresh).copied().collect();
                if candidates.is_empty() {
                    break;
                }
                let configs: Vec<_> = candidates
                    .iter()
                    .map(|&i| pool.configs[i].clone())
                    .collect();
                let k = sampler.ask_among(&configs, &[])?;
                if k < paused_now.len() {
                    // `paused_now` lists `paused` in its order.
                    let p = paused.remove(k);
                    resumed += 1;
                    (p.pool_index, p.epochs)
                } else {
                    used[candidates[k]] = true;
                    (candidates[k], 0)
                }
            }
        };
        trials += 1;
        let curve = &pool.curves[i];
        let config = &pool.configs[i];
        // `priorθ` and `guardθ`: the GP's predictive of this
        // configuration's final value (sampler units, observation noise
        // included) when it starts.
        let gp_prior = match variant {
            Variant::Prior(_) | Variant::Guard(_) if start == 0 => sampler.model().map(|gp| {
                let x = pool
                    .space
                    .encode(config)
                    .expect("pool configurations encode");
                let (m, v) = gp.predict(&x);
                let scale = gp.output_scale().1;
                (m, v + gp.hyperparameters().log_noise.exp() * scale * scale)
            }),
            _ => None,
        };
        let mut spent = 0;
        let mut improved = false;
        for e in start + 1..=t {
            if spent_total == budget {
                break 'study;
            }
            spent_total += 1;
            spent += 1;
            let v = curve[e - 1];
            if !v.is_finite() {
                // Diverged: the sampler hears the worst score so far, as
                // the tuner tells it.
                if let Some(w) = worst {
                    sampler.tell(config, sign * w, 0.0)?;
                }
                break;
            }
            if worst.is_none_or(|w| objective.better(w, v)) {
                worst = Some(v);
            }
            if e == t {
                sampler.tell(config, sign * v, 0.0)?;
                if incumbent.is_none_or(|b| objective.better(v, b)) {
                    incumbent = Some(v);
                    improved = true;
                    let r = pool.regret(incumbent);
                    if traj.last().is_none_or(|p| p.1 != r) {
                        traj.push((spent_total, r));
                    }
                }
                break;
            }
            let (theta, pause) = match variant {
                Variant::None => continue,
                Variant::Stop(th) | Variant::Prior(th) | Variant::Guard(th) => (th, false),
                Variant::Pause(th) | Variant::Resume(th) => (th, true),
                // The risk a stop takes against the share of the run it
                // saves: θ after the first check, falling to 0 at the horizon.
                Variant::Weigh(th) => (
                    th * (t - e) as f64 / t.saturating_sub(FIRST_CHECK).max(1) as f64,
                    false,
                ),
            };
            let Some(best) = incumbent else { continue };
            if start > 0 {
                // A resumed trial runs to the horizon.
                continue;
            }
            if e < FIRST_CHECK || curve[..e].iter().any(|&s| objective.better(s, best)) {
                continue;
            }
            let observed: Vec<f64> = curve[..e].iter().map(|&s| units.to_curve(s)).collect();
            let mut p = predictor.clone();
            p.seed = foresight::seed::mix64(
                seed ^ (trials.wrapping_mul(foresight::seed::GOLDEN)) ^ e as u64,
            );
            let forecast = p.predict(&observed, t, units.metric)?;
            if forecast.is_fallback() {
                continue;
            }
            let last = forecast.final_value();
            let alone = last.prob_better(units.to_curve(best));
            let p_better = match gp_prior {
                // The curve's forecast (flat prior on the final value)
                // times the GP's predictive, by importance weights on
                // draws of the forecast (study units).
                Some((m, v)) => {
                    let draws: Vec<f64> = last
                        .sample(4000, p.seed ^ 0xA11CE)
                        .into_iter()
                        .map(|d| units.from_curve(d))
                        .collect();
                    let logw: Vec<f64> = draws
                        .iter()
                        .map(|&y| -0.5 * (sign * y - m).powi(2) / v)
                        .collect();
                    let top = logw.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    let (mut num, mut den) = (0.0, 0.0);
                    for (&y, &lw) in draws.iter().zip(&logw) {
                        let w = (lw - top).exp();
                        den += w;
                        if objective.better(y, best) {
                            num += w;
                        }
                    }
                    let combined = if den > 0.0 { num / den } else { alone };
                    // `guardθ`: the GP's view only ever keeps a trial going.
                    if matches!(variant, Variant::Guard(_)) {
                        combined.max(alone)
                    } else {
                        combined
                    }
                }
                None => alone,
            };
            if p_better >= theta {
                continue;
            }
            let (q05, q50, q95) = (last.quantile(0.05), last.quantile(0.5), last.quantile(0.95));
            let spread = (q95 - q05) / (2.0 * 1.6448536269514722);
            let (m, var) = (
                units.from_curve(q50),
                units.variance_from_curve(spread * spread),
            );
            if m.is_finite() && var.is_finite() {
                sampler.tell(config, sign * m, var)?;
            }
            if pause {
                paused.push(Paused {
                    pool_index: i,
                    epochs: e,
                    forecast: last,
                });
            }
            break;
        }
        recent.push_back((spent, improved));
        if recent.len() > RECENT {
            recent.pop_front();
        }
    }
    let figures = RunFigures {
        source: pool.source.clone(),
        task: pool.task.clone(),
        sampler: "gp-hedge".into(),
        policy: format!("{variant:?}"),
        seed,
        workers: 1,
        horizon: t,
        budget,
        r_5t: f64::NAN,
        r_10t: f64::NAN,
        r_20t: f64::NAN,
        r_50t: f64::NAN,
        epochs_to_r01: f64::NAN,
        epochs_to_r001: f64::NAN,
        trials_started: trials as usize,
        trials_stopped: 0,
        false_stops: 0,
        traj,
    };
    Ok((figures, resumed))
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [curves, tasks, seeds, variants] = args.as_slice() else {
        return Err("usage: freeze_thaw CURVES TASKS SEEDS VARIANTS".into());
    };
    let pools = Pool::from_records(curveset::read(curves)?)?;
    let tasks: usize = tasks.parse()?;
    let seeds: u64 = seeds.parse()?;
    let variants: Vec<(String, Variant)> = variants
        .split(',')
        .map(|v| Ok((v.to_string(), Variant::parse(v)?)))
        .collect::<Res<_>>()?;
    let jobs: Vec<(&Pool, u64)> = pools
        .iter()
        .take(tasks)
        .flat_map(|p| (0..seeds).map(move |s| (p, s)))
        .collect();
    let rows: Vec<Vec<(f64, usize, usize)>> = jobs
        .par_iter()
        .map(|&(pool, seed)| -> Res<Vec<(f64, usize, usize)>> {
            let (none, _) = simulate(pool, seed, Variant::None)?;
            let mut out = Vec::new();
            let mut line = format!("{:<28} seed {seed}", pool.task);
            for (name, v) in &variants {
                let (fig, resumed) = simulate(pool, seed, *v)?;
                let s = replay::speedup(&none, &fig);
                line.push_str(&format!(
                    " | {name} {s:.2} ({} trials, {resumed} resumed)",
                    fig.trials_started
                ));
                out.push((s, fig.trials_started, resumed));
            }
            println!("{line}");
            Ok(out)
        })
        .collect::<Res<_>>()?;
    for (k, (name, _)) in variants.iter().enumerate() {
        let s: Vec<f64> = rows.iter().map(|r| r[k].0).collect();
        let worst = s.iter().copied().fold(f64::INFINITY, f64::min);
        println!(
            "{name}: median speedup over {} runs {:.2}, smallest {worst:.2}",
            s.len(),
            foresight::stats::median(&s)
        );
    }
    Ok(())
}
