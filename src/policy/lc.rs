//! Learning-curve extrapolation (Domhan, Springenberg & Hutter, IJCAI 2015).

use super::{Assessment, Check, StoppingPolicy, StudyView};
use crate::curve::{PredictorConfig, StoppingRule};

/// Stop a trial when its predicted final value is unlikely to beat the
/// incumbent: `P(y_T better than y_best | y_1..y_n) < threshold`, with the
/// posterior of [`crate::curve`].
///
/// A *fallback* forecast — no curve family describes the prefix, which
/// happens to short, noisy prefixes and to curves that get worse — carries no
/// extrapolation (it centres on the last value), so it never stops a trial.
///
/// The rule is checked after epochs `min_epochs`, `min_epochs + every`,
/// `min_epochs + 2·every`, ... and never while there is no incumbent or when
/// the trial has already beaten it ([`StoppingRule`]'s guards). A check
/// runs the predictor as an [`Assessment`] off the training path. Each
/// prediction is seeded from the policy's seed, the trial and the epoch, so
/// that replay is reproducible.
#[derive(Debug, Clone)]
pub struct LearningCurve {
    /// Threshold and minimum epochs.
    pub rule: StoppingRule,
    /// Epochs between checks.
    pub every: usize,
    /// The predictor (its `seed` is the policy's seed).
    pub predictor: PredictorConfig,
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
        }
    }
}

impl LearningCurve {
    /// The default policy with the given seed.
    pub fn seeded(seed: u64) -> Self {
        let mut p = LearningCurve::default();
        p.predictor.seed = seed;
        p
    }
}

impl StoppingPolicy for LearningCurve {
    fn name(&self) -> &'static str {
        "lc"
    }

    fn check(&mut self, trial: usize, study: &StudyView) -> Check {
        let scores = study.trials[trial].scores;
        let n = scores.len();
        let every = self.every.max(1);
        if n < self.rule.min_epochs || !(n - self.rule.min_epochs).is_multiple_of(every) {
            return Check::Continue;
        }
        if self
            .rule
            .guard(scores, study.metric, study.incumbent)
            .is_some()
        {
            return Check::Continue;
        }
        let Some(best) = study.incumbent else {
            return Check::Continue;
        };
        let observed = scores.to_vec();
        let (horizon, metric, rule) = (study.horizon, study.metric, self.rule);
        let mut predictor = self.predictor.clone();
        predictor.seed = mix(predictor.seed, trial as u64, n as u64);
        Check::Assess(Box::new(move || {
            let Ok(forecast) = predictor.predict(&observed, horizon, metric) else {
                return Assessment {
                    stop: false,
                    p_better: None,
                    final_value: None,
                    band: Vec::new(),
                };
            };
            let last = forecast.final_value();
            let p = last.prob_better(best);
            // A fallback forecast (no family describes the prefix, as
            // happens to short, noisy prefixes) is not an extrapolation: it
            // never stops a trial.
            let stop = !forecast.is_fallback() && rule.decide_with(p).should_stop();
            // What a stopped trial reports to the sampler: the predictive
            // median and a Gaussian spread matching its 90% interval (a
            // loss's predictive mean can be infinite: its model-space
            // mixture puts mass near zero, which is an infinite loss).
            let final_value = stop
                .then(|| {
                    let (q05, q50, q95) =
                        (last.quantile(0.05), last.quantile(0.5), last.quantile(0.95));
                    let spread = (q95 - q05) / (2.0 * 1.6448536269514722);
                    (q50, spread * spread)
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
                forecast.band(epochs, 0.05, 0.95)
            } else {
                Vec::new()
            };
            Assessment {
                stop,
                p_better: Some(p),
                final_value,
                band,
            }
        }))
    }
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
        let mut p = LearningCurve::seeded(3);
        p.predictor.walkers = 16;
        p.predictor.steps = 120;
        p.predictor.burn_in = 60;
        p
    }

    fn run(check: Check) -> Option<Assessment> {
        match check {
            Check::Assess(job) => Some(job()),
            _ => None,
        }
    }

    #[test]
    fn stops_a_hopeless_curve_and_keeps_a_promising_one() {
        let t = 30;
        let good: Vec<f64> = (1..=t)
            .map(|e| 0.9 - 0.5 * (-(e as f64) / 4.0).exp())
            .collect();
        let bad: Vec<f64> = (1..=8)
            .map(|e| 0.5 - 0.3 * (-(e as f64) / 2.0).exp())
            .collect();
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
}
