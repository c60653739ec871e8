//! Gaussian-process regression on the unit hypercube, the surrogate model of
//! Bayesian optimisation (Rasmussen & Williams, "Gaussian Processes for
//! Machine Learning", 2006, ch. 2 and 5).
//!
//! Model, on outputs standardised to mean 0 and variance 1:
//!
//! ```text
//! y_i = f(x_i) + ε_i,   f ~ GP(c, k),   ε_i ~ N(0, σ_n² + s_i²)
//! k(x, x') = σ_f² (1 + √5 r + 5r²/3) exp(-√5 r),   r² = Σ_j (x_j - x'_j)² / ℓ_j²
//! ```
//!
//! a Matérn-5/2 kernel with one length scale per dimension (ARD), a constant
//! mean `c`, a learned homoscedastic noise `σ_n²` and, per observation, a
//! known extra variance `s_i²` (a run stopped early enters with its predicted
//! final value and that prediction's variance).
//!
//! Hyperparameters `θ = (ln ℓ_1..ln ℓ_d, ln σ_f², ln σ_n², c)` maximise the
//! log marginal likelihood plus log priors (maximum a posteriori, as BoTorch
//! and Optuna's GPSampler do):
//!
//! * `ℓ_j ~ LogNormal(√2 + ln(d)/2, 3)`: the dimension-scaled prior of
//!   Hvarfner, Hellsten & Nardi, "Vanilla Bayesian optimization performs
//!   great in high dimensions" (ICML 2024), which lets length scales grow
//!   with `d`;
//! * `σ_f² ~ LogNormal(0, 1)` (outputs are standardised);
//! * `σ_n² ~ LogNormal(-4, 1)`, with `σ_n² >= 1e-6`;
//! * `c ~ N(0, 1)`.
//!
//! The log-normal priors are densities on the parameters themselves (as in
//! BoTorch), so on the log scale the optimiser works in they carry the
//! Jacobian term `ln ℓ`: their modes are `exp(μ - s²)`, e.g. a length scale
//! of 0.29 in two dimensions, where a prior on `ln ℓ` would centre at 5.8 and
//! explain most functions as noise.
//!
//! The optimiser is L-BFGS with analytic gradients
//! `∂L/∂θ = ½ tr((α αᵀ - K⁻¹) ∂K/∂θ)`, `α = K⁻¹ (y - c)`, restarted from the
//! previous fit's values (a warm start) and the prior modes — without a warm
//! start also from length scales `e` times shorter and longer — keeping the
//! best.
//! Cholesky factorisations retry with growing jitter and never panic.

use nalgebra::{DMatrix, DVector};

use crate::error::{Error, Result};
use crate::optim::{self, LbfgsSettings};

const SQRT5: f64 = 2.236_067_977_499_79;
const MIN_NOISE: f64 = 1e-6;

/// Kernel and noise hyperparameters (in standardised output units).
#[derive(Debug, Clone, PartialEq)]
pub struct Hyperparameters {
    /// `ln ℓ_j`, one per input dimension.
    pub log_lengthscales: Vec<f64>,
    /// `ln σ_f²`.
    pub log_signal: f64,
    /// `ln σ_n²`.
    pub log_noise: f64,
    /// Constant mean `c`.
    pub mean: f64,
}

impl Hyperparameters {
    /// The prior modes, for a `d`-dimensional input.
    pub fn prior_mode(d: usize) -> Self {
        Hyperparameters {
            log_lengthscales: vec![
                LENGTHSCALE_PRIOR_MEAN_BASE + 0.5 * (d as f64).ln()
                    - LENGTHSCALE_PRIOR_VAR;
                d
            ],
            log_signal: -1.0,
            log_noise: -5.0,
            mean: 0.0,
        }
    }

    fn to_vec(&self) -> Vec<f64> {
        let mut v = self.log_lengthscales.clone();
        v.extend([self.log_signal, self.log_noise, self.mean]);
        v
    }

