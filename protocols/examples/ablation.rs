//! Protocol P for foresight's default predictor with each of its departures
//! from the reference undone in turn, and for the reference configuration:
//! the measurements behind the choices listed in `curve`'s documentation.
//!
//! ```sh
//! cargo run --release --example ablation [-- CURVES ...]
//! ```
//!
//! Without arguments it runs on the bundled `curves/`. Prints a markdown
//! table: per variant, set and cutoff, the median absolute error, median log
//! density, 90% coverage and false stops / truly better curves.

use foresight::curve::{Combination, Fitting, LossScale, PredictorConfig, Recency, Start};
use foresight_protocols::{curveset, predict as protocol};

fn main() -> foresight::Result<()> {
    let mut paths: Vec<String> = std::env::args().skip(1).collect();
    if paths.is_empty() {
        paths = vec![
            "curves/taskset-imdb4.jsonl.gz".into(),
            "curves/lcbench-4.jsonl.gz".into(),
        ];
    }
    let mut curves = Vec::new();
    for p in &paths {
        curves.extend(curveset::read(p)?);
    }
    let cases = protocol::select(&curves, 12)?;
    let d = PredictorConfig::default;
    let variants: Vec<(&str, PredictorConfig)> = vec![
        ("default", d()),
        (
            "weighted combination (joint posterior)",
            PredictorConfig {
                combination: Combination::Weighted,
                start: Start::Ball(1e-6),
                ..d()
            },
        ),
        (
            "no backtest (equal weights, no discrepancy)",
            PredictorConfig {
                backtest: false,
                ..d()
            },
        ),
        (
            "no noise floor",
            PredictorConfig {
                noise_floor: 0.0,
                ..d()
            },
        ),
        (
            "no misfit check",
            PredictorConfig {
                max_misfit: None,
                ..d()
            },
        ),
        (
            "families fitted with fewer points (extra 0)",
            PredictorConfig {
                extra_points: 0,
                ..d()
            },
        ),
        (
            "raw recency weights",
            PredictorConfig {
                recency: Recency::Reference,
                ..d()
            },
        ),
        (
            "asymptote bound 100",
            PredictorConfig {
                upper: 100.0,
                ..d()
            },
        ),
        (
            "losses as exp(-loss)",
            PredictorConfig {
                loss_scale: LossScale::Fixed(1.0),
                ..d()
            },
        ),
        (
            "reference fitting",
            PredictorConfig {
                fitting: Fitting::Reference,
                ..d()
            },
        ),
        (
            "1e-6 ball start",
            PredictorConfig {
                start: Start::Ball(1e-6),
                ..d()
            },
        ),
        (
            "reference MCMC budget",
            PredictorConfig {
                walkers: 100,
                steps: 2500,
                burn_in: 500,
                thin: 10,
                ..d()
            },
        ),
        ("reference configuration", PredictorConfig::reference()),
    ];
    println!(
        "| variant | set | cutoff | median abs err | median log density | coverage90 | false stops | stopped worse | median s |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for (name, config) in variants {
        let rows = protocol::run(&cases, &protocol::CUTOFFS, &config, |_, _| {})?;
        for s in protocol::summarize(&rows) {
            println!(
                "| {name} | {} | {} | {:.4} | {:.2} | {:.3} | {}/{} | {:.2} | {:.3} |",
                s.source,
                s.cutoff,
                s.median_abs_err,
                s.median_log_density,
                s.coverage90,
                s.false_stops,
                s.true_better,
                s.stopped_worse_frac,
                s.median_seconds
            );
        }
    }
    Ok(())
}
