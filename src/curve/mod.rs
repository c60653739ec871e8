//! The learning-curve predictor: from the first epochs of a training run to
//! a posterior predictive of the metric at any later epoch.
//!
//! The method is that of Domhan, Springenberg & Hutter, "Speeding up
//! automatic hyperparameter optimization of deep neural networks by
//! extrapolation of learning curves" (IJCAI 2015), reference code
//! automl/pylearningcurvepredictor:
//!
//! 1. map the metric to model space, where larger is better and `[0, 1]`
//!    is the attainable range ([`transform`]);
//! 2. drop an initial plateau (`cut_beginning` of the reference) and, unlike
//!    the reference, shift the horizon by the epochs dropped;
//! 3. fit each of the eleven families ([`family`]) by recency-weighted least
//!    squares and keep those whose fit is finite and satisfies the prior
//!    ([`model`]);
//! 4. sample the posterior with the affine-invariant ensemble sampler
//!    ([`crate::mcmc`]), starting from the least-squares fits;
//! 5. report the mixture predictive ([`predictive`]).
//!
//! [`PredictorConfig::reference`] reproduces the reference. foresight's
//! [`PredictorConfig::default`] changes the following, each measured in
//! `docs/benchmarks.md` (`cargo run --release --example ablation` undoes
//! them one at a time):
//!
//! * **averaging instead of combining** ([`Combination::Averaged`]): each
//!   family gets its own posterior over `(θ_k, σ_k)` and the predictive is a
//!   mixture of the families' predictives. In the reference's
//!   joint combination `Σ w_k f_k / Σ w_k` only the weighted sum has to fit
//!   the data, so families compensate each other and a family whose weight
//!   drifts to zero is free to extrapolate anywhere; its extrapolations are
//!   wide and their mean is dragged far from the data even for flat curves.
//!   (Weights from the families' evidence, BIC-style, were measured too:
//!   they put nearly all mass on one family and are overconfident.)
//! * **the true range**: each family's value at the horizon must lie in
//!   `[0, 1]` (the reference allows `[0, 100]`), and losses are mapped with a
//!   scale taken from the curve ([`LossScale::FirstValue`]);
//! * **honest evidence**: recency weights normalised to average one
//!   ([`Recency::Normalized`]), a noise floor of 2% of the observed range
//!   (the families never fit a real curve better than that), and a family is
//!   fitted only when the prefix has at least two points more than it has
//!   parameters (so that its noise has a residual degree of freedom), and a
//!   family that fits the prefix worse than a straight line is dropped
//!   ([`PredictorConfig::max_misfit`]);
//! * **a backtest on the prefix**: the families are refitted on the first
//!   half of the prefix and asked for its last point, `h` epochs ahead. The
//!   error of their mean, `e`, sets an extrapolation discrepancy that grows
//!   like a random walk, variance `e² · lead / h`, added to every
//!   component's noise beyond the last observed epoch: it widens the
//!   forecast of curves the families extrapolate badly and leaves
//!   well-behaved ones alone. Each family's own error sets its mixture
//!   weight ([`Combination::Averaged`]);
//! * **robust least squares** ([`Fitting::Robust`]): Levenberg–Marquardt and
//!   L-BFGS with analytic derivatives, the better fit wins;
//! * **a sampler started from the Laplace approximation** of each family's
//!   posterior rather than a 1e-6 ball, so that a few hundred steps suffice.
//!
//! Every random choice flows from [`PredictorConfig::seed`].
//!
//! ```
//! use foresight::curve::{Metric, PredictorConfig};
//!
//! let accuracy = [0.42, 0.55, 0.61, 0.65, 0.67, 0.69, 0.70, 0.71];
//! let forecast = PredictorConfig::default().predict(&accuracy, 50, Metric::Accuracy)?;
//! let at_end = forecast.final_value();
//! assert!(at_end.quantile(0.05) < at_end.quantile(0.95));
//! // How likely is this run to end above 0.9?
//! let p = at_end.prob_better(0.9);
//! assert!((0.0..=1.0).contains(&p));
//! # Ok::<(), foresight::Error>(())
//! ```

pub mod family;
pub mod model;
pub mod predictive;
pub mod stopping;
pub mod transform;

use nalgebra::DMatrix;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::mcmc::{self, LogDensity};
pub use family::{Epoch, Family};
use model::{Data, Ensemble, Fit, Posterior};
pub use model::{Fitting, Recency};
pub use predictive::{Component, Predictive};
pub use stopping::{StopDecision, StoppingRule};
pub use transform::{LossScale, Metric, Transform};

/// How the families' posteriors make one forecast.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Combination {
    /// The reference: one joint posterior over every family's parameters, the
    /// noise and the weights of `f = Σ w_k f_k / Σ w_k`.
    Weighted,
    /// foresight: one posterior per family, mixed with weights from the
    /// backtest (equal weights without one).
    Averaged,
}

