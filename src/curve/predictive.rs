//! The posterior predictive distribution of the metric at one epoch.
//!
//! Each posterior sample `s` gives an ensemble value `μ_s` and a noise level
//! `σ_s` (model space), so the predictive of an observation at that epoch is
//! the mixture `p(y) = (1/S) Σ_s N(y; μ_s, σ_s²)`. Statistics are reported in
//! the metric's own units (see [`Transform`]):
//!
//! * quantiles of `y` map exactly through the monotone transformation;
//! * [`Predictive::prob_better`] is `P(y better than y_best)`, the same in
//!   both spaces;
//! * [`Predictive::log_density`] includes the Jacobian of the transformation;
//! * [`Predictive::mean`] is the mixture mean `E[y] = (1/S) Σ μ_s` mapped
//!   back to metric units. For accuracy this is the predictive mean itself;
//!   for a loss it is the loss whose model value is the mean (the mean of
//!   the loss itself is dominated by the mass the Gaussian mixture puts near
//!   and below `y = 0`, which stands for a diverged run). This is the
//!   convention of the reference evaluation in `BENCHMARKS.md`, protocol P.
//!   Every statistic of a loss is finite: model values at or below `e^-100`
//!   are reported at the loss ceiling ([`Transform::backward`]);
//! * [`Predictive::std`] is the mixture standard deviation, scaled to metric
//!   units by the slope of the back-transformation at the mean (delta method),
//!   at most half the loss ceiling (the spread of any distribution between
//!   0 and the ceiling).

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use super::transform::{Metric, Transform};

/// One Gaussian of the mixture, in model space.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Component {
    pub mu: f64,
    pub sigma: f64,
    /// Mixture weight; the weights of a [`Predictive`] sum to 1.
    pub weight: f64,
}

/// Mixture of Gaussians in model space, reported in metric units.
#[derive(Debug, Clone)]
pub struct Predictive {
    /// Empty for a diverged run.
    components: Vec<Component>,
    transform: Transform,
}

impl Predictive {
    /// A mixture of `(μ, σ, weight)` components; non-finite components are
    /// dropped and the weights renormalised. No usable component leaves the
    /// diverged predictive.
    pub(crate) fn new(components: Vec<Component>, transform: Transform) -> Self {
        let mut components: Vec<Component> = components
            .into_iter()
            .filter(|c| c.mu.is_finite() && c.sigma.is_finite() && c.sigma > 0.0 && c.weight > 0.0)
            .collect();
        let total: f64 = components.iter().map(|c| c.weight).sum();
        components.iter_mut().for_each(|c| c.weight /= total);
        Predictive {
            components,
            transform,
        }
    }

    /// The mixture thinned evenly to at most `max` components (every k-th
    /// one, weights renormalised): a coarser Monte Carlo estimate of the
    /// same distribution when the components are posterior draws.
    pub fn thinned(&self, max: usize) -> Predictive {
        let n = self.components.len();
        if n <= max.max(1) {
            return self.clone();
        }
        let step = n.div_ceil(max.max(1));
        Predictive::new(
            self.components.iter().step_by(step).copied().collect(),
            self.transform,
        )
    }

    /// Equally weighted components.
    pub(crate) fn equal(pairs: impl IntoIterator<Item = (f64, f64)>, transform: Transform) -> Self {
        let comps = pairs
            .into_iter()
            .map(|(mu, sigma)| Component {
                mu,
                sigma,
                weight: 1.0,
            })
            .collect();
        Predictive::new(comps, transform)
    }

    /// The predictive of a run that diverged: all mass on the worst value.
    pub(crate) fn diverged(metric: Metric) -> Self {
        Predictive {
            components: Vec::new(),
            transform: Transform { metric, scale: 1.0 },
        }
    }

    /// True when the run diverged (the value is the metric's worst).
    pub fn is_diverged(&self) -> bool {
        self.components.is_empty()
    }

    /// The mixture components.
    pub fn components(&self) -> &[Component] {
        &self.components
    }

    /// The largest value reported (a loss's ceiling, see [`Transform`]),
    /// `None` for an accuracy.
    pub fn loss_ceiling(&self) -> Option<f64> {
        (self.transform.metric == Metric::Loss).then(|| self.transform.loss_ceiling())
    }

    /// Mean in model space.
    pub fn model_mean(&self) -> f64 {
        self.components.iter().map(|c| c.weight * c.mu).sum()
    }

    /// Standard deviation in model space (noise included).
    pub fn model_std(&self) -> f64 {
        let m = self.model_mean();
        self.components
            .iter()
            .map(|c| c.weight * ((c.mu - m).powi(2) + c.sigma * c.sigma))
            .sum::<f64>()
            .sqrt()
    }

    /// Point prediction in metric units (see the module documentation).
    pub fn mean(&self) -> f64 {
        if self.is_diverged() {
            return self.transform.metric.worst();
        }
        self.transform.backward(self.model_mean())
    }