    fn from_slice(v: &[f64]) -> Self {
        let d = v.len() - 3;
        Hyperparameters {
            log_lengthscales: v[..d].to_vec(),
            log_signal: v[d],
            log_noise: v[d + 1],
            mean: v[d + 2],
        }
    }
}

const LENGTHSCALE_PRIOR_MEAN_BASE: f64 = std::f64::consts::SQRT_2;
const LENGTHSCALE_PRIOR_VAR: f64 = 3.0;

/// Matérn-5/2 correlation `(1 + √5 r + 5r²/3) exp(-√5 r)` and
/// `-(1/r) dk/dr = (5/3)(1 + √5 r) exp(-√5 r)` (finite at `r = 0`).
#[inline]
fn matern52(r2: f64) -> (f64, f64) {
    let r = r2.sqrt();
    let e = (-SQRT5 * r).exp();
    let k = (1.0 + SQRT5 * r + 5.0 / 3.0 * r2) * e;
    let dk = 5.0 / 3.0 * (1.0 + SQRT5 * r) * e;
    (k, dk)
}

/// Where the hyperparameters of a fit come from.
enum Hyper<'a> {
    /// Maximise the posterior, from these values or the prior modes.
    Estimate(Option<&'a Hyperparameters>),
    Fixed(&'a Hyperparameters),
}

/// A fitted Gaussian process.
#[derive(Debug, Clone)]
pub struct Gp {
    /// Row-major `n × d` inputs.
    x: Vec<f64>,
    d: usize,
    /// Standardisation of the outputs.
    y_mean: f64,
    y_scale: f64,
    hyper: Hyperparameters,
    inv_ls2: Vec<f64>,
    signal: f64,
    /// Cholesky factor of `K + diag(noise)`.
    chol: nalgebra::Cholesky<f64, nalgebra::Dyn>,
    /// `K⁻¹ (y - c)`.
    alpha: DVector<f64>,
}

/// The negative log posterior of the hyperparameters and its gradient.
struct Objective<'a> {
    d: usize,
    y: &'a [f64],
    extra: &'a [f64],
    /// Index pairs `(i, j)`, `j < i`, and their squared coordinate
    /// differences (`d` per pair), computed once per fit.
    pairs: Vec<(usize, usize)>,
    sq: Vec<f64>,
}

impl<'a> Objective<'a> {
    fn new(x: &[f64], d: usize, y: &'a [f64], extra: &'a [f64]) -> Self {
        let n = y.len();
        let mut pairs = Vec::with_capacity(n * (n - 1) / 2);
        let mut sq = Vec::with_capacity(n * (n - 1) / 2 * d);
        for i in 0..n {
            for j in 0..i {
                pairs.push((i, j));
                sq.extend((0..d).map(|a| (x[i * d + a] - x[j * d + a]).powi(2)));
            }
        }
        Objective {
            d,
            y,
            extra,
            pairs,
            sq,
        }
    }

    fn n(&self) -> usize {
        self.y.len()
    }

    /// `K + diag(σ_n² + s_i²)`, and per pair `σ_f² k(r)` and `σ_f² (-(1/r) dk/dr)`.
    fn kernel(&self, h: &Hyperparameters) -> (DMatrix<f64>, Vec<f64>, Vec<f64>) {
        let n = self.n();
        let d = self.d;
        let inv: Vec<f64> = h
            .log_lengthscales
            .iter()
            .map(|l| (-2.0 * l).exp())
            .collect();
        let signal = h.log_signal.exp();
        let noise = h.log_noise.exp().max(MIN_NOISE);
        // K is symmetric, so row- and column-major layouts coincide.
        let mut k = vec![0.0; n * n];
        let mut kv = Vec::with_capacity(self.pairs.len());
        let mut gv = Vec::with_capacity(self.pairs.len());
        for (p, &(i, j)) in self.pairs.iter().enumerate() {
            let r2: f64 = self.sq[p * d..(p + 1) * d]
                .iter()
                .zip(&inv)
                .map(|(s, v)| s * v)
                .sum();
            let (c, g) = matern52(r2);
            k[i * n + j] = signal * c;
            k[j * n + i] = signal * c;
            kv.push(signal * c);
            gv.push(signal * g);
        }
        for i in 0..n {
            k[i * n + i] = signal + noise + self.extra[i];
        }
        (DMatrix::from_vec(n, n, k), kv, gv)
    }

