//! Successive halving (ASHA) and Hyperband.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{Check, StoppingPolicy, StudyView};
use crate::error::{Error, Result};
use crate::study::Objective;

/// Refuses rungs that cannot halve: `r >= 1` and `η >= 2`.
fn check_rungs(policy: &str, min_resource: usize, reduction: usize) -> Result<()> {
    if min_resource == 0 || reduction < 2 {
        return Err(Error::invalid(
            "policy",
            format!(
                "{policy}: need min_resource >= 1 and reduction >= 2 \
                 (got min_resource {min_resource}, reduction {reduction})"
            ),
        ));
    }
    Ok(())
}

/// Asynchronous successive halving, ASHA (Li et al., "A system for
/// massively parallel hyperparameter tuning", MLSys 2020).
///
/// Rungs sit at epochs `r·η^(s+k)`, `k = 0, 1, ...` below the horizon (`r`
/// the minimum resource, `η` the reduction factor, `s` the minimum early
/// stopping rate). When a trial reaches a rung, its score there is ranked
/// among the scores at that rung of every trial that reached it (itself
/// included); it goes on only if it is in the best `1/η` of them. With fewer
/// than `η` scores at a rung only the best goes on — Optuna's
/// `SuccessiveHalvingPruner` does the same, since neither can pause a trial
/// and promote it later as the paper's ASHA does.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SuccessiveHalving {
    /// Epochs of the first rung's budget, `r >= 1`.
    pub min_resource: usize,
    /// Reduction factor `η >= 2`.
    pub reduction: usize,
    /// Minimum early-stopping rate `s`: the first rung is at `r·η^s`.
    pub min_early_stopping_rate: u32,
}

impl Default for SuccessiveHalving {
    /// `r = 1`, `η = 3` (the Hyperband paper's), `s = 0`.
    fn default() -> Self {
        SuccessiveHalving {
            min_resource: 1,
            reduction: 3,
            min_early_stopping_rate: 0,
        }
    }
}

impl FromStr for SuccessiveHalving {
    type Err = Error;
    /// `asha`, or `asha(min_resource=2, reduction=4, min_early_stopping_rate=1)`.
    fn from_str(s: &str) -> Result<Self> {
        super::from_spec(Self::NAME, s)
    }
}

impl SuccessiveHalving {
    pub const NAME: &'static str = "asha";

    /// Whether epoch `n` is a rung below `horizon`.
    fn is_rung(&self, n: usize, horizon: usize) -> bool {
        let (r, eta) = (self.min_resource.max(1), self.reduction.max(2));
        let mut rung = r.saturating_mul(eta.saturating_pow(self.min_early_stopping_rate));
        while rung < horizon {
            if rung == n {
                return true;
            }
            rung = rung.saturating_mul(eta);
        }
        false
    }

    /// The decision for `trial` among the trials `peers` says compete with it.
    fn decide(&self, trial: usize, study: &StudyView, peers: impl Fn(usize) -> bool) -> Check {
        let n = study.trials[trial].scores.len();
        if n == 0 || !self.is_rung(n, study.horizon) {
            return Check::Continue;
        }
        let value = study.trials[trial].scores[n - 1];
        let mut at_rung: Vec<f64> = study
            .trials
            .iter()
            .filter(|t| peers(t.id) && t.scores.len() >= n)
            .map(|t| t.scores[n - 1])
            .filter(|v| v.is_finite())
            .collect();
        // Best first.
        at_rung.sort_by(|a, b| {
            if study.objective.better(*a, *b) {
                std::cmp::Ordering::Less
            } else if study.objective.better(*b, *a) {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        });
        let keep = (at_rung.len() / self.reduction.max(2)).max(1);
        let threshold = at_rung[keep - 1];
        if study.objective.better(threshold, value) {
            Check::Stop
        } else {
            Check::Continue
        }
    }
}

impl StoppingPolicy for SuccessiveHalving {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn settings(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }

    fn accepts(&self, _: &Objective) -> Result<()> {
        check_rungs(Self::NAME, self.min_resource, self.reduction)
    }

    fn check(&mut self, trial: usize, study: &StudyView) -> Check {
        self.decide(trial, study, |_| true)
    }
}

/// Hyperband (Li et al., "Hyperband: a novel bandit-based approach to
/// hyperparameter optimization", JMLR 2018) as a stopping policy, in the
/// way of Optuna's `HyperbandPruner`: brackets `b = 0..=s_max`
/// (`s_max = ⌊log_η(T / r)⌋`), bracket `b` running successive halving with
/// minimum early-stopping rate `b` among its own trials. Bracket `b`'s
/// aggressiveness is `s = s_max - b`; as in the paper it gets a share of the
/// trials proportional to `⌈(s_max + 1) · η^s / (s + 1)⌉`, so that every
/// bracket spends about the same budget. A trial's bracket is a hash of the
/// study's seed and the trial number.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Hyperband {
    /// Epochs of the smallest budget, `r >= 1`.
    pub min_resource: usize,
    /// Reduction factor `η >= 2`.
    pub reduction: usize,
}

impl Default for Hyperband {
    /// `r = 1`, `η = 3`.
    fn default() -> Self {
        Hyperband {
            min_resource: 1,
            reduction: 3,
        }
    }
}

impl FromStr for Hyperband {
    type Err = Error;
    /// `hyperband`, or `hyperband(min_resource=2, reduction=4)`.
    fn from_str(s: &str) -> Result<Self> {
        super::from_spec(Self::NAME, s)
    }
}

impl Hyperband {
    pub const NAME: &'static str = "hyperband";

