//! Learning-curve extrapolation (Domhan, Springenberg & Hutter, IJCAI 2015).

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::{Assessment, Check, StoppingPolicy, StudyView};
use crate::curve::{PredictorConfig, StoppingRule};
use crate::error::{Error, Result};
use crate::study::Objective;

/// Stop a trial when its predicted final value is unlikely to beat the
/// incumbent: `P(y_T better than y_best | y_1..y_n) < threshold`, with the
/// posterior of [`crate::curve`].
///
/// The objective is mapped onto the predictor's units first
/// ([`Objective::curve_units`]: a percentage becomes an accuracy in
/// `[0, 1]`, a metric bounded below becomes a loss `>= 0`, ...); an
/// objective without a bound on its good side is refused when the study
/// starts ([`StoppingPolicy::accepts`]).
///
/// A *fallback* forecast — no curve family describes the prefix, which
/// happens to short, noisy prefixes and to curves that get worse — carries no
/// extrapolation (it centres on the last value), so it never stops a trial.
///
/// The rule is checked after epochs `min_epochs`, `min_epochs + every`,
/// `min_epochs + 2·every`, ... and never while there is no incumbent or when
/// the trial has already beaten it ([`StoppingRule`]'s guards) — neither
/// when the check runs nor when its stop takes effect
/// ([`StoppingPolicy::still_stops`]: the trial may have improved while its
/// assessment ran). A check runs the predictor as an [`Assessment`] off the
/// training path. Each prediction is seeded from the study's seed, the trial
/// and the epoch (the predictor's own `seed` is not used), so that replay
/// is reproducible.
///
/// **Calibration on the study's own trials** (`calibrate`, off by default:
/// measured in docs/benchmarks.md, "Calibration on the study's own
/// trials", it stops a fifth fewer of the runs that would have beaten the
/// incumbent, at the price of fewer configurations tried).
/// Before a stop at epoch `n` with `P(better) = p < threshold`, the same
/// forecast is made from the first `n` epochs of every trial that ran to
/// the horizon, and scored against the final value it then reached: its
/// probability integral transform `u_j = P̂_j(y_T better than y_j,T)`
/// (Kuleshov, Fenner & Ermon, ICML 2018; `u` is uniform for calibrated
/// forecasts). A finished trial with `u_j <= p` looked at least as hopeless
/// after `n` epochs, by its own forecast, as this one looks against the
/// incumbent, and still got where it did; with `c` such trials among `N`,
/// the probability used is `max(p, (c + p) / (N + 1))` (the share of such
/// trials with one pseudo-trial at `p`, so that no history means `p`). It
/// can only keep a trial going: where the curve families misread this
/// study's curves at this epoch — a step-size schedule that bends every
/// curve after the same epoch, a plateau before a late improvement — the
/// finished trials show it, and the trials are no longer stopped there.
/// Each finished trial's forecast at each epoch is made once (seeded like
/// the live one) and kept for the rest of the study.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LearningCurve {
    /// Threshold and minimum epochs.
    #[serde(flatten)]
    pub rule: StoppingRule,
    /// Epochs between checks.
    pub every: usize,
    /// The predictor.
    pub predictor: PredictorConfig,
    /// Check a stop against the forecasts of the study's finished trials
    /// (`lc(calibrate=true)`).
    #[serde(default)]
    pub calibrate: bool,
    /// Those forecasts' probability integral transforms, by (trial, epoch).
    #[serde(skip)]
    pits: Pits,
}

/// `u_j` of finished trial `j` forecast after `n` epochs, by `(j, n)`
/// (`None`: a fallback forecast, which carries no extrapolation). Shared
/// with the assessments of one policy; a clone of the policy starts empty.
#[derive(Debug, Default)]
struct Pits(Arc<Mutex<PitTable>>);

/// `u_j` by `(j, n)`.
type PitTable = HashMap<(usize, usize), Option<f64>>;

impl Clone for Pits {
    fn clone(&self) -> Self {
        Pits::default()
    }
}

