//! Protocol P of `BENCHMARKS.md`: accuracy, calibration and speed of the
//! learning-curve predictor on logged curves.
//!
//! For each selected curve (all values finite, length `T >= 20`) and each
//! cutoff `c`, the predictor sees the first `n = max(4, floor(c T + 0.5))`
//! values and predicts the final value `y_T`. Selection is deterministic:
//! per task, the eligible curves sorted by `config_id`, every `k`-th with
//! `k = floor(m / per_task)` (`m` eligible curves), the first `per_task` of
//! those. The incumbent of a task, `y_best`, is the 90th percentile of the
//! final values of all its finite curves (10th for minimised metrics; linear
//! interpolation between order statistics, as numpy's default), and a
//! prediction "stops" the curve when the [`StoppingRule`] with threshold
//! 0.05 and no minimum of epochs says so: `P(y_T better than y_best) < 0.05`,
//! unless the prefix has already beaten `y_best`.

use std::collections::BTreeMap;
use std::time::Instant;

use serde::Serialize;

use foresight::curve::{Metric, PredictorConfig, StoppingRule};
use foresight::error::{Error, Result};
use foresight::stats::{median, percentile};
use foresight::study::{CurveUnits, Direction};

use crate::curveset::{CurveRecord, objective_of};

/// Default cutoffs of protocol P.
pub const CUTOFFS: [f64; 3] = [0.1, 0.2, 0.4];

/// One prediction of protocol P.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub source: String,
    pub task: String,
    pub config_id: u64,
    pub cutoff: f64,
    #[serde(rename = "T")]
    pub horizon: usize,
    /// Epochs observed.
    pub n: usize,
    pub higher_is_better: bool,
    pub y_true: f64,
    pub y_best: f64,
    pub mean: f64,
    pub std: f64,
    pub q05: f64,
    pub q95: f64,
    pub log_density: f64,
    pub p_better: f64,
    pub stop: bool,
    pub seconds: f64,
    /// Families kept after fitting.
    pub families: usize,
    pub points_cut: usize,
}

/// Summary per source and cutoff, with the field names of `BENCHMARKS.md`.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub source: String,
    pub cutoff: f64,
    pub n: usize,
    pub mae: f64,
    pub median_abs_err: f64,
    pub mean_log_density: f64,
    pub median_log_density: f64,
    pub coverage90: f64,
    pub false_stops: usize,
    pub true_better: usize,
    pub stopped_worse_frac: f64,
    pub median_seconds: f64,
}

/// A selected curve with its task's incumbent, and how the predictor sees
/// its task's metric.
#[derive(Debug, Clone)]
pub struct Case<'a> {
    pub curve: &'a CurveRecord,
    pub y_best: f64,
    pub units: CurveUnits,
}

/// The deterministic selection of protocol P. A task's metric is mapped
/// onto the predictor's units by its objective
/// ([`crate::curveset::objective_of`]: a percentage is predicted as an
/// accuracy, and the figures are given back in percent); a task whose
/// values show no bound on their good side is an error naming it.
pub fn select(curves: &[CurveRecord], per_task: usize) -> Result<Vec<Case<'_>>> {
    let mut tasks: BTreeMap<(&str, &str), Vec<&CurveRecord>> = BTreeMap::new();
    for c in curves {
        tasks
            .entry((c.source.as_str(), c.task.as_str()))
            .or_default()
            .push(c);
    }
    let mut out = Vec::new();
    for ((_, task), group) in &tasks {
        let owned: Vec<CurveRecord> = group.iter().map(|c| (*c).clone()).collect();
        let objective = objective_of(&owned);
        let units = objective
            .require_curve_units()
            .map_err(|e| Error::invalid("curves", format!("task `{task}`: {e}")))?;
        let mut finals: Vec<f64> = group
            .iter()
            .filter(|c| c.is_finite())
            .map(|c| *c.values.last().expect("non-empty"))
            .collect();
        if finals.is_empty() {
            continue;
        }
        finals.sort_by(f64::total_cmp);
        let y_best = percentile(
            &finals,
            match objective.direction {
                Direction::Maximize => 0.9,
                Direction::Minimize => 0.1,
            },
        );
        let mut eligible: Vec<&CurveRecord> = group
            .iter()
            .copied()
            .filter(|c| c.is_finite() && c.values.len() >= 20)
            .collect();
        eligible.sort_by_key(|c| c.config_id);
        if eligible.is_empty() || per_task == 0 {
            continue;
        }
        let k = (eligible.len() / per_task).max(1);
        out.extend(eligible.iter().step_by(k).take(per_task).map(|c| Case {
            curve: c,
            y_best,
            units,
        }));
    }
    Ok(out)
}