/// Where the MCMC walkers start.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Start {
    /// Independent `N(0, s²)` perturbations of the least-squares fit (the
    /// reference uses `s = 1e-6`).
    Ball(f64),
    /// Draws from the Laplace approximation at the least-squares fit,
    /// `θ ~ N(θ̂, σ̂² (Jᵀ R J)⁻¹)`, `ln σ ~ N(ln σ̂, 1 / (2 Σ r_t))`
    /// (`R` the recency weights); draws outside the prior are redrawn.
    Laplace,
}

/// Settings of the predictor.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PredictorConfig {
    /// The curve families.
    pub families: Vec<Family>,
    /// How the families' posteriors are combined.
    pub combination: Combination,
    /// MCMC walkers per chain (raised to twice the dimension if smaller, as the reference does).
    pub walkers: usize,
    /// MCMC steps per walker.
    pub steps: usize,
    /// Steps discarded as burn-in.
    pub burn_in: usize,
    /// Keep every `thin`-th step after burn-in.
    pub thin: usize,
    /// Where the walkers start.
    pub start: Start,
    /// Upper bound on each family's value at the horizon, in model space.
    pub upper: f64,
    /// Likelihood weighting of the observed epochs.
    pub recency: Recency,
    /// Scale of the loss transformation.
    pub loss_scale: LossScale,
    /// Drop an initial plateau before fitting (the reference's `cut_beginning`).
    pub cut_plateau: bool,
    /// How the families are fitted by least squares.
    pub fitting: Fitting,
    /// A family is fitted only to prefixes of at least `n_params + extra_points` points.
    pub extra_points: usize,
    /// Noise floor, as a fraction of the observed range of the prefix (model space).
    pub noise_floor: f64,
    /// Drop a family whose fit's (weighted) RMS residual exceeds this
    /// multiple of a straight line's, plus the noise floor: the families all
    /// describe improving, levelling curves, and one that fits worse than a
    /// line (a curve that gets steadily worse, say) says nothing about the
    /// future. `None` keeps every family (the reference).
    pub max_misfit: Option<f64>,
    /// Backtest the families on the prefix: extrapolation discrepancy and
    /// (for [`Combination::Averaged`]) family weights (module documentation).
    pub backtest: bool,
    /// Seed of every random choice of a prediction.
    pub seed: u64,
    /// Run the MCMC on several threads (rayon).
    pub parallel: bool,
}

impl PredictorConfig {
    /// The reference's configuration (automl/pylearningcurvepredictor,
    /// `terminationcriterion.py`): the weighted combination of the eleven
    /// families, 100 walkers, 2500 steps, burn-in 500, thinning 10, raw
    /// recency weights, asymptote bound 100, walkers started within `1e-6` of
    /// the least-squares fit, losses as `exp(-loss)`, and the reference's
    /// least-squares fitting ([`Fitting::Reference`]).
    pub fn reference() -> Self {
        PredictorConfig {
            families: Family::ALL.to_vec(),
            combination: Combination::Weighted,
            walkers: 100,
            steps: 2500,
            burn_in: 500,
            thin: 10,
            start: Start::Ball(1e-6),
            upper: 100.0,
            recency: Recency::Reference,
            loss_scale: LossScale::Fixed(1.0),
            cut_plateau: true,
            fitting: Fitting::Reference,
            extra_points: 0,
            noise_floor: 0.0,
            max_misfit: None,
            backtest: false,
            seed: 0,
            parallel: true,
        }
    }