impl PartialEq for Pits {
    /// The cache is not a setting.
    fn eq(&self, _: &Pits) -> bool {
        true
    }
}

impl LearningCurve {
    pub const NAME: &'static str = "lc";
}

impl Default for LearningCurve {
    /// The paper's threshold 0.05, checks after every epoch from the third
    /// on, foresight's default predictor on one thread (the tuner's workers
    /// use the others).
    fn default() -> Self {
        LearningCurve {
            rule: StoppingRule::default(),
            every: 1,
            predictor: PredictorConfig {
                parallel: false,
                ..PredictorConfig::default()
            },
            calibrate: false,
            pits: Pits::default(),
        }
    }
}

impl FromStr for LearningCurve {
    type Err = Error;
    /// `lc`, or `lc(threshold=0.01, min_epochs=6, every=2,
    /// predictor.walkers=64, ...)`.
    fn from_str(s: &str) -> Result<Self> {
        super::from_spec(Self::NAME, s)
    }
}

impl LearningCurve {
    /// The observed prefix and the incumbent in the predictor's units, and
    /// whether a guard keeps the trial going.
    fn guarded(&self, trial: usize, study: &StudyView) -> Option<(Vec<f64>, f64)> {
        let units = study.objective.curve_units()?;
        let best = study.incumbent?;
        let observed: Vec<f64> = study.trials[trial]
            .scores
            .iter()
            .map(|&v| units.to_curve(v))
            .collect();
        let best = units.to_curve(best);
        self.rule
            .guard(&observed, units.metric, Some(best))
            .is_none()
            .then_some((observed, best))
    }
}

impl StoppingPolicy for LearningCurve {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn settings(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }

    fn accepts(&self, objective: &Objective) -> Result<()> {
        let threshold = self.rule.threshold;
        if !(threshold > 0.0 && threshold < 1.0) {
            return Err(Error::invalid(
                "policy",
                format!(
                    "lc: threshold {threshold} must lie in (0, 1): at 0 it never stops a trial \
                     (that is `none`), at 1 it stops every trial"
                ),
            ));
        }
        if self.every == 0 {
            return Err(Error::invalid("policy", "lc: every must be at least 1"));
        }
        self.predictor.validate()?;
        objective.require_curve_units().map(|_| ())
    }

