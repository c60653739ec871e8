//! Small dense optimisers: Levenberg–Marquardt for nonlinear least squares and
//! L-BFGS for smooth unconstrained minimisation.
//!
//! Both are written for the sizes this crate meets (a handful of parameters),
//! take analytic derivatives, and report failure instead of panicking when the
//! objective turns non-finite.

use nalgebra::{DMatrix, DVector};

/// How a least-squares or quasi-Newton run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Relative reduction of the objective fell below `ftol`.
    SmallReduction,
    /// Relative change of the parameters fell below `xtol`.
    SmallStep,
    /// The gradient vanished (below `gtol`).
    SmallGradient,
    /// The evaluation or iteration budget ran out first.
    Budget,
    /// The tolerances cannot be met in floating point (MINPACK's codes 6-8).
    Stalled,
    /// The objective is not finite at the start, or no step can reduce it.
    Failed,
}

impl Status {
    /// Whether the run converged (the first three cases).
    pub fn converged(self) -> bool {
        matches!(
            self,
            Status::SmallReduction | Status::SmallStep | Status::SmallGradient
        )
    }
}

/// Result of an optimisation.
#[derive(Debug, Clone)]
pub struct Solution {
    pub x: Vec<f64>,
    /// Objective at `x` (for least squares: the sum of squared residuals).
    pub value: f64,
    pub status: Status,
    pub evaluations: usize,
}

/// Settings of [`levenberg_marquardt`]; the defaults are those of MINPACK's
/// `lmdif` as `scipy.optimize.leastsq` calls it: `ftol = xtol = 1.49012e-8`,
/// `gtol = 0`, initial step bound `factor = 100`, and a budget of
/// `200 (n + 1)` function evaluations where, as in `lmdif`, one Jacobian
/// counts as `n` evaluations.
#[derive(Debug, Clone, Copy)]
pub struct LmSettings {
    pub ftol: f64,
    pub xtol: f64,
    pub gtol: f64,
    pub factor: f64,
    /// Evaluation budget per parameter plus one.
    pub max_evals_per_param: usize,
}

impl Default for LmSettings {
    fn default() -> Self {
        LmSettings {
            ftol: 1.49012e-8,
            xtol: 1.49012e-8,
            gtol: 0.0,
            factor: 100.0,
            max_evals_per_param: 200,
        }
    }
}