    /// Negative log marginal likelihood plus negative log prior; gradient
    /// into `grad`. `None` if the kernel matrix cannot be factorised.
    fn value_grad(&self, theta: &[f64], grad: &mut [f64]) -> Option<f64> {
        let h = Hyperparameters::from_slice(theta);
        let n = self.n();
        let d = self.d;
        let (k, kv, gv) = self.kernel(&h);
        let chol = cholesky(k)?;
        let resid = DVector::from_iterator(n, self.y.iter().map(|y| y - h.mean));
        let alpha = chol.solve(&resid);
        let log_det: f64 = 2.0
            * chol
                .l_dirty()
                .diagonal()
                .iter()
                .map(|v| v.ln())
                .sum::<f64>();
        let nll = 0.5 * resid.dot(&alpha)
            + 0.5 * log_det
            + 0.5 * n as f64 * (2.0 * std::f64::consts::PI).ln();
        // ∂(-L)/∂θ = -½ tr(W ∂K/∂θ) with W = α αᵀ - K⁻¹; off-diagonal pairs
        // count twice.
        let kinv = spd_inverse_lower(chol.l_dirty());
        let inv: Vec<f64> = h
            .log_lengthscales
            .iter()
            .map(|l| (-2.0 * l).exp())
            .collect();
        let signal = h.log_signal.exp();
        let noise_raw = h.log_noise.exp();
        grad.iter_mut().for_each(|g| *g = 0.0);
        for (p, &(i, j)) in self.pairs.iter().enumerate() {
            let w = alpha[i] * alpha[j] - kinv[i * n + j];
            let wg = w * gv[p];
            for ((g, s), v) in grad[..d]
                .iter_mut()
                .zip(&self.sq[p * d..(p + 1) * d])
                .zip(&inv)
            {
                // ∂k/∂ln ℓ_a = σ_f² (-(1/r) dk/dr) Δ_a² / ℓ_a².
                *g -= wg * s * v;
            }
            grad[d] -= w * kv[p];
        }
        for i in 0..n {
            let w = alpha[i] * alpha[i] - kinv[i * n + i];
            grad[d] -= 0.5 * w * signal;
            if noise_raw > MIN_NOISE {
                grad[d + 1] -= 0.5 * w * noise_raw;
            }
        }
        grad[d + 2] = -alpha.sum();
        // Priors (negative log densities, up to constants).
        let ls_mean = LENGTHSCALE_PRIOR_MEAN_BASE + 0.5 * (d as f64).ln();
        let mut prior = 0.0;
        // -ln LogNormal(p; μ, s²) in θ = ln p: θ + (θ - μ)² / (2 s²).
        for (g, l) in grad.iter_mut().zip(&h.log_lengthscales) {
            let z = l - ls_mean;
            prior += l + 0.5 * z * z / LENGTHSCALE_PRIOR_VAR;
            *g += 1.0 + z / LENGTHSCALE_PRIOR_VAR;
        }
        prior += h.log_signal + 0.5 * h.log_signal * h.log_signal;
        grad[d] += 1.0 + h.log_signal;
        prior += h.log_noise + 0.5 * (h.log_noise + 4.0).powi(2);
        grad[d + 1] += 1.0 + h.log_noise + 4.0;
        prior += 0.5 * h.mean * h.mean;
        grad[d + 2] += h.mean;
        let total = nll + prior;
        total.is_finite().then_some(total)
    }
}

