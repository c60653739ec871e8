//! The statistical model behind the predictor: maximum-likelihood fits of
//! each family, and the posterior densities the MCMC samples.
//!
//! Following Domhan et al. (2015), Section 3, an observed curve `y_1..y_n`
//! (model space, epochs `x_t`) is explained as
//!
//! ```text
//! y_t = f(x_t) + ε_t,   ε_t ~ N(0, σ²)
//! ```
//!
//! where `f` is either
//!
//! * the **weighted combination** of the reference,
//!   `f(x) = Σ_k w_k f_k(x; θ_k) / Σ_k w_k`, with parameters
//!   `ξ = (θ_1..θ_K, σ, w_1..w_K)` in that order; or
//! * a **single family** `f = f_k(·; θ_k)`, `ξ = (θ_k, σ)` (foresight's
//!   default averages one such posterior per family, see
//!   [`super::Combination`]).
//!
//! The log-likelihood weighs epoch `t` (0-based) by the recency weight
//! `r_t = 10^(t/n)` of the reference implementation:
//! `ln L(ξ) = Σ_t r_t ln N(y_t; f(x_t), σ²)`; [`Recency::Normalized`]
//! rescales the weights to average 1, so that they move emphasis to recent
//! epochs without multiplying the evidence (the raw weights sum to about
//! `3.9 n`, which makes the posterior about twice as narrow as the data
//! warrant).
//!
//! The prior is flat over the region where
//!
//! * `σ > σ_min` (0 in the reference) and every `w_k >= 0` with `Σ w_k > 0`;
//! * every family is non-decreasing in the weak sense of the reference,
//!   `f_k(2) <= f_k(T)`, at the horizon `T`;
//! * every family's value at the horizon is finite and in `[0, upper]`
//!   (`upper = 100` in the reference; 1 is the true bound of the model space).

use nalgebra::DMatrix;

use super::family::{Epoch, Family};
use crate::mcmc::LogDensity;
use crate::optim::{self, LbfgsSettings, LmSettings};

/// How the likelihood weighs the epochs of the observed prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Recency {
    /// `r_t = 10^(t/n)`, as the reference.
    Reference,
    /// `r_t = 10^(t/n)` scaled so that `Σ r_t = n`.
    Normalized,
}

impl Recency {
    /// The weights of an `n`-point prefix.
    pub fn weights(self, n: usize) -> Vec<f64> {
        if n == 1 {
            return vec![1.0];
        }
        let raw: Vec<f64> = (0..n).map(|t| 10f64.powf(t as f64 / n as f64)).collect();
        match self {
            Recency::Reference => raw,
            Recency::Normalized => {
                let s: f64 = raw.iter().sum();
                raw.iter().map(|r| r * n as f64 / s).collect()
            }
        }
    }
}

/// The observed prefix in model space, with the epochs the prior looks at.
#[derive(Debug, Clone)]
pub struct Data {
    pub epochs: Vec<Epoch>,
    pub y: Vec<f64>,
    /// Likelihood weight of each epoch.
    pub weights: Vec<f64>,
    /// Epoch 2 (monotonicity check) and the horizon.
    pub second: Epoch,
    pub horizon: Epoch,
    /// Upper bound on a family's value at the horizon.
    pub upper: f64,
    /// Lower bound on the noise σ.
    pub sigma_min: f64,
    /// A family is fitted only to at least `n_params + extra_points` points.
    pub extra_points: usize,
}

impl Data {
    pub fn new(y: Vec<f64>, horizon: f64, recency: Recency, upper: f64) -> Data {
        let n = y.len();
        Data {
            epochs: (1..=n).map(|x| Epoch::new(x as f64)).collect(),
            weights: recency.weights(n),
            y,
            second: Epoch::new(2.0),
            horizon: Epoch::new(horizon),
            upper,
            sigma_min: 0.0,
            extra_points: 0,
        }
    }

