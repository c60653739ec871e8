//! Bayesian optimisation with a Gaussian process and a hedged portfolio
//! of acquisition functions (see the [module documentation](super)).

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::Sampler;
use crate::acquisition::{self, Acquisition, Context, Maximiser};
use crate::error::{Error, Result};
use crate::gp::{Gp, Hyperparameters};
use crate::space::{Config, Space};

/// Candidates scored at most by one finite-candidate ask.
const MAX_CANDIDATES: usize = 512;

/// How pending evaluations enter the GP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pending {
    /// Fantasy `y = μ(x)` (kriging believer).
    KrigingBeliever,
    /// Fantasy `y = min` of the observed values (constant liar, CL-min).
    ConstantLiar,
}

/// Settings of [`GpSampler`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpSettings {
    /// The acquisition portfolio; one arm is plain GP-based BO.
    pub arms: Vec<Acquisition>,
    /// GP-Hedge learning rate `η`.
    pub eta: f64,
    /// Scrambled-Sobol points before the GP takes over.
    pub initial: usize,
    pub maximiser: Maximiser,
    pub pending: Pending,
    /// Seed of the sampler's random choices (replaced by the study's seed
    /// when a tuner runs it).
    pub seed: u64,
    /// Observations the GP is fitted to at most (see `GpSampler::data`):
    /// the fit costs `O(n³)`, and a study that stops most runs early
    /// reports many noisy predicted values.
    pub max_observations: usize,
}

impl Default for GpSettings {
    /// GP-Hedge over UCB and PI, `η = 0.1`, 10 initial points. (On
    /// protocol B a larger `η` does worse: the hedge's rewards, posterior
    /// means at the nominees, favour the more exploitative PI; see
    /// `docs/benchmarks.md`.)
    fn default() -> Self {
        GpSettings {
            arms: vec![Acquisition::Ucb, Acquisition::Pi],
            eta: 0.1,
            initial: 10,
            maximiser: Maximiser::default(),
            pending: Pending::KrigingBeliever,
            seed: 0,
            max_observations: 300,
        }
    }
}

/// One GP-Hedge decision, for users who want to know why a point was chosen.
#[derive(Debug, Clone, PartialEq)]
pub struct HedgeStep {
    /// Observations when the decision was made.
    pub observations: usize,
    /// The arm whose nominee was chosen.
    pub chosen: Acquisition,
    /// `(arm, probability, gain)` of every arm.
    pub arms: Vec<(Acquisition, f64, f64)>,
}

#[derive(Debug, Clone)]
struct Observation {
    x: Vec<f64>,
    y: f64,
    var: f64,
}

/// Bayesian optimisation with a GP and a hedged acquisition portfolio.
#[derive(Debug, Clone)]
pub struct GpSampler {
    space: Space,
    settings: GpSettings,
    observations: Vec<Observation>,
    gains: Vec<f64>,
    /// Last nominee of every arm, rewarded at the next refit.
    nominees: Option<Vec<Vec<f64>>>,
    hyper: Option<Hyperparameters>,
    /// Observations when the hyperparameters were last estimated.
    hyper_at: usize,
    history: Vec<HedgeStep>,
    rng: ChaCha8Rng,
    asked: u32,
}

impl GpSampler {
    /// A sampler for `space`. Errors: no acquisition, `η` negative or not
    /// finite (a negative `η` would favour the arm that did worst).
    pub fn new(space: Space, settings: GpSettings) -> Result<GpSampler> {
        if settings.arms.is_empty() || !(settings.eta >= 0.0 && settings.eta.is_finite()) {
            return Err(Error::invalid(
                "sampler",
                format!(
                    "need at least one acquisition and a finite η >= 0 (got {} arms, η = {})",
                    settings.arms.len(),
                    settings.eta
                ),
            ));
        }
        Ok(GpSampler {
            gains: vec![0.0; settings.arms.len()],
            rng: ChaCha8Rng::seed_from_u64(settings.seed),
            space,
            settings,
            observations: Vec::new(),
            nominees: None,
            hyper: None,
            hyper_at: 0,
            history: Vec::new(),
            asked: 0,
        })
    }

    /// Every GP-Hedge decision so far.
    pub fn history(&self) -> &[HedgeStep] {
        &self.history
    }

    /// The GP on the observations so far (`None` before any, or if it fails).
    pub fn model(&self) -> Option<Gp> {
        let (x, y, v) = self.data();
        if x.is_empty() {
            return None;
        }
        Gp::fit(&x, &y, &v, self.hyper.as_ref()).ok()
    }