/// Minimises `Σ r_i(p)²` by the trust-region Levenberg–Marquardt method of
/// J. J. Moré, "The Levenberg-Marquardt algorithm: implementation and
/// theory" (1978), as MINPACK implements it (`lmder`/`lmpar`): the step
/// solves `(JᵀJ + λ D²) δ = -Jᵀ r` with `λ` chosen so that `‖D δ‖` is about
/// the trust radius `Δ`, `D_j` the largest norm the `j`-th Jacobian column
/// has had, and `Δ` grown or shrunk by the ratio of actual to predicted
/// reduction. The dense linear algebra replaces MINPACK's pivoted QR (the
/// problems here have a handful of parameters). A non-finite trial point is
/// a failed step, as in MINPACK.
///
/// `residuals(p, r, jac)` writes the `m` residuals into `r` and, when `jac` is
/// given, the `m × n` Jacobian `∂r_i/∂p_j`.
pub fn levenberg_marquardt(
    p0: &[f64],
    m: usize,
    settings: LmSettings,
    mut residuals: impl FnMut(&[f64], &mut [f64], Option<&mut DMatrix<f64>>),
) -> Solution {
    let n = p0.len();
    let max_evals = settings.max_evals_per_param * (n + 1);
    let done = |x: &DVector<f64>, fnorm: f64, status, evaluations| Solution {
        x: x.as_slice().to_vec(),
        value: fnorm * fnorm,
        status,
        evaluations,
    };
    let mut x = DVector::from_column_slice(p0);
    if m < n || n == 0 {
        return done(&x, f64::NAN, Status::Failed, 0);
    }
    let mut f = DVector::zeros(m);
    let mut jac = DMatrix::zeros(m, n);
    let mut trial_f = DVector::zeros(m);
    residuals(x.as_slice(), f.as_mut_slice(), None);
    let mut nfev = 1;
    let mut fnorm = f.norm();
    if !fnorm.is_finite() {
        return done(&x, fnorm, Status::Failed, nfev);
    }
    let mut diag = DVector::zeros(n);
    let (mut par, mut delta, mut xnorm) = (0.0, 0.0, 0.0);
    let eps = f64::EPSILON;
    let mut first = true;
    loop {
        residuals(x.as_slice(), f.as_mut_slice(), Some(&mut jac));
        nfev += n;
        if jac.iter().any(|v| !v.is_finite()) {
            return done(&x, fnorm, Status::Failed, nfev);
        }
        let acnorm: Vec<f64> = (0..n).map(|j| jac.column(j).norm()).collect();
        if first {
            for j in 0..n {
                diag[j] = if acnorm[j] == 0.0 { 1.0 } else { acnorm[j] };
            }
            xnorm = diag.component_mul(&x).norm();
            delta = settings.factor * xnorm;
            if delta == 0.0 {
                delta = settings.factor;
            }
        }
        let jtf = jac.transpose() * &f;
        let gnorm = if fnorm == 0.0 {
            0.0
        } else {
            (0..n)
                .filter(|&j| acnorm[j] != 0.0)
                .map(|j| (jtf[j] / fnorm / acnorm[j]).abs())
                .fold(0.0, f64::max)
        };
        if gnorm <= settings.gtol {
            return done(&x, fnorm, Status::SmallGradient, nfev);
        }
        for j in 0..n {
            diag[j] = diag[j].max(acnorm[j]);
        }
        loop {
            let (new_par, lm_x) = lmpar(&jac, &f, &diag, delta, par);
            par = new_par;
            let step = -lm_x;
            let trial = &x + &step;
            let pnorm = diag.component_mul(&step).norm();
            if first {
                delta = delta.min(pnorm);
            }
            residuals(trial.as_slice(), trial_f.as_mut_slice(), None);
            nfev += 1;
            let fnorm1 = trial_f.norm();
            let actred = if 0.1 * fnorm1 < fnorm {
                1.0 - (fnorm1 / fnorm).powi(2)
            } else {
                -1.0
            };
            let temp1 = (&jac * &step).norm() / fnorm;
            let temp2 = par.sqrt() * pnorm / fnorm;
            let prered = temp1 * temp1 + temp2 * temp2 / 0.5;
            let dirder = -(temp1 * temp1 + temp2 * temp2);
            let ratio = if prered != 0.0 { actred / prered } else { 0.0 };
            if ratio <= 0.25 {
                let mut temp = if actred >= 0.0 {
                    0.5
                } else {
                    0.5 * dirder / (dirder + 0.5 * actred)
                };
                if 0.1 * fnorm1 >= fnorm || temp < 0.1 {
                    temp = 0.1;
                }
                delta = temp * delta.min(pnorm / 0.1);
                par /= temp;
            } else if par == 0.0 || ratio >= 0.75 {
                delta = pnorm / 0.5;
                par *= 0.5;
            }
            let success = ratio >= 1e-4;
            if success {
                x = trial;
                std::mem::swap(&mut f, &mut trial_f);
                xnorm = diag.component_mul(&x).norm();
                fnorm = fnorm1;
                first = false;
            }
            let small_reduction =
                actred.abs() <= settings.ftol && prered <= settings.ftol && 0.5 * ratio <= 1.0;
            if small_reduction {
                return done(&x, fnorm, Status::SmallReduction, nfev);
            }
            if delta <= settings.xtol * xnorm {
                return done(&x, fnorm, Status::SmallStep, nfev);
            }
            if nfev >= max_evals {
                return done(&x, fnorm, Status::Budget, nfev);
            }
            if (actred.abs() <= eps && prered <= eps && 0.5 * ratio <= 1.0)
                || delta <= eps * xnorm
                || gnorm <= eps
                || !delta.is_finite()
            {
                return done(&x, fnorm, Status::Stalled, nfev);
            }
            if success {
                break;
            }
        }
    }
}

