//! Agreement of `PredictorConfig::reference()` with the reference
//! implementation of Domhan et al. (2015) on protocol P.
//!
//! `tests/data/reference_predictions.jsonl` (from `shared/reference/`) holds
//! the reference's predictions of 288 curve prefixes, 144 of them under a
//! second MCMC seed. The reference's chain is not converged, so two of its own
//! runs disagree: the tolerance is stated relative to that disagreement.
//!
//! **Tolerance.** At each cutoff, the median over curves of
//! `|foresight mean - reference mean|` (model space), averaged over three
//! foresight seeds, is at most 3 times the median of
//! `|reference seed 1 - reference seed 0|`; and foresight's stop decisions
//! agree with the reference's at least as often as the reference's second
//! seed does, less three curves in 48.
//!
//! Why 3 and not 1: run through the reference's own Python code with
//! foresight's least-squares fits and the same random stream, the reference
//! moves by about 1.7× its seed-to-seed spread at cutoff 0.4; the rest of the
//! gap is MCMC noise. The fits differ because MINPACK's forward-difference
//! Jacobian amplifies last-bit differences between numpy's vectorised
//! `exp`/`log` and Rust's into different stopping points along flat valleys
//! of the least-squares surface (pow3 with `α → 0`, say), and a chain that is
//! started within 1e-6 of the fit and does not converge stays near it. How
//! fragile this is: reading the curves with exact (round-trip) float
//! parsing instead of serde_json's fast parser — a last-bit change of some
//! inputs — moved the ratio at cutoff 0.4 from 2.18 to 2.72.

use foresight::curve::{Metric, PredictorConfig};
use foresight::stats::median;
use serde_json::Value;

#[test]
fn reference_configuration_agrees_with_the_reference() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/data/reference_predictions.jsonl"
    ))
    .unwrap();
    let rows: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|r: &Value| r.get("ref_seed1_mean").is_some())
        .collect();
    assert_eq!(rows.len(), 144);
    let num = |r: &Value, k: &str| r[k].as_f64().unwrap();
    let seeds = [0u64, 1, 2];
    // (seed, row) -> (model-space mean, stop)
    let ours: Vec<Vec<(f64, bool)>> = seeds
        .iter()
        .map(|&seed| {
            let config = PredictorConfig {
                seed,
                ..PredictorConfig::reference()
            };
            rows.iter()
                .map(|r| {
                    let observed: Vec<f64> = r["observed"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|v| v.as_f64().unwrap())
                        .collect();
                    let horizon = r["T"].as_u64().unwrap() as usize;
                    // The reference's inputs are already in its model space
                    // (TaskSet losses as exp(-loss)), so they enter as accuracy.
                    let p = config
                        .predict(&observed, horizon, Metric::Accuracy)
                        .unwrap()
                        .final_value();
                    (p.model_mean(), p.prob_better(num(r, "y_best")) < 0.05)
                })
                .collect()
        })
        .collect();
    let mut report = String::new();
    let mut failures = Vec::new();
    for cutoff in [0.1, 0.2, 0.4] {
        let idx: Vec<usize> = (0..rows.len())
            .filter(|&i| num(&rows[i], "cutoff") == cutoff)
            .collect();
        let n = idx.len() as f64;
        let ref_spread = median(
            &idx.iter()
                .map(|&i| (num(&rows[i], "ref_seed1_mean") - num(&rows[i], "ref_mean")).abs())
                .collect::<Vec<_>>(),
        );
        let ref_agree = idx
            .iter()
            .filter(|&&i| rows[i]["ref_seed1_stop"] == rows[i]["ref_stop"])
            .count() as f64
            / n;
        let our_spread = seeds
            .iter()
            .enumerate()
            .map(|(s, _)| {
                median(
                    &idx.iter()
                        .map(|&i| (ours[s][i].0 - num(&rows[i], "ref_mean")).abs())
                        .collect::<Vec<_>>(),
                )
            })
            .sum::<f64>()
            / seeds.len() as f64;
        let our_agree = seeds
            .iter()
            .enumerate()
            .map(|(s, _)| {
                idx.iter()
                    .filter(|&&i| rows[i]["ref_stop"].as_bool() == Some(ours[s][i].1))
                    .count() as f64
                    / n
            })
            .sum::<f64>()
            / seeds.len() as f64;
        report += &format!(
            "cutoff {cutoff}: median |mean - reference| {our_spread:.4} (reference seed to seed {ref_spread:.4}, ratio {:.2}); \
             stop agreement {our_agree:.3} (reference seed to seed {ref_agree:.3})\n",
            our_spread / ref_spread
        );
        if our_spread > 3.0 * ref_spread {
            failures.push(format!(
                "cutoff {cutoff}: mean disagreement {our_spread:.4} > 3 × {ref_spread:.4}"
            ));
        }
        if our_agree < ref_agree - 3.0 / 48.0 {
            failures.push(format!(
                "cutoff {cutoff}: stop agreement {our_agree:.3} < {ref_agree:.3} - 3/48"
            ));
        }
    }
    println!("{report}");
    assert!(failures.is_empty(), "{report}{}", failures.join("\n"));
}