    /// Predicts the curve from its observed prefix `observed` (metric units,
    /// `observed[e]` after epoch `e + 1`) for a run of `horizon` epochs.
    ///
    /// Defined answers for awkward curves:
    /// * a non-finite value anywhere: the run diverged, and the forecast puts
    ///   all mass on the metric's worst value;
    /// * a curve no family describes (a single point; a decreasing accuracy
    ///   curve, which every family fits worse than a line or only by breaking
    ///   the prior): the *fallback* forecast,
    ///   a Gaussian in model space centred on the last value, as wide as the
    ///   prefix's noise or, for a prefix that improves, as the way it would
    ///   go at its present pace (`fallback`);
    /// * a flat curve: fitted like any other; the families fit it with
    ///   near-zero slope.
    ///
    /// Errors: an empty prefix, a horizon shorter than the prefix, an
    /// accuracy outside `[0, 1]`, a negative loss, an invalid configuration.
    pub fn predict(&self, observed: &[f64], horizon: usize, metric: Metric) -> Result<Forecast> {
        self.validate()?;
        if observed.is_empty() {
            return Err(Error::invalid("curve", "no observed epochs"));
        }
        if horizon < observed.len() {
            return Err(Error::invalid(
                "horizon",
                format!(
                    "horizon {horizon} is shorter than the {} observed epochs",
                    observed.len()
                ),
            ));
        }
        let transform = Transform::new(metric, self.loss_scale, observed);
        let base = Forecast {
            kind: Kind::Diverged,
            transform,
            horizon,
            shift: 0,
            kept: Vec::new(),
            acceptance: None,
        };
        if observed.iter().any(|v| !v.is_finite()) {
            return Ok(base);
        }
        match metric {
            Metric::Accuracy if observed.iter().any(|v| !(0.0..=1.0).contains(v)) => {
                return Err(Error::invalid(
                    "curve",
                    "an accuracy-like metric must lie in [0, 1] (rescale percentages)",
                ));
            }
            Metric::Loss if observed.iter().any(|&v| v < 0.0) => {
                return Err(Error::invalid("curve", "a loss must be >= 0"));
            }
            _ => {}
        }
        let y: Vec<f64> = observed.iter().map(|&v| transform.forward(v)).collect();
        let shift = if self.cut_plateau {
            plateau_length(&y)
        } else {
            0
        };
        let data = self.data(y[shift..].to_vec(), (horizon - shift) as f64);
        let fits = self.fit(&data);
        if fits.is_empty() {
            return Ok(Forecast {
                kind: fallback(&data),
                shift,
                ..base
            });
        }
        let backtest = if self.backtest {
            self.backtest(&data)
        } else {
            None
        };
        let discrepancy = backtest.as_ref().map_or(0.0, |b| b.discrepancy);
        let chains: Vec<Chain> = match self.combination {
            Combination::Weighted => {
                let ensemble = Ensemble::weighted(fits.iter().map(|f| f.family).collect());
                // σ of the equally weighted fits, as the reference starts.
                let n = data.y.len() as f64;
                let resid: Vec<f64> = data
                    .epochs
                    .iter()
                    .zip(&data.y)
                    .map(|(e, y)| {
                        y - fits
                            .iter()
                            .map(|f| f.family.eval(&f.params, e))
                            .sum::<f64>()
                            / fits.len() as f64
                    })
                    .collect();
                let mean_r = resid.iter().sum::<f64>() / n;
                let sigma = (resid.iter().map(|r| (r - mean_r).powi(2)).sum::<f64>() / n).sqrt();
                let start = ensemble.join(&fits, sigma.max(1.5 * data.sigma_min), 10.0);
                vec![self.chain(ensemble, &data, &start, &fits, self.seed, 1.0)]
            }
            Combination::Averaged => {
                let weights = family_weights(&fits, backtest.as_ref());
                let run = |(k, fit): (usize, &Fit)| {
                    let ensemble = Ensemble::single(fit.family);
                    let sigma =
                        model::ml_sigma(fit.family, &fit.params, &data).max(1.5 * data.sigma_min);
                    let start = ensemble.join(std::slice::from_ref(fit), sigma, 1.0);
                    let seed = self
                        .seed
                        .wrapping_add(0x9E37_79B9_7F4A_7C15u64.wrapping_mul(k as u64 + 1));
                    self.chain(
                        ensemble,
                        &data,
                        &start,
                        std::slice::from_ref(fit),
                        seed,
                        weights[k],
                    )
                };
                if self.parallel {
                    fits.par_iter().enumerate().map(run).collect()
                } else {
                    fits.iter().enumerate().map(run).collect()
                }
            }
        };
        let acceptance = chains.iter().map(|c| c.acceptance).sum::<f64>() / chains.len() as f64;
        Ok(Forecast {
            kind: Kind::Posterior {
                chains,
                discrepancy,
                last: data.y.len() as f64,
            },
            shift,
            kept: fits.iter().map(|f| f.family).collect(),
            acceptance: Some(acceptance),
            ..base
        })
    }

    /// Refuses settings no forecast can be made with (checked by every
    /// [`PredictorConfig::predict`], and by the `lc` policy when a study
    /// starts).
    pub fn validate(&self) -> Result<()> {
        if self.families.is_empty() {
            return Err(Error::invalid("predictor", "no curve families"));
        }
        if self.walkers < 2 || self.steps == 0 || self.thin == 0 || self.burn_in >= self.steps {
            return Err(Error::invalid(
                "predictor",
                format!(
                    "MCMC budget: need walkers >= 2, steps > burn-in, thin >= 1 \
                     (got {} walkers, {} steps, burn-in {}, thin {})",
                    self.walkers, self.steps, self.burn_in, self.thin
                ),
            ));
        }
        let spread_ok = match self.start {
            Start::Ball(s) => s >= 0.0,
            Start::Laplace => true,
        };
        if !(self.upper > 0.0) || !spread_ok || !(self.noise_floor >= 0.0) {
            return Err(Error::invalid(
                "predictor",
                "upper bound must be positive, start spread and noise floor non-negative",
            ));
        }
        Ok(())
    }