/// Moré's `lmpar`: the damping `λ` (starting from `par`) for which the
/// step `δ(λ) = (JᵀJ + λD²)⁻¹ Jᵀ r` has `‖D δ‖` within 10% of `delta`, or
/// `λ = 0` if the Gauss–Newton step is already that short. Returns `(λ, δ)`;
/// the Levenberg–Marquardt step is `-δ`.
fn lmpar(
    jac: &DMatrix<f64>,
    f: &DVector<f64>,
    diag: &DVector<f64>,
    delta: f64,
    par: f64,
) -> (f64, DVector<f64>) {
    let n = diag.len();
    let jtj = jac.transpose() * jac;
    let jtf = jac.transpose() * f;
    let d2 = diag.component_mul(diag);
    // Gauss–Newton step (least squares; exactly zero singular values dropped).
    let svd = jac.clone().svd(true, true);
    let full_rank = svd.singular_values.iter().all(|&s| s > 0.0);
    let gn = svd.solve(f, 0.0).unwrap_or_else(|_| DVector::zeros(n));
    let mut dxnorm = diag.component_mul(&gn).norm();
    let mut fp = dxnorm - delta;
    if fp <= 0.1 * delta || !fp.is_finite() {
        return (0.0, gn);
    }
    // Length of L⁻¹ D² δ / ‖D δ‖ for a Cholesky factor L of a system matrix.
    let newton = |l: &nalgebra::Cholesky<f64, nalgebra::Dyn>, x: &DVector<f64>, dxnorm: f64| {
        let v = d2.component_mul(x) / dxnorm;
        l.l_dirty()
            .solve_lower_triangular(&v)
            .map(|w| w.norm_squared())
            .unwrap_or(f64::NAN)
    };
    let mut parl = 0.0;
    if full_rank && let Some(ch) = jtj.clone().cholesky() {
        let w2 = newton(&ch, &gn, dxnorm);
        if w2 > 0.0 && w2.is_finite() {
            parl = (fp / delta) / w2;
        }
    }
    let gnorm = jtf.component_div(diag).norm();
    let mut paru = gnorm / delta;
    if paru == 0.0 {
        paru = f64::MIN_POSITIVE / delta.min(0.1);
    }
    let mut par = par.max(parl).min(paru);
    if par == 0.0 {
        par = gnorm / dxnorm;
    }
    let mut x = gn;
    for iter in 1..=10 {
        if par == 0.0 {
            par = f64::MIN_POSITIVE.max(0.001 * paru);
        }
        let mut a = jtj.clone();
        for j in 0..n {
            a[(j, j)] += par * d2[j];
        }
        let Some(ch) = a.cholesky() else {
            return (par, x);
        };
        x = ch.solve(&jtf);
        dxnorm = diag.component_mul(&x).norm();
        let temp = fp;
        fp = dxnorm - delta;
        if fp.abs() <= 0.1 * delta || (parl == 0.0 && fp <= temp && temp < 0.0) || iter == 10 {
            break;
        }
        let w2 = newton(&ch, &x, dxnorm);
        if !(w2 > 0.0) || !w2.is_finite() {
            break;
        }
        let parc = (fp / delta) / w2;
        if fp > 0.0 {
            parl = parl.max(par);
        }
        if fp < 0.0 {
            paru = paru.min(par);
        }
        par = parl.max(par + parc);
    }
    (par, x)
}

/// Settings of [`lbfgs`]; the defaults are those of scipy's
/// `fmin_l_bfgs_b`: 10 correction pairs, `factr = 1e7`, `pgtol = 1e-5`,
/// at most 15000 iterations and 20 evaluations per line search.
#[derive(Debug, Clone, Copy)]
pub struct LbfgsSettings {
    /// Number of correction pairs kept.
    pub memory: usize,
    pub max_iterations: usize,
    /// Stop when `(f_k - f_{k+1}) / max(|f_k|, |f_{k+1}|, 1) <= ftol`
    /// (`factr · eps` in L-BFGS-B's terms).
    pub ftol: f64,
    /// Stop when the largest gradient component is at most this.
    pub gtol: f64,
    /// Evaluations allowed in one line search.
    pub max_line_search: usize,
}

impl Default for LbfgsSettings {
    fn default() -> Self {
        LbfgsSettings {
            memory: 10,
            max_iterations: 15000,
            ftol: 1e7 * f64::EPSILON,
            gtol: 1e-5,
            max_line_search: 20,
        }
    }
}

