//! Can a study's finished curves tell, earlier than the parametric
//! predictor, which new runs will not beat the incumbent? A measurement for
//! issue 16's "prior from finished curves", not part of the tuner.
//!
//! ```sh
//! cargo run --release -p foresight-protocols --example history_forecast -- CURVES TASKS TESTS
//! # e.g. all 12 TaskSet tasks, 40 test curves each:
//! cargo run --release -p foresight-protocols --example history_forecast -- \
//!     ../shared/curves/taskset.jsonl 12 40
//! ```
//!
//! Per task, 40 curves drawn with a fixed seed are the study's history (its
//! finished trials, in the order drawn), and the incumbent is their best
//! final value; `TESTS` other curves are new runs. After 3, 5 and 8 epochs
//! of each new run, `P(final better than the incumbent)` comes from:
//!
//! * `parametric`: foresight's default predictor on the prefix alone (a
//!   fallback forecast never stops, as in the `lc` policy);
//! * `history`: the finished curves, after Chandrashekaran & Lane
//!   (ECML-PKDD 2017) in its simplest form — the new curve is a finished
//!   curve `c_j` shifted by the mean difference `a_j` over the last
//!   `m = min(n, 3)` observed epochs; the 20 nearest finished curves (rms
//!   difference there) each contribute a Gaussian at `c_j(T) + a_j` with
//!   the study's noise level (median over the finished curves of
//!   `rms(second difference) / √6`, times `√(1 + 1/m)`);
//! * `recalibrated`: `history` recalibrated on the history itself (Kuleshov,
//!   Fenner & Ermon, ICML 2018): the share of finished curves whose
//!   leave-one-out `P(better than their own final)` was below it;
//! * `backtested`: `history`, used only at the epochs where the study's own
//!   record trusts it — replayed in order, every finished trial that beat
//!   the incumbent of its time (after the first five) is forecast from the
//!   other finished curves and would not have been stopped, and there were
//!   at least three such trials — and otherwise never stopping;
//! * `parametric or backtested`: a stop when either says so;
//! * `envelope`: no probability, a bound — stop when the new run, moved
//!   from its level (mean of the last `m` observed epochs) by the largest
//!   gain any finished curve made from its own level at the same epoch to
//!   the horizon, plus twice the study's noise, still ends behind the
//!   incumbent (a bound needs no base rate: it stops only what no finished
//!   curve would have rescued);
//! * `parametric or envelope`: a stop when either says so;
//! * `envelope, gain x1.5`: the same with the largest gain half again as
//!   large, to see how far the envelope's stops are from its edge.
//!
//! For each, at `P < 0.05`: how many new runs it stops, and how many of
//! those would have beaten the incumbent ("lost").

use foresight::curve::predictive::normal_cdf;
use foresight::curve::{Metric, PredictorConfig};
use foresight_protocols::curveset;
use foresight_protocols::replay::Pool;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rayon::prelude::*;

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const EPOCHS: [usize; 3] = [3, 5, 8];
const HISTORY: usize = 40;
const NEIGHBOURS: usize = 20;
const THRESHOLD: f64 = 0.05;

/// The finished curves (curve units, all finite) and the study's noise.
struct History {
    curves: Vec<Vec<f64>>,
    metric: Metric,
    noise: f64,
}

impl History {
    fn new(curves: Vec<Vec<f64>>, metric: Metric) -> History {
        let t = curves[0].len();
        let noise: Vec<f64> = curves
            .iter()
            .map(|c| {
                let s: f64 = c
                    .windows(3)
                    .map(|w| (w[2] - 2.0 * w[1] + w[0]).powi(2))
                    .sum();
                (s / (t - 2) as f64 / 6.0).sqrt()
            })
            .collect();
        let noise = foresight::stats::median(&noise).max(1e-6);
        History {
            curves,
            metric,
            noise,
        }
    }

    fn horizon(&self) -> usize {
        self.curves[0].len()
    }

    /// `P(final better than y_best)` for `prefix`, leaving out curve `skip`.
    fn prob_better(&self, prefix: &[f64], y_best: f64, skip: Option<usize>) -> f64 {
        let (n, t) = (prefix.len(), self.horizon());
        let m = n.min(3);
        let mut near: Vec<(f64, usize)> = (0..self.curves.len())
            .filter(|&j| Some(j) != skip)
            .map(|j| {
                let c = &self.curves[j];
                ((n - m..n).map(|e| (prefix[e] - c[e]).powi(2)).sum(), j)
            })
            .collect();
        near.sort_by(|a, b| a.0.total_cmp(&b.0));
        near.truncate(NEIGHBOURS);
        let spread = self.noise * (1.0 + 1.0 / m as f64).sqrt();
        let p: f64 = near
            .iter()
            .map(|&(_, j)| {
                let c = &self.curves[j];
                let shift = (n - m..n).map(|e| prefix[e] - c[e]).sum::<f64>() / m as f64;
                let z = (c[t - 1] + shift - y_best) / spread;
                match self.metric {
                    Metric::Accuracy => normal_cdf(z),
                    Metric::Loss => normal_cdf(-z),
                }
            })
            .sum();
        p / near.len() as f64
    }

    /// For `prefix` against `y_best`: given a scale, 0 when even that
    /// many times the study's largest gain from epoch `n` to the horizon
    /// leaves it behind (see the header), 1 otherwise. The gain is found
    /// once for every scale asked.
    fn envelope(&self, prefix: &[f64], y_best: f64) -> impl Fn(f64) -> f64 {
        let (n, t) = (prefix.len(), self.horizon());
        let m = n.min(3);
        let sign = match self.metric {
            Metric::Accuracy => 1.0,
            Metric::Loss => -1.0,
        };
        let level = |c: &[f64]| sign * c[n - m..n].iter().sum::<f64>() / m as f64;
        let gain = self
            .curves
            .iter()
            .map(|c| sign * c[t - 1] - level(c))
            .fold(f64::NEG_INFINITY, f64::max);
        let (start, noise, target) = (level(prefix), self.noise, sign * y_best);
        move |scale| {
            if start + scale * gain + 2.0 * noise < target {
                0.0
            } else {
                1.0
            }
        }
    }