    /// The per-family part of the prior: `f(2) <= f(T)`, `f(T)` finite and in `[0, upper]`.
    pub fn family_prior_ok(&self, f: Family, p: &[f64]) -> bool {
        let ft = f.eval(p, &self.horizon);
        let f2 = f.eval(p, &self.second);
        // Written as the reference's test: a NaN at epoch 2 does not reject.
        !(f2 > ft) && ft.is_finite() && ft >= 0.0 && ft <= self.upper
    }
}

/// A family fitted by weighted least squares.
#[derive(Debug, Clone)]
pub struct Fit {
    pub family: Family,
    pub params: Vec<f64>,
}

/// How each family is fitted by least squares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fitting {
    /// As the reference: Levenberg–Marquardt from the family's starting
    /// values, and L-BFGS only if it fails, both with forward-difference
    /// derivatives exactly as MINPACK `lmdif` (step `√ε·|p_j|`, or `√ε` at
    /// zero) and scipy's `fmin_l_bfgs_b(approx_grad=True)` (absolute step
    /// `1e-8`) take them, so that the reference configuration lands in the
    /// same local optima as the reference.
    Reference,
    /// Levenberg–Marquardt and L-BFGS, both from the starting values with
    /// analytic derivatives; the better fit that satisfies the prior wins.
    /// (From the reference's starting values, Levenberg–Marquardt alone
    /// "converges" to poor fits of Weibull and MMF curves.)
    Robust,
}

/// Weighted least-squares fit of one family, `min Σ r_t (f(x_t) - y_t)²`
/// (see [`Fitting`]). `None` if no optimiser converges to finite parameters,
/// or if there are fewer than `n_params + extra_points` points.
pub fn fit_family(f: Family, data: &Data, fitting: Fitting) -> Option<Fit> {
    let m = data.y.len();
    let np = f.n_params();
    if m < np + data.extra_points {
        return None;
    }
    let analytic = fitting == Fitting::Robust;
    let sqrt_w: Vec<f64> = data.weights.iter().map(|w| w.sqrt()).collect();
    let residuals = |p: &[f64], r: &mut [f64]| {
        for t in 0..m {
            r[t] = sqrt_w[t] * (f.eval(p, &data.epochs[t]) - data.y[t]);
        }
    };
    let sse = |p: &[f64]| {
        let mut total = 0.0;
        for t in 0..m {
            let e = f.eval(p, &data.epochs[t]) - data.y[t];
            total += data.weights[t] * e * e;
        }
        total
    };
    let mut grad = vec![0.0; np];
    let mut shifted = vec![0.0; np];
    let mut r_shifted = vec![0.0; m];
    let lm = optim::levenberg_marquardt(
        f.start(),
        m,
        LmSettings::default(),
        |p, r, jac: Option<&mut DMatrix<f64>>| match jac {
            None => residuals(p, r),
            Some(j) if analytic => {
                for t in 0..m {
                    let v = f.eval_grad(p, &data.epochs[t], &mut grad);
                    r[t] = sqrt_w[t] * (v - data.y[t]);
                    for (i, g) in grad.iter().enumerate() {
                        j[(t, i)] = sqrt_w[t] * g;
                    }
                }
            }
            Some(j) => {
                residuals(p, r);
                let eps = f64::EPSILON.sqrt();
                for i in 0..np {
                    shifted.copy_from_slice(p);
                    let h = if p[i] == 0.0 { eps } else { eps * p[i].abs() };
                    shifted[i] = p[i] + h;
                    residuals(&shifted, &mut r_shifted);
                    for t in 0..m {
                        j[(t, i)] = (r_shifted[t] - r[t]) / h;
                    }
                }
            }
        },
    );
    let usable =
        |sol: &optim::Solution| sol.status.converged() && sol.x.iter().all(|v| v.is_finite());
    let lm_ok = usable(&lm);
    if lm_ok && !analytic {
        return Some(Fit {
            family: f,
            params: lm.x,
        });
    }
    let bfgs = optim::lbfgs(f.start(), LbfgsSettings::default(), |p, out| {
        if analytic {
            out.iter_mut().for_each(|v| *v = 0.0);
            let mut total = 0.0;
            for t in 0..m {
                let v = f.eval_grad(p, &data.epochs[t], &mut grad);
                let e = v - data.y[t];
                total += data.weights[t] * e * e;
                for i in 0..np {
                    out[i] += 2.0 * data.weights[t] * e * grad[i];
                }
            }
            total
        } else {
            let f0 = sse(p);
            for i in 0..np {
                shifted.copy_from_slice(p);
                let mut h = 1e-8;
                if (p[i] + h) - p[i] == 0.0 {
                    h = f64::EPSILON.sqrt()
                        * p[i].abs().max(1.0)
                        * if p[i] >= 0.0 { 1.0 } else { -1.0 };
                }
                shifted[i] = p[i] + h;
                out[i] = (sse(&shifted) - f0) / ((p[i] + h) - p[i]);
            }
            f0
        }
    });
    let candidates = [(lm_ok, lm.x), (usable(&bfgs), bfgs.x)];
    let mut best: Option<(bool, f64, Vec<f64>)> = None;
    for (ok, x) in candidates {
        if !ok {
            continue;
        }
        let key = (data.family_prior_ok(f, &x), sse(&x));
        let better = match &best {
            None => true,
            Some((prior, value, _)) => (key.0 && !prior) || (key.0 == *prior && key.1 < *value),
        };
        if better {
            best = Some((key.0, key.1, x));
        }
    }
    best.map(|(_, _, params)| Fit { family: f, params })
}