/// Minimises a smooth function by limited-memory BFGS (Nocedal 1980; Liu &
/// Nocedal 1989) with the Moré–Thuente line search ([`MoreThuente`]),
/// following the iteration of L-BFGS-B (Byrd, Lu, Nocedal & Zhu 1995;
/// Zhu et al. 1997) when no bound is active: the first step has length
/// `1/‖d‖`, later ones start at 1; a pair is skipped unless `sᵀy > ε·(-gᵀs)`;
/// a failed line search restarts from steepest descent once the memory is
/// not empty, and ends the run otherwise.
///
/// `f(x, grad)` returns the value and writes the gradient. A non-finite value
/// makes the line search back off.
pub fn lbfgs(
    x0: &[f64],
    settings: LbfgsSettings,
    mut f: impl FnMut(&[f64], &mut [f64]) -> f64,
) -> Solution {
    let n = x0.len();
    let mut x = x0.to_vec();
    let mut g = vec![0.0; n];
    let mut fx = f(&x, &mut g);
    let mut evals = 1;
    let result = |x: Vec<f64>, value, status, evaluations| Solution {
        x,
        value,
        status,
        evaluations,
    };
    if !fx.is_finite() {
        return result(x, fx, Status::Failed, evals);
    }
    let inf_norm = |g: &[f64]| g.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    if inf_norm(&g) <= settings.gtol {
        return result(x, fx, Status::SmallGradient, evals);
    }
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(u, v)| u * v).sum::<f64>();
    let mut s_hist: std::collections::VecDeque<Vec<f64>> = Default::default();
    let mut y_hist: std::collections::VecDeque<Vec<f64>> = Default::default();
    let mut theta = 1.0;
    let mut xn = vec![0.0; n];
    let mut gn = vec![0.0; n];
    let mut iter = 0;
    while iter < settings.max_iterations {
        // Search direction d = -H g (two-loop recursion, H0 = I / theta).
        let k = s_hist.len();
        let mut d = g.clone();
        let mut alpha = vec![0.0; k];
        for i in (0..k).rev() {
            alpha[i] = dot(&s_hist[i], &d) / dot(&y_hist[i], &s_hist[i]);
            for (dj, yj) in d.iter_mut().zip(&y_hist[i]) {
                *dj -= alpha[i] * yj;
            }
        }
        d.iter_mut().for_each(|v| *v /= theta);
        for i in 0..k {
            let beta = dot(&y_hist[i], &d) / dot(&y_hist[i], &s_hist[i]);
            for (dj, sj) in d.iter_mut().zip(&s_hist[i]) {
                *dj += (alpha[i] - beta) * sj;
            }
        }
        d.iter_mut().for_each(|v| *v = -*v);
        let gd0 = dot(&g, &d);
        let dnorm = dot(&d, &d).sqrt();
        let mut ok = gd0 < 0.0;
        let mut stp = if iter == 0 {
            (1.0 / dnorm).min(1e10)
        } else {
            1.0
        };
        let mut gd = gd0;
        let mut fnew = fx;
        if ok {
            let mut ls = MoreThuente::new(fx, gd0, stp, 1e10);
            let mut tries = 0;
            loop {
                for i in 0..n {
                    xn[i] = x[i] + stp * d[i];
                }
                fnew = f(&xn, &mut gn);
                evals += 1;
                tries += 1;
                gd = dot(&gn, &d);
                if !fnew.is_finite() || !gd.is_finite() {
                    // Outside the domain: retreat towards the best step so far.
                    stp = ls.retreat();
                    if tries >= settings.max_line_search {
                        ok = false;
                        break;
                    }
                    continue;
                }
                match ls.next(fnew, gd) {
                    LineSearch::Evaluate(next) => stp = next,
                    LineSearch::Done => break,
                }
                if tries >= settings.max_line_search {
                    ok = false;
                    break;
                }
            }
        }
        if !ok {
            if s_hist.is_empty() {
                return result(x, fx, Status::Failed, evals);
            }
            // Refresh the memory and retry from steepest descent.
            s_hist.clear();
            y_hist.clear();
            theta = 1.0;
            continue;
        }
        iter += 1;
        let fold = fx;
        let s: Vec<f64> = d.iter().map(|v| v * stp).collect();
        let y: Vec<f64> = (0..n).map(|i| gn[i] - g[i]).collect();
        std::mem::swap(&mut x, &mut xn);
        std::mem::swap(&mut g, &mut gn);
        fx = fnew;
        if inf_norm(&g) <= settings.gtol {
            return result(x, fx, Status::SmallGradient, evals);
        }
        if fold - fx <= settings.ftol * fold.abs().max(fx.abs()).max(1.0) {
            return result(x, fx, Status::SmallReduction, evals);
        }
        let dr = (gd - gd0) * stp;
        if dr > f64::EPSILON * (-gd0 * stp) {
            theta = dot(&y, &y) / dr;
            s_hist.push_back(s);
            y_hist.push_back(y);
            if s_hist.len() > settings.memory {
                s_hist.pop_front();
                y_hist.pop_front();
            }
        }
    }
    result(x, fx, Status::Budget, evals)
}