/// Observed prefix length for a cutoff.
pub fn prefix_len(cutoff: f64, horizon: usize) -> usize {
    ((cutoff * horizon as f64 + 0.5).floor() as usize).max(4)
}

/// Runs protocol P: every case at every cutoff, one prediction at a time
/// (so that `seconds` is the wall time a user waits for one prediction).
/// `progress(done, total)` is called after each prediction.
pub fn run(
    cases: &[Case<'_>],
    cutoffs: &[f64],
    config: &PredictorConfig,
    mut progress: impl FnMut(usize, usize),
) -> Result<Vec<Row>> {
    let rule = StoppingRule {
        threshold: 0.05,
        min_epochs: 1,
    };
    let total = cases.len() * cutoffs.len();
    let mut rows = Vec::with_capacity(total);
    for case in cases {
        let c = case.curve;
        let u = case.units;
        let metric = u.metric;
        let horizon = c.values.len();
        // In the predictor's units (the identity for [0, 1] and for losses).
        let values: Vec<f64> = c.values.iter().map(|&v| u.to_curve(v)).collect();
        let best = u.to_curve(case.y_best);
        for &cutoff in cutoffs {
            let n = prefix_len(cutoff, horizon).min(horizon);
            let observed = &values[..n];
            let start = Instant::now();
            let forecast = config.predict(observed, horizon, metric)?;
            let p = forecast.final_value();
            let y_true = c.values[horizon - 1];
            let stop = rule
                .decide(observed, metric, Some(best), || p.clone())
                .should_stop();
            let (q05, _, q95) = u.band_from_curve((p.quantile(0.05), 0.0, p.quantile(0.95)));
            let row = Row {
                source: c.source.clone(),
                task: c.task.clone(),
                config_id: c.config_id,
                cutoff,
                horizon,
                n,
                higher_is_better: c.higher_is_better,
                y_true,
                y_best: case.y_best,
                mean: u.from_curve(p.mean()),
                std: p.std() * u.width.abs(),
                q05,
                q95,
                // The density in the task's own units: the map's Jacobian.
                log_density: p.log_density(values[horizon - 1]) - u.width.abs().ln(),
                p_better: p.prob_better(best),
                stop,
                seconds: 0.0,
                families: forecast.families().len(),
                points_cut: forecast.points_cut(),
            };
            rows.push(Row {
                seconds: start.elapsed().as_secs_f64(),
                ..row
            });
            progress(rows.len(), total);
        }
    }
    Ok(rows)
}

/// Summaries per (source, cutoff), in the order of first appearance.
pub fn summarize(rows: &[Row]) -> Vec<Summary> {
    let mut keys: Vec<(String, u64)> = Vec::new();
    for r in rows {
        let k = (r.source.clone(), r.cutoff.to_bits());
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    keys.into_iter()
        .map(|(source, cutoff_bits)| {
            let cutoff = f64::from_bits(cutoff_bits);
            let rs: Vec<&Row> = rows
                .iter()
                .filter(|r| r.source == source && r.cutoff == cutoff)
                .collect();
            summarize_group(source, cutoff, &rs)
        })
        .collect()
}

fn summarize_group(source: String, cutoff: f64, rs: &[&Row]) -> Summary {
    let n = rs.len();
    let abs_err: Vec<f64> = rs.iter().map(|r| (r.mean - r.y_true).abs()).collect();
    let lpd: Vec<f64> = rs.iter().map(|r| r.log_density.max(-1e6)).collect();
    let covered = rs
        .iter()
        .filter(|r| r.q05 <= r.y_true && r.y_true <= r.q95)
        .count();
    let better =
        |r: &Row| Metric::from_higher_is_better(r.higher_is_better).better(r.y_true, r.y_best);
    let true_better = rs.iter().filter(|r| better(r)).count();
    let false_stops = rs.iter().filter(|r| r.stop && better(r)).count();
    let worse = n - true_better;
    let stopped_worse = rs.iter().filter(|r| r.stop && !better(r)).count();
    Summary {
        source,
        cutoff,
        n,
        mae: mean(&abs_err),
        median_abs_err: median(&abs_err),
        mean_log_density: mean(&lpd),
        median_log_density: median(&lpd),
        coverage90: covered as f64 / n as f64,
        false_stops,
        true_better,
        stopped_worse_frac: if worse > 0 {
            stopped_worse as f64 / worse as f64
        } else {
            0.0
        },
        median_seconds: median(&rs.iter().map(|r| r.seconds).collect::<Vec<_>>()),
    }
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}