    /// The evaluated configuration with the lowest posterior mean (for noisy
    /// observations, the one to recommend), and that mean.
    pub fn recommend(&self) -> Option<(Config, f64)> {
        let gp = self.model()?;
        self.observations
            .iter()
            .map(|o| (o, gp.predict(&o.x).0))
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(o, m)| (self.space.decode(&o.x), m))
    }

    /// The observations the GP is fitted to: all of them up to
    /// `max_observations`; beyond, every exact one (completed runs) and, of
    /// the noisy ones (predicted final values of stopped runs), the best
    /// half of the remaining room (where the optimiser looks) and an even
    /// spread of the rest in the order they came (which keeps the model
    /// honest about bad regions). Deterministic.
    fn data(&self) -> (Vec<Vec<f64>>, Vec<f64>, Vec<f64>) {
        let n = self.observations.len();
        let cap = self.settings.max_observations.max(2);
        let keep: Vec<usize> = if n <= cap {
            (0..n).collect()
        } else {
            let (exact, mut noisy): (Vec<usize>, Vec<usize>) =
                (0..n).partition(|&i| self.observations[i].var == 0.0);
            let mut keep: Vec<usize> = exact.iter().rev().take(cap).copied().collect();
            let room = cap - keep.len();
            noisy.sort_by(|&a, &b| self.observations[a].y.total_cmp(&self.observations[b].y));
            let best = room.div_ceil(2).min(noisy.len());
            keep.extend(&noisy[..best]);
            let mut rest: Vec<usize> = noisy[best..].to_vec();
            rest.sort_unstable();
            let spread = room - best;
            if spread > 0 && !rest.is_empty() {
                let step = rest.len() as f64 / spread as f64;
                keep.extend((0..spread.min(rest.len())).map(|k| rest[(k as f64 * step) as usize]));
            }
            keep.sort_unstable();
            keep.dedup();
            keep
        };
        (
            keep.iter()
                .map(|&i| self.observations[i].x.clone())
                .collect(),
            keep.iter().map(|&i| self.observations[i].y).collect(),
            keep.iter().map(|&i| self.observations[i].var).collect(),
        )
    }

    /// The GP, with the hedge gains updated from the previous nominees.
    ///
    /// The kernel hyperparameters are re-estimated (warm-started) at every
    /// step up to 50 observations and then whenever the data have grown by
    /// 5% since the last estimate; in between the GP is refitted to all the
    /// data with the last estimate (one factorisation instead of an
    /// optimisation: with 200 observations, about 1 ms instead of 50).
    /// Beyond `max_observations` the fitted set keeps its size and changes
    /// slowly, so there the estimate is renewed after 20% growth.
    fn fit(&mut self) -> Option<Gp> {
        let (x, y, v) = self.data();
        let n = self.observations.len();
        let growth = if n > self.settings.max_observations {
            1.2
        } else {
            1.05
        };
        let gp = match &self.hyper {
            Some(h) if n > 50 && (n as f64) < growth * self.hyper_at as f64 => {
                Gp::fit_with(&x, &y, &v, h).ok()?
            }
            warm => {
                let gp = Gp::fit(&x, &y, &v, warm.as_ref()).ok()?;
                self.hyper = Some(gp.hyperparameters().clone());
                self.hyper_at = n;
                gp
            }
        };
        if let Some(noms) = self.nominees.take() {
            let (mean, scale) = gp.output_scale();
            for (g, x) in self.gains.iter_mut().zip(&noms) {
                *g -= (gp.predict(x).0 - mean) / scale;
            }
        }
        Some(gp)
    }

    /// The GP conditioned on fantasies at the pending points.
    fn with_fantasies(&self, gp: Gp, pending: &[Vec<f64>]) -> Gp {
        if pending.is_empty() {
            return gp;
        }
        let (mut x, mut y, mut v) = self.data();
        let lie = y.iter().cloned().fold(f64::INFINITY, f64::min);
        for p in pending {
            let fantasy = match self.settings.pending {
                Pending::KrigingBeliever => gp.predict(p).0,
                Pending::ConstantLiar => lie,
            };
            x.push(p.clone());
            y.push(fantasy);
            v.push(0.0);
        }
        gp.condition(&x, &y, &v).unwrap_or(gp)
    }

    fn context(&self, gp: &Gp) -> Context {
        let best = self
            .observations
            .iter()
            .map(|o| o.y)
            .fold(f64::INFINITY, f64::min);
        Context {
            best,
            scale: gp.output_scale().1,
            t: self.observations.len(),
            d: self.space.dim(),
        }
    }

    /// Chooses an arm by `softmax(η · gains)` and records the decision.
    fn choose(&mut self) -> usize {
        let max = self.gains.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let w: Vec<f64> = self
            .gains
            .iter()
            .map(|g| (self.settings.eta * (g - max)).exp())
            .collect();
        let total: f64 = w.iter().sum();
        let mut u = self.rng.random::<f64>() * total;
        let mut chosen = w.len() - 1;
        for (i, wi) in w.iter().enumerate() {
            if u < *wi {
                chosen = i;
                break;
            }
            u -= wi;
        }
        self.history.push(HedgeStep {
            observations: self.observations.len(),
            chosen: self.settings.arms[chosen],
            arms: self
                .settings
                .arms
                .iter()
                .zip(&w)
                .zip(&self.gains)
                .map(|((a, wi), g)| (*a, wi / total, *g))
                .collect(),
        });
        chosen
    }

    fn initial_point(&mut self) -> Vec<f64> {
        let i = self.asked;
        self.asked += 1;
        let seed = (self.settings.seed as u32) ^ 0x5EED;
        self.space
            .snap(&acquisition::sobol_point(i, self.space.dim(), seed))
    }

    fn encode_all(&self, configs: &[Config]) -> Result<Vec<Vec<f64>>> {
        configs.iter().map(|c| self.space.encode(c)).collect()
    }
}