    /// The prefix in model space, with the prior's settings.
    fn data(&self, y: Vec<f64>, horizon: f64) -> Data {
        let mut data = Data::new(y, horizon, self.recency, self.upper);
        let (lo, hi) = data
            .y
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
                (a.min(v), b.max(v))
            });
        data.sigma_min = self.noise_floor * (hi - lo);
        data.extra_points = self.extra_points;
        data
    }

    /// Least-squares fits of the families that satisfy the prior (and,
    /// with [`PredictorConfig::max_misfit`], describe the curve).
    fn fit(&self, data: &Data) -> Vec<Fit> {
        let limit = self
            .max_misfit
            .map(|ratio| ratio * line_rms(data) + data.sigma_min);
        self.families
            .iter()
            .filter_map(|&f| model::fit_family(f, data, self.fitting))
            .filter(|fit| data.family_prior_ok(fit.family, &fit.params))
            .filter(|fit| limit.is_none_or(|l| model::ml_sigma(fit.family, &fit.params, data) <= l))
            .collect()
    }

    /// The backtest of the module documentation: the families fitted to the
    /// first half of the prefix predict its last point. `None` when the half
    /// is too short to fit any family.
    fn backtest(&self, data: &Data) -> Option<Backtest> {
        let n = data.y.len();
        let m = n.div_ceil(2);
        if m < 2 || n <= m {
            return None;
        }
        let mut half = Data::new(
            data.y[..m].to_vec(),
            data.horizon.x,
            self.recency,
            self.upper,
        );
        // The half only has to be interpolated: no extra points required.
        half.sigma_min = data.sigma_min;
        let target = &data.epochs[n - 1];
        let errors: Vec<(Family, f64)> = self
            .fit(&half)
            .iter()
            .map(|fit| {
                (
                    fit.family,
                    fit.family.eval(&fit.params, target) - data.y[n - 1],
                )
            })
            .filter(|(_, e)| e.is_finite())
            .collect();
        if errors.is_empty() {
            return None;
        }
        let mean_error = errors.iter().map(|(_, e)| e).sum::<f64>() / errors.len() as f64;
        Some(Backtest {
            discrepancy: mean_error * mean_error / (n - m) as f64,
            errors,
        })
    }

    /// One MCMC chain from `start`, with its mixture weight.
    fn chain(
        &self,
        ensemble: Ensemble,
        data: &Data,
        start: &[f64],
        fits: &[Fit],
        seed: u64,
        weight: f64,
    ) -> Chain {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let dim = ensemble.dim();
        let walkers = self.walkers.max(2 * dim);
        let posterior = Posterior {
            ensemble: &ensemble,
            data,
        };
        let init: Vec<f64> = match self.start {
            Start::Ball(s) => (0..walkers)
                .flat_map(|_| start.to_vec())
                .map(|v| v + s * Distribution::<f64>::sample(&StandardNormal, &mut rng))
                .collect(),
            Start::Laplace => laplace_start(&posterior, start, fits, walkers, &mut rng),
        };
        let samples = mcmc::sample(
            &posterior,
            &init,
            dim,
            mcmc::Settings {
                steps: self.steps,
                burn_in: self.burn_in,
                thin: self.thin,
                stretch: 2.0,
                parallel: self.parallel && self.combination == Combination::Weighted,
            },
            &mut rng,
        );
        Chain {
            ensemble,
            samples: samples.states,
            weight,
            acceptance: samples.acceptance,
        }
    }
}

impl Default for PredictorConfig {
    /// foresight's predictor (module documentation).
    fn default() -> Self {
        PredictorConfig {
            combination: Combination::Averaged,
            walkers: 32,
            steps: 300,
            burn_in: 150,
            thin: 5,
            start: Start::Laplace,
            upper: 1.0,
            recency: Recency::Normalized,
            loss_scale: LossScale::FirstValue,
            fitting: Fitting::Robust,
            extra_points: 2,
            noise_floor: 0.02,
            max_misfit: Some(2.0),
            backtest: true,
            ..PredictorConfig::reference()
        }
    }
}

/// What the backtest on the first half of the prefix found.
struct Backtest {
    /// Variance per epoch of lead of the families' mean extrapolation.
    discrepancy: f64,
    /// Each family's signed error at the last observed epoch.
    errors: Vec<(Family, f64)>,
}

/// Mixture weights of the families in [`Combination::Averaged`]: with a
/// backtest, `w_k ∝ exp(-e_k² / (2 v))` with `e_k` the family's backtest
/// error and `v` the mean squared error of all families (a family the half
/// could not fit counts as average, `e_k² = v`) — pseudo-Bayesian model
/// averaging on a leave-future-out score (Yao, Vehtari, Simpson & Gelman,
/// "Using stacking to average Bayesian predictive distributions", 2018;
/// Bürkner, Gabry & Vehtari, "Approximate leave-future-out cross-validation
/// for Bayesian time series models", 2020). Equal weights without one.
fn family_weights(fits: &[Fit], backtest: Option<&Backtest>) -> Vec<f64> {
    let raw: Vec<f64> = match backtest {
        None => vec![1.0; fits.len()],
        Some(b) => {
            let v = b.errors.iter().map(|(_, e)| e * e).sum::<f64>() / b.errors.len() as f64;
            fits.iter()
                .map(
                    |fit| match b.errors.iter().find(|(f, _)| *f == fit.family) {
                        Some((_, e)) if v > 0.0 => (-0.5 * e * e / v).exp(),
                        _ => (-0.5f64).exp(),
                    },
                )
                .collect()
        }
    };
    let total: f64 = raw.iter().sum();
    raw.iter().map(|r| r / total).collect()
}

