//! The tuner's own cost, against the training it drives, in one process.
//!
//! ```sh
//! cargo bench --bench tuner
//! ```
//!
//! 1. Overhead per epoch: the same trials trained by a plain loop and by
//!    `Tuner::run` (one worker, a study folder on disk, random sampler),
//!    with no stopping and with learning-curve stopping. The difference over
//!    the epochs is the tuner's overhead on the training path, in wall time
//!    and in the process's CPU time (user + system, from `/proc/self/stat`);
//!    it is reported as a fraction of a trivial epoch (a fixed 200 µs of
//!    arithmetic) and of a CLDNN epoch (the example model, default
//!    configuration) timed here. The three runs are repeated
//!    `FORESIGHT_BENCH_REPS` times (default 5) and the medians reported,
//!    with the range: single runs on a shared machine move by ±30%.
//! 2. Throughput: CLDNN epochs per second with one and with two workers
//!    (the same configuration in every trial).

#[path = "../examples/cldnn/data.rs"]
#[allow(dead_code)]
mod data;
#[path = "../examples/cldnn/model.rs"]
#[allow(dead_code)]
mod model;

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use foresight::prelude::*;

/// One repetition of a tuner run: epochs, seconds, and the overhead per
/// epoch in wall and in CPU time (seconds).
struct Sample {
    epochs: f64,
    secs: f64,
    wall: f64,
    cpu: f64,
}

/// A trivial epoch: `WORK` of arithmetic, then a point of a saturating curve.
struct Trivial {
    x: f64,
    epoch: usize,
}

const WORK: Duration = Duration::from_micros(200);

impl Trainable for Trivial {
    type Report = f64;

    fn train_epoch(&mut self) -> Result<f64, TrialError> {
        let start = Instant::now();
        let mut acc = 0.0f64;
        while start.elapsed() < WORK {
            for i in 0..100 {
                acc = black_box(acc + (i as f64).sqrt());
            }
        }
        self.epoch += 1;
        let limit = 0.95 - 0.8 * (self.x - 0.3).powi(2);
        Ok(limit * (1.0 - (-(self.epoch as f64) / 3.0).exp()) + 1e-12 * acc.min(0.0))
    }
}

fn trivial(config: &Config, _ctx: &TrialContext) -> Result<Trivial, TrialError> {
    Ok(Trivial {
        x: config["x"].as_f64(),
        epoch: 0,
    })
}

