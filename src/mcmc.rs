//! Affine-invariant ensemble sampler: the stretch move of Goodman & Weare,
//! "Ensemble samplers with affine invariance" (CAMCoS 2010), in the parallel
//! form of Foreman-Mackey et al., "emcee: the MCMC hammer" (PASP 2013).
//!
//! `K` walkers `X_1..X_K` in `R^d` move in two halves, split at random
//! afresh every step (as emcee 3 does). For a walker `X_k` of
//! one half, a partner `X_j` is drawn uniformly from the other half and the
//! proposal is `Y = X_j + z (X_k - X_j)` with `z` drawn from
//! `g(z) ∝ 1/√z` on `[1/a, a]` (`a = 2`). It is accepted with probability
//! `min(1, z^(d-1) p(Y) / p(X_k))`. Because the walkers of one half only look at
//! the other half, the proposals of a half are independent and their densities
//! are evaluated in parallel; all random numbers are drawn sequentially first,
//! so a run depends on its seed only, never on the number of threads.

use rand::seq::SliceRandom;
use rand::{Rng, RngExt};
use rayon::prelude::*;

/// An unnormalised log-density `ln p(x)`, with a per-thread scratch space so
/// that evaluating it allocates nothing.
pub trait LogDensity: Sync {
    type Scratch: Send;
    /// A fresh scratch space.
    fn scratch(&self) -> Self::Scratch;
    /// `ln p(x)`; `-inf` outside the support. `NaN` is read as `-inf`.
    fn log_density(&self, x: &[f64], scratch: &mut Self::Scratch) -> f64;
}

/// Settings of a run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    /// Number of steps every walker takes.
    pub steps: usize,
    /// Steps discarded before samples are kept.
    pub burn_in: usize,
    /// Keep every `thin`-th state after burn-in.
    pub thin: usize,
    /// Stretch scale `a` (emcee's default 2).
    pub stretch: f64,
    /// Evaluate the proposals of a half in parallel (rayon).
    pub parallel: bool,
}

/// The kept states of every walker, and diagnostics.
#[derive(Debug, Clone)]
pub struct Samples {
    /// Row-major `n × dim` states.
    pub states: Vec<f64>,
    /// `ln p` of every kept state.
    pub log_density: Vec<f64>,
    pub dim: usize,
    /// Fraction of proposals accepted over the whole run.
    pub acceptance: f64,
}

impl Samples {
    pub fn len(&self) -> usize {
        self.log_density.len()
    }
    pub fn is_empty(&self) -> bool {
        self.log_density.is_empty()
    }
    /// The `i`-th kept state.
    pub fn state(&self, i: usize) -> &[f64] {
        &self.states[i * self.dim..(i + 1) * self.dim]
    }
}

/// Runs the ensemble from `init` (row-major `walkers × dim`).
///
/// Walkers that start outside the support (`ln p = -inf`) move to the first
/// finite proposal they see. Returns the states kept after burn-in, walker
/// by walker in step order (the layout emcee's flattened chain has).
pub fn sample<D: LogDensity>(
    density: &D,
    init: &[f64],
    dim: usize,
    settings: Settings,
    rng: &mut impl Rng,
) -> Samples {
    assert!(
        dim > 0 && init.len().is_multiple_of(dim),
        "init must be walkers × dim"
    );
    let walkers = init.len() / dim;
    assert!(walkers >= 2, "at least two walkers are needed");
    let half = walkers / 2;
    let mut pos = init.to_vec();
    // Scratch space and result buffer reused by every half-step.
    let mut scratch = density.scratch();
    let mut lp = Vec::with_capacity(walkers);
    eval_all(density, &pos, dim, settings.parallel, &mut scratch, &mut lp);
    let mut new_lp = Vec::with_capacity(walkers);
    let thin = settings.thin.max(1);
    let kept_steps = (settings.burn_in..settings.steps)
        .filter(|s| (s - settings.burn_in).is_multiple_of(thin))
        .count();
    // Kept states, stored step-major while running and reordered at the end.
    let mut kept = Vec::with_capacity(kept_steps * walkers * dim);
    let mut kept_lp = Vec::with_capacity(kept_steps * walkers);
    let mut accepted = 0usize;
    let mut proposals = vec![0.0; half.max(walkers - half) * dim];
    let mut z = vec![0.0; walkers];
    let mut ln_u = vec![0.0; walkers];
    let dm1 = (dim - 1) as f64;
    let a = settings.stretch;
    let mut order: Vec<usize> = (0..walkers).collect();
    for step in 0..settings.steps {
        // A fresh random split into two halves every step (emcee 3's default).
        order.shuffle(rng);
        for (mine, other) in [(0..half, half..walkers), (half..walkers, 0..half)] {
            let n = mine.len();
            for (k, &w) in order[mine.clone()].iter().enumerate() {
                let j = order[rng.random_range(other.clone())];
                let u: f64 = rng.random();
                let zk = ((a - 1.0) * u + 1.0).powi(2) / a;
                z[k] = zk;
                ln_u[k] = rng.random::<f64>().ln();
                let (xk, xj) = (&pos[w * dim..(w + 1) * dim], &pos[j * dim..(j + 1) * dim]);
                for (i, p) in proposals[k * dim..(k + 1) * dim].iter_mut().enumerate() {
                    *p = xj[i] + zk * (xk[i] - xj[i]);
                }
            }
            eval_all(
                density,
                &proposals[..n * dim],
                dim,
                settings.parallel,
                &mut scratch,
                &mut new_lp,
            );
            for (k, &w) in order[mine].iter().enumerate() {
                let q = dm1 * z[k].ln() + new_lp[k] - lp[w];
                let accept =
                    new_lp[k] > f64::NEG_INFINITY && (lp[w] == f64::NEG_INFINITY || ln_u[k] < q);
                if accept {
                    pos[w * dim..(w + 1) * dim].copy_from_slice(&proposals[k * dim..(k + 1) * dim]);
                    lp[w] = new_lp[k];
                    accepted += 1;
                }
            }
        }
        if step >= settings.burn_in && (step - settings.burn_in).is_multiple_of(thin) {
            kept.extend_from_slice(&pos);
            kept_lp.extend_from_slice(&lp);
        }
    }
    // Reorder step-major → walker-major.
    let mut states = Vec::with_capacity(kept.len());
    let mut log_density = Vec::with_capacity(kept_lp.len());
    for w in 0..walkers {
        for s in 0..kept_steps {
            let row = s * walkers + w;
            states.extend_from_slice(&kept[row * dim..(row + 1) * dim]);
            log_density.push(kept_lp[row]);
        }
    }
    Samples {
        states,
        log_density,
        dim,
        acceptance: accepted as f64 / (walkers * settings.steps).max(1) as f64,
    }
}

