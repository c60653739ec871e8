//! Protocol B: Bayesian optimisation on test functions.
//!
//! ```sh
//! cargo run --release --example bo_bench -- [--json] [--seeds 10] [--methods gp-hedge,gp-ei,random] [--eta 0.1] [--timings-only]
//! ```
//!
//! Minimises branin, hartmann3, hartmann6, levy10, ackley5 and
//! hartmann6_noisy (Gaussian noise of sd 0.1 on every observation; regret of
//! the recommended point, the evaluated one of lowest posterior mean, on the
//! noise-free function) with 60 evaluations of which 10 are the initial
//! Sobol design; reports the median and quartiles over seeds of the simple
//! regret after 20, 40 and 60 evaluations, and the median time of one
//! suggestion with 50 and 200 observations of Hartmann6 (random
//! observations, then ten consecutive suggestions, five seeds: the median of
//! those 50 times). The JSON format is
//! protocol B's (`benches/bo_compare.py` merges it with Python tools').

use std::time::Instant;

use foresight::acquisition::Acquisition;
use foresight::sampler::{GpSampler, GpSettings, Pending, RandomSampler, Sampler};
use foresight::space::{Config, Scale, Space};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

struct Problem {
    name: &'static str,
    bounds: Vec<(f64, f64)>,
    optimum: f64,
    noise: f64,
    f: fn(&[f64]) -> f64,
}

fn branin(x: &[f64]) -> f64 {
    let pi = std::f64::consts::PI;
    let (b, c, r, s, t) = (5.1 / (4.0 * pi * pi), 5.0 / pi, 6.0, 10.0, 1.0 / (8.0 * pi));
    (x[1] - b * x[0] * x[0] + c * x[0] - r).powi(2) + s * (1.0 - t) * x[0].cos() + s
}

fn hartmann(x: &[f64], alpha: &[f64; 4], a: &[&[f64]; 4], p: &[&[f64]; 4]) -> f64 {
    -(0..4)
        .map(|i| {
            let inner: f64 = (0..x.len())
                .map(|j| a[i][j] * (x[j] - p[i][j] * 1e-4).powi(2))
                .sum();
            alpha[i] * (-inner).exp()
        })
        .sum::<f64>()
}

const H_ALPHA: [f64; 4] = [1.0, 1.2, 3.0, 3.2];

fn hartmann3(x: &[f64]) -> f64 {
    let a: [&[f64]; 4] = [
        &[3.0, 10.0, 30.0],
        &[0.1, 10.0, 35.0],
        &[3.0, 10.0, 30.0],
        &[0.1, 10.0, 35.0],
    ];
    let p: [&[f64]; 4] = [
        &[3689.0, 1170.0, 2673.0],
        &[4699.0, 4387.0, 7470.0],
        &[1091.0, 8732.0, 5547.0],
        &[381.0, 5743.0, 8828.0],
    ];
    hartmann(x, &H_ALPHA, &a, &p)
}

fn hartmann6(x: &[f64]) -> f64 {
    let a: [&[f64]; 4] = [
        &[10.0, 3.0, 17.0, 3.5, 1.7, 8.0],
        &[0.05, 10.0, 17.0, 0.1, 8.0, 14.0],
        &[3.0, 3.5, 1.7, 10.0, 17.0, 8.0],
        &[17.0, 8.0, 0.05, 10.0, 0.1, 14.0],
    ];
    let p: [&[f64]; 4] = [
        &[1312.0, 1696.0, 5569.0, 124.0, 8283.0, 5886.0],
        &[2329.0, 4135.0, 8307.0, 3736.0, 1004.0, 9991.0],
        &[2348.0, 1451.0, 3522.0, 2883.0, 3047.0, 6650.0],
        &[4047.0, 8828.0, 8732.0, 5743.0, 1091.0, 381.0],
    ];
    hartmann(x, &H_ALPHA, &a, &p)
}

fn levy(x: &[f64]) -> f64 {
    let pi = std::f64::consts::PI;
    let w: Vec<f64> = x.iter().map(|v| 1.0 + (v - 1.0) / 4.0).collect();
    let d = w.len();
    let mut s = (pi * w[0]).sin().powi(2);
    for wi in &w[..d - 1] {
        s += (wi - 1.0).powi(2) * (1.0 + 10.0 * (pi * wi + 1.0).sin().powi(2));
    }
    s + (w[d - 1] - 1.0).powi(2) * (1.0 + (2.0 * pi * w[d - 1]).sin().powi(2))
}