fn main() {
    let trials = 100;
    let horizon = 30;
    let epochs = (trials * horizon) as f64;
    let space = Space::builder()
        .float("x", 0.0, 1.0, Scale::Linear)
        .build()
        .unwrap();
    let reps: usize = std::env::var("FORESIGHT_BENCH_REPS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    let dir = std::env::temp_dir().join(format!("foresight-bench-tuner-{}", std::process::id()));
    // Every repetition, per policy.
    let mut runs: Vec<(&str, Vec<Sample>)> = vec![("none", vec![]), ("lc", vec![])];
    let mut plain_epochs = Vec::new();
    for _ in 0..reps {
        // Plain loop.
        let (start, cpu0) = (Instant::now(), cpu_seconds());
        for t in 0..trials {
            let mut c = Config::new();
            c.insert("x".into(), Value::Float(t as f64 / trials as f64));
            let mut m = trivial(&c, &ctx(t, horizon)).unwrap();
            for _ in 0..horizon {
                black_box(m.train_epoch().unwrap());
            }
        }
        let (plain, plain_cpu) = (start.elapsed().as_secs_f64(), cpu_seconds() - cpu0);
        plain_epochs.push(plain / epochs);
        for (name, samples) in runs.iter_mut() {
            let _ = std::fs::remove_dir_all(&dir);
            let tuner = Tuner::new(space.clone(), Objective::accuracy(), horizon)
                .sampler(RandomSampler::new(space.clone(), 1))
                .seed(1)
                .budget(Budget {
                    trials: Some(trials),
                    ..Budget::default()
                })
                .storage(Journal::new(&dir))
                .threads_per_trial(1)
                .output(Output::Quiet);
            let tuner = if *name == "lc" {
                tuner.policy(LearningCurve::default())
            } else {
                tuner.policy(NoStopping)
            };
            let (start, cpu0) = (Instant::now(), cpu_seconds());
            let study = tuner.run(trivial).unwrap();
            let (secs, cpu) = (start.elapsed().as_secs_f64(), cpu_seconds() - cpu0);
            let n = study.epochs_used as f64;
            samples.push(Sample {
                epochs: n,
                secs,
                wall: (secs - plain * n / epochs) / n,
                cpu: (cpu - plain_cpu * n / epochs) / n,
            });
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    let trivial_epoch = median(&plain_epochs);

    // One CLDNN epoch of the default configuration, single-threaded.
    // SAFETY: no other thread runs candle code yet.
    unsafe { model::single_threaded_matmul() };
    let data = Arc::new(data::Data::load(&data::default_data_dir(), data::SERIES_LEN).unwrap());
    let config = model::Hyper::default().to_config();
    let mut cldnn = model::Cldnn::new(&config, &ctx(0, 3), Arc::clone(&data)).unwrap();
    cldnn.train_epoch().unwrap();
    let start = Instant::now();
    for _ in 0..3 {
        cldnn.train_epoch().unwrap();
    }
    let cldnn_epoch = start.elapsed().as_secs_f64() / 3.0;

    println!(
        "plain loop: {trials} trials x {horizon} epochs, {:.1} µs per trivial epoch; medians of {reps} runs [range]",
        1e6 * trivial_epoch
    );
    println!(
        "| policy | epochs | tuner s | overhead per epoch (wall) | (CPU) | of a trivial epoch | of a CLDNN epoch ({cldnn_epoch:.2} s) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (name, samples) in &runs {
        let col = |f: fn(&Sample) -> f64| -> Vec<f64> { samples.iter().map(f).collect() };
        let (wall, cpu) = (col(|s| s.wall), col(|s| s.cpu));
        let range = |v: &[f64]| {
            let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            format!("[{:.1}, {:.1}]", 1e6 * lo, 1e6 * hi)
        };
        let per_epoch = median(&wall);
        println!(
            "| {name} | {:.0} | {:.2} | {:.1} µs {} | {:.1} µs {} | {:.1}% | {:.4}% |",
            median(&col(|s| s.epochs)),
            median(&col(|s| s.secs)),
            1e6 * per_epoch,
            range(&wall),
            1e6 * median(&cpu),
            range(&cpu),
            100.0 * per_epoch / trivial_epoch,
            100.0 * per_epoch / cldnn_epoch
        );
    }

    // Throughput with one and two workers: 4 CLDNN trials of 3 epochs, all
    // of the default configuration (the sampler's proposals are ignored).
    let cspace = model::space();
    println!("| workers | CLDNN epochs | seconds | epochs per second |");
    println!("|---:|---:|---:|---:|");
    let mut rates = Vec::new();
    for workers in [1, 2] {
        let (config, data) = (config.clone(), Arc::clone(&data));
        let start = Instant::now();
        let study = Tuner::new(cspace.clone(), Objective::accuracy(), 3)
            .sampler(RandomSampler::new(cspace.clone(), 2))
            .policy(NoStopping)
            .workers(workers)
            // One compute thread per trial, as in the earlier figures.
            .threads_per_trial(1)
            .budget(Budget {
                trials: Some(4),
                ..Budget::default()
            })
            .output(Output::Quiet)
            .run(move |_, x| model::Cldnn::new(&config, x, Arc::clone(&data)))
            .unwrap();
        let secs = start.elapsed().as_secs_f64();
        let rate = study.epochs_used as f64 / secs;
        rates.push(rate);
        println!(
            "| {workers} | {} | {secs:.1} | {rate:.2} |",
            study.epochs_used
        );
    }
    println!(
        "two workers: {:.2}x the epochs per second of one",
        rates[1] / rates[0]
    );
}

/// This process's CPU time so far, user and system (`/proc/self/stat`, in
/// clock ticks of 10 ms).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (tick(11) + tick(12)) / 100.0
}

fn median(v: &[f64]) -> f64 {
    foresight::stats::median(v)
}

fn ctx(trial: usize, horizon: usize) -> TrialContext {
    TrialContext {
        trial,
        seed: trial as u64,
        horizon,
        worker: 0,
        threads: 1,
        time_limit: None,
        checkpoint_dir: std::env::temp_dir(),
    }
}