/// `ln p` of every row of `xs` into `out` (cleared first); `NaN` becomes `-inf`.
fn eval_all<D: LogDensity>(
    density: &D,
    xs: &[f64],
    dim: usize,
    parallel: bool,
    scratch: &mut D::Scratch,
    out: &mut Vec<f64>,
) {
    let clean = |v: f64| if v.is_nan() { f64::NEG_INFINITY } else { v };
    if parallel {
        xs.par_chunks(dim)
            .map_init(
                || density.scratch(),
                |s, x| clean(density.log_density(x, s)),
            )
            .collect_into_vec(out);
    } else {
        out.clear();
        out.extend(
            xs.chunks(dim)
                .map(|x| clean(density.log_density(x, scratch))),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use rand_distr::{Distribution, StandardNormal};

    /// A correlated 2-D Gaussian: var = (1, 4), correlation 0.9.
    struct Gauss;
    const COV: [[f64; 2]; 2] = [[1.0, 1.8], [1.8, 4.0]];
    impl LogDensity for Gauss {
        type Scratch = ();
        fn scratch(&self) {}
        fn log_density(&self, x: &[f64], _: &mut ()) -> f64 {
            let det = COV[0][0] * COV[1][1] - COV[0][1] * COV[1][0];
            let inv = [
                [COV[1][1] / det, -COV[0][1] / det],
                [-COV[1][0] / det, COV[0][0] / det],
            ];
            let (a, b) = (x[0] - 1.0, x[1] + 2.0);
            -0.5 * (a * (inv[0][0] * a + inv[0][1] * b) + b * (inv[1][0] * a + inv[1][1] * b))
        }
    }

    fn run(parallel: bool, seed: u64) -> Samples {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let init: Vec<f64> = (0..64).map(|_| StandardNormal.sample(&mut rng)).collect();
        let settings = Settings {
            steps: 3000,
            burn_in: 500,
            thin: 5,
            stretch: 2.0,
            parallel,
        };
        sample(&Gauss, &init, 2, settings, &mut rng)
    }

    #[test]
    fn recovers_a_correlated_gaussian() {
        let s = run(true, 7);
        assert_eq!(s.len(), 32 * 500);
        let n = s.len() as f64;
        let mean = |i: usize| (0..s.len()).map(|k| s.state(k)[i]).sum::<f64>() / n;
        let (m0, m1) = (mean(0), mean(1));
        let cov = |i: usize, j: usize| {
            (0..s.len())
                .map(|k| (s.state(k)[i] - [m0, m1][i]) * (s.state(k)[j] - [m0, m1][j]))
                .sum::<f64>()
                / n
        };
        assert!((m0 - 1.0).abs() < 0.1, "mean0 {m0}");
        assert!((m1 + 2.0).abs() < 0.2, "mean1 {m1}");
        assert!((cov(0, 0) - 1.0).abs() < 0.15, "var0 {}", cov(0, 0));
        assert!((cov(1, 1) - 4.0).abs() < 0.6, "var1 {}", cov(1, 1));
        let corr = cov(0, 1) / (cov(0, 0) * cov(1, 1)).sqrt();
        assert!((corr - 0.9).abs() < 0.03, "corr {corr}");
        // Goodman & Weare's move on a 2-D Gaussian accepts about half.
        assert!(s.acceptance > 0.3 && s.acceptance < 0.9, "{}", s.acceptance);
    }

    #[test]
    fn result_depends_on_the_seed_only() {
        let (a, b) = (run(true, 3), run(false, 3));
        assert_eq!(a.states, b.states);
        assert_ne!(a.states, run(true, 4).states);
    }

    /// Walkers that start outside the support find their way in.
    #[test]
    fn walkers_leave_an_impossible_start() {
        struct HalfLine;
        impl LogDensity for HalfLine {
            type Scratch = ();
            fn scratch(&self) {}
            fn log_density(&self, x: &[f64], _: &mut ()) -> f64 {
                if x[0] > 0.0 { -x[0] } else { f64::NAN }
            }
        }
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let init: Vec<f64> = (0..20).map(|i| (i as f64 - 4.0) * 0.25).collect();
        let settings = Settings {
            steps: 2000,
            burn_in: 1000,
            thin: 1,
            stretch: 2.0,
            parallel: false,
        };
        let s = sample(&HalfLine, &init, 1, settings, &mut rng);
        assert!(s.log_density.iter().all(|v| v.is_finite()));
        let mean = s.states.iter().sum::<f64>() / s.len() as f64;
        assert!((mean - 1.0).abs() < 0.15, "exponential(1) mean {mean}");
    }
}