/// `K⁻¹` from the Cholesky factor `L` of `K`, row-major `n × n`, with only
/// the lower triangle (`i >= j`) filled: `M = L⁻¹` by forward substitution,
/// then `K⁻¹ = Mᵀ M`, both exploiting the triangular structure (`n³/3`
/// multiply-adds in all) and written as dot products of contiguous rows
/// (of `L` and of `Mᵀ`) so that they vectorise.
fn spd_inverse_lower(l: &DMatrix<f64>) -> Vec<f64> {
    let n = l.nrows();
    // Row-major copy of L.
    let mut lr = vec![0.0; n * n];
    for j in 0..n {
        for (i, v) in l.column(j).iter().enumerate().skip(j) {
            lr[i * n + j] = *v;
        }
    }
    // mt = Mᵀ row-major: mt[j * n + i] = M[i][j], nonzero for i >= j.
    let mut mt = vec![0.0; n * n];
    for j in 0..n {
        mt[j * n + j] = 1.0 / lr[j * n + j];
        for i in j + 1..n {
            let s = dot(&lr[i * n + j..i * n + i], &mt[j * n + j..j * n + i]);
            mt[j * n + i] = -s / lr[i * n + i];
        }
    }
    // K⁻¹[i][j] = Σ_{k >= i} M[k][i] M[k][j] = (row i of Mᵀ) · (row j of Mᵀ), k >= i >= j.
    let mut out = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            out[i * n + j] = dot(&mt[i * n + i..i * n + n], &mt[j * n + i..j * n + n]);
        }
    }
    out
}

