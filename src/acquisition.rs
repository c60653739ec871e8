//! Acquisition functions and their maximisation, for minimising an unknown
//! function with a Gaussian-process posterior `f(x) ~ N(μ(x), σ²(x))`.
//!
//! * **EI**, expected improvement over the incumbent `y*`:
//!   `EI = σ h(z)`, `z = (y* - μ)/σ`, `h(z) = φ(z) + z Φ(z)` (Jones,
//!   Schonlau & Welch 1998), maximised as `ln EI` computed stably for very
//!   negative `z` (Ament et al., "Unexpected improvements to expected
//!   improvement", NeurIPS 2023): `ln h(z) = -z²/2 + ln(1/√(2π) - |z|
//!   erfcx(|z|/√2)/2)`, and an asymptotic series where that difference
//!   cancels.
//! * **PI**, probability of improvement by at least `ξ`:
//!   `Φ((y* - ξ - μ)/σ)` (Kushner 1964), maximised as `ln PI`; `ξ = 0.01`
//!   in standardised units.
//! * **UCB** (for minimisation, the lower confidence bound) `-(μ - √β_t σ)`
//!   with the GP-UCB schedule `β_t = 2 ln(d t² π² / (6 δ)) / 5`, `δ = 0.1`,
//!   `t` the number of observations: Theorem 1 of Srinivas, Krause, Kakade
//!   & Seeger (ICML 2010) with `|D|` replaced by the dimension, as Brochu,
//!   Cora & de Freitas's tutorial does, scaled down by 5 as the paper's own
//!   experiments do (the theoretical value over-explores).
//!
//! [`maximise`] evaluates an acquisition at scrambled Sobol candidates
//! (snapped to valid configurations: integers and categoricals are never
//! relaxed), refines the best few by bounded quasi-Newton steps
//! ([`crate::optim::lbfgs_box`]) over the continuous dimensions and a
//! neighbour search over the discrete ones, and returns the best. [`maximise_over`] chooses among given candidates.

use crate::gp::Gp;
use crate::optim::{self, LbfgsSettings};
use crate::space::{Domain, Space};

/// Which acquisition function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Acquisition {
    Ei,
    Pi,
    Ucb,
}

impl Acquisition {
    pub fn name(self) -> &'static str {
        match self {
            Acquisition::Ei => "EI",
            Acquisition::Pi => "PI",
            Acquisition::Ucb => "UCB",
        }
    }
}

/// What an acquisition needs besides the GP.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Context {
    /// The incumbent value `y*` (output units).
    pub best: f64,
    /// Output scale, for `ξ` of PI.
    pub scale: f64,
    /// Number of observations `t`.
    pub t: usize,
    /// Input dimension `d`.
    pub d: usize,
}

const SQRT_2PI: f64 = 2.506_628_274_631_000_5;

fn normal_cdf(z: f64) -> f64 {
    0.5 * statrs::function::erf::erfc(-z / std::f64::consts::SQRT_2)
}

fn normal_pdf(z: f64) -> f64 {
    (-0.5 * z * z).exp() / SQRT_2PI
}

/// `ln Φ(z)`, accurate for very negative `z`.
pub fn log_normal_cdf(z: f64) -> f64 {
    if z > -37.0 {
        normal_cdf(z).ln()
    } else {
        // Φ(z) = φ(z)/|z| (1 - 1/z² + 3/z⁴ - 15/z⁶ + ...).
        let z2 = z * z;
        -0.5 * z2 - (-z).ln() - SQRT_2PI.ln()
            + (1.0 - 1.0 / z2 + 3.0 / (z2 * z2) - 15.0 / (z2 * z2 * z2)).ln()
    }
}