impl Sampler for GpSampler {
    fn settings(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(&self.settings).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            o.remove("seed");
        }
        v
    }

    fn reseed(&mut self, seed: u64) {
        self.settings.seed = seed;
        self.rng = ChaCha8Rng::seed_from_u64(seed);
    }

    fn name(&self) -> String {
        let arms: Vec<String> = self
            .settings
            .arms
            .iter()
            .map(|a| format!("{a:?}").to_lowercase())
            .collect();
        if arms.len() == 1 {
            format!("gp({})", arms[0])
        } else {
            format!("gp-hedge({})", arms.join(","))
        }
    }

    fn ask(&mut self, pending: &[Config]) -> Result<Config> {
        let pending = self.encode_all(pending)?;
        if self.observations.len() + pending.len() < self.settings.initial {
            let x = self.initial_point();
            return Ok(self.space.decode(&x));
        }
        let Some(gp) = self.fit() else {
            let x = self.initial_point();
            return Ok(self.space.decode(&x));
        };
        let gp = self.with_fantasies(gp, &pending);
        let ctx = self.context(&gp);
        let seed = self.rng.random::<u32>();
        let known: Vec<Vec<f64>> = self
            .observations
            .iter()
            .map(|o| o.x.clone())
            .chain(pending.iter().cloned())
            .collect();
        // The ten best observations join the Sobol candidates.
        let mut by_value: Vec<&Observation> = self.observations.iter().collect();
        by_value.sort_by(|a, b| a.y.total_cmp(&b.y));
        let best: Vec<Vec<f64>> = by_value.iter().take(10).map(|o| o.x.clone()).collect();
        let nominees: Vec<Vec<f64>> = acquisition::maximise(
            &self.settings.arms,
            &gp,
            &ctx,
            &self.space,
            &self.settings.maximiser,
            seed,
            &best,
        )
        .into_iter()
        .map(|m| m.x)
        .collect();
        let chosen = self.choose();
        let mut x = nominees[chosen].clone();
        self.nominees = Some(nominees);
        // A nominee that was already evaluated (a small discrete space) is
        // replaced by the next unused Sobol point.
        for _ in 0..1000 {
            if !known.contains(&x) {
                break;
            }
            x = self.initial_point();
        }
        Ok(self.space.decode(&x))
    }

    fn ask_among(&mut self, candidates: &[Config], pending: &[Config]) -> Result<usize> {
        if candidates.is_empty() {
            return Err(Error::invalid("sampler", "no candidates"));
        }
        let cands = self.encode_all(candidates)?;
        let pending = self.encode_all(pending)?;
        if self.observations.len() + pending.len() < self.settings.initial {
            let target = self.initial_point();
            return Ok(nearest(&cands, &target));
        }
        let Some(gp) = self.fit() else {
            return Ok(self.rng.random_range(0..cands.len()));
        };
        let gp = self.with_fantasies(gp, &pending);
        let ctx = self.context(&gp);
        // At most `MAX_CANDIDATES` candidates are scored: a seeded random
        // subset of a larger pool.
        let subset: Vec<usize> = if cands.len() > MAX_CANDIDATES {
            let mut idx: Vec<usize> = (0..cands.len()).collect();
            for i in 0..MAX_CANDIDATES {
                let j = self.rng.random_range(i..idx.len());
                idx.swap(i, j);
            }
            idx.truncate(MAX_CANDIDATES);
            idx.sort_unstable();
            idx
        } else {
            (0..cands.len()).collect()
        };
        let scored: Vec<Vec<f64>> = subset.iter().map(|&i| cands[i].clone()).collect();
        let picks: Vec<usize> = acquisition::maximise_over(&self.settings.arms, &gp, &ctx, &scored)
            .into_iter()
            .map(|k| subset[k])
            .collect();
        let chosen = self.choose();
        self.nominees = Some(picks.iter().map(|&i| cands[i].clone()).collect());
        Ok(picks[chosen])
    }

    fn tell(&mut self, config: &Config, value: f64, variance: f64) -> Result<()> {
        if !value.is_finite() || !(variance >= 0.0) || !variance.is_finite() {
            return Err(Error::invalid(
                "observation",
                format!("value {value} and variance {variance} must be finite, the variance >= 0"),
            ));
        }
        let x = self.space.encode(config)?;
        self.observations.push(Observation {
            x,
            y: value,
            var: variance,
        });
        Ok(())
    }
}