/// Dot product in four independent lanes (so that it vectorises).
#[inline]
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let (ca, cb) = (a.chunks_exact(4), b.chunks_exact(4));
    let tail: f64 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    let mut acc = [0.0; 4];
    for (x, y) in ca.zip(cb) {
        acc[0] += x[0] * y[0];
        acc[1] += x[1] * y[1];
        acc[2] += x[2] * y[2];
        acc[3] += x[3] * y[3];
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

/// Cholesky with jitter escalation: adds `1e-10, 1e-8, ..., 1e-2` times the
/// mean diagonal until the factorisation succeeds; `None` if none does.
fn cholesky(k: DMatrix<f64>) -> Option<nalgebra::Cholesky<f64, nalgebra::Dyn>> {
    if k.iter().any(|v| !v.is_finite()) {
        return None;
    }
    if let Some(c) = k.clone().cholesky() {
        return Some(c);
    }
    let scale = k.diagonal().mean().abs().max(1e-300);
    let mut jitter = 1e-10;
    while jitter <= 1e-2 {
        let mut kj = k.clone();
        for i in 0..kj.nrows() {
            kj[(i, i)] += jitter * scale;
        }
        if let Some(c) = kj.cholesky() {
            return Some(c);
        }
        jitter *= 100.0;
    }
    None
}

impl Gp {
    /// Fits the GP to inputs `x` (each of length `d`, in `[0, 1]^d`),
    /// outputs `y` and per-observation extra noise variances `extra` (output
    /// units; zeros for exact observations). `warm` starts the
    /// hyperparameter search from an earlier fit's values.
    ///
    /// Errors: no observations, ragged or non-finite inputs, non-finite
    /// outputs, negative variances.
    pub fn fit(
        x: &[Vec<f64>],
        y: &[f64],
        extra: &[f64],
        warm: Option<&Hyperparameters>,
    ) -> Result<Gp> {
        Gp::build(x, y, extra, Hyper::Estimate(warm))
    }

    /// The GP with the given hyperparameters (standardised units, as
    /// [`Gp::hyperparameters`] reports them), without re-estimating them.
    pub fn fit_with(
        x: &[Vec<f64>],
        y: &[f64],
        extra: &[f64],
        hyper: &Hyperparameters,
    ) -> Result<Gp> {
        Gp::build(x, y, extra, Hyper::Fixed(hyper))
    }

    fn build(x: &[Vec<f64>], y: &[f64], extra: &[f64], source: Hyper<'_>) -> Result<Gp> {
        let n = y.len();
        if n == 0 || x.len() != n || extra.len() != n {
            return Err(Error::invalid(
                "gp",
                "need as many inputs, outputs and variances, at least one",
            ));
        }
        let d = x[0].len();
        if d == 0
            || x.iter()
                .any(|r| r.len() != d || r.iter().any(|v| !v.is_finite()))
        {
            return Err(Error::invalid(
                "gp",
                "inputs must be finite vectors of one length",
            ));
        }
        if y.iter().any(|v| !v.is_finite()) || extra.iter().any(|v| !(*v >= 0.0) || !v.is_finite())
        {
            return Err(Error::invalid(
                "gp",
                "outputs must be finite and variances non-negative",
            ));
        }
        let y_mean = y.iter().sum::<f64>() / n as f64;
        let var = y.iter().map(|v| (v - y_mean).powi(2)).sum::<f64>() / n as f64;
        let y_scale = if var > 0.0 { var.sqrt() } else { 1.0 };
        let ys: Vec<f64> = y.iter().map(|v| (v - y_mean) / y_scale).collect();
        let es: Vec<f64> = extra.iter().map(|v| v / (y_scale * y_scale)).collect();
        let flat: Vec<f64> = x.iter().flatten().copied().collect();
        let objective = Objective::new(&flat, d, &ys, &es);
        let hyper = match source {
            Hyper::Fixed(h) if h.log_lengthscales.len() == d => h.clone(),
            Hyper::Fixed(_) => {
                return Err(Error::invalid("gp", "hyperparameters of another dimension"));
            }
            Hyper::Estimate(warm) => {
                let settings = LbfgsSettings {
                    max_iterations: 200,
                    ftol: 1e-7,
                    gtol: 1e-4,
                    ..LbfgsSettings::default()
                };
                // Multi-start: the warm start (if any), the prior modes, and
                // without a warm start also length scales e times shorter
                // and longer.
                let mode = Hyperparameters::prior_mode(d);
                let mut starts = vec![mode.to_vec()];
                match warm.filter(|w| w.log_lengthscales.len() == d) {
                    Some(w) => starts.insert(0, w.to_vec()),
                    None => {
                        for shift in [-1.0, 1.0] {
                            let mut h = mode.clone();
                            h.log_lengthscales.iter_mut().for_each(|l| *l += shift);
                            starts.push(h.to_vec());
                        }
                    }
                }
                let mut best: Option<(f64, Vec<f64>)> = None;
                for start in &starts {
                    let sol = optim::lbfgs(start, settings, |theta, grad| {
                        objective.value_grad(theta, grad).unwrap_or(f64::NAN)
                    });
                    if sol.value.is_finite() && best.as_ref().is_none_or(|b| sol.value < b.0) {
                        best = Some((sol.value, sol.x));
                    }
                }
                Hyperparameters::from_slice(&best.map_or_else(|| starts[0].clone(), |b| b.1))
            }
        };
        let (k, _, _) = objective.kernel(&hyper);
        let chol = cholesky(k)
            .ok_or_else(|| Error::invalid("gp", "kernel matrix is not positive definite"))?;
        let resid = DVector::from_iterator(n, ys.iter().map(|v| v - hyper.mean));
        let alpha = chol.solve(&resid);
        Ok(Gp {
            x: flat,
            d,
            y_mean,
            y_scale,
            inv_ls2: hyper
                .log_lengthscales
                .iter()
                .map(|l| (-2.0 * l).exp())
                .collect(),
            signal: hyper.log_signal.exp(),
            hyper,
            chol,
            alpha,
        })
    }

    /// A GP on new data with given hyperparameters (no optimisation): for
    /// fantasies of pending evaluations, which must not move the
    /// hyperparameters. The outputs are standardised with this GP's
    /// statistics, so means stay comparable.
    pub fn condition(&self, x: &[Vec<f64>], y: &[f64], extra: &[f64]) -> Result<Gp> {
        let n = y.len();
        let d = self.d;
        if n == 0 || x.len() != n || extra.len() != n || x.iter().any(|r| r.len() != d) {
            return Err(Error::invalid(
                "gp",
                "need as many inputs (of the GP's dimension), outputs and variances",
            ));
        }
        let ys: Vec<f64> = y.iter().map(|v| (v - self.y_mean) / self.y_scale).collect();
        let es: Vec<f64> = extra
            .iter()
            .map(|v| v / (self.y_scale * self.y_scale))
            .collect();
        let flat: Vec<f64> = x.iter().flatten().copied().collect();
        let objective = Objective::new(&flat, d, &ys, &es);
        let (k, _, _) = objective.kernel(&self.hyper);
        let chol = cholesky(k)
            .ok_or_else(|| Error::invalid("gp", "kernel matrix is not positive definite"))?;
        let resid = DVector::from_iterator(n, ys.iter().map(|v| v - self.hyper.mean));
        let alpha = chol.solve(&resid);
        Ok(Gp {
            x: flat,
            chol,
            alpha,
            ..self.clone()
        })
    }

    /// Mean and standard deviation used to standardise the outputs.
    pub fn output_scale(&self) -> (f64, f64) {
        (self.y_mean, self.y_scale)
    }

    /// The fitted hyperparameters.
    pub fn hyperparameters(&self) -> &Hyperparameters {
        &self.hyper
    }

    /// Number of observations.
    pub fn len(&self) -> usize {
        self.alpha.len()
    }

    pub fn is_empty(&self) -> bool {
        self.alpha.is_empty()
    }

    /// Posterior mean and variance of the latent `f(x)` (output units,
    /// observation noise excluded).
    pub fn predict(&self, x: &[f64]) -> (f64, f64) {
        let (m, v) = self.predict_std(x);
        (
            self.y_mean + self.y_scale * m,
            v * self.y_scale * self.y_scale,
        )
    }

    /// The same in standardised units.
    fn predict_std(&self, x: &[f64]) -> (f64, f64) {
        let n = self.len();
        let kx = DVector::from_iterator(n, (0..n).map(|i| self.k_to(i, x).0));
        let mean = self.hyper.mean + kx.dot(&self.alpha);
        let v = self
            .chol
            .l_dirty()
            .solve_lower_triangular(&kx)
            .map(|v| v.norm_squared())
            .unwrap_or(self.signal);
        (mean, (self.signal - v).max(1e-12 * self.signal))
    }

    /// Posterior means and variances at many points (output units), with one
    /// triangular solve for all of them.
    pub fn predict_many(&self, xs: &[Vec<f64>]) -> Vec<(f64, f64)> {
        let n = self.len();
        let m = xs.len();
        if m == 0 {
            return Vec::new();
        }
        let kx = DMatrix::from_fn(n, m, |i, j| self.k_to(i, &xs[j]).0);
        let means = kx.tr_mul(&self.alpha);
        let v = self
            .chol
            .l_dirty()
            .solve_lower_triangular(&kx)
            .unwrap_or_else(|| DMatrix::zeros(n, m));
        let s2 = self.y_scale * self.y_scale;
        (0..m)
            .map(|j| {
                let var = (self.signal - v.column(j).norm_squared()).max(1e-12 * self.signal);
                (
                    self.y_mean + self.y_scale * (self.hyper.mean + means[j]),
                    var * s2,
                )
            })
            .collect()
    }

    /// `k(x_i, x)` and `-(1/r) dk/dr` (scaled by `σ_f²`).
    #[inline]
    fn k_to(&self, i: usize, x: &[f64]) -> (f64, f64) {
        let xi = &self.x[i * self.d..(i + 1) * self.d];
        let r2: f64 = (0..self.d)
            .map(|a| (xi[a] - x[a]).powi(2) * self.inv_ls2[a])
            .sum();
        let (k, g) = matern52(r2);
        (self.signal * k, self.signal * g)
    }

    /// Posterior mean and variance (output units) and their gradients with
    /// respect to `x` (written into `dmean`, `dvar`).
    pub fn predict_grad(&self, x: &[f64], dmean: &mut [f64], dvar: &mut [f64]) -> (f64, f64) {
        let n = self.len();
        let d = self.d;
        let mut kx = DVector::zeros(n);
        // ∂k(x_i, x)/∂x_a = -g_i Δ_a / ℓ_a² with Δ = x - x_i and g = -(1/r) dk/dr.
        let mut dk = DMatrix::zeros(n, d);
        for i in 0..n {
            let (k, g) = self.k_to(i, x);
            kx[i] = k;
            for a in 0..d {
                dk[(i, a)] = -g * (x[a] - self.x[i * d + a]) * self.inv_ls2[a];
            }
        }
        let mean = self.hyper.mean + kx.dot(&self.alpha);
        let kinv_kx = self.chol.solve(&kx);
        let var = (self.signal - kx.dot(&kinv_kx)).max(1e-12 * self.signal);
        let s2 = self.y_scale * self.y_scale;
        for a in 0..d {
            let col = dk.column(a);
            dmean[a] = self.y_scale * col.dot(&self.alpha);
            dvar[a] = -2.0 * s2 * col.dot(&kinv_kx);
        }
        (self.y_mean + self.y_scale * mean, var * s2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn random_problem(n: usize, d: usize, seed: u64) -> (Vec<Vec<f64>>, Vec<f64>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let x: Vec<Vec<f64>> = (0..n)
            .map(|_| (0..d).map(|_| rng.random::<f64>()).collect())
            .collect();
        let y = x
            .iter()
            .map(|p| (3.0 * p[0]).sin() + p.iter().skip(1).map(|v| v * v).sum::<f64>())
            .collect();
        (x, y)
    }

    /// The hyperparameter gradient agrees with central differences.
    #[test]
    fn likelihood_gradient_matches_finite_differences() {
        let (x, y) = random_problem(15, 3, 1);
        let flat: Vec<f64> = x.iter().flatten().copied().collect();
        let extra: Vec<f64> = (0..15)
            .map(|i| if i % 4 == 0 { 0.05 } else { 0.0 })
            .collect();
        let obj = Objective::new(&flat, 3, &y, &extra);
        let theta = vec![-0.7, 0.2, -1.1, 0.3, -3.0, 0.1];
        let mut g = vec![0.0; 6];
        obj.value_grad(&theta, &mut g).unwrap();
        for i in 0..6 {
            let h = 1e-6;
            let mut a = theta.clone();
            let mut b = theta.clone();
            a[i] += h;
            b[i] -= h;
            let mut tmp = vec![0.0; 6];
            let fd = (obj.value_grad(&a, &mut tmp).unwrap()
                - obj.value_grad(&b, &mut tmp).unwrap())
                / (2.0 * h);
            assert!(
                (fd - g[i]).abs() < 1e-5 * (1.0 + fd.abs()),
                "θ_{i}: analytic {} vs numeric {fd}",
                g[i]
            );
        }
    }

    /// The input gradients of the posterior mean and variance agree with
    /// central differences.
    #[test]
    fn prediction_gradient_matches_finite_differences() {
        let (x, y) = random_problem(20, 2, 2);
        let gp = Gp::fit(&x, &y, &[0.0; 20], None).unwrap();
        let p = [0.37, 0.61];
        let (mut dm, mut dv) = ([0.0; 2], [0.0; 2]);
        let (m, v) = gp.predict_grad(&p, &mut dm, &mut dv);
        let (m2, v2) = gp.predict(&p);
        assert!((m - m2).abs() < 1e-10 && (v - v2).abs() < 1e-10);
        for a in 0..2 {
            let h = 1e-6;
            let mut hi = p;
            let mut lo = p;
            hi[a] += h;
            lo[a] -= h;
            let (mh, vh) = gp.predict(&hi);
            let (ml, vl) = gp.predict(&lo);
            assert!(((mh - ml) / (2.0 * h) - dm[a]).abs() < 1e-5 * (1.0 + dm[a].abs()));
            assert!(((vh - vl) / (2.0 * h) - dv[a]).abs() < 1e-5 * (1.0 + dv[a].abs()));
        }
    }

    /// A known 1-D case: with fixed hyperparameters the posterior equals the
    /// textbook formulas `μ = k*ᵀ K⁻¹ y`, `σ² = k** - k*ᵀ K⁻¹ k*` (on the
    /// standardised scale), checked by hand for two points.
    #[test]
    fn posterior_on_a_known_one_dimensional_case() {
        let x = vec![vec![0.2], vec![0.8]];
        let y = vec![1.0, -1.0];
        let gp = Gp::fit(&x, &y, &[0.0, 0.0], None).unwrap();
        let h = gp.hyperparameters();
        let (sf, sn, c, l) = (
            h.log_signal.exp(),
            h.log_noise.exp().max(MIN_NOISE),
            h.mean,
            h.log_lengthscales[0].exp(),
        );
        let k = |a: f64, b: f64| sf * matern52(((a - b) / l).powi(2)).0;
        // y standardised: mean 0, scale 1 → ys = y.
        let k11 = k(0.2, 0.2) + sn;
        let k12 = k(0.2, 0.8);
        let det = k11 * k11 - k12 * k12;
        let inv = [[k11 / det, -k12 / det], [-k12 / det, k11 / det]];
        let r = [1.0 - c, -1.0 - c];
        let q = 0.5;
        let ks = [k(q, 0.2), k(q, 0.8)];
        let kinv_r = [
            inv[0][0] * r[0] + inv[0][1] * r[1],
            inv[1][0] * r[0] + inv[1][1] * r[1],
        ];
        let mu = c + ks[0] * kinv_r[0] + ks[1] * kinv_r[1];
        let kinv_ks = [
            inv[0][0] * ks[0] + inv[0][1] * ks[1],
            inv[1][0] * ks[0] + inv[1][1] * ks[1],
        ];
        let var = sf - ks[0] * kinv_ks[0] - ks[1] * kinv_ks[1];
        let (m, v) = gp.predict(&[q]);
        assert!((m - mu).abs() < 1e-9, "{m} vs {mu}");
        assert!((v - var).abs() < 1e-9, "{v} vs {var}");
        // Interpolates its data (small noise) and is uncertain far away.
        let (m0, v0) = gp.predict(&[0.2]);
        assert!((m0 - 1.0).abs() < 0.05 && v0 < 0.05, "{m0} {v0}");
    }

    #[test]
    fn fits_a_smooth_function() {
        let (x, y) = random_problem(40, 2, 3);
        let gp = Gp::fit(&x, &y, &[0.0; 40], None).unwrap();
        let (tx, ty) = random_problem(50, 2, 4);
        let rmse = (tx
            .iter()
            .zip(&ty)
            .map(|(p, t)| (gp.predict(p).0 - t).powi(2))
            .sum::<f64>()
            / 50.0)
            .sqrt();
        let sd = {
            let m = ty.iter().sum::<f64>() / 50.0;
            (ty.iter().map(|t| (t - m).powi(2)).sum::<f64>() / 50.0).sqrt()
        };
        assert!(rmse < 0.1 * sd, "rmse {rmse} vs sd {sd}");
    }

    /// A noisy observation (large known variance) pulls the mean less.
    #[test]
    fn per_observation_noise_is_respected() {
        let x = vec![vec![0.1], vec![0.5], vec![0.9], vec![0.52]];
        let y = vec![0.0, 0.0, 0.0, 3.0];
        let exact = Gp::fit(&x, &y, &[0.0; 4], None).unwrap();
        let noisy = Gp::fit(&x, &y, &[0.0, 0.0, 0.0, 100.0], None).unwrap();
        assert!(noisy.predict(&[0.52]).0 < exact.predict(&[0.52]).0);
    }

    #[test]
    fn duplicate_points_do_not_break_the_factorisation() {
        let x = vec![vec![0.3, 0.3]; 6];
        let y = vec![1.0, 1.0, 1.0, 1.0, 1.0, 1.0];
        let gp = Gp::fit(&x, &y, &[0.0; 6], None).unwrap();
        let (m, v) = gp.predict(&[0.3, 0.3]);
        assert!(m.is_finite() && v.is_finite());
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(Gp::fit(&[], &[], &[], None).is_err());
        assert!(Gp::fit(&[vec![0.1], vec![0.2, 0.3]], &[1.0, 2.0], &[0.0, 0.0], None).is_err());
        assert!(Gp::fit(&[vec![0.1]], &[f64::NAN], &[0.0], None).is_err());
        assert!(Gp::fit(&[vec![0.1]], &[1.0], &[-1.0], None).is_err());
    }
}
