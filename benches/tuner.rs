//! The tuner's own cost, against the training it drives, in one process.
//!
//! ```sh
//! cargo bench --bench tuner
//! ```
//!
//! 1. Overhead per epoch: the same trials trained by a plain loop and by
//!    `Tuner::run` (one worker, journal on disk, random sampler), with no
//!    stopping and with learning-curve stopping. The difference over the
//!    epochs is the tuner's overhead on the training path; it is reported as
//!    a fraction of a trivial epoch (a fixed 200 µs of arithmetic) and of a
//!    CLDNN epoch (the example model, default configuration) timed here.
//! 2. Throughput: CLDNN epochs per second with one and with two workers
//!    (the same configuration in every trial).

#[path = "../examples/cldnn.rs"]
#[allow(dead_code)]
mod cldnn;

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use foresight::curve::Metric;
use foresight::policy::{LearningCurve, NoStopping};
use foresight::progress::Output;
use foresight::sampler::RandomSampler;
use foresight::space::{Config, Space};
use foresight::trainable::{Trainable, TrialContext, TrialError};
use foresight::tuner::{Budget, Tuner};

/// A trivial epoch: `WORK` of arithmetic, then a point of a saturating curve.
struct Trivial {
    x: f64,
    epoch: usize,
}

const WORK: Duration = Duration::from_micros(200);

impl Trainable for Trivial {
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
        .float("x", 0.0, 1.0, false)
        .build()
        .unwrap();
    // Plain loop.
    let start = Instant::now();
    for t in 0..trials {
        let mut c = Config::new();
        c.insert(
            "x".into(),
            foresight::space::Value::Float(t as f64 / trials as f64),
        );
        let mut m = trivial(&c, &ctx(t, horizon)).unwrap();
        for _ in 0..horizon {
            black_box(m.train_epoch().unwrap());
        }
    }
    let plain = start.elapsed().as_secs_f64();
    let dir = std::env::temp_dir().join(format!("foresight-bench-tuner-{}", std::process::id()));
    let mut rows = Vec::new();
    for (name, lc) in [("none", false), ("lc", true)] {
        let _ = std::fs::remove_dir_all(&dir);
        let tuner = Tuner::new(space.clone(), Metric::Accuracy, horizon)
            .sampler(RandomSampler::new(space.clone(), 1))
            .budget(Budget {
                trials: Some(trials),
                ..Budget::default()
            })
            .study_dir(&dir)
            .output(Output::Quiet);
        let tuner = if lc {
            tuner.policy(LearningCurve::seeded(1))
        } else {
            tuner.policy(NoStopping)
        };
        let start = Instant::now();
        let study = tuner.run(trivial).unwrap();
        let secs = start.elapsed().as_secs_f64();
        let per_epoch =
            (secs - plain * study.epochs_used as f64 / epochs) / study.epochs_used as f64;
        rows.push((name, study.epochs_used, secs, per_epoch));
    }
    let _ = std::fs::remove_dir_all(&dir);
    let trivial_epoch = plain / epochs;

    // One CLDNN epoch of the default configuration, single-threaded.
    // SAFETY: no other thread runs candle code yet.
    unsafe { cldnn::single_threaded_matmul() };
    let data = Arc::new(cldnn::Data::load(&cldnn::default_data_dir(), cldnn::SERIES_LEN).unwrap());
    let config = cldnn::Hyper::default().to_config();
    let mut model = cldnn::Cldnn::new(&config, &ctx(0, 3), data.clone()).unwrap();
    model.train_epoch().unwrap();
    let start = Instant::now();
    for _ in 0..3 {
        model.train_epoch().unwrap();
    }
    let cldnn_epoch = start.elapsed().as_secs_f64() / 3.0;

    println!(
        "plain loop: {trials} trials x {horizon} epochs, {:.1} µs per trivial epoch",
        1e6 * trivial_epoch
    );
    println!(
        "| policy | epochs | tuner s | overhead per epoch | of a trivial epoch | of a CLDNN epoch ({cldnn_epoch:.2} s) |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, n, secs, per_epoch) in &rows {
        println!(
            "| {name} | {n} | {secs:.2} | {:.1} µs | {:.1}% | {:.4}% |",
            1e6 * per_epoch,
            100.0 * per_epoch / trivial_epoch,
            100.0 * per_epoch / cldnn_epoch
        );
    }

    // Throughput with one and two workers: 4 CLDNN trials of 3 epochs, all
    // of the default configuration (the sampler's proposals are ignored).
    let cspace = cldnn::space();
    println!("| workers | CLDNN epochs | seconds | epochs per second |");
    println!("|---:|---:|---:|---:|");
    let mut rates = Vec::new();
    for workers in [1, 2] {
        let start = Instant::now();
        let study = Tuner::new(cspace.clone(), Metric::Accuracy, 3)
            .sampler(RandomSampler::new(cspace.clone(), 2))
            .policy(NoStopping)
            .workers(workers)
            .budget(Budget {
                trials: Some(4),
                ..Budget::default()
            })
            .output(Output::Quiet)
            .run(|_, x| cldnn::Cldnn::new(&config, x, data.clone()))
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

fn ctx(trial: usize, horizon: usize) -> TrialContext {
    TrialContext {
        trial,
        seed: trial as u64,
        horizon,
        checkpoint_dir: std::env::temp_dir(),
    }
}
