//! foresight: hyperparameter tuning of deep networks that looks ahead.
//!
//! A training run streams its per-epoch validation score to a learning-curve
//! predictor ([`curve`]), which extrapolates the curve with a Bayesian
//! ensemble of parametric families (Domhan, Springenberg & Hutter, IJCAI
//! 2015) and says how likely the run is to beat the best one so far; runs
//! that are unlikely to are stopped.
//!
//! Start with [`prelude`]; `docs/ARCHITECTURE.md` says how the modules fit
//! together. Features: `bars` (progress bars, indicatif) and `plots` (SVG
//! figures, plotters), both on by default; without them the library
//! compiles neither (progress is then printed as plain lines).

// `!(x > 0.0)` is how this crate says "not positive, or NaN": the NaN case
// is the point, so the negated comparisons stay.
#![allow(clippy::neg_cmp_op_on_partial_ord)]

pub mod acquisition;
pub mod curve;
pub mod error;
pub mod gp;
pub mod mcmc;
pub mod observe;
pub mod optim;
#[cfg(feature = "plots")]
pub mod plot;
pub mod policy;
pub mod prelude;
pub mod report;
pub mod sampler;
pub mod seed;
pub mod space;
pub mod spec;
pub mod stats;
pub mod storage;
pub mod study;
pub mod trial;
pub mod tuner;

pub use error::{Error, Result};

/// The README's examples, compiled and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