    /// Number of brackets for a horizon.
    fn brackets(&self, horizon: usize) -> u32 {
        let (r, eta) = (self.min_resource.max(1), self.reduction.max(2));
        let mut s_max = 0u32;
        while r.saturating_mul(eta.saturating_pow(s_max + 1)) <= horizon {
            s_max += 1;
        }
        s_max + 1
    }

    /// The bracket of a trial in a study with seed `seed`.
    pub fn bracket(&self, trial: usize, horizon: usize, seed: u64) -> u32 {
        let n = self.brackets(horizon);
        let s_max = n - 1;
        let eta = self.reduction.max(2) as u64;
        let weights: Vec<u64> = (0..n)
            .map(|b| {
                let s = s_max - b;
                ((s_max as u64 + 1) * eta.saturating_pow(s)).div_ceil(s as u64 + 1)
            })
            .collect();
        let total: u64 = weights.iter().sum();
        let mut h = hash(seed, trial as u64) % total;
        for (b, w) in weights.iter().enumerate() {
            if h < *w {
                return b as u32;
            }
            h -= w;
        }
        s_max
    }
}

impl StoppingPolicy for Hyperband {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn settings(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }

    fn accepts(&self, _: &Objective) -> Result<()> {
        check_rungs(Self::NAME, self.min_resource, self.reduction)
    }

    fn check(&mut self, trial: usize, study: &StudyView) -> Check {
        let b = self.bracket(trial, study.horizon, study.seed);
        let sh = SuccessiveHalving {
            min_resource: self.min_resource,
            reduction: self.reduction,
            min_early_stopping_rate: b,
        };
        sh.decide(trial, study, |id| {
            self.bracket(id, study.horizon, study.seed) == b
        })
    }
}

/// SplitMix64 of a seed and a number.
fn hash(seed: u64, x: u64) -> u64 {
    crate::seed::mix64(seed.wrapping_add(x.wrapping_mul(crate::seed::GOLDEN)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::curve::Metric;
    use crate::policy::testing::{study, views};

    #[test]
    fn rungs() {
        let sh = SuccessiveHalving::default();
        let rungs: Vec<usize> = (1..=30).filter(|&n| sh.is_rung(n, 27)).collect();
        assert_eq!(rungs, vec![1, 3, 9]);
        let sh = SuccessiveHalving {
            min_resource: 2,
            reduction: 2,
            min_early_stopping_rate: 1,
        };
        let rungs: Vec<usize> = (1..=30).filter(|&n| sh.is_rung(n, 20)).collect();
        assert_eq!(rungs, vec![4, 8, 16]);
    }

    #[test]
    fn keeps_the_top_third_at_a_rung() {
        let t = 27;
        // Six trials at rung 3 with losses 0.1..0.6: the best two go on.
        let curves: Vec<Vec<f64>> = (1..=6).map(|i| vec![1.0, 0.9, 0.1 * i as f64]).collect();
        let v = views(&curves, t);
        let s = study(Metric::Loss, t, &v);
        let mut sh = SuccessiveHalving::default();
        let stopped: Vec<bool> = (0..6)
            .map(|i| matches!(sh.check(i, &s), Check::Stop))
            .collect();
        assert_eq!(stopped, vec![false, false, true, true, true, true]);
        // Not a rung: nothing happens.
        let curves = vec![vec![1.0, 0.9], vec![1.0, 0.1]];
        let v = views(&curves, t);
        let s = study(Metric::Loss, t, &v);
        assert!(matches!(sh.check(0, &s), Check::Continue));
    }

    #[test]
    fn alone_at_a_rung_only_the_best_goes_on() {
        let t = 27;
        let curves = vec![vec![0.5], vec![0.6]];
        let v = views(&curves, t);
        let s = study(Metric::Accuracy, t, &v);
        let mut sh = SuccessiveHalving::default();
        assert!(matches!(sh.check(0, &s), Check::Stop));
        assert!(matches!(sh.check(1, &s), Check::Continue));
    }

    #[test]
    fn hyperband_brackets_share_trials_by_budget() {
        let hb = Hyperband::default();
        // T = 27, r = 1, η = 3: s_max = 3, four brackets; shares ∝ 27, 12, 6, 4.
        assert_eq!(hb.brackets(27), 4);
        let mut counts = [0usize; 4];
        for trial in 0..49_000 {
            counts[hb.bracket(trial, 27, 0) as usize] += 1;
        }
        let want = [27.0, 12.0, 6.0, 4.0];
        for (c, w) in counts.iter().zip(want) {
            let share = *c as f64 / 49_000.0;
            assert!((share - w / 49.0).abs() < 0.01, "{counts:?}");
        }
        // The last bracket (b = s_max) trains everything to the horizon.
        let sh = SuccessiveHalving {
            min_resource: 1,
            reduction: 3,
            min_early_stopping_rate: 3,
        };
        assert!((1..=27).all(|n| !sh.is_rung(n, 27)));
    }

    #[test]
    fn hyperband_compares_within_a_bracket() {
        let t = 27;
        let hb = Hyperband::default();
        // Trials in bracket 0 are compared only with each other.
        let ids: Vec<usize> = (0..200)
            .filter(|&i| hb.bracket(i, t, 3) == 0)
            .take(2)
            .collect();
        let mut curves: Vec<Vec<f64>> = vec![Vec::new(); ids[1] + 1];
        curves[ids[0]] = vec![0.5];
        curves[ids[1]] = vec![0.6];
        // Better trials in other brackets do not count.
        for (i, c) in curves.iter_mut().enumerate() {
            if !ids.contains(&i) {
                *c = vec![0.99];
            }
        }
        let v = views(&curves, t);
        let s = study(Metric::Accuracy, t, &v);
        let mut hb = hb;
        assert!(matches!(hb.check(ids[0], &s), Check::Stop));
        assert!(matches!(hb.check(ids[1], &s), Check::Continue));
    }
}