/// `ln h(z)`, `h(z) = φ(z) + z Φ(z)`, accurate for very negative `z`.
pub fn log_h(z: f64) -> f64 {
    if z > -6.0 {
        (normal_pdf(z) + z * normal_cdf(z)).ln()
    } else if z > -37.0 {
        // h(z) = e^{-z²/2} (1/√(2π) - |z| erfcx(|z|/√2) / 2).
        let t = -z / std::f64::consts::SQRT_2;
        let erfcx = (t * t).exp() * statrs::function::erf::erfc(t);
        -0.5 * z * z + (1.0 / SQRT_2PI + 0.5 * z * erfcx).ln()
    } else {
        // h(z) = φ(z) / z² (1 - 3/z² + 15/z⁴ - 105/z⁶ + ...).
        let z2 = z * z;
        -0.5 * z2 - SQRT_2PI.ln() - z2.ln()
            + (1.0 - 3.0 / z2 + 15.0 / (z2 * z2) - 105.0 / (z2 * z2 * z2)).ln()
    }
}

/// `β_t` of GP-UCB (module documentation).
pub fn ucb_beta(t: usize, d: usize) -> f64 {
    let t = t.max(1) as f64;
    let delta = 0.1;
    (0.4 * (d.max(1) as f64 * t * t * std::f64::consts::PI.powi(2) / (6.0 * delta)).ln()).max(0.0)
}

impl Acquisition {
    /// The value to maximise at a posterior `(μ, σ²)`: `ln EI`, `ln PI` or
    /// `-(μ - √β σ)`.
    pub fn value(self, mean: f64, var: f64, ctx: &Context) -> f64 {
        let sd = var.max(1e-300).sqrt();
        match self {
            Acquisition::Ei => sd.ln() + log_h((ctx.best - mean) / sd),
            Acquisition::Pi => log_normal_cdf((ctx.best - 0.01 * ctx.scale - mean) / sd),
            Acquisition::Ucb => -(mean - ucb_beta(ctx.t, ctx.d).sqrt() * sd),
        }
    }

    /// The value and its gradient with respect to the input.
    fn value_grad(self, gp: &Gp, x: &[f64], ctx: &Context, grad: &mut [f64]) -> f64 {
        let d = x.len();
        let mut dm = vec![0.0; d];
        let mut dv = vec![0.0; d];
        let (mean, var) = gp.predict_grad(x, &mut dm, &mut dv);
        let var = var.max(1e-300);
        let sd = var.sqrt();
        // ∂σ/∂x = ∂σ²/∂x / (2σ).
        let dsd = |a: usize| dv[a] / (2.0 * sd);
        match self {
            Acquisition::Ei => {
                let z = (ctx.best - mean) / sd;
                let lh = log_h(z);
                // d ln h / dz = Φ(z) / h(z); dz/dx = (-∂μ - z ∂σ) / σ.
                let ratio = (log_normal_cdf(z) - lh).exp();
                for a in 0..d {
                    let dz = (-dm[a] - z * dsd(a)) / sd;
                    grad[a] = dsd(a) / sd + ratio * dz;
                }
                sd.ln() + lh
            }
            Acquisition::Pi => {
                let z = (ctx.best - 0.01 * ctx.scale - mean) / sd;
                let lc = log_normal_cdf(z);
                // d ln Φ / dz = φ(z) / Φ(z).
                let ratio = (-0.5 * z * z - SQRT_2PI.ln() - lc).exp();
                for a in 0..d {
                    grad[a] = ratio * (-dm[a] - z * dsd(a)) / sd;
                }
                lc
            }
            Acquisition::Ucb => {
                let b = ucb_beta(ctx.t, ctx.d).sqrt();
                for a in 0..d {
                    grad[a] = -dm[a] + b * dsd(a);
                }
                -(mean - b * sd)
            }
        }
    }
}

/// Settings of [`maximise`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Maximiser {
    /// Sobol candidates per call.
    pub candidates: usize,
    /// How many of the best candidates are refined.
    pub refine: usize,
    /// Quasi-Newton iterations per refinement round.
    pub iterations: usize,
}

impl Default for Maximiser {
    fn default() -> Self {
        Maximiser {
            candidates: 512,
            refine: 4,
            iterations: 30,
        }
    }
}

/// The best point found and its acquisition value.
#[derive(Debug, Clone, PartialEq)]
pub struct Maximum {
    pub x: Vec<f64>,
    pub value: f64,
}