/// Minimises a smooth function over the box `[lo, hi]` by projected
/// limited-memory BFGS: the L-BFGS direction (Nocedal 1980) is taken over the
/// *free* variables — those not at a bound with the gradient pushing
/// outwards — and the step is projected back onto the box with an Armijo
/// backtracking search along the projection arc (Bertsekas, "Projected Newton
/// methods for optimization problems with simple constraints", SIAM J.
/// Control Optim. 1982; Kim, Sra & Dhillon, "Tackling box-constrained
/// optimization via a new projected quasi-Newton approach", SIAM J. Sci.
/// Comput. 2010). The memory is cleared whenever the free set changes.
/// L-BFGS-B (Byrd et al. 1995) reaches the same points with a Cauchy-point
/// search; this simpler scheme suffices for the small problems here.
///
/// Stops on a projected gradient below `gtol`, a relative reduction below
/// `ftol`, or `max_iterations`.
pub fn lbfgs_box(
    x0: &[f64],
    lo: &[f64],
    hi: &[f64],
    settings: LbfgsSettings,
    mut f: impl FnMut(&[f64], &mut [f64]) -> f64,
) -> Solution {
    let n = x0.len();
    let project = |x: &mut [f64]| {
        for i in 0..n {
            x[i] = x[i].clamp(lo[i], hi[i]);
        }
    };
    let mut x = x0.to_vec();
    project(&mut x);
    let mut g = vec![0.0; n];
    let mut fx = f(&x, &mut g);
    let mut evals = 1;
    let done = |x: Vec<f64>, value, status, evaluations| Solution {
        x,
        value,
        status,
        evaluations,
    };
    if !fx.is_finite() {
        return done(x, fx, Status::Failed, evals);
    }
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(u, v)| u * v).sum::<f64>();
    let free = |x: &[f64], g: &[f64]| -> Vec<bool> {
        (0..n)
            .map(|i| !((x[i] <= lo[i] && g[i] > 0.0) || (x[i] >= hi[i] && g[i] < 0.0)))
            .collect()
    };
    let mut s_hist: std::collections::VecDeque<Vec<f64>> = Default::default();
    let mut y_hist: std::collections::VecDeque<Vec<f64>> = Default::default();
    let mut active = free(&x, &g);
    let mut xn = vec![0.0; n];
    let mut gn = vec![0.0; n];
    for _ in 0..settings.max_iterations {
        let now = free(&x, &g);
        let pg = (0..n)
            .filter(|&i| now[i])
            .fold(0.0f64, |m, i| m.max(g[i].abs()));
        if pg <= settings.gtol {
            return done(x, fx, Status::SmallGradient, evals);
        }
        if now != active {
            s_hist.clear();
            y_hist.clear();
            active = now;
        }
        // Two-loop recursion on the free variables.
        let mut d: Vec<f64> = (0..n).map(|i| if active[i] { g[i] } else { 0.0 }).collect();
        let k = s_hist.len();
        let mut alpha = vec![0.0; k];
        for j in (0..k).rev() {
            alpha[j] = dot(&s_hist[j], &d) / dot(&y_hist[j], &s_hist[j]);
            for i in 0..n {
                d[i] -= alpha[j] * y_hist[j][i];
            }
        }
        let gamma = if k > 0 {
            dot(&s_hist[k - 1], &y_hist[k - 1]) / dot(&y_hist[k - 1], &y_hist[k - 1])
        } else {
            1.0 / dot(&d, &d).sqrt().max(1e-300)
        };
        d.iter_mut().for_each(|v| *v *= gamma);
        for j in 0..k {
            let beta = dot(&y_hist[j], &d) / dot(&y_hist[j], &s_hist[j]);
            for i in 0..n {
                d[i] += (alpha[j] - beta) * s_hist[j][i];
            }
        }
        for i in 0..n {
            d[i] = if active[i] { -d[i] } else { 0.0 };
        }
        if dot(&d, &g) >= 0.0 {
            // Not a descent direction: steepest descent on the free variables.
            s_hist.clear();
            y_hist.clear();
            for i in 0..n {
                d[i] = if active[i] { -g[i] } else { 0.0 };
            }
        }
        // Armijo backtracking along the projection arc.
        let mut step = 1.0;
        let mut accepted = false;
        for _ in 0..30 {
            for i in 0..n {
                xn[i] = x[i] + step * d[i];
            }
            project(&mut xn);
            let decrease: f64 = (0..n).map(|i| g[i] * (xn[i] - x[i])).sum();
            let fnew = f(&xn, &mut gn);
            evals += 1;
            if fnew.is_finite() && fnew <= fx + 1e-4 * decrease {
                let sv: Vec<f64> = (0..n).map(|i| xn[i] - x[i]).collect();
                let yv: Vec<f64> = (0..n).map(|i| gn[i] - g[i]).collect();
                let reduction = (fx - fnew) / fx.abs().max(fnew.abs()).max(1.0);
                std::mem::swap(&mut x, &mut xn);
                std::mem::swap(&mut g, &mut gn);
                fx = fnew;
                if dot(&sv, &yv) > 1e-12 * dot(&yv, &yv).sqrt() * dot(&sv, &sv).sqrt() {
                    s_hist.push_back(sv);
                    y_hist.push_back(yv);
                    if s_hist.len() > settings.memory {
                        s_hist.pop_front();
                        y_hist.pop_front();
                    }
                }
                if reduction <= settings.ftol {
                    return done(x, fx, Status::SmallReduction, evals);
                }
                accepted = true;
                break;
            }
            step *= 0.5;
        }
        if !accepted {
            return done(x, fx, Status::SmallStep, evals);
        }
    }
    done(x, fx, Status::Budget, evals)
}

/// What the line search wants next.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LineSearch {
    /// Evaluate the function at this step length.
    Evaluate(f64),
    /// Accept the last step (converged, or no further progress possible).
    Done,
}

