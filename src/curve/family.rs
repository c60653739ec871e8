//! The parametric learning-curve families of Domhan, Springenberg & Hutter,
//! "Speeding up automatic hyperparameter optimization of deep neural networks
//! by extrapolation of learning curves" (IJCAI 2015), Table 1 — the eleven
//! that their reference implementation (automl/pylearningcurvepredictor,
//! `curvefunctions.py`) combines for its termination criterion.
//!
//! Every family is a function `f(x; θ)` of the epoch `x >= 1`, written for a
//! metric where larger is better (the predictor transforms other metrics
//! first). The starting values of the least-squares fits are the reference's
//! `model_defaults` (1.0 where it has none, as the reference does).
//!
//! | family | `f(x; θ)` | θ (start) |
//! |---|---|---|
//! | vapor pressure | `exp(a + b/x + c ln x)` | a=-0.622028, b=-0.470050, c=0.042322 |
//! | ilog2 | `c - a / ln(x + 1)` | c=0.78, a=0.43 |
//! | Weibull | `α - (α - β) exp(-(κx)^δ)` | α=0.7, β=0.1, κ=0.01, δ=1 |
//! | pow3 | `c - a x^(-α)` | c=0.84, a=0.52, α=0.01 |
//! | pow4 | `c - (a x + b)^(-α)` | c=0.8, a=200, b=0, α=0.1 |
//! | log-log linear | `ln(a ln x + b)` | a=1, b=1 |
//! | MMF (Morgan-Mercer-Flodin) | `α - (α - β) / (1 + (κx)^δ)` | α=0.7, β=0.1, κ=0.01, δ=5 |
//! | Janoschek | `α - (α - β) exp(-κ x^δ)` | α=0.73, β=0.07, κ=0.355, δ=0.46 |
//! | Hill (zero background) | `θ x^η / (κ^η + x^η)` | θ=0.772320, η=0.586449, κ=2.460843 |
//! | log power | `a / (1 + (x / e^b)^c)` | a=0.77, b=2.98, c=-0.51 |
//! | exp4 | `c - exp(-a x^α + b)` | c=0.7, a=0.8, b=-0.8, α=0.3 |
//!
//! Outside a family's domain (a negative base under a fractional power, the
//! logarithm of a negative number) the value is `NaN`, as in the reference;
//! the prior and the likelihood treat `NaN` as impossible.

/// One epoch at which families are evaluated, with the logarithms they need
/// precomputed (the MCMC evaluates every family at the same epochs millions
/// of times).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Epoch {
    pub x: f64,
    pub ln_x: f64,
    /// `ln(x + 1)`, for ilog2.
    pub ln_x1: f64,
}

impl Epoch {
    pub fn new(x: f64) -> Self {
        Epoch {
            x,
            ln_x: x.ln(),
            ln_x1: (x + 1.0).ln(),
        }
    }
}

/// A parametric learning-curve family.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    Vap,
    Ilog2,
    Weibull,
    Pow3,
    Pow4,
    LogLogLinear,
    Mmf,
    Janoschek,
    Hill,
    LogPower,
    Exp4,
}

impl Family {
    /// The eleven families, in the reference's order.
    pub const ALL: [Family; 11] = [
        Family::Vap,
        Family::Ilog2,
        Family::Weibull,
        Family::Pow3,
        Family::Pow4,
        Family::LogLogLinear,
        Family::Mmf,
        Family::Janoschek,
        Family::Hill,
        Family::LogPower,
        Family::Exp4,
    ];