/// `σ` of a fit: the root of the weighted mean squared residual.
pub fn ml_sigma(f: Family, params: &[f64], data: &Data) -> f64 {
    let (mut num, mut den) = (0.0, 0.0);
    for ((e, y), w) in data.epochs.iter().zip(&data.y).zip(&data.weights) {
        num += w * (f.eval(params, e) - y).powi(2);
        den += w;
    }
    (num / den).sqrt()
}

/// The layout of the parameter vector `ξ`: `(θ_1..θ_K, σ, w_1..w_K)` for a
/// weighted combination, `(θ, σ)` for a single family.
#[derive(Debug, Clone)]
pub struct Ensemble {
    pub families: Vec<Family>,
    offsets: Vec<usize>,
    n_family_params: usize,
    weighted: bool,
}

impl Ensemble {
    /// The weighted combination of `families`.
    pub fn weighted(families: Vec<Family>) -> Ensemble {
        Ensemble::layout(families, true)
    }

    /// One family on its own.
    pub fn single(family: Family) -> Ensemble {
        Ensemble::layout(vec![family], false)
    }

    fn layout(families: Vec<Family>, weighted: bool) -> Ensemble {
        let mut offsets = Vec::with_capacity(families.len());
        let mut o = 0;
        for f in &families {
            offsets.push(o);
            o += f.n_params();
        }
        Ensemble {
            families,
            offsets,
            n_family_params: o,
            weighted,
        }
    }

    /// Dimension of `ξ`.
    pub fn dim(&self) -> usize {
        self.n_family_params
            + 1
            + if self.weighted {
                self.families.len()
            } else {
                0
            }
    }

    pub fn sigma(&self, xi: &[f64]) -> f64 {
        xi[self.n_family_params]
    }

    /// The unnormalised weights (empty for a single family).
    pub fn weights<'a>(&self, xi: &'a [f64]) -> &'a [f64] {
        &xi[self.n_family_params + 1..]
    }

    /// Parameters of family `k`.
    pub fn params<'a>(&self, xi: &'a [f64], k: usize) -> &'a [f64] {
        &xi[self.offsets[k]..self.offsets[k] + self.families[k].n_params()]
    }

    /// `f(x)`: the weighted combination, or the single family.
    pub fn value(&self, xi: &[f64], e: &Epoch) -> f64 {
        if !self.weighted {
            return self.families[0].eval(self.params(xi, 0), e);
        }
        let w = self.weights(xi);
        let total: f64 = w.iter().sum();
        self.families
            .iter()
            .enumerate()
            .map(|(k, f)| w[k] * f.eval(self.params(xi, k), e))
            .sum::<f64>()
            / total
    }

    /// Joins fitted parameters, `σ` and (for a combination) the common
    /// starting weight into `ξ`.
    pub fn join(&self, fits: &[Fit], sigma: f64, weight: f64) -> Vec<f64> {
        let mut xi = Vec::with_capacity(self.dim());
        for fit in fits {
            xi.extend_from_slice(&fit.params);
        }
        xi.push(sigma);
        if self.weighted {
            xi.extend(std::iter::repeat_n(weight, fits.len()));
        }
        xi
    }
}