/// Index of the candidate nearest to `target` (Euclidean).
fn nearest(cands: &[Vec<f64>], target: &[f64]) -> usize {
    let dist = |c: &Vec<f64>| {
        c.iter()
            .zip(target)
            .map(|(a, b)| (a - b).powi(2))
            .sum::<f64>()
    };
    (0..cands.len())
        .min_by(|&a, &b| dist(&cands[a]).total_cmp(&dist(&cands[b])))
        .expect("non-empty")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sampler::RandomSampler;
    use crate::space::{Scale, Value};

    fn branin(c: &Config) -> f64 {
        let (x1, x2) = (c["x1"].as_f64(), c["x2"].as_f64());
        let pi = std::f64::consts::PI;
        let (b, cc, r, s, t) = (5.1 / (4.0 * pi * pi), 5.0 / pi, 6.0, 10.0, 1.0 / (8.0 * pi));
        (x2 - b * x1 * x1 + cc * x1 - r).powi(2) + s * (1.0 - t) * x1.cos() + s
    }

    fn branin_space() -> Space {
        Space::builder()
            .float("x1", -5.0, 10.0, Scale::Linear)
            .float("x2", 0.0, 15.0, Scale::Linear)
            .build()
            .unwrap()
    }

    fn run(sampler: &mut dyn Sampler, evals: usize) -> f64 {
        let mut best = f64::INFINITY;
        for _ in 0..evals {
            let c = sampler.ask(&[]).unwrap();
            let y = branin(&c);
            best = best.min(y);
            sampler.tell(&c, y, 0.0).unwrap();
        }
        best
    }

    #[test]
    fn gp_hedge_beats_random_on_branin() {
        let optimum = 0.397887;
        let mut gp_regret = Vec::new();
        let mut rs_regret = Vec::new();
        for seed in 0..3 {
            let mut gp = GpSampler::new(
                branin_space(),
                GpSettings {
                    seed,
                    ..GpSettings::default()
                },
            )
            .unwrap();
            gp_regret.push(run(&mut gp, 30) - optimum);
            let mut rs = RandomSampler::new(branin_space(), seed);
            rs_regret.push(run(&mut rs, 30) - optimum);
            assert_eq!(gp.history().len(), 20);
        }
        let (g, r) = (
            crate::stats::median(&gp_regret),
            crate::stats::median(&rs_regret),
        );
        assert!(g < 0.1 && g < r, "GP-Hedge {g} vs random {r}");
    }

    /// After a refit, each arm's gain changes by minus its nominee's
    /// standardised posterior mean, and probabilities are the softmax.
    #[test]
    fn hedge_update_and_probabilities() {
        let mut s = GpSampler::new(
            branin_space(),
            GpSettings {
                initial: 5,
                seed: 1,
                ..GpSettings::default()
            },
        )
        .unwrap();
        for _ in 0..7 {
            let c = s.ask(&[]).unwrap();
            s.tell(&c, branin(&c), 0.0).unwrap();
        }
        let noms = s.nominees.clone().unwrap();
        let gains_before = s.gains.clone();
        let gp = s.fit().unwrap();
        let (mean, scale) = gp.output_scale();
        for k in 0..2 {
            let want = gains_before[k] - (gp.predict(&noms[k]).0 - mean) / scale;
            assert!((s.gains[k] - want).abs() < 1e-9);
        }
        let step = s.history().last().unwrap();
        let p: f64 = step.arms.iter().map(|a| a.1).sum();
        assert!((p - 1.0).abs() < 1e-12);
        let (g0, g1) = (step.arms[0].2, step.arms[1].2);
        let eta = s.settings.eta;
        let want0 = 1.0 / (1.0 + (eta * (g1 - g0)).exp());
        assert!((step.arms[0].1 - want0).abs() < 1e-12);
    }

    #[test]
    fn pending_points_get_distinct_proposals() {
        for pending in [Pending::KrigingBeliever, Pending::ConstantLiar] {
            let mut s = GpSampler::new(
                branin_space(),
                GpSettings {
                    pending,
                    initial: 6,
                    ..GpSettings::default()
                },
            )
            .unwrap();
            for _ in 0..8 {
                let c = s.ask(&[]).unwrap();
                s.tell(&c, branin(&c), 0.0).unwrap();
            }
            let a = s.ask(&[]).unwrap();
            let b = s.ask(std::slice::from_ref(&a)).unwrap();
            let c = s.ask(&[a.clone(), b.clone()]).unwrap();
            assert!(a != b && b != c && a != c, "{pending:?}: {a:?} {b:?} {c:?}");
        }
    }

    #[test]
    fn finite_candidates_mode_picks_a_good_candidate() {
        let space = branin_space();
        let cands: Vec<Config> = (0..200)
            .map(|i| space.decode(&acquisition::sobol_point(i, 2, 9)))
            .collect();
        let mut s = GpSampler::new(
            space,
            GpSettings {
                initial: 5,
                ..GpSettings::default()
            },
        )
        .unwrap();
        let mut unused: Vec<Config> = cands.clone();
        let mut best = f64::INFINITY;
        for _ in 0..25 {
            let i = s.ask_among(&unused, &[]).unwrap();
            let c = unused.remove(i);
            let y = branin(&c);
            best = best.min(y);
            s.tell(&c, y, 0.0).unwrap();
        }
        let pool_best = cands.iter().map(branin).fold(f64::INFINITY, f64::min);
        let pool_median = {
            let mut v: Vec<f64> = cands.iter().map(branin).collect();
            v.sort_by(f64::total_cmp);
            v[100]
        };
        assert!(
            best - pool_best < 0.1 * (pool_median - pool_best),
            "{best} vs pool best {pool_best}"
        );
    }

    #[test]
    fn categorical_and_integer_spaces_work() {
        let space = Space::builder()
            .categorical("act", &["relu", "tanh", "gelu"])
            .int("width", 1, 8, Scale::Linear)
            .build()
            .unwrap();
        let f = |c: &Config| {
            let a = match &c["act"] {
                Value::Str(s) if s == "gelu" => 0.0,
                _ => 1.0,
            };
            a + (c["width"].as_f64() - 6.0).abs()
        };
        let mut s = GpSampler::new(
            space,
            GpSettings {
                initial: 4,
                ..GpSettings::default()
            },
        )
        .unwrap();
        let mut best = f64::INFINITY;
        for _ in 0..15 {
            let c = s.ask(&[]).unwrap();
            best = best.min(f(&c));
            s.tell(&c, f(&c), 0.0).unwrap();
        }
        assert_eq!(best, 0.0);
    }

    #[test]
    fn bad_reports_are_errors() {
        let mut s = GpSampler::new(branin_space(), GpSettings::default()).unwrap();
        let c = s.ask(&[]).unwrap();
        assert!(s.tell(&c, f64::NAN, 0.0).is_err());
        assert!(s.tell(&c, 1.0, -1.0).is_err());
        assert!(
            GpSampler::new(
                branin_space(),
                GpSettings {
                    arms: vec![],
                    ..GpSettings::default()
                }
            )
            .is_err()
        );
        for eta in [-0.1, f64::NAN, f64::INFINITY] {
            let settings = GpSettings {
                eta,
                ..GpSettings::default()
            };
            assert!(GpSampler::new(branin_space(), settings).is_err(), "{eta}");
        }
    }
}