    /// The reference implementation's name of the family.
    pub fn name(self) -> &'static str {
        match self {
            Family::Vap => "vap",
            Family::Ilog2 => "ilog2",
            Family::Weibull => "weibull",
            Family::Pow3 => "pow3",
            Family::Pow4 => "pow4",
            Family::LogLogLinear => "loglog_linear",
            Family::Mmf => "mmf",
            Family::Janoschek => "janoschek",
            Family::Hill => "dr_hill_zero_background",
            Family::LogPower => "log_power",
            Family::Exp4 => "exp4",
        }
    }

    /// Looks a family up by its reference name.
    pub fn from_name(name: &str) -> Option<Family> {
        Family::ALL.into_iter().find(|f| f.name() == name)
    }

    /// Parameter names, in the order of [`Family::start`].
    pub fn param_names(self) -> &'static [&'static str] {
        match self {
            Family::Vap => &["a", "b", "c"],
            Family::Ilog2 => &["c", "a"],
            Family::Weibull | Family::Mmf => &["alpha", "beta", "kappa", "delta"],
            Family::Pow3 => &["c", "a", "alpha"],
            Family::Pow4 | Family::Exp4 => &["c", "a", "b", "alpha"],
            Family::LogLogLinear => &["a", "b"],
            Family::Janoschek => &["alpha", "beta", "kappa", "delta"],
            Family::Hill => &["theta", "eta", "kappa"],
            Family::LogPower => &["a", "b", "c"],
        }
    }

    /// Number of parameters.
    pub fn n_params(self) -> usize {
        self.param_names().len()
    }

    /// Starting values of the least-squares fit (the reference's defaults).
    pub fn start(self) -> &'static [f64] {
        match self {
            Family::Vap => &[-0.622028, -0.470050, 0.042322],
            Family::Ilog2 => &[0.78, 0.43],
            Family::Weibull => &[0.7, 0.1, 0.01, 1.0],
            Family::Pow3 => &[0.84, 0.52, 0.01],
            Family::Pow4 => &[0.8, 200.0, 0.0, 0.1],
            Family::LogLogLinear => &[1.0, 1.0],
            Family::Mmf => &[0.7, 0.1, 0.01, 5.0],
            Family::Janoschek => &[0.73, 0.07, 0.355, 0.46],
            Family::Hill => &[0.772320, 0.586449, 2.460843],
            Family::LogPower => &[0.77, 2.98, -0.51],
            Family::Exp4 => &[0.7, 0.8, -0.8, 0.3],
        }
    }

    /// `f(x; p)`.
    #[inline]
    pub fn eval(self, p: &[f64], e: &Epoch) -> f64 {
        let x = e.x;
        match self {
            Family::Vap => (p[0] + p[1] / x + p[2] * e.ln_x).exp(),
            Family::Ilog2 => p[0] - p[1] / e.ln_x1,
            Family::Weibull => {
                let (al, be, ka, de) = (p[0], p[1], p[2], p[3]);
                al - (al - be) * (-pow(ka * x, de)).exp()
            }
            Family::Pow3 => p[0] - p[1] * (-p[2] * e.ln_x).exp(),
            Family::Pow4 => p[0] - pow(p[1] * x + p[2], -p[3]),
            Family::LogLogLinear => (p[0] * e.ln_x + p[1]).ln(),
            Family::Mmf => {
                let (al, be, ka, de) = (p[0], p[1], p[2], p[3]);
                al - (al - be) / (1.0 + pow(ka * x, de))
            }
            Family::Janoschek => {
                let (al, be, ka, de) = (p[0], p[1], p[2], p[3]);
                al - (al - be) * (-ka * (de * e.ln_x).exp()).exp()
            }
            Family::Hill => {
                let (th, eta, ka) = (p[0], p[1], p[2]);
                let xe = (eta * e.ln_x).exp();
                th * xe / (pow(ka, eta) + xe)
            }
            Family::LogPower => p[0] / (1.0 + (p[2] * (e.ln_x - p[1])).exp()),
            Family::Exp4 => p[0] - (-p[1] * (p[3] * e.ln_x).exp() + p[2]).exp(),
        }
    }

    /// `f(x; p)` and its gradient with respect to `p` (written into `grad`).
    pub fn eval_grad(self, p: &[f64], e: &Epoch, grad: &mut [f64]) -> f64 {
        let (x, lx) = (e.x, e.ln_x);
        match self {
            Family::Vap => {
                let f = (p[0] + p[1] / x + p[2] * lx).exp();
                grad[0] = f;
                grad[1] = f / x;
                grad[2] = f * lx;
                f
            }
            Family::Ilog2 => {
                grad[0] = 1.0;
                grad[1] = -1.0 / e.ln_x1;
                p[0] - p[1] / e.ln_x1
            }
            Family::Weibull => {
                let (al, be, ka, de) = (p[0], p[1], p[2], p[3]);
                let u = pow(ka * x, de);
                let ex = (-u).exp();
                grad[0] = 1.0 - ex;
                grad[1] = ex;
                grad[2] = (al - be) * ex * de * u / ka;
                grad[3] = (al - be) * ex * u * (ka * x).ln();
                al - (al - be) * ex
            }
            Family::Pow3 => {
                let xa = (-p[2] * lx).exp();
                grad[0] = 1.0;
                grad[1] = -xa;
                grad[2] = p[1] * xa * lx;
                p[0] - p[1] * xa
            }
            Family::Pow4 => {
                let v = p[1] * x + p[2];
                let pv = pow(v, -p[3]);
                grad[0] = 1.0;
                grad[1] = p[3] * pv / v * x;
                grad[2] = p[3] * pv / v;
                grad[3] = pv * v.ln();
                p[0] - pv
            }
            Family::LogLogLinear => {
                let v = p[0] * lx + p[1];
                grad[0] = lx / v;
                grad[1] = 1.0 / v;
                v.ln()
            }
            Family::Mmf => {
                let (al, be, ka, de) = (p[0], p[1], p[2], p[3]);
                let u = pow(ka * x, de);
                let d = 1.0 + u;
                grad[0] = u / d;
                grad[1] = 1.0 / d;
                grad[2] = (al - be) * u * de / (ka * d * d);
                grad[3] = (al - be) * u * (ka * x).ln() / (d * d);
                al - (al - be) / d
            }
            Family::Janoschek => {
                let (al, be, ka, de) = (p[0], p[1], p[2], p[3]);
                let u = (de * lx).exp();
                let ex = (-ka * u).exp();
                grad[0] = 1.0 - ex;
                grad[1] = ex;
                grad[2] = (al - be) * ex * u;
                grad[3] = (al - be) * ex * ka * u * lx;
                al - (al - be) * ex
            }
            Family::Hill => {
                let (th, eta, ka) = (p[0], p[1], p[2]);
                let xe = (eta * lx).exp();
                let ke = pow(ka, eta);
                let d = ke + xe;
                grad[0] = xe / d;
                grad[1] = th * xe * ke * (lx - ka.ln()) / (d * d);
                grad[2] = -th * xe * ke * eta / (ka * d * d);
                th * xe / d
            }
            Family::LogPower => {
                let (a, b, c) = (p[0], p[1], p[2]);
                let u = (c * (lx - b)).exp();
                let d = 1.0 + u;
                grad[0] = 1.0 / d;
                grad[1] = a * c * u / (d * d);
                grad[2] = -a * u * (lx - b) / (d * d);
                a / d
            }
            Family::Exp4 => {
                let (c, a, b, al) = (p[0], p[1], p[2], p[3]);
                let xa = (al * lx).exp();
                let ex = (-a * xa + b).exp();
                grad[0] = 1.0;
                grad[1] = ex * xa;
                grad[2] = -ex;
                grad[3] = ex * a * xa * lx;
                c - ex
            }
        }
    }
}