    /// Spread in metric units (delta method, see the module documentation).
    pub fn std(&self) -> f64 {
        if self.is_diverged() {
            return 0.0;
        }
        let std = self.model_std() * self.transform.inverse_slope(self.model_mean());
        self.loss_ceiling().map_or(std, |c| std.min(0.5 * c))
    }

    /// Cumulative distribution in model space.
    fn model_cdf(&self, y: f64) -> f64 {
        self.components
            .iter()
            .map(|c| c.weight * clipped_cdf((y - c.mu) / c.sigma))
            .sum::<f64>()
            .clamp(0.0, 1.0)
    }

    /// The `q`-quantile of the metric (noise included), `q` in `(0, 1)`.
    pub fn quantile(&self, q: f64) -> f64 {
        if self.is_diverged() {
            return self.transform.metric.worst();
        }
        let q = q.clamp(1e-12, 1.0 - 1e-12);
        // For a loss, the q-quantile of the metric is the (1-q)-quantile in
        // model space (the map is decreasing).
        let qm = match self.transform.metric {
            Metric::Accuracy => q,
            Metric::Loss => 1.0 - q,
        };
        let (mut lo, mut hi) = self
            .components
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), c| {
                (lo.min(c.mu - 9.0 * c.sigma), hi.max(c.mu + 9.0 * c.sigma))
            });
        // Safeguarded Newton on F(y) = q, started at the quantile of the
        // moment-matched Gaussian: a Newton step when it stays inside the
        // bracket, bisection otherwise.
        let guess = self.model_mean() + self.model_std() * probit(qm);
        let mut y = if guess > lo && guess < hi {
            guess
        } else {
            0.5 * (lo + hi)
        };
        for _ in 0..100 {
            let (cdf, pdf) = self.model_cdf_pdf(y);
            if cdf < qm {
                lo = y;
            } else {
                hi = y;
            }
            if (cdf - qm).abs() <= 1e-12 || hi - lo <= 1e-12 * (1.0 + y.abs()) {
                break;
            }
            let newton = y - (cdf - qm) / pdf;
            y = if pdf > 0.0 && newton > lo && newton < hi {
                newton
            } else {
                0.5 * (lo + hi)
            };
        }
        self.transform.backward(y)
    }

    /// Cumulative distribution and density in model space, in one pass.
    fn model_cdf_pdf(&self, y: f64) -> (f64, f64) {
        let (mut cdf, mut pdf) = (0.0, 0.0);
        for c in &self.components {
            let z = (y - c.mu) / c.sigma;
            cdf += c.weight * clipped_cdf(z);
            // Beyond `TAIL_Z` the density is below 1e-17 of its peak.
            if z.abs() > TAIL_Z {
                continue;
            }
            pdf +=
                c.weight * (-0.5 * z * z).exp() / (c.sigma * (2.0 * std::f64::consts::PI).sqrt());
        }
        (cdf.clamp(0.0, 1.0), pdf)
    }

    /// `P(y better than y_best)`, `y_best` in metric units.
    pub fn prob_better(&self, y_best: f64) -> f64 {
        if self.is_diverged() {
            return 0.0;
        }
        1.0 - self.model_cdf(self.transform.forward(y_best))
    }

    /// `n` draws of the metric (noise included), seeded: a component drawn
    /// by weight, then `y ~ N(μ, σ²)`, mapped to metric units (a model value
    /// at or below `e^-100` is the loss ceiling). A run that has diverged
    /// draws its worst value.
    pub fn sample(&self, n: usize, seed: u64) -> Vec<f64> {
        if self.is_diverged() {
            return vec![self.transform.metric.worst(); n];
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut cumulative = Vec::with_capacity(self.components.len());
        let mut total = 0.0;
        for c in &self.components {
            total += c.weight;
            cumulative.push(total);
        }
        (0..n)
            .map(|_| {
                let u = rng.random::<f64>() * total;
                let k = cumulative
                    .partition_point(|&c| c <= u)
                    .min(self.components.len() - 1);
                let c = self.components[k];
                let z: f64 = StandardNormal.sample(&mut rng);
                self.transform.backward(c.mu + c.sigma * z)
            })
            .collect()
    }

    /// Log density of the metric value `v` (metric units).
    pub fn log_density(&self, v: f64) -> f64 {
        if self.is_diverged() {
            return if v == self.transform.metric.worst() {
                0.0
            } else {
                f64::NEG_INFINITY
            };
        }
        let y = self.transform.forward(v);
        let terms: Vec<f64> = self
            .components
            .iter()
            .map(|c| {
                let z = (y - c.mu) / c.sigma;
                c.weight.ln() - 0.5 * z * z - c.sigma.ln() - 0.5 * (2.0 * std::f64::consts::PI).ln()
            })
            .collect();
        let max = terms.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        if max == f64::NEG_INFINITY {
            return max;
        }
        let sum: f64 = terms.iter().map(|t| (t - max).exp()).sum();
        max + sum.ln() + self.transform.ln_jacobian(y)
    }
}