/// Maximises each acquisition of `arms` over the space (module
/// documentation), sharing the GP predictions at the candidates. `seed`
/// scrambles the Sobol candidates; `extra` points (e.g. the best
/// observations) are added to the candidates.
pub fn maximise(
    arms: &[Acquisition],
    gp: &Gp,
    ctx: &Context,
    space: &Space,
    settings: &Maximiser,
    seed: u32,
    extra: &[Vec<f64>],
) -> Vec<Maximum> {
    let d = space.dim();
    let mut cands: Vec<Vec<f64>> = (0..settings.candidates)
        .map(|i| space.snap(&sobol_point(i as u32, d, seed)))
        .collect();
    cands.extend(extra.iter().map(|x| space.snap(x)));
    let predictions = gp.predict_many(&cands);
    let continuous = continuous_dims(space);
    arms.iter()
        .map(|&acq| {
            let mut scored: Vec<(f64, usize)> = predictions
                .iter()
                .enumerate()
                .map(|(i, &(m, v))| (acq.value(m, v, ctx), i))
                .collect();
            scored.sort_by(|a, b| b.0.total_cmp(&a.0));
            let mut best = Maximum {
                x: cands[scored[0].1].clone(),
                value: scored[0].0,
            };
            for &(value, i) in scored.iter().take(settings.refine) {
                let refined = refine(
                    acq,
                    gp,
                    ctx,
                    space,
                    &continuous,
                    cands[i].clone(),
                    value,
                    settings.iterations,
                );
                if refined.value > best.value {
                    best = refined;
                }
            }
            best
        })
        .collect()
}

/// For each arm, the index of the candidate with the largest acquisition
/// value (0 without candidates); the GP's predictions are shared.
pub fn maximise_over(
    arms: &[Acquisition],
    gp: &Gp,
    ctx: &Context,
    candidates: &[Vec<f64>],
) -> Vec<usize> {
    let predictions = gp.predict_many(candidates);
    arms.iter()
        .map(|acq| {
            predictions
                .iter()
                .enumerate()
                .map(|(i, &(m, v))| (i, acq.value(m, v, ctx)))
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .map_or(0, |(i, _)| i)
        })
        .collect()
}

/// The `i`-th point of the scrambled Sobol sequence in `[0, 1)^d` (Owen
/// scrambling seeded by `seed`; Burley, "Practical hash-based Owen
/// scrambling", JCGT 2020, via the `sobol_burley` crate).
pub fn sobol_point(i: u32, d: usize, seed: u32) -> Vec<f64> {
    (0..d)
        .map(|a| {
            // sobol_burley has 256 dimensions; beyond them, reseed.
            let (dim, s) = (
                (a % 256) as u32,
                seed.wrapping_add((a / 256) as u32 * 0x9E37_79B9),
            );
            sobol_burley::sample(i % (1 << 16), dim, s) as f64
        })
        .collect()
}

/// Encoded dimensions of float parameters (the ones gradient steps move).
fn continuous_dims(space: &Space) -> Vec<usize> {
    space
        .params()
        .iter()
        .enumerate()
        .filter(|(_, p)| matches!(p.domain, Domain::Float { .. }))
        .flat_map(|(i, _)| space.dims_of(i))
        .collect()
}

/// Alternates bounded quasi-Newton steps on the continuous dimensions with a
/// neighbour search over the discrete ones (integers ±1, other categories),
/// keeping every point a valid encoding.
#[allow(clippy::too_many_arguments)]
fn refine(
    acq: Acquisition,
    gp: &Gp,
    ctx: &Context,
    space: &Space,
    continuous: &[usize],
    x: Vec<f64>,
    value: f64,
    iterations: usize,
) -> Maximum {
    let mut best = Maximum { x, value };
    for _ in 0..3 {
        let before = best.value;
        if !continuous.is_empty() {
            best = ascend(acq, gp, ctx, space, continuous, best, iterations);
        }
        best = neighbours(acq, gp, ctx, space, best);
        if best.value <= before + 1e-12 {
            break;
        }
    }
    best
}