/// The line search of Moré & Thuente, "Line search algorithms with
/// guaranteed sufficient decrease" (ACM TOMS 1994), as MINPACK-2's `dcsrch`
/// (sufficient decrease `ftol = 1e-3`, curvature `gtol = 0.9`, interval
/// tolerance `xtol = 0.1`, the constants L-BFGS-B uses). It finds a step
/// satisfying the strong Wolfe conditions by safeguarded cubic and quadratic
/// interpolation.
#[derive(Debug, Clone)]
pub struct MoreThuente {
    finit: f64,
    ginit: f64,
    gtest: f64,
    stage: u8,
    brackt: bool,
    width: f64,
    width1: f64,
    stx: f64,
    fx: f64,
    gx: f64,
    sty: f64,
    fy: f64,
    gy: f64,
    stmin: f64,
    stmax: f64,
    stp: f64,
    stpmax: f64,
}

impl MoreThuente {
    const FTOL: f64 = 1e-3;
    const GTOL: f64 = 0.9;
    const XTOL: f64 = 0.1;

    /// Starts a search from value `f0` and slope `g0 < 0`, first trying `stp`.
    pub fn new(f0: f64, g0: f64, stp: f64, stpmax: f64) -> Self {
        MoreThuente {
            finit: f0,
            ginit: g0,
            gtest: Self::FTOL * g0,
            stage: 1,
            brackt: false,
            width: stpmax,
            width1: stpmax / 0.5,
            stx: 0.0,
            fx: f0,
            gx: g0,
            sty: 0.0,
            fy: f0,
            gy: g0,
            stmin: 0.0,
            stmax: stp + 4.0 * stp,
            stp,
            stpmax,
        }
    }

    /// The last requested step left the function's domain: returns a
    /// shorter step halfway back to the best step so far, and never tries
    /// beyond the failed one again.
    pub fn retreat(&mut self) -> f64 {
        self.stpmax = self.stp;
        self.stmax = self.stmax.min(self.stp);
        self.stp = self.stx + 0.5 * (self.stp - self.stx);
        self.stp
    }

    /// Feeds the value `f` and slope `g` at the last requested step.
    pub fn next(&mut self, f: f64, g: f64) -> LineSearch {
        let ftest = self.finit + self.stp * self.gtest;
        if self.stage == 1 && f <= ftest && g >= 0.0 {
            self.stage = 2;
        }
        let stp = self.stp;
        if (self.brackt
            && (stp <= self.stmin
                || stp >= self.stmax
                || self.stmax - self.stmin <= Self::XTOL * self.stmax))
            || (stp == self.stpmax && f <= ftest && g <= self.gtest)
            || (stp == 0.0 && (f > ftest || g >= self.gtest))
        {
            return LineSearch::Done;
        }
        if f <= ftest && g.abs() <= Self::GTOL * (-self.ginit) {
            return LineSearch::Done;
        }
        let gtest = self.gtest;
        if self.stage == 1 && f <= self.fx && f > ftest {
            // Modified function ψ(α) = f(α) - f(0) - α·ftol·f'(0).
            let mut st = Step {
                stx: self.stx,
                fx: self.fx - self.stx * gtest,
                dx: self.gx - gtest,
                sty: self.sty,
                fy: self.fy - self.sty * gtest,
                dy: self.gy - gtest,
                brackt: self.brackt,
            };
            self.stp = st.step(stp, f - stp * gtest, g - gtest, self.stmin, self.stmax);
            self.stx = st.stx;
            self.sty = st.sty;
            self.fx = st.fx + st.stx * gtest;
            self.fy = st.fy + st.sty * gtest;
            self.gx = st.dx + gtest;
            self.gy = st.dy + gtest;
            self.brackt = st.brackt;
        } else {
            let mut st = Step {
                stx: self.stx,
                fx: self.fx,
                dx: self.gx,
                sty: self.sty,
                fy: self.fy,
                dy: self.gy,
                brackt: self.brackt,
            };
            self.stp = st.step(stp, f, g, self.stmin, self.stmax);
            self.stx = st.stx;
            self.sty = st.sty;
            self.fx = st.fx;
            self.fy = st.fy;
            self.gx = st.dx;
            self.gy = st.dy;
            self.brackt = st.brackt;
        }
        if self.brackt {
            if (self.sty - self.stx).abs() >= 0.66 * self.width1 {
                self.stp = self.stx + 0.5 * (self.sty - self.stx);
            }
            self.width1 = self.width;
            self.width = (self.sty - self.stx).abs();
            self.stmin = self.stx.min(self.sty);
            self.stmax = self.stx.max(self.sty);
        } else {
            self.stmin = self.stp + 1.1 * (self.stp - self.stx);
            self.stmax = self.stp + 4.0 * (self.stp - self.stx);
        }
        self.stp = self.stp.max(0.0).min(self.stpmax);
        if self.brackt
            && (self.stp <= self.stmin
                || self.stp >= self.stmax
                || self.stmax - self.stmin <= Self::XTOL * self.stmax)
        {
            self.stp = self.stx;
        }
        LineSearch::Evaluate(self.stp)
    }
}

