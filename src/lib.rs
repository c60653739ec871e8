//! foresight: hyperparameter tuning of deep networks that looks ahead.
//!
//! A training run streams its per-epoch validation score to a learning-curve
//! predictor ([`curve`]), which extrapolates the curve with a Bayesian
//! ensemble of parametric families (Domhan, Springenberg & Hutter, IJCAI
//! 2015) and says how likely the run is to beat the best one so far; runs
//! that are unlikely to are stopped.
//!
//! See `docs/ARCHITECTURE.md` for how the modules fit together.

// `!(x > 0.0)` is how this crate says "not positive, or NaN": the NaN case
// is the point, so the negated comparisons stay.
#![allow(clippy::neg_cmp_op_on_partial_ord)]

pub mod acquisition;
pub mod curve;
pub mod curveset;
pub mod error;
pub mod gp;
pub mod journal;
pub mod mcmc;
pub mod optim;
pub mod policy;
pub mod progress;
pub mod protocol;
pub mod replay;
pub mod report;
pub mod sampler;
pub mod seed;
pub mod space;
pub mod stats;
pub mod trainable;
pub mod tuner;

pub use error::{Error, Result};

/// The README's examples, compiled and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