/// Projected L-BFGS on `-acquisition` over the continuous dimensions
/// (the others fixed), then snapped; keeps `start` if that is not better.
fn ascend(
    acq: Acquisition,
    gp: &Gp,
    ctx: &Context,
    space: &Space,
    dims: &[usize],
    start: Maximum,
    iterations: usize,
) -> Maximum {
    let d = start.x.len();
    let mut full = start.x.clone();
    let mut g = vec![0.0; d];
    let x0: Vec<f64> = dims.iter().map(|&a| start.x[a]).collect();
    let settings = LbfgsSettings {
        max_iterations: iterations,
        ftol: 1e-9,
        gtol: 1e-7,
        ..LbfgsSettings::default()
    };
    let sol = optim::lbfgs_box(
        &x0,
        &vec![0.0; dims.len()],
        &vec![1.0; dims.len()],
        settings,
        |z, out| {
            for (k, &a) in dims.iter().enumerate() {
                full[a] = z[k];
            }
            let v = acq.value_grad(gp, &full, ctx, &mut g);
            for (k, &a) in dims.iter().enumerate() {
                out[k] = -g[a];
            }
            -v
        },
    );
    let mut x = start.x.clone();
    for (k, &a) in dims.iter().enumerate() {
        x[a] = sol.x[k];
    }
    let x = space.snap(&x);
    let (m, v) = gp.predict(&x);
    let snapped = acq.value(m, v, ctx);
    if snapped >= start.value {
        Maximum { x, value: snapped }
    } else {
        start
    }
}