/// The interval of uncertainty of [`MoreThuente`] (`dcstep`).
struct Step {
    stx: f64,
    fx: f64,
    dx: f64,
    sty: f64,
    fy: f64,
    dy: f64,
    brackt: bool,
}

impl Step {
    /// Safeguarded step from the trial `(stp, fp, dp)`; updates the interval.
    fn step(&mut self, stp: f64, fp: f64, dp: f64, stpmin: f64, stpmax: f64) -> f64 {
        let (stx, fx, dx) = (self.stx, self.fx, self.dx);
        let sgnd = dp * (dx / dx.abs());
        let stpf;
        if fp > fx {
            let theta = 3.0 * (fx - fp) / (stp - stx) + dx + dp;
            let s = theta.abs().max(dx.abs()).max(dp.abs());
            let mut gamma = s * ((theta / s).powi(2) - (dx / s) * (dp / s)).sqrt();
            if stp < stx {
                gamma = -gamma;
            }
            let p = (gamma - dx) + theta;
            let q = ((gamma - dx) + gamma) + dp;
            let stpc = stx + p / q * (stp - stx);
            let stpq = stx + ((dx / ((fx - fp) / (stp - stx) + dx)) / 2.0) * (stp - stx);
            stpf = if (stpc - stx).abs() < (stpq - stx).abs() {
                stpc
            } else {
                stpc + (stpq - stpc) / 2.0
            };
            self.brackt = true;
        } else if sgnd < 0.0 {
            let theta = 3.0 * (fx - fp) / (stp - stx) + dx + dp;
            let s = theta.abs().max(dx.abs()).max(dp.abs());
            let mut gamma = s * ((theta / s).powi(2) - (dx / s) * (dp / s)).sqrt();
            if stp > stx {
                gamma = -gamma;
            }
            let p = (gamma - dp) + theta;
            let q = ((gamma - dp) + gamma) + dx;
            let stpc = stp + p / q * (stx - stp);
            let stpq = stp + (dp / (dp - dx)) * (stx - stp);
            stpf = if (stpc - stp).abs() > (stpq - stp).abs() {
                stpc
            } else {
                stpq
            };
            self.brackt = true;
        } else if dp.abs() < dx.abs() {
            let theta = 3.0 * (fx - fp) / (stp - stx) + dx + dp;
            let s = theta.abs().max(dx.abs()).max(dp.abs());
            let mut gamma = s * 0f64.max((theta / s).powi(2) - (dx / s) * (dp / s)).sqrt();
            if stp > stx {
                gamma = -gamma;
            }
            let p = (gamma - dp) + theta;
            let q = (gamma + (dx - dp)) + gamma;
            let r = p / q;
            let stpc = if r < 0.0 && gamma != 0.0 {
                stp + r * (stx - stp)
            } else if stp > stx {
                stpmax
            } else {
                stpmin
            };
            let stpq = stp + (dp / (dp - dx)) * (stx - stp);
            if self.brackt {
                let mut v = if (stpc - stp).abs() < (stpq - stp).abs() {
                    stpc
                } else {
                    stpq
                };
                v = if stp > stx {
                    v.min(stp + 0.66 * (self.sty - stp))
                } else {
                    v.max(stp + 0.66 * (self.sty - stp))
                };
                stpf = v;
            } else {
                let v = if (stpc - stp).abs() > (stpq - stp).abs() {
                    stpc
                } else {
                    stpq
                };
                stpf = v.min(stpmax).max(stpmin);
            }
        } else if self.brackt {
            let (sty, fy, dy) = (self.sty, self.fy, self.dy);
            let theta = 3.0 * (fp - fy) / (sty - stp) + dy + dp;
            let s = theta.abs().max(dy.abs()).max(dp.abs());
            let mut gamma = s * ((theta / s).powi(2) - (dy / s) * (dp / s)).sqrt();
            if stp > sty {
                gamma = -gamma;
            }
            let p = (gamma - dp) + theta;
            let q = ((gamma - dp) + gamma) + dy;
            stpf = stp + p / q * (sty - stp);
        } else if stp > stx {
            stpf = stpmax;
        } else {
            stpf = stpmin;
        }
        if fp > fx {
            self.sty = stp;
            self.fy = fp;
            self.dy = dp;
        } else {
            if sgnd < 0.0 {
                self.sty = stx;
                self.fy = fx;
                self.dy = dx;
            }
            self.stx = stp;
            self.fx = fp;
            self.dx = dp;
        }
        stpf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rosenbrock as least squares: r = (10 (y - x²), 1 - x), minimum at (1, 1).
    #[test]
    fn lm_solves_rosenbrock() {
        let sol = levenberg_marquardt(&[-1.2, 1.0], 2, LmSettings::default(), |p, r, j| {
            r[0] = 10.0 * (p[1] - p[0] * p[0]);
            r[1] = 1.0 - p[0];
            if let Some(j) = j {
                j[(0, 0)] = -20.0 * p[0];
                j[(0, 1)] = 10.0;
                j[(1, 0)] = -1.0;
                j[(1, 1)] = 0.0;
            }
        });
        assert!(sol.status.converged(), "{sol:?}");
        assert!(
            (sol.x[0] - 1.0).abs() < 1e-6 && (sol.x[1] - 1.0).abs() < 1e-6,
            "{sol:?}"
        );
    }

    /// Exponential decay fit to exact data recovers the parameters.
    #[test]
    fn lm_fits_exponential() {
        let t: Vec<f64> = (0..20).map(|i| i as f64 * 0.5).collect();
        let y: Vec<f64> = t.iter().map(|t| 2.0 * (-0.7 * t).exp() + 0.3).collect();
        let sol = levenberg_marquardt(
            &[1.0, 0.1, 0.0],
            t.len(),
            LmSettings::default(),
            |p, r, mut j| {
                for i in 0..t.len() {
                    let e = (-p[1] * t[i]).exp();
                    r[i] = p[0] * e + p[2] - y[i];
                    if let Some(j) = j.as_deref_mut() {
                        j[(i, 0)] = e;
                        j[(i, 1)] = -p[0] * t[i] * e;
                        j[(i, 2)] = 1.0;
                    }
                }
            },
        );
        assert!(sol.status.converged(), "{sol:?}");
        for (got, want) in sol.x.iter().zip([2.0, 0.7, 0.3]) {
            assert!((got - want).abs() < 1e-6, "{sol:?}");
        }
    }

    #[test]
    fn lm_reports_failure_on_nan_start() {
        let sol = levenberg_marquardt(&[1.0], 1, LmSettings::default(), |_, r, _| r[0] = f64::NAN);
        assert_eq!(sol.status, Status::Failed);
    }

    #[test]
    fn lbfgs_minimises_rosenbrock() {
        let sol = lbfgs(&[-1.2, 1.0], LbfgsSettings::default(), |x, g| {
            let (a, b) = (x[0], x[1]);
            g[0] = -400.0 * a * (b - a * a) - 2.0 * (1.0 - a);
            g[1] = 200.0 * (b - a * a);
            100.0 * (b - a * a).powi(2) + (1.0 - a).powi(2)
        });
        assert!(sol.status.converged(), "{sol:?}");
        assert!(
            (sol.x[0] - 1.0).abs() < 1e-3 && (sol.x[1] - 1.0).abs() < 1e-3,
            "{sol:?}"
        );
    }

    /// A quadratic whose unconstrained minimum lies outside the box: the
    /// solution sits on the bound in one coordinate, inside in the other.
    #[test]
    fn lbfgs_box_respects_bounds() {
        let sol = lbfgs_box(
            &[0.5, 0.5],
            &[0.0, 0.0],
            &[1.0, 1.0],
            LbfgsSettings::default(),
            |x, g| {
                g[0] = 2.0 * (x[0] - 1.5);
                g[1] = 2.0 * (x[1] - 0.3);
                (x[0] - 1.5).powi(2) + (x[1] - 0.3).powi(2)
            },
        );
        assert!(sol.status.converged(), "{sol:?}");
        assert!(
            (sol.x[0] - 1.0).abs() < 1e-9 && (sol.x[1] - 0.3).abs() < 1e-6,
            "{sol:?}"
        );
        // Rosenbrock inside a box that contains its minimum.
        let sol = lbfgs_box(
            &[-1.2, 1.0],
            &[-2.0, -2.0],
            &[2.0, 2.0],
            LbfgsSettings::default(),
            |x, g| {
                let (a, b) = (x[0], x[1]);
                g[0] = -400.0 * a * (b - a * a) - 2.0 * (1.0 - a);
                g[1] = 200.0 * (b - a * a);
                100.0 * (b - a * a).powi(2) + (1.0 - a).powi(2)
            },
        );
        assert!(
            (sol.x[0] - 1.0).abs() < 1e-3 && (sol.x[1] - 1.0).abs() < 1e-3,
            "{sol:?}"
        );
    }

    #[test]
    fn lbfgs_stays_inside_the_domain() {
        // f = x - ln x, minimum at 1; undefined for x <= 0.
        let sol = lbfgs(&[5.0], LbfgsSettings::default(), |x, g| {
            g[0] = 1.0 - 1.0 / x[0];
            if x[0] > 0.0 {
                x[0] - x[0].ln()
            } else {
                f64::NAN
            }
        });
        assert!(sol.status.converged(), "{sol:?}");
        assert!((sol.x[0] - 1.0).abs() < 1e-3, "{sol:?}");
    }
}