/// The unnormalised log posterior of `ξ` (module documentation).
pub struct Posterior<'a> {
    pub ensemble: &'a Ensemble,
    pub data: &'a Data,
}

impl LogDensity for Posterior<'_> {
    /// The model's value at every observed epoch.
    type Scratch = Vec<f64>;

    fn scratch(&self) -> Vec<f64> {
        vec![0.0; self.data.y.len()]
    }

    fn log_density(&self, xi: &[f64], fitted: &mut Vec<f64>) -> f64 {
        let ens = self.ensemble;
        let sigma = ens.sigma(xi);
        if !(sigma > self.data.sigma_min) {
            return f64::NEG_INFINITY;
        }
        let w = ens.weights(xi);
        if w.iter().any(|&v| !(v >= 0.0)) {
            return f64::NEG_INFINITY;
        }
        let total: f64 = if ens.weighted { w.iter().sum() } else { 1.0 };
        if !(total > 0.0) {
            return f64::NEG_INFINITY;
        }
        for (k, &f) in ens.families.iter().enumerate() {
            if !self.data.family_prior_ok(f, ens.params(xi, k)) {
                return f64::NEG_INFINITY;
            }
        }
        fitted.iter_mut().for_each(|v| *v = 0.0);
        for (k, &f) in ens.families.iter().enumerate() {
            let wk = if ens.weighted { w[k] / total } else { 1.0 };
            if wk == 0.0 {
                continue;
            }
            let p = ens.params(xi, k);
            for (acc, e) in fitted.iter_mut().zip(&self.data.epochs) {
                *acc += wk * f.eval(p, e);
            }
        }
        let inv = 1.0 / sigma;
        let norm = sigma.ln() + 0.5 * (2.0 * std::f64::consts::PI).ln();
        let mut ll = 0.0;
        for ((fv, y), r) in fitted.iter().zip(&self.data.y).zip(&self.data.weights) {
            let z = (y - fv) * inv;
            ll -= r * (0.5 * z * z + norm);
        }
        if ll.is_nan() { f64::NEG_INFINITY } else { ll }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recency_weights() {
        let w = Recency::Reference.weights(4);
        assert!((w[0] - 1.0).abs() < 1e-15);
        assert!((w[3] - 10f64.powf(0.75)).abs() < 1e-12);
        let n = Recency::Normalized.weights(4);
        assert!((n.iter().sum::<f64>() - 4.0).abs() < 1e-12);
        assert!((n[3] / n[0] - w[3]).abs() < 1e-12);
        assert_eq!(Recency::Reference.weights(1), vec![1.0]);
    }

    /// Each family recovers its own curve from exact data.
    #[test]
    fn every_family_fits_its_own_curve() {
        let truth: [(Family, &[f64]); 11] = [
            (Family::Vap, &[-0.4, -0.8, 0.02]),
            (Family::Ilog2, &[0.85, 0.3]),
            (Family::Weibull, &[0.8, 0.2, 0.05, 1.1]),
            (Family::Pow3, &[0.85, 0.5, 0.6]),
            (Family::Pow4, &[0.85, 1.5, 0.5, 0.8]),
            (Family::LogLogLinear, &[0.3, 1.5]),
            (Family::Mmf, &[0.8, 0.1, 0.3, 1.5]),
            (Family::Janoschek, &[0.8, 0.1, 0.4, 0.8]),
            (Family::Hill, &[0.85, 1.2, 3.0]),
            (Family::LogPower, &[0.85, 1.0, -1.2]),
            (Family::Exp4, &[0.85, 0.7, -0.3, 0.7]),
        ];
        for (f, p) in truth {
            let y: Vec<f64> = (1..=20).map(|x| f.eval(p, &Epoch::new(x as f64))).collect();
            let data = Data::new(y, 50.0, Recency::Reference, 100.0);
            let fit =
                fit_family(f, &data, Fitting::Robust).unwrap_or_else(|| panic!("{f:?} failed"));
            let rms = ml_sigma(f, &fit.params, &data);
            assert!(rms < 1e-4, "{f:?}: rms {rms}, params {:?}", fit.params);
        }
    }

    #[test]
    fn prior_rejects_decreasing_and_out_of_range_families() {
        let data = Data::new(vec![0.5, 0.6, 0.65], 50.0, Recency::Reference, 1.0);
        // pow3 with a < 0 decreases.
        assert!(!data.family_prior_ok(Family::Pow3, &[0.5, -0.3, 0.5]));
        assert!(data.family_prior_ok(Family::Pow3, &[0.8, 0.3, 0.5]));
        // Asymptote above the bound.
        assert!(!data.family_prior_ok(Family::Pow3, &[1.5, 0.3, 0.5]));
        // NaN at the horizon.
        assert!(!data.family_prior_ok(Family::LogLogLinear, &[-1.0, 0.5]));
    }

    #[test]
    fn posterior_is_minus_infinity_outside_the_prior() {
        let data = Data::new(vec![0.5, 0.6, 0.65, 0.68], 50.0, Recency::Reference, 100.0);
        let ens = Ensemble::weighted(vec![Family::Pow3, Family::Ilog2]);
        let post = Posterior {
            ensemble: &ens,
            data: &data,
        };
        let mut s = post.scratch();
        let good = [0.8, 0.3, 0.5, 0.8, 0.3, 0.05, 1.0, 1.0];
        assert!(post.log_density(&good, &mut s).is_finite());
        let mut bad_sigma = good;
        bad_sigma[5] = -0.01;
        assert_eq!(post.log_density(&bad_sigma, &mut s), f64::NEG_INFINITY);
        let mut bad_w = good;
        bad_w[6] = -1.0;
        assert_eq!(post.log_density(&bad_w, &mut s), f64::NEG_INFINITY);
        let mut zero_w = good;
        zero_w[6] = 0.0;
        zero_w[7] = 0.0;
        assert_eq!(post.log_density(&zero_w, &mut s), f64::NEG_INFINITY);
        let mut decreasing = good;
        decreasing[1] = -0.3;
        assert_eq!(post.log_density(&decreasing, &mut s), f64::NEG_INFINITY);
    }

    /// The log density is the recency-weighted Gaussian log-likelihood of
    /// the weighted ensemble.
    #[test]
    fn posterior_matches_the_formula() {
        let y = vec![0.5, 0.6, 0.65, 0.68];
        let data = Data::new(y.clone(), 50.0, Recency::Reference, 100.0);
        let ens = Ensemble::weighted(vec![Family::Pow3, Family::Ilog2]);
        let post = Posterior {
            ensemble: &ens,
            data: &data,
        };
        let xi = [0.8, 0.3, 0.5, 0.8, 0.3, 0.05, 1.0, 3.0];
        let r = Recency::Reference.weights(4);
        let mut want = 0.0;
        for t in 0..4 {
            let e = Epoch::new((t + 1) as f64);
            let f =
                (Family::Pow3.eval(&xi[0..3], &e) + 3.0 * Family::Ilog2.eval(&xi[3..5], &e)) / 4.0;
            let z = (y[t] - f) / 0.05;
            want += r[t] * (-0.5 * z * z - 0.05f64.ln() - 0.5 * (2.0 * std::f64::consts::PI).ln());
        }
        let got = post.log_density(&xi, &mut post.scratch());
        assert!((got - want).abs() < 1e-9, "{got} vs {want}");
    }
}