    fn check(&mut self, trial: usize, study: &StudyView) -> Check {
        let n = study.trials[trial].scores.len();
        let every = self.every.max(1);
        if n < self.rule.min_epochs || !(n - self.rule.min_epochs).is_multiple_of(every) {
            return Check::Continue;
        }
        let Some((observed, best)) = self.guarded(trial, study) else {
            return Check::Continue;
        };
        let units = study.objective.curve_units().expect("guarded");
        let (horizon, rule, seed) = (study.horizon, self.rule, study.seed);
        let predictor = self.predictor.clone();
        // The finished trials, for the calibration: prefix and final value.
        let finished: Vec<(usize, Vec<f64>, f64)> = if self.calibrate {
            study
                .trials
                .iter()
                .filter(|t| t.completed && t.id != trial && t.scores.len() > n)
                .map(|t| {
                    let curve: Vec<f64> = t.scores.iter().map(|&v| units.to_curve(v)).collect();
                    let last = curve[curve.len() - 1];
                    (t.id, curve[..n].to_vec(), last)
                })
                // A run that diverged on the way holds no final value to
                // score a forecast against.
                .filter(|(_, prefix, last)| {
                    last.is_finite() && prefix.iter().all(|v| v.is_finite())
                })
                .collect()
        } else {
            Vec::new()
        };
        let pits = Arc::clone(&self.pits.0);
        Check::Assess(Box::new(move || {
            let forecast_of = |id: usize, prefix: &[f64]| {
                let mut predictor = predictor.clone();
                predictor.seed = mix(seed, id as u64, n as u64);
                predictor
                    .predict(prefix, horizon, units.metric)
                    .map_err(|e| e.to_string())
            };
            let forecast = forecast_of(trial, &observed)?;
            let last = forecast.final_value();
            let mut p = last.prob_better(best);
            // A fallback forecast (no family describes the prefix, as
            // happens to short, noisy prefixes) is not an extrapolation: it
            // never stops a trial.
            let mut stop = !forecast.is_fallback() && rule.decide_with(p).should_stop();
            if stop && !finished.is_empty() {
                let mut us = Vec::with_capacity(finished.len());
                for (id, prefix, last) in &finished {
                    let cached = pits
                        .lock()
                        .map_err(|e| e.to_string())?
                        .get(&(*id, n))
                        .copied();
                    let u = match cached {
                        Some(u) => u,
                        None => {
                            // A forecast that fails or falls back is no
                            // evidence either way.
                            let u = forecast_of(*id, prefix)
                                .ok()
                                .filter(|f| !f.is_fallback())
                                .map(|f| f.final_value().prob_better(*last))
                                .filter(|u| u.is_finite());
                            pits.lock().map_err(|e| e.to_string())?.insert((*id, n), u);
                            u
                        }
                    };
                    us.extend(u);
                }
                p = calibrated(p, &us);
                stop = rule.decide_with(p).should_stop();
            }
            // What a stopped trial reports to the sampler: the predictive
            // median and a Gaussian spread matching its 90% interval (for a
            // loss, robust where the mean is not). When the interval
            // reaches a loss's ceiling (the run may diverge) the forecast
            // bounds nothing, and the trial reports its last score, as a
            // pruned trial does: the tuner tells the sampler that.
            let final_value = stop
                .then(|| (last.quantile(0.05), last.quantile(0.5), last.quantile(0.95)))
                .filter(|&(_, _, q95)| last.loss_ceiling().is_none_or(|c| q95 < c))
                .map(|(q05, q50, q95)| {
                    let spread = (q95 - q05) / (2.0 * 1.6448536269514722);
                    (
                        units.from_curve(q50),
                        units.variance_from_curve(spread * spread),
                    )
                })
                .filter(|(m, v)| m.is_finite() && v.is_finite());
            // The band is for the report's plot of a stopped trial, at
            // most `BAND_POINTS` epochs.
            let band = if stop {
                let step = (horizon - n).div_ceil(BAND_POINTS).max(1);
                let mut epochs: Vec<usize> = (n + 1..=horizon).step_by(step).collect();
                if epochs.last() != Some(&horizon) {
                    epochs.push(horizon);
                }
                forecast
                    .band(epochs, 0.05, 0.95)
                    .into_iter()
                    .map(|(e, lo, mid, hi)| {
                        let (lo, mid, hi) = units.band_from_curve((lo, mid, hi));
                        (e, lo, mid, hi)
                    })
                    .collect()
            } else {
                Vec::new()
            };
            Ok(Assessment {
                stop,
                p_better: Some(p),
                final_value,
                band,
            })
        }))
    }

    fn still_stops(&self, trial: usize, study: &StudyView) -> bool {
        self.guarded(trial, study).is_some()
    }
}

/// `max(p, (c + p) / (N + 1))` with `c` the number of the `N` finished
/// trials' transforms `u <= p` (see [`LearningCurve`]).
fn calibrated(p: f64, us: &[f64]) -> f64 {
    let c = us.iter().filter(|&&u| u <= p).count() as f64;
    p.max((c + p) / (us.len() as f64 + 1.0))
}

/// Epochs of the band a stop records at most.
const BAND_POINTS: usize = 10;