fn ackley(x: &[f64]) -> f64 {
    let d = x.len() as f64;
    let sq = x.iter().map(|v| v * v).sum::<f64>() / d;
    let cs = x
        .iter()
        .map(|v| (2.0 * std::f64::consts::PI * v).cos())
        .sum::<f64>()
        / d;
    -20.0 * (-0.2 * sq.sqrt()).exp() - cs.exp() + 20.0 + std::f64::consts::E
}

fn problems() -> Vec<Problem> {
    vec![
        Problem {
            name: "branin",
            bounds: vec![(-5.0, 10.0), (0.0, 15.0)],
            optimum: 0.397887,
            noise: 0.0,
            f: branin,
        },
        Problem {
            name: "hartmann3",
            bounds: vec![(0.0, 1.0); 3],
            optimum: -3.86278,
            noise: 0.0,
            f: hartmann3,
        },
        Problem {
            name: "hartmann6",
            bounds: vec![(0.0, 1.0); 6],
            optimum: -3.32237,
            noise: 0.0,
            f: hartmann6,
        },
        Problem {
            name: "levy10",
            bounds: vec![(-10.0, 10.0); 10],
            optimum: 0.0,
            noise: 0.0,
            f: levy,
        },
        Problem {
            name: "ackley5",
            bounds: vec![(-32.768, 32.768); 5],
            optimum: 0.0,
            noise: 0.0,
            f: ackley,
        },
        Problem {
            name: "hartmann6_noisy",
            bounds: vec![(0.0, 1.0); 6],
            optimum: -3.32237,
            noise: 0.1,
            f: hartmann6,
        },
    ]
}

fn space_of(p: &Problem) -> Space {
    let mut b = Space::builder();
    for (i, (lo, hi)) in p.bounds.iter().enumerate() {
        b = b.float(&format!("x{i}"), *lo, *hi, Scale::Linear);
    }
    b.build().expect("valid space")
}

fn point(c: &Config, d: usize) -> Vec<f64> {
    (0..d).map(|i| c[&format!("x{i}")].as_f64()).collect()
}

/// The sampler of a method name, and its number of parallel workers. A
/// suffix `-w4-kb` / `-w4-cl` runs four synchronous workers whose pending
/// points enter as kriging-believer or constant-liar fantasies.
fn sampler(method: &str, space: Space, seed: u64, eta: f64) -> (Box<dyn SamplerExt>, usize) {
    let (base, workers, pending) = match method.split_once("-w4-") {
        Some((b, "kb")) => (b, 4, Pending::KrigingBeliever),
        Some((b, "cl")) => (b, 4, Pending::ConstantLiar),
        _ => (method, 1, Pending::KrigingBeliever),
    };
    let gp = |arms: Vec<Acquisition>| {
        GpSampler::new(
            space.clone(),
            GpSettings {
                arms,
                seed,
                pending,
                eta,
                ..GpSettings::default()
            },
        )
        .unwrap()
    };
    (sampler_of(base, gp, &space, seed), workers)
}

fn sampler_of(
    method: &str,
    gp: impl Fn(Vec<Acquisition>) -> GpSampler,
    space: &Space,
    seed: u64,
) -> Box<dyn SamplerExt> {
    match method {
        "gp-hedge" => Box::new(gp(vec![Acquisition::Ucb, Acquisition::Pi])),
        "gp-hedge3" => Box::new(gp(vec![Acquisition::Ucb, Acquisition::Pi, Acquisition::Ei])),
        "gp-ei" => Box::new(gp(vec![Acquisition::Ei])),
        "gp-ucb" => Box::new(gp(vec![Acquisition::Ucb])),
        "gp-pi" => Box::new(gp(vec![Acquisition::Pi])),
        "random" => Box::new(RandomSampler::new(space.clone(), seed)),
        other => panic!("unknown method {other}"),
    }
}

/// A sampler that can also recommend a point (GP: lowest posterior mean
/// among the evaluated; random: lowest observed value).
trait SamplerExt: Sampler {
    fn recommend_point(&self) -> Option<Config>;
}

impl SamplerExt for GpSampler {
    fn recommend_point(&self) -> Option<Config> {
        self.recommend().map(|r| r.0)
    }
}

impl SamplerExt for RandomSampler {
    fn recommend_point(&self) -> Option<Config> {
        None
    }
}