/// Walkers drawn from the Laplace approximation of a single-family
/// posterior around `start = (θ̂, σ̂)` (see [`Start::Laplace`]); a draw outside
/// the prior is redrawn up to 20 times, then replaced by `start` itself
/// perturbed by `1e-6`.
fn laplace_start(
    posterior: &Posterior<'_>,
    start: &[f64],
    fits: &[Fit],
    walkers: usize,
    rng: &mut ChaCha8Rng,
) -> Vec<f64> {
    let data = posterior.data;
    let dim = start.len();
    let normal = |rng: &mut ChaCha8Rng| Distribution::<f64>::sample(&StandardNormal, rng);
    // Only single-family posteriors have a simple Laplace form here; a
    // combination falls back to a small ball.
    let factor = match fits {
        [fit] => {
            let np = fit.family.n_params();
            let mut jtj = DMatrix::<f64>::zeros(np, np);
            let mut g = vec![0.0; np];
            for (e, r) in data.epochs.iter().zip(&data.weights) {
                fit.family.eval_grad(&fit.params, e, &mut g);
                for i in 0..np {
                    for j in 0..np {
                        jtj[(i, j)] += r * g[i] * g[j];
                    }
                }
            }
            let sigma = start[np];
            let scale = jtj.diagonal().max().max(1e-300);
            let mut reg = jtj.clone();
            for i in 0..np {
                reg[(i, i)] += 1e-9 * scale;
            }
            reg.cholesky().and_then(|ch| {
                let cov = ch.inverse() * (sigma * sigma);
                cov.cholesky().map(|c| c.l())
            })
        }
        _ => None,
    };
    let total_weight: f64 = data.weights.iter().sum();
    let mut scratch = posterior.scratch();
    let mut out = Vec::with_capacity(walkers * dim);
    for _ in 0..walkers {
        let mut accepted = None;
        if let Some(l) = &factor {
            let np = l.nrows();
            for _ in 0..20 {
                let z: Vec<f64> = (0..np).map(|_| normal(rng)).collect();
                let mut xi = start.to_vec();
                for i in 0..np {
                    xi[i] += (0..=i).map(|j| l[(i, j)] * z[j]).sum::<f64>();
                }
                xi[np] = start[np] * (normal(rng) / (2.0 * total_weight).sqrt()).exp();
                if posterior.log_density(&xi, &mut scratch).is_finite() {
                    accepted = Some(xi);
                    break;
                }
            }
        }
        let xi = accepted.unwrap_or_else(|| start.iter().map(|v| v + 1e-6 * normal(rng)).collect());
        out.extend(xi);
    }
    out
}

/// Weighted RMS residual of the weighted least-squares straight line
/// through the prefix (0 for fewer than three points).
fn line_rms(data: &Data) -> f64 {
    let w = &data.weights;
    let sw: f64 = w.iter().sum();
    if data.y.len() < 3 || !(sw > 0.0) {
        return 0.0;
    }
    let (mx, my, slope) = line(data, w);
    let residual = |t: usize| data.y[t] - my - slope * (data.epochs[t].x - mx);
    ((0..w.len())
        .map(|t| w[t] * residual(t).powi(2))
        .sum::<f64>()
        / sw)
        .sqrt()
}

/// The least-squares straight line through the prefix with weights `w`
/// (positive sum): the weighted means of the epochs and of the values, and
/// the slope (0 where the epochs do not vary).
fn line(data: &Data, w: &[f64]) -> (f64, f64, f64) {
    let sw: f64 = w.iter().sum();
    let mean = |v: &dyn Fn(usize) -> f64| (0..w.len()).map(|t| w[t] * v(t)).sum::<f64>() / sw;
    let mx = mean(&|t| data.epochs[t].x);
    let my = mean(&|t| data.y[t]);
    let sxx = mean(&|t| (data.epochs[t].x - mx).powi(2));
    let sxy = mean(&|t| (data.epochs[t].x - mx) * (data.y[t] - my));
    (mx, my, if sxx > 0.0 { sxy / sxx } else { 0.0 })
}

/// Length of an initial plateau, as the reference's `cut_beginning`
/// (threshold 0.05, look-ahead 5): the first index `i` from which the next 5
/// values all exceed the first value by more than 0.05; 0 if there is none
/// (or the curve has at most 5 points).
pub fn plateau_length(y: &[f64]) -> usize {
    const THRESHOLD: f64 = 0.05;
    const LOOK_AHEAD: usize = 5;
    if y.len() < LOOK_AHEAD {
        return 0;
    }
    (0..y.len() - LOOK_AHEAD)
        .find(|&i| y[i..i + LOOK_AHEAD].iter().all(|v| v - y[0] > THRESHOLD))
        .unwrap_or(0)
}