/// A seed for the prediction of `trial` after `epoch` (SplitMix64 finaliser
/// over the three numbers).
fn mix(seed: u64, trial: u64, epoch: u64) -> u64 {
    crate::seed::mix64(
        seed ^ trial.wrapping_mul(crate::seed::GOLDEN) ^ epoch.wrapping_mul(0xD1B5_4A32_D192_ED03),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::curve::Metric;
    use crate::policy::testing::{study, views};

    fn quick() -> LearningCurve {
        let mut p = LearningCurve::default();
        p.predictor.walkers = 16;
        p.predictor.steps = 120;
        p.predictor.burn_in = 60;
        p
    }

    /// A completed curve levelling off at 0.9.
    fn good(t: usize) -> Vec<f64> {
        (1..=t)
            .map(|e| 0.9 - 0.5 * (-(e as f64) / 4.0).exp())
            .collect()
    }

    /// Eight epochs of a curve levelling off at 0.5.
    fn bad() -> Vec<f64> {
        (1..=8)
            .map(|e| 0.5 - 0.3 * (-(e as f64) / 2.0).exp())
            .collect()
    }

    fn run(check: Check) -> Option<Assessment> {
        match check {
            Check::Assess(job) => Some(job().unwrap()),
            _ => None,
        }
    }

    #[test]
    fn stops_a_hopeless_curve_and_keeps_a_promising_one() {
        let t = 30;
        let (good, bad) = (good(t), bad());
        let promising: Vec<f64> = (1..=8)
            .map(|e| 0.97 - 0.6 * (-(e as f64) / 6.0).exp())
            .collect();
        let curves = vec![good, bad, promising];
        let v = views(&curves, t);
        let s = study(Metric::Accuracy, t, &v);
        let mut p = quick();
        let a = run(p.check(1, &s)).expect("an assessment");
        assert!(a.stop, "{a:?}");
        let (mean, var) = a.final_value.unwrap();
        assert!((mean - 0.5).abs() < 0.05 && var > 0.0, "{mean} {var}");
        assert!((2..=BAND_POINTS + 1).contains(&a.band.len()));
        assert_eq!(a.band[0].0, 9);
        assert_eq!(a.band.last().unwrap().0, t);
        let a = run(p.check(2, &s)).expect("an assessment");
        assert!(!a.stop, "{a:?}");
    }

    /// An accuracy curve of a run whose step size drops after epoch 15 of
    /// 30: a slow climb to `plateau`, then a jump of 0.3.
    fn stepped(plateau: f64, epochs: usize) -> Vec<f64> {
        (1..=epochs)
            .map(|e| {
                let climb = plateau - 0.2 * (-(e as f64) / 3.0).exp();
                if e > 15 { climb + 0.3 } else { climb }
            })
            .collect()
    }

    /// The assessment of the last of `curves` (horizon 30, the others
    /// finished), and how many finished trials' forecasts the policy kept.
    fn assess_last(curves: &[Vec<f64>], calibrate: bool) -> (Assessment, usize) {
        let v = views(curves, 30);
        let s = study(Metric::Accuracy, 30, &v);
        let mut p = quick();
        p.calibrate = calibrate;
        let a = run(p.check(curves.len() - 1, &s)).expect("an assessment");
        let kept = p.pits.0.lock().unwrap().len();
        (a, kept)
    }

    /// Every curve of the study bends after the same epoch: the families
    /// read the plateau of a new run as its end, and only the finished
    /// runs, forecast from their own plateaus, show that it is not.
    #[test]
    fn calibration_keeps_runs_the_study_shows_are_misread() {
        let t = 30;
        let curves = vec![
            stepped(0.50, t),
            stepped(0.52, t),
            stepped(0.48, t),
            stepped(0.55, 8),
        ];
        let (a, _) = assess_last(&curves, false);
        assert!(a.stop, "the plateau alone reads as converged: {a:?}");
        let (b, kept) = assess_last(&curves, true);
        assert!(!b.stop && b.p_better.unwrap() > 0.5, "{b:?}");
        // The finished trials' forecasts are kept: one per trial and epoch.
        assert_eq!(kept, 3);
        // Where the finished runs followed their forecasts, the stop stands.
        let smooth = |level: f64, epochs: usize| -> Vec<f64> {
            (1..=epochs)
                .map(|e| level - 0.3 * (-(e as f64) / 3.0).exp())
                .collect()
        };
        let curves = vec![
            smooth(0.80, t),
            smooth(0.82, t),
            smooth(0.78, t),
            smooth(0.55, 8),
        ];
        let (c, _) = assess_last(&curves, true);
        assert!(c.stop, "{c:?}");
    }

    #[test]
    fn calibrated_probability() {
        assert_eq!(calibrated(0.01, &[]), 0.01);
        assert_eq!(calibrated(0.01, &[0.5, 0.2, 0.9]), 0.01);
        // One of three finished trials at or below p: (1 + p) / 4.
        assert!((calibrated(0.01, &[0.005, 0.2, 0.9]) - 1.01 / 4.0).abs() < 1e-12);
        assert!((calibrated(0.0, &[0.0]) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn a_fallback_forecast_never_stops() {
        let t = 30;
        let done: Vec<f64> = (1..=t)
            .map(|e| 0.9 - 0.5 * (-(e as f64) / 4.0).exp())
            .collect();
        // Three noisy points: too few for any family (2 parameters + 2).
        let curves = vec![done, vec![0.30, 0.20, 0.25]];
        let v = views(&curves, t);
        let s = study(Metric::Accuracy, t, &v);
        let a = run(quick().check(1, &s)).expect("an assessment");
        assert!(a.p_better.unwrap() < 0.05, "{a:?}");
        assert!(!a.stop);
    }

    #[test]
    fn follows_its_schedule_and_guards() {
        let t = 30;
        let done: Vec<f64> = (1..=t)
            .map(|e| 0.9 - 0.5 * (-(e as f64) / 4.0).exp())
            .collect();
        let early = vec![0.1, 0.2];
        let curves = vec![done, early.clone()];
        let v = views(&curves, t);
        let s = study(Metric::Accuracy, t, &v);
        let mut p = quick();
        assert!(matches!(p.check(1, &s), Check::Continue), "too early");
        // No incumbent: never assessed.
        let lone = vec![vec![0.1, 0.2, 0.3, 0.35]];
        let v = views(&lone, t);
        let s = study(Metric::Accuracy, t, &v);
        assert!(matches!(p.check(0, &s), Check::Continue));
        // every = 2 from epoch 3: epochs 3, 5, 7 are checked, 4 is not.
        p.every = 2;
        for (n, checked) in [(3, true), (4, false), (5, true)] {
            let done: Vec<f64> = (1..=t)
                .map(|e| 0.9 - 0.5 * (-(e as f64) / 4.0).exp())
                .collect();
            let c: Vec<f64> = (1..=n).map(|e| 0.3 + 0.01 * e as f64).collect();
            let curves = vec![done, c];
            let v = views(&curves, t);
            let s = study(Metric::Accuracy, t, &v);
            assert_eq!(
                matches!(p.check(1, &s), Check::Assess(_)),
                checked,
                "epoch {n}"
            );
        }
    }

    /// A percentage is the same study as an accuracy, ×100: the same
    /// decision, and the reported values in percent.
    #[test]
    fn a_percentage_objective_is_transformed_not_ignored() {
        let t = 30;
        let (good, bad) = (good(t), bad());
        let curves = vec![good.clone(), bad.clone()];
        let v = views(&curves, t);
        let a = run(quick().check(1, &study(Metric::Accuracy, t, &v))).unwrap();
        let percent: Vec<Vec<f64>> = curves
            .iter()
            .map(|c| c.iter().map(|x| 100.0 * x).collect())
            .collect();
        let v = views(&percent, t);
        let objective = Objective::maximize().range(0.0, 100.0);
        let mut p = quick();
        assert!(p.accepts(&objective).is_ok());
        let b = run(p.check(1, &study(objective, t, &v))).unwrap();
        assert!(a.stop && b.stop);
        assert!((a.p_better.unwrap() - b.p_better.unwrap()).abs() < 1e-9);
        let ((ma, va), (mb, vb)) = (a.final_value.unwrap(), b.final_value.unwrap());
        assert!(
            // The inputs agree to the last bits (x·100/100), not exactly.
            (100.0 * ma - mb).abs() < 1e-4 * mb && (1e4 * va - vb).abs() < 1e-3 * vb,
            "{ma} {va} {mb} {vb}"
        );
        assert!((100.0 * a.band[0].1 - b.band[0].1).abs() < 1e-3 * b.band[0].1.abs());
        // A log-likelihood (maximised, <= 0) is a loss to the predictor:
        // it is assessed, with its band in its own units.
        let loglik: Vec<Vec<f64>> = curves
            .iter()
            .map(|c| c.iter().map(|x| x.ln()).collect())
            .collect();
        let v = views(&loglik, t);
        let objective = Objective::maximize().at_most(0.0);
        let c = run(quick().check(1, &study(objective, t, &v))).expect("assessed");
        if c.stop {
            let (_, q05, _, q95) = c.band[0];
            assert!(q05 <= q95 && q95 <= 0.0, "{:?}", c.band);
        }
        // An objective with no bound on its good side is refused.
        assert!(quick().accepts(&Objective::maximize()).is_err());
    }

    #[test]
    fn a_stop_does_not_hold_once_the_trial_beats_the_incumbent() {
        let t = 30;
        let done: Vec<f64> = (1..=t)
            .map(|e| 0.6 - 0.3 * (-(e as f64) / 4.0).exp())
            .collect();
        let incumbent = done[t - 1];
        let mut trial: Vec<f64> = (1..=5).map(|e| 0.3 + 0.01 * e as f64).collect();
        let curves = vec![done.clone(), trial.clone()];
        let v = views(&curves, t);
        let p = quick();
        assert!(p.still_stops(1, &study(Metric::Accuracy, t, &v)));
        // Two epochs later the trial jumped past the incumbent.
        trial.extend([0.5, incumbent + 0.01]);
        let curves = vec![done, trial];
        let v = views(&curves, t);
        assert!(!p.still_stops(1, &study(Metric::Accuracy, t, &v)));
    }

    /// A loss that climbs: stopped, with a finite band for the report, and
    /// — its forecast reaching the loss ceiling — no predicted value for
    /// the sampler, which is told the trial's last score instead.
    #[test]
    fn a_diverging_loss_is_stopped_with_finite_numbers() {
        let t = 30;
        let done: Vec<f64> = (1..=t)
            .map(|e| 0.3 + 0.4 * (-(e as f64) / 4.0).exp())
            .collect();
        let climbing = vec![0.7, 0.69, 0.9, 1.5, 2.6, 4.0, 6.0, 8.5, 12.0, 17.0];
        let curves = vec![done, climbing];
        let v = views(&curves, t);
        let a = run(quick().check(1, &study(Metric::Loss, t, &v))).expect("assessed");
        assert!(a.stop, "{a:?}");
        assert!(a.final_value.is_none(), "{a:?}");
        assert!(!a.band.is_empty());
        for &(_, lo, mid, hi) in &a.band {
            assert!(
                lo.is_finite() && hi.is_finite() && lo <= mid && mid <= hi,
                "{a:?}"
            );
        }
    }

    #[test]
    fn parses_its_settings() {
        let p: LearningCurve = "lc(threshold=0.01, min_epochs=6, predictor.walkers=64)"
            .parse()
            .unwrap();
        assert_eq!(p.rule.threshold, 0.01);
        assert_eq!(p.rule.min_epochs, 6);
        assert_eq!(p.predictor.walkers, 64);
        assert_eq!(
            "lc".parse::<LearningCurve>().unwrap(),
            LearningCurve::default()
        );
        assert!("median".parse::<LearningCurve>().is_err());
        assert_eq!(p.settings()["threshold"], 0.01);
        assert_eq!(p.settings()["calibrate"], false);
        let c: LearningCurve = "lc(calibrate=true)".parse().unwrap();
        assert!(c.calibrate && !p.calibrate);
        assert_eq!(c.settings()["calibrate"], true);
    }
}