fn quantile(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    foresight::stats::percentile(v, q)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let json = args.iter().any(|a| a == "--json");
    let value_of = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let seeds: u64 = value_of("--seeds").map_or(10, |s| s.parse().expect("--seeds N"));
    let eta: f64 =
        value_of("--eta").map_or(GpSettings::default().eta, |s| s.parse().expect("--eta X"));
    let methods: Vec<String> = value_of("--methods").map_or(
        vec!["gp-hedge".into(), "gp-ei".into(), "random".into()],
        |m| m.split(',').map(String::from).collect(),
    );
    let timings_only = args.iter().any(|a| a == "--timings-only");
    let checkpoints = [20usize, 40, 60];
    let mut rows = Vec::new();
    for p in problems().into_iter().filter(|_| !timings_only) {
        let d = p.bounds.len();
        for method in &methods {
            // regrets[checkpoint][seed]
            let mut regrets = vec![Vec::new(); checkpoints.len()];
            for seed in 0..seeds {
                let space = space_of(&p);
                let (mut s, workers) = sampler(method, space, seed, eta);
                let mut noise_rng = ChaCha8Rng::seed_from_u64(1000 + seed);
                let mut best_true = f64::INFINITY;
                let mut best_seen = (f64::INFINITY, f64::INFINITY); // (observed, true) of the best observation
                let mut batch: Vec<Config> = Vec::new();
                for eval in 1..=60 {
                    // Synchronous workers: a batch is proposed with the
                    // earlier members pending, then evaluated in order.
                    if batch.is_empty() {
                        for _ in 0..workers.min(61 - eval) {
                            let c = s.ask(&batch).expect("ask");
                            batch.push(c);
                        }
                        batch.reverse();
                    }
                    let c = batch.pop().expect("a proposal");
                    let x = point(&c, d);
                    let truth = (p.f)(&x);
                    let observed = truth
                        + p.noise * Distribution::<f64>::sample(&StandardNormal, &mut noise_rng);
                    best_true = best_true.min(truth);
                    if observed < best_seen.0 {
                        best_seen = (observed, truth);
                    }
                    s.tell(&c, observed, 0.0).expect("tell");
                    if let Some(k) = checkpoints.iter().position(|&c| c == eval) {
                        let r = if p.noise > 0.0 {
                            // Regret of the recommended point, noise-free.
                            match s.recommend_point() {
                                Some(rc) => (p.f)(&point(&rc, d)) - p.optimum,
                                None => best_seen.1 - p.optimum,
                            }
                        } else {
                            best_true - p.optimum
                        };
                        regrets[k].push(r);
                    }
                }
            }
            for (k, &evals) in checkpoints.iter().enumerate() {
                let v = &mut regrets[k];
                rows.push(serde_json::json!({
                    "function": p.name, "method": format!("foresight-{method}"), "evals": evals,
                    "median": quantile(v, 0.5), "q25": quantile(v, 0.25), "q75": quantile(v, 0.75),
                }));
            }
            eprintln!("{} {} done", p.name, method);
        }
    }
    // Suggestion time with 50 and 200 observations of Hartmann6.
    let mut timings = Vec::new();
    for method in methods
        .iter()
        .filter(|m| m.starts_with("gp") && !m.contains("-w4-"))
    {
        for n in [50usize, 200] {
            let mut secs = Vec::new();
            for seed in 0..5u64 {
                let p = &problems()[2];
                let space = space_of(p);
                let (mut s, _) = sampler(method, space.clone(), seed, eta);
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                for _ in 0..n {
                    let u: Vec<f64> = (0..6).map(|_| rng.random::<f64>()).collect();
                    let c = space.decode(&u);
                    s.tell(&c, hartmann6(&point(&c, 6)), 0.0).expect("tell");
                }
                // Ten consecutive suggestions from n observations on, as a
                // running optimiser makes them (hyperparameter re-estimates
                // included).
                for _ in 0..10 {
                    let start = Instant::now();
                    let c = s.ask(&[]).expect("ask");
                    secs.push(start.elapsed().as_secs_f64());
                    s.tell(&c, hartmann6(&point(&c, 6)), 0.0).expect("tell");
                }
            }
            timings.push(serde_json::json!({
                "method": format!("foresight-{method}"), "dims": 6, "observations": n,
                "suggest_seconds": quantile(&mut secs, 0.5),
            }));
        }
    }
    if json {
        println!(
            "{}",
            serde_json::json!({ "rows": rows, "timings": timings })
        );
    } else {
        println!(
            "{:<16} {:<20} {:>5} {:>12} {:>12} {:>12}",
            "function", "method", "evals", "median", "q25", "q75"
        );
        for r in &rows {
            println!(
                "{:<16} {:<20} {:>5} {:>12.5} {:>12.5} {:>12.5}",
                r["function"].as_str().unwrap(),
                r["method"].as_str().unwrap(),
                r["evals"],
                r["median"].as_f64().unwrap(),
                r["q25"].as_f64().unwrap(),
                r["q75"].as_f64().unwrap()
            );
        }
        for t in &timings {
            println!(
                "{} {} observations: {:.4} s per suggestion",
                t["method"].as_str().unwrap(),
                t["observations"],
                t["suggest_seconds"].as_f64().unwrap()
            );
        }
    }
}