/// The forecast of a prefix no family describes: a Gaussian in model space
/// centred on the last value `y_n`, with standard deviation
///
/// `σ = max(sd(y), 0.05, min(b (T − n), 1 − y_n) / z₀.₉₅)`,
///
/// where `b` is the prefix's least-squares slope per epoch when the curve
/// improves (0 when it gets worse) and `z₀.₉₅ = 1.645`: the 95% quantile
/// lies where the curve would end if it kept its present pace for the
/// `T − n` epochs left, or at the top of the model space `[0, 1]`. Without
/// the last term a steadily improving prefix too short or too straight for
/// the families (four epochs of a linear warm-up) got a band as narrow as
/// its noise, which held 32 of the 107 final values of the fallback
/// forecasts after four epochs of the step-size-bent curve sets (now 97;
/// docs/benchmarks.md, "Curves bent by step-size schedules"). A curve
/// that gets worse, or does not move, keeps the narrow band: nothing in it
/// suggests a change.
fn fallback(data: &Data) -> Kind {
    let y = &data.y;
    let n = y.len() as f64;
    let (_, m, slope) = line(data, &vec![1.0; y.len()]);
    let sd = (y.iter().map(|v| (v - m).powi(2)).sum::<f64>() / n).sqrt();
    let last = *y.last().expect("non-empty");
    let left = (data.horizon.x - n).max(0.0);
    let pace = (slope.max(0.0) * left).min((1.0 - last).max(0.0)) / Z95;
    Kind::Fallback {
        mu: last,
        sigma: sd.max(0.05).max(pace),
    }
}

/// The standard normal's 95% quantile.
const Z95: f64 = 1.644_853_626_951_472_2;

/// Kept posterior samples of one ensemble, with the chain's mixture weight.
#[derive(Debug, Clone)]
struct Chain {
    ensemble: Ensemble,
    /// Row-major samples of `ξ`.
    samples: Vec<f64>,
    weight: f64,
    acceptance: f64,
}

#[derive(Debug, Clone)]
enum Kind {
    Diverged,
    Fallback {
        mu: f64,
        sigma: f64,
    },
    Posterior {
        chains: Vec<Chain>,
        /// Extrapolation discrepancy: variance per epoch of lead (model space).
        discrepancy: f64,
        /// Last observed epoch (model coordinates).
        last: f64,
    },
}

/// Components at most in each epoch's mixture of [`Forecast::band`].
pub const BAND_COMPONENTS: usize = 512;

/// The outcome of a prediction: a posterior over the whole rest of the curve.
#[derive(Debug, Clone)]
pub struct Forecast {
    kind: Kind,
    transform: Transform,
    horizon: usize,
    shift: usize,
    kept: Vec<Family>,
    acceptance: Option<f64>,
}

impl Forecast {
    /// Predictive distribution of the metric observed after `epoch` (1-based).
    pub fn at(&self, epoch: usize) -> Predictive {
        match &self.kind {
            Kind::Diverged => Predictive::diverged(self.transform.metric),
            Kind::Fallback { mu, sigma } => Predictive::equal([(*mu, *sigma)], self.transform),
            Kind::Posterior {
                chains,
                discrepancy,
                last,
            } => {
                let x = epoch.saturating_sub(self.shift).max(1) as f64;
                let e = Epoch::new(x);
                let extra = discrepancy * (x - last).max(0.0);
                let mut comps = Vec::new();
                for chain in chains {
                    let dim = chain.ensemble.dim();
                    let each = chain.weight / (chain.samples.len() / dim).max(1) as f64;
                    comps.extend(chain.samples.chunks(dim).map(|xi| Component {
                        mu: chain.ensemble.value(xi, &e),
                        sigma: (chain.ensemble.sigma(xi).powi(2) + extra).sqrt(),
                        weight: each,
                    }));
                }
                Predictive::new(comps, self.transform)
            }
        }
    }

    /// Predictive distribution at the horizon.
    pub fn final_value(&self) -> Predictive {
        self.at(self.horizon)
    }

    /// A band at the given epochs: `(epoch, q_lo, median, q_hi)` in metric
    /// units, for plots. Each epoch's mixture is thinned evenly to at most
    /// [`BAND_COMPONENTS`] components first (a coarser Monte Carlo estimate
    /// of the same predictive: the plot does not need the precision, and
    /// the quantiles of a full mixture cost thousands of `erfc` each).
    pub fn band(
        &self,
        epochs: impl IntoIterator<Item = usize>,
        q_lo: f64,
        q_hi: f64,
    ) -> Vec<(usize, f64, f64, f64)> {
        epochs
            .into_iter()
            .map(|e| {
                let p = self.at(e).thinned(BAND_COMPONENTS);
                (e, p.quantile(q_lo), p.quantile(0.5), p.quantile(q_hi))
            })
            .collect()
    }

    /// The horizon the forecast was made for.
    pub fn horizon(&self) -> usize {
        self.horizon
    }

    /// Initial epochs dropped as a plateau.
    pub fn points_cut(&self) -> usize {
        self.shift
    }

    /// Families that survived fitting and the prior.
    pub fn families(&self) -> &[Family] {
        &self.kept
    }

    /// Mean MCMC acceptance fraction (`None` without MCMC).
    pub fn acceptance(&self) -> Option<f64> {
        self.acceptance
    }

    /// Whether the run had diverged.
    pub fn is_diverged(&self) -> bool {
        matches!(self.kind, Kind::Diverged)
    }