    /// The share of finished curves whose leave-one-out `P(better than
    /// their own final)` after `n` epochs is below `p`.
    fn recalibrate(&self, p: f64, n: usize) -> f64 {
        let t = self.horizon();
        let below = (0..self.curves.len())
            .filter(|&j| {
                let c = &self.curves[j];
                self.prob_better(&c[..n], c[t - 1], Some(j)) < p
            })
            .count();
        (below as f64 + 0.5) / (self.curves.len() as f64 + 1.0)
    }

    /// Whether the record trusts a stop after `n` epochs (see the header).
    fn trusted(&self, n: usize) -> bool {
        let t = self.horizon();
        let mut best: Option<f64> = None;
        let mut events = 0;
        for (j, c) in self.curves.iter().enumerate() {
            let last = c[t - 1];
            if let Some(b) = best.filter(|&b| j >= 5 && self.metric.better(last, b)) {
                if self.prob_better(&c[..n], b, Some(j)) < THRESHOLD {
                    return false;
                }
                events += 1;
            }
            if best.is_none_or(|b| self.metric.better(last, b)) {
                best = Some(last);
            }
        }
        events >= 3
    }
}

/// One new run after `n` epochs: the probabilities of each rule and whether it
/// would have beaten the incumbent.
struct Row {
    n: usize,
    p: [f64; 8],
    better: bool,
}

const RULES: [&str; 8] = [
    "parametric",
    "history",
    "recalibrated",
    "backtested",
    "parametric or backtested",
    "envelope",
    "parametric or envelope",
    "envelope, gain x1.5",
];

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [curves, tasks, tests] = args.as_slice() else {
        return Err("usage: history_forecast CURVES TASKS TESTS".into());
    };
    let pools = Pool::from_records(curveset::read(curves)?)?;
    let pools = &pools[..tasks.parse::<usize>()?.min(pools.len())];
    let tests: usize = tests.parse()?;
    // Per task: the history and the test curves (finite ones, curve units).
    let studies: Vec<(History, Vec<Vec<f64>>, f64)> = pools
        .iter()
        .map(|pool| {
            let units = pool
                .objective
                .curve_units()
                .ok_or("the objective has no curve units")?;
            let mut finite: Vec<Vec<f64>> = pool
                .curves
                .iter()
                .filter(|c| c.iter().all(|v| v.is_finite()))
                .map(|c| c.iter().map(|&v| units.to_curve(v)).collect())
                .collect();
            finite.shuffle(&mut rand::rngs::StdRng::seed_from_u64(7));
            if finite.len() < HISTORY + tests {
                return Err(format!("{}: too few finite curves", pool.task).into());
            }
            let test = finite.split_off(HISTORY);
            let history = History::new(finite, units.metric);
            let t = history.horizon();
            let incumbent = history
                .curves
                .iter()
                .map(|c| c[t - 1])
                .reduce(|a, b| if units.metric.better(b, a) { b } else { a })
                .ok_or("empty history")?;
            Ok((history, test[..tests].to_vec(), incumbent))
        })
        .collect::<Res<_>>()?;
    let jobs: Vec<(usize, usize, usize)> = (0..studies.len())
        .flat_map(|s| (0..tests).flat_map(move |i| EPOCHS.map(|n| (s, i, n))))
        .collect();
    let rows: Vec<Row> = jobs
        .par_iter()
        .map(|&(s, i, n)| {
            let (history, test, incumbent) = &studies[s];
            let (y, metric) = (&test[i], history.metric);
            let predictor = PredictorConfig {
                parallel: false,
                seed: (s * 100_000 + i * 10 + n) as u64,
                ..PredictorConfig::default()
            };
            let forecast = predictor.predict(&y[..n], history.horizon(), metric)?;
            let parametric = if forecast.is_fallback() {
                1.0
            } else {
                forecast.final_value().prob_better(*incumbent)
            };
            let from_history = history.prob_better(&y[..n], *incumbent, None);
            let backtested = if history.trusted(n) {
                from_history
            } else {
                1.0
            };
            let envelope = history.envelope(&y[..n], *incumbent);
            Ok(Row {
                n,
                p: [
                    parametric,
                    from_history,
                    history.recalibrate(from_history, n),
                    backtested,
                    parametric.min(backtested),
                    envelope(1.0),
                    parametric.min(envelope(1.0)),
                    envelope(1.5),
                ],
                better: metric.better(y[y.len() - 1], *incumbent),
            })
        })
        .collect::<Res<_>>()?;
    println!(
        "| forecast | epoch | new runs | would beat the incumbent | stopped at P < {THRESHOLD} | of those, lost |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for (r, rule) in RULES.iter().enumerate() {
        for n in EPOCHS {
            let at: Vec<&Row> = rows.iter().filter(|x| x.n == n).collect();
            let better = at.iter().filter(|x| x.better).count();
            let stopped: Vec<&&Row> = at.iter().filter(|x| x.p[r] < THRESHOLD).collect();
            let lost = stopped.iter().filter(|x| x.better).count();
            println!(
                "| {rule} | {n} | {} | {better} | {} | {lost} |",
                at.len(),
                stopped.len()
            );
        }
    }
    Ok(())
}