fn neighbours(acq: Acquisition, gp: &Gp, ctx: &Context, space: &Space, start: Maximum) -> Maximum {
    let mut best = start;
    for (i, p) in space.params().iter().enumerate() {
        let dims = space.dims_of(i);
        let moves: Vec<Vec<f64>> = match &p.domain {
            Domain::Float { .. } => continue,
            Domain::Int { low, high, .. } => {
                let width = 1.0 / (high - low + 1) as f64;
                [-width, width]
                    .iter()
                    .map(|dlt| {
                        let mut y = best.x.clone();
                        y[dims.start] = (y[dims.start] + dlt).clamp(0.0, 1.0);
                        y
                    })
                    .collect()
            }
            Domain::Categorical { .. } => dims
                .clone()
                .map(|k| {
                    let mut y = best.x.clone();
                    for a in dims.clone() {
                        y[a] = if a == k { 1.0 } else { 0.0 };
                    }
                    y
                })
                .collect(),
        };
        for y in moves {
            let y = space.snap(&y);
            let (m, v) = gp.predict(&y);
            let val = acq.value(m, v, ctx);
            if val > best.value {
                best = Maximum { x: y, value: val };
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::space::Scale;

    #[test]
    fn ei_pi_ucb_formulas() {
        let ctx = Context {
            best: 1.0,
            scale: 1.0,
            t: 10,
            d: 2,
        };
        let (m, v) = (0.8, 0.09);
        let s = 0.3;
        let z = (1.0 - m) / s;
        let ei = s * (normal_pdf(z) + z * normal_cdf(z));
        assert!((Acquisition::Ei.value(m, v, &ctx) - ei.ln()).abs() < 1e-12);
        let pi = normal_cdf((1.0 - 0.01 - m) / s);
        assert!((Acquisition::Pi.value(m, v, &ctx) - pi.ln()).abs() < 1e-12);
        let beta = 0.4 * (2.0 * 100.0 * std::f64::consts::PI.powi(2) / 0.6).ln();
        assert!((Acquisition::Ucb.value(m, v, &ctx) - (-(m - beta.sqrt() * s))).abs() < 1e-12);
    }

    /// The stable forms agree with the direct ones where both are accurate,
    /// and stay finite and monotone far into the tail.
    #[test]
    fn log_forms_are_stable() {
        for z in [-5.9, -6.0, -6.1, -8.0] {
            let direct = (normal_pdf(z) + z * normal_cdf(z)).ln();
            assert!(
                (log_h(z) - direct).abs() < 1e-6,
                "z={z}: {} vs {direct}",
                log_h(z)
            );
        }
        // The branches meet at -37.
        for (a, b) in [
            (log_h(-36.999), log_h(-37.001)),
            (log_normal_cdf(-36.999), log_normal_cdf(-37.001)),
        ] {
            assert!((a - b).abs() < 0.1, "{a} vs {b}");
        }
        let mut prev = f64::NEG_INFINITY;
        for i in 0..200 {
            let z = -60.0 + 0.3 * i as f64;
            let v = log_h(z);
            assert!(v.is_finite() && v > prev, "z={z}");
            prev = v;
        }
    }

    #[test]
    fn beta_grows_with_observations() {
        assert!(ucb_beta(100, 6) > ucb_beta(10, 6));
        assert!(ucb_beta(10, 6) > ucb_beta(10, 1));
    }

    /// The acquisition gradients agree with central differences.
    #[test]
    fn acquisition_gradients_match_finite_differences() {
        let x: Vec<Vec<f64>> = (0..12)
            .map(|i| vec![(i as f64 * 0.37) % 1.0, (i as f64 * 0.61) % 1.0])
            .collect();
        let y: Vec<f64> = x.iter().map(|p| (4.0 * p[0]).sin() + p[1]).collect();
        let gp = Gp::fit(&x, &y, &[0.0; 12], None).unwrap();
        let ctx = Context {
            best: y.iter().cloned().fold(f64::INFINITY, f64::min),
            scale: 1.0,
            t: 12,
            d: 2,
        };
        let p = [0.43, 0.27];
        for acq in [Acquisition::Ei, Acquisition::Pi, Acquisition::Ucb] {
            let mut g = [0.0; 2];
            acq.value_grad(&gp, &p, &ctx, &mut g);
            for a in 0..2 {
                let h = 1e-6;
                let (mut hi, mut lo) = (p, p);
                hi[a] += h;
                lo[a] -= h;
                let f = |q: &[f64]| {
                    let (m, v) = gp.predict(q);
                    acq.value(m, v, &ctx)
                };
                let fd = (f(&hi) - f(&lo)) / (2.0 * h);
                assert!(
                    (fd - g[a]).abs() < 1e-4 * (1.0 + fd.abs()),
                    "{acq:?} ∂{a}: {} vs {fd}",
                    g[a]
                );
            }
        }
    }

    #[test]
    fn maximiser_finds_the_best_region_and_respects_integers() {
        use crate::space::{Space, Value};
        let space = Space::builder()
            .float("x", 0.0, 1.0, Scale::Linear)
            .int("k", 0, 4, Scale::Linear)
            .build()
            .unwrap();
        // Observations of (x - 0.7)² + (k - 3)², lowest near x = 0.7, k = 3.
        let pts: Vec<Vec<f64>> = (0..20).map(|i| space.snap(&sobol_point(i, 2, 1))).collect();
        let f = |u: &[f64]| {
            let c = space.decode(u);
            (c["x"].as_f64() - 0.7).powi(2) + (c["k"].as_f64() - 3.0).powi(2)
        };
        let y: Vec<f64> = pts.iter().map(|p| f(p)).collect();
        let gp = Gp::fit(&pts, &y, &[0.0; 20], None).unwrap();
        let ctx = Context {
            best: y.iter().cloned().fold(f64::INFINITY, f64::min),
            scale: 1.0,
            t: 20,
            d: 2,
        };
        let m = maximise(
            &[Acquisition::Ei],
            &gp,
            &ctx,
            &space,
            &Maximiser::default(),
            3,
            &pts,
        )
        .remove(0);
        let c = space.decode(&m.x);
        assert!(matches!(c["k"], Value::Int(_)));
        assert_eq!(space.snap(&m.x), m.x);
        assert!(f(&m.x) < 0.5, "{c:?}");
    }
}