/// `base^e` with numpy's conventions for the cases that matter here:
/// a negative base under a non-integer power is `NaN`.
#[inline]
fn pow(base: f64, e: f64) -> f64 {
    base.powf(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values at x = 1, 2, 10 with the starting parameters, computed by hand
    /// from the formulas in the module table.
    #[test]
    fn formulas_at_start_values() {
        let cases: [(Family, f64, f64); 6] = [
            (Family::Pow3, 1.0, 0.84 - 0.52),
            (Family::Pow3, 10.0, 0.84 - 0.52 * 10f64.powf(-0.01)),
            (Family::Ilog2, 2.0, 0.78 - 0.43 / 3f64.ln()),
            (
                Family::Vap,
                2.0,
                (-0.622028 - 0.470050 / 2.0 + 0.042322 * 2f64.ln()).exp(),
            ),
            (Family::Weibull, 10.0, 0.7 - 0.6 * (-(0.1f64)).exp()),
            (Family::Mmf, 10.0, 0.7 - 0.6 / (1.0 + 0.1f64.powi(5))),
        ];
        for (f, x, want) in cases {
            let got = f.eval(f.start(), &Epoch::new(x));
            assert!(
                (got - want).abs() < 1e-12,
                "{f:?}({x}) = {got}, want {want}"
            );
        }
        let e = Epoch::new(4.0);
        let want =
            0.772320 * 4f64.powf(0.586449) / (2.460843f64.powf(0.586449) + 4f64.powf(0.586449));
        assert!((Family::Hill.eval(Family::Hill.start(), &e) - want).abs() < 1e-12);
        let want = 0.77 / (1.0 + (4.0 / 2.98f64.exp()).powf(-0.51));
        assert!((Family::LogPower.eval(Family::LogPower.start(), &e) - want).abs() < 1e-12);
        let want = 0.7 - (-0.8 * 4f64.powf(0.3) - 0.8).exp();
        assert!((Family::Exp4.eval(Family::Exp4.start(), &e) - want).abs() < 1e-12);
        let want = 0.73 - (0.73 - 0.07) * (-0.355 * 4f64.powf(0.46)).exp();
        assert!((Family::Janoschek.eval(Family::Janoschek.start(), &e) - want).abs() < 1e-12);
        let want = 0.8 - (800.0f64).powf(-0.1);
        assert!((Family::Pow4.eval(Family::Pow4.start(), &e) - want).abs() < 1e-12);
        let want = (4f64.ln() + 1.0).ln();
        assert!((Family::LogLogLinear.eval(Family::LogLogLinear.start(), &e) - want).abs() < 1e-12);
    }

    /// Every analytic gradient agrees with central finite differences.
    #[test]
    fn gradients_match_finite_differences() {
        // Parameters away from the starting values so that every term matters.
        let params: [(Family, &[f64]); 11] = [
            (Family::Vap, &[-0.5, -0.3, 0.1]),
            (Family::Ilog2, &[0.8, 0.3]),
            (Family::Weibull, &[0.8, 0.2, 0.15, 1.3]),
            (Family::Pow3, &[0.9, 0.5, 0.4]),
            (Family::Pow4, &[0.9, 2.0, 0.5, 0.3]),
            (Family::LogLogLinear, &[0.3, 1.2]),
            (Family::Mmf, &[0.8, 0.2, 0.2, 1.5]),
            (Family::Janoschek, &[0.8, 0.2, 0.3, 0.7]),
            (Family::Hill, &[0.8, 0.9, 3.0]),
            (Family::LogPower, &[0.8, 1.5, -0.7]),
            (Family::Exp4, &[0.8, 0.6, -0.5, 0.4]),
        ];
        for (f, p) in params {
            for x in [1.0, 3.0, 17.0, 50.0] {
                let e = Epoch::new(x);
                let mut g = vec![0.0; f.n_params()];
                let v = f.eval_grad(p, &e, &mut g);
                assert!((v - f.eval(p, &e)).abs() < 1e-14);
                for i in 0..p.len() {
                    let h = 1e-6 * p[i].abs().max(1e-3);
                    let mut hi = p.to_vec();
                    let mut lo = p.to_vec();
                    hi[i] += h;
                    lo[i] -= h;
                    let fd = (f.eval(&hi, &e) - f.eval(&lo, &e)) / (2.0 * h);
                    assert!(
                        (fd - g[i]).abs() <= 1e-6 * (1.0 + fd.abs()),
                        "{f:?} d/d{} at x={x}: analytic {} vs numeric {fd}",
                        f.param_names()[i],
                        g[i]
                    );
                }
            }
        }
    }

    #[test]
    fn names_round_trip_and_match_parameter_counts() {
        for f in Family::ALL {
            assert_eq!(Family::from_name(f.name()), Some(f));
            assert_eq!(f.start().len(), f.n_params());
        }
        assert_eq!(Family::from_name("nope"), None);
    }

    #[test]
    fn outside_the_domain_is_nan() {
        let e = Epoch::new(3.0);
        // ln of a negative number.
        assert!(Family::LogLogLinear.eval(&[-1.0, 0.1], &e).is_nan());
        // Negative base under a fractional power.
        assert!(Family::Pow4.eval(&[0.8, -1.0, 0.0, 0.5], &e).is_nan());
    }
}