    /// Whether no family could be fitted and the fallback forecast is used.
    pub fn is_fallback(&self) -> bool {
        matches!(self.kind, Kind::Fallback { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quick() -> PredictorConfig {
        PredictorConfig {
            steps: 300,
            burn_in: 150,
            ..PredictorConfig::default()
        }
    }

    #[test]
    fn plateau_is_measured_like_the_reference() {
        assert_eq!(plateau_length(&[0.1, 0.1, 0.1]), 0);
        let y = [0.1, 0.1, 0.1, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8];
        assert_eq!(plateau_length(&y), 3);
        // A curve that rises at once drops its first point (reference behaviour).
        let y = [0.1, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8];
        assert_eq!(plateau_length(&y), 1);
    }

    #[test]
    fn rising_accuracy_curve_is_extrapolated_upwards() {
        let y: Vec<f64> = (1..=10)
            .map(|x| 0.9 - 0.5 * (x as f64).powf(-0.7))
            .collect();
        let f = quick().predict(&y, 50, Metric::Accuracy).unwrap();
        let p = f.final_value();
        let truth = 0.9 - 0.5 * 50f64.powf(-0.7);
        assert!(
            p.mean() > y[9],
            "mean {} should exceed the last value {}",
            p.mean(),
            y[9]
        );
        assert!(p.quantile(0.05) < truth && truth < p.quantile(0.95));
        assert!(!f.families().is_empty());
    }

    /// The band for plots: ordered quantiles that widen with the lead.
    #[test]
    fn band_is_ordered_and_widens() {
        let y: Vec<f64> = (1..=12)
            .map(|x| 0.9 - 0.5 * (x as f64).powf(-0.6))
            .collect();
        let f = quick().predict(&y, 40, Metric::Accuracy).unwrap();
        let band = f.band(13..=40, 0.05, 0.95);
        assert_eq!(band.len(), 28);
        for &(_, lo, mid, hi) in &band {
            assert!(lo <= mid && mid <= hi);
        }
        let width = |i: usize| band[i].3 - band[i].1;
        assert!(width(27) > width(0), "{} vs {}", width(27), width(0));
    }

    #[test]
    fn diverged_curve() {
        let f = quick()
            .predict(&[0.7, 0.6, f64::NAN], 20, Metric::Loss)
            .unwrap();
        assert!(f.is_diverged());
        assert_eq!(f.final_value().prob_better(10.0), 0.0);
        assert_eq!(f.final_value().mean(), f64::INFINITY);
    }

    /// A loss that climbs (a diverging run): its model-space forecast puts
    /// mass at and below zero, reported at the loss ceiling, so every
    /// statistic a user, a report or a sampler sees is finite.
    #[test]
    fn a_diverging_loss_has_a_finite_forecast() {
        let y = [0.7, 0.69, 0.9, 1.5, 2.6, 4.0, 6.0, 8.5];
        let f = quick().predict(&y, 50, Metric::Loss).unwrap();
        let p = f.final_value();
        let ceiling = transform::LOSS_CEILING * y[0];
        let qs: Vec<f64> = [0.05, 0.5, 0.95].iter().map(|&q| p.quantile(q)).collect();
        assert!(qs.windows(2).all(|w| w[0] <= w[1]), "{qs:?}");
        assert!(qs.iter().all(|q| q.is_finite() && *q <= ceiling), "{qs:?}");
        assert!(p.mean().is_finite() && p.std().is_finite() && p.std() <= 0.5 * ceiling);
        assert!(
            p.sample(200, 1)
                .iter()
                .all(|v| v.is_finite() && *v <= ceiling)
        );
        // Nothing here suggests a return below the first loss.
        assert!(p.prob_better(0.7) < 0.05, "{}", p.prob_better(0.7));
    }

    #[test]
    fn one_point_curve_falls_back() {
        let f = quick().predict(&[0.4], 20, Metric::Accuracy).unwrap();
        assert!(f.is_fallback());
        let p = f.final_value();
        assert!((p.mean() - 0.4).abs() < 1e-12);
        assert!(p.std() >= 0.05);
    }

    /// Fault: four epochs of a linear warm-up (a real run of
    /// `curves/plaid-cldnn-warmup.jsonl.gz`, validation cross-entropy) fit
    /// no family, and the fallback's band was as narrow as the prefix's
    /// noise: the final 1.583 lay far outside it, and the forecast said the
    /// run could not beat a loss of 2.0.
    #[test]
    fn an_improving_prefix_no_family_fits_keeps_room_to_improve() {
        let prefix = [2.427, 2.385, 2.317, 2.231];
        let f = PredictorConfig::default()
            .predict(&prefix, 20, Metric::Loss)
            .unwrap();
        assert!(f.is_fallback());
        let p = f.final_value();
        assert!(
            (p.quantile(0.5) - 2.231).abs() < 0.01,
            "{}",
            p.quantile(0.5)
        );
        assert!(
            p.quantile(0.05) < 1.583 && 1.583 < p.quantile(0.95),
            "{} {}",
            p.quantile(0.05),
            p.quantile(0.95)
        );
        assert!(p.prob_better(2.0) > 0.05, "{}", p.prob_better(2.0));
        // A prefix that gets worse keeps the narrow band.
        let worse = PredictorConfig::default()
            .predict(&[2.231, 2.317, 2.385, 2.427], 20, Metric::Loss)
            .unwrap();
        assert!(worse.is_fallback());
        assert!(worse.final_value().prob_better(1.8) < 0.05);
    }

    #[test]
    fn flat_curve_predicts_its_level() {
        let f = quick().predict(&[0.5; 10], 40, Metric::Accuracy).unwrap();
        let p = f.final_value();
        assert!(p.mean().is_finite() && p.std().is_finite());
        assert!(p.quantile(0.05) <= 0.5 + 1e-6, "{}", p.quantile(0.05));
        assert!(p.prob_better(0.99) < 0.5);
    }

    #[test]
    fn decreasing_accuracy_curve_gets_an_answer() {
        let y = [0.9, 0.85, 0.8, 0.75, 0.7, 0.65];
        let f = quick().predict(&y, 30, Metric::Accuracy).unwrap();
        let p = f.final_value();
        assert!(p.mean().is_finite());
        // Nothing in the curve suggests it will climb back above 0.95.
        assert!(p.prob_better(0.95) < 0.05, "{}", p.prob_better(0.95));
    }

    #[test]
    fn bad_input_is_an_error() {
        let c = quick();
        assert!(c.predict(&[], 10, Metric::Accuracy).is_err());
        assert!(c.predict(&[0.5, 0.6], 1, Metric::Accuracy).is_err());
        assert!(c.predict(&[0.5, 1.6], 10, Metric::Accuracy).is_err());
        assert!(c.predict(&[0.5, -0.1], 10, Metric::Loss).is_err());
        let bad = PredictorConfig {
            burn_in: 500,
            steps: 100,
            ..PredictorConfig::default()
        };
        assert!(bad.predict(&[0.5, 0.6], 10, Metric::Accuracy).is_err());
    }

    /// Random curves of every family, with noise, in both metric kinds: the
    /// forecast is always a proper distribution.
    #[test]
    fn forecasts_of_random_curves_are_proper() {
        use rand::RngExt;
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let config = quick();
        for case in 0..40 {
            let f = Family::ALL[case % Family::ALL.len()];
            let params: Vec<f64> = f
                .start()
                .iter()
                .map(|p| p * (1.0 + 0.3 * (rng.random::<f64>() - 0.5)))
                .collect();
            let n = rng.random_range(2..25);
            let noise = 0.01 * rng.random::<f64>();
            let y: Vec<f64> = (1..=n)
                .map(|x| {
                    let v = f.eval(&params, &Epoch::new(x as f64))
                        + noise * Distribution::<f64>::sample(&StandardNormal, &mut rng);
                    v.clamp(0.0, 1.0)
                })
                .collect();
            let (metric, obs): (Metric, Vec<f64>) = if case % 2 == 0 {
                (Metric::Accuracy, y)
            } else {
                (
                    Metric::Loss,
                    y.iter().map(|v| -(v.max(1e-6)).ln()).collect(),
                )
            };
            let forecast = config.predict(&obs, 50, metric).unwrap();
            let p = forecast.final_value();
            let (q05, q50, q95) = (p.quantile(0.05), p.quantile(0.5), p.quantile(0.95));
            assert!(q05 <= q50 && q50 <= q95, "case {case}: {q05} {q50} {q95}");
            let pb = p.prob_better(obs[obs.len() - 1]);
            assert!((0.0..=1.0).contains(&pb), "case {case}: {pb}");
            assert!(!p.mean().is_nan() && p.std() >= 0.0, "case {case}");
            assert!(p.log_density(q50).is_finite(), "case {case}");
        }
    }

    #[test]
    fn parallel_and_sequential_runs_agree() {
        let y = [0.3, 0.45, 0.52, 0.58, 0.6, 0.63, 0.64];
        for base in [
            quick(),
            PredictorConfig {
                steps: 200,
                burn_in: 100,
                ..PredictorConfig::reference()
            },
        ] {
            let a = PredictorConfig {
                parallel: true,
                ..base.clone()
            }
            .predict(&y, 30, Metric::Accuracy)
            .unwrap()
            .final_value();
            let b = PredictorConfig {
                parallel: false,
                ..base
            }
            .predict(&y, 30, Metric::Accuracy)
            .unwrap()
            .final_value();
            assert_eq!(a.mean(), b.mean());
            assert_eq!(a.quantile(0.05), b.quantile(0.05));
        }
    }

    #[test]
    fn same_seed_same_forecast() {
        let y = [0.3, 0.45, 0.52, 0.58, 0.6, 0.63];
        let a = quick()
            .predict(&y, 30, Metric::Accuracy)
            .unwrap()
            .final_value();
        let b = quick()
            .predict(&y, 30, Metric::Accuracy)
            .unwrap()
            .final_value();
        assert_eq!(a.mean(), b.mean());
        let c = PredictorConfig { seed: 9, ..quick() }
            .predict(&y, 30, Metric::Accuracy)
            .unwrap()
            .final_value();
        assert_ne!(a.mean(), c.mean());
    }
}