/// Standard scores beyond which a Gaussian's CDF is taken as exactly 0 or 1
/// (`Φ(-9) ≈ 1.1e-19`).
const TAIL_Z: f64 = 9.0;

/// `Φ(z)`, taken as exactly 0 or 1 beyond `TAIL_Z` (the bulk of a wide
/// mixture's components at any one point: this skips most `erfc` calls).
fn clipped_cdf(z: f64) -> f64 {
    if z < -TAIL_Z {
        0.0
    } else if z > TAIL_Z {
        1.0
    } else {
        normal_cdf(z)
    }
}

/// The standard normal quantile `Φ⁻¹(q)`, `q` in `(0, 1)`.
fn probit(q: f64) -> f64 {
    -std::f64::consts::SQRT_2 * statrs::function::erf::erfc_inv(2.0 * q)
}

/// Standard normal CDF `Φ(z)`.
pub fn normal_cdf(z: f64) -> f64 {
    0.5 * statrs::function::erf::erfc(-z / std::f64::consts::SQRT_2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::curve::transform::LossScale;

    fn acc(c: Vec<(f64, f64)>) -> Predictive {
        Predictive::equal(
            c,
            Transform::new(Metric::Accuracy, LossScale::FirstValue, &[0.5]),
        )
    }

    #[test]
    fn single_gaussian_statistics() {
        let p = acc(vec![(0.6, 0.1)]);
        assert!((p.mean() - 0.6).abs() < 1e-12);
        assert!((p.std() - 0.1).abs() < 1e-12);
        assert!((p.quantile(0.05) - (0.6 - 1.6448536269514722 * 0.1)).abs() < 1e-9);
        assert!((p.quantile(0.5) - 0.6).abs() < 1e-9);
        assert!((p.prob_better(0.6) - 0.5).abs() < 1e-12);
        assert!((p.prob_better(0.7) - (1.0 - normal_cdf(1.0))).abs() < 1e-12);
        let want = -0.5 * (2.0 * std::f64::consts::PI).ln() - 0.1f64.ln();
        assert!((p.log_density(0.6) - want).abs() < 1e-12);
    }

    #[test]
    fn mixture_mean_and_variance() {
        let p = acc(vec![(0.2, 0.1), (0.6, 0.1)]);
        assert!((p.mean() - 0.4).abs() < 1e-12);
        // Var = E[var] + var[E] = 0.01 + 0.04.
        assert!((p.std() - 0.05f64.sqrt()).abs() < 1e-12);
        assert!((p.quantile(0.5) - 0.4).abs() < 1e-9);
    }

    #[test]
    fn loss_quantiles_flip_and_density_has_jacobian() {
        let t = Transform::new(Metric::Loss, LossScale::Fixed(1.0), &[0.7]);
        let p = Predictive::equal(vec![(0.5, 0.05)], t);
        // The 5% loss quantile is the 95% model quantile mapped back.
        let y95: f64 = 0.5 + 1.6448536269514722 * 0.05;
        assert!((p.quantile(0.05) - (-y95.ln())).abs() < 1e-8);
        assert!(p.quantile(0.05) < p.quantile(0.95));
        // P(loss < l) = P(y > exp(-l)).
        let l: f64 = 0.6;
        let want = 1.0 - normal_cdf(((-l).exp() - 0.5) / 0.05);
        assert!((p.prob_better(l) - want).abs() < 1e-12);
        // Density integrates to one over the loss axis.
        let (mut total, h) = (0.0, 1e-4);
        let mut v = 0.0;
        while v < 5.0 {
            total += p.log_density(v + h / 2.0).exp() * h;
            v += h;
        }
        assert!((total - 1.0).abs() < 1e-3, "{total}");
    }

    #[test]
    fn samples_follow_the_mixture_and_the_seed() {
        let p = Predictive::equal(
            vec![(0.3, 0.01), (0.7, 0.01)],
            Transform::new(Metric::Accuracy, LossScale::FirstValue, &[0.5]),
        );
        let s = p.sample(4000, 7);
        assert_eq!(s, p.sample(4000, 7));
        assert_ne!(s, p.sample(4000, 8));
        let low = s.iter().filter(|&&v| v < 0.5).count() as f64 / s.len() as f64;
        assert!((low - 0.5).abs() < 0.05, "{low}");
        let mean = s.iter().sum::<f64>() / s.len() as f64;
        assert!((mean - p.mean()).abs() < 0.01, "{mean}");
        let d = Predictive::diverged(Metric::Loss).sample(3, 0);
        assert_eq!(d, vec![f64::INFINITY; 3]);
    }

    #[test]
    fn diverged_run_is_worst_value() {
        let p = Predictive::diverged(Metric::Loss);
        assert!(p.is_diverged());
        assert_eq!(p.mean(), f64::INFINITY);
        assert_eq!(p.prob_better(1e9), 0.0);
        assert_eq!(p.log_density(0.3), f64::NEG_INFINITY);
    }
}
