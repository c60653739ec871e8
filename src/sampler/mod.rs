//! Samplers propose configurations (`ask`) and learn from results (`tell`).
//! They *minimise*: a study that maximises tells them the negated value.
//!
//! * [`GpSampler`] — Bayesian optimisation with a Gaussian process
//!   ([`crate::gp`]) and either one acquisition function or a portfolio
//!   chosen online by GP-Hedge (Hoffman, Brochu & de Freitas, "Portfolio
//!   allocation for Bayesian optimization", UAI 2011): every acquisition
//!   nominates its maximiser, one nominee is chosen with probability
//!   `softmax(η · gains)`, and after the GP is refitted each arm's gain grows
//!   by the reward of its own last nominee, `-μ(x_k)` in standardised units
//!   (rewards are posterior means, as in the paper; we minimise). The chosen
//!   arm, the probabilities and the gains of every step are kept in
//!   [`GpSampler::history`].
//! * [`RandomSampler`] — uniform over the encoded cube.
//!
//! Both start with scrambled Sobol points (the GP sampler's initial design).
//! While evaluations are pending (parallel workers), the GP sampler adds a
//! fantasy observation at each pending point before maximising (the kriging
//! believer, `y = μ(x)`, or the constant liar, `y = min y`; Ginsbourger, Le
//! Riche & Carraro, "Kriging is well-suited to parallelize optimization",
//! 2010), so that it proposes a distinct point.
//!
//! A stopped training run is told with its predicted final value and that
//! prediction's variance, which the GP treats as extra observation noise.

mod gp_hedge;
mod random;

use std::str::FromStr;

pub use gp_hedge::{GpSampler, GpSettings, HedgeStep, Pending};
pub use random::RandomSampler;

use crate::acquisition::Acquisition;
use crate::error::{Error, Result};
use crate::space::{Config, Space};
use crate::spec;

/// Proposes configurations and learns from their results (minimisation).
///
/// The tuner reseeds every sampler with the study's seed before its first
/// ask ([`Sampler::reseed`]), so that every random choice of a study flows
/// from that one seed, whoever built the sampler.
pub trait Sampler: Send {
    /// A short description for tables (`"gp-hedge(ucb,pi)"`, `"random"`).
    fn name(&self) -> String;

    /// Every setting that changes a proposal, recorded in the study's
    /// header so that a study is only resumed with the same ones (the seed
    /// is the study's own). The default, `null`, records none.
    fn settings(&self) -> serde_json::Value {
        serde_json::Value::Null
    }

    /// Starts the sampler's random choices afresh from `seed` (called by
    /// the tuner, with the study's seed, before the first ask).
    fn reseed(&mut self, seed: u64);

    /// The next configuration to evaluate, given the ones still running.
    fn ask(&mut self, pending: &[Config]) -> Result<Config>;

    /// The index of the candidate to evaluate next (finite-candidate mode,
    /// as replay of logged runs needs); `candidates` must not be empty.
    fn ask_among(&mut self, candidates: &[Config], pending: &[Config]) -> Result<usize>;

    /// Reports a result: `value` to minimise, `variance` 0 for an exact
    /// observation, or the predictive variance of a predicted final value.
    fn tell(&mut self, config: &Config, value: f64, variance: f64) -> Result<()>;
}

impl Sampler for Box<dyn Sampler> {
    fn name(&self) -> String {
        (**self).name()
    }

    fn settings(&self) -> serde_json::Value {
        (**self).settings()
    }

    fn reseed(&mut self, seed: u64) {
        (**self).reseed(seed)
    }

    fn ask(&mut self, pending: &[Config]) -> Result<Config> {
        (**self).ask(pending)
    }

    fn ask_among(&mut self, candidates: &[Config], pending: &[Config]) -> Result<usize> {
        (**self).ask_among(candidates, pending)
    }

    fn tell(&mut self, config: &Config, value: f64, variance: f64) -> Result<()> {
        (**self).tell(config, value, variance)
    }
}

/// A sampler named in text (see [`crate::spec`]): `random`, `gp` (GP with
/// expected improvement) or `gp-hedge` (GP-Hedge over UCB and PI,
/// foresight's default), the GP ones with optional settings
/// (`gp-hedge(eta=0.5, initial=20)`).
#[derive(Debug, Clone, PartialEq)]
pub enum SamplerSpec {
    Random,
    Gp(GpSettings),
}

impl SamplerSpec {
    /// The sampler over `space`, seeded.
    pub fn build(&self, space: &Space, seed: u64) -> Result<Box<dyn Sampler>> {
        Ok(match self {
            SamplerSpec::Random => Box::new(RandomSampler::new(space.clone(), seed)),
            SamplerSpec::Gp(settings) => Box::new(GpSampler::new(
                space.clone(),
                GpSettings {
                    seed,
                    ..settings.clone()
                },
            )?),
        })
    }
}

impl FromStr for SamplerSpec {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let (name, settings) = spec::split(s)?;
        match name.as_str() {
            "random" if settings.is_empty() => Ok(SamplerSpec::Random),
            "random" => Err(Error::invalid("sampler", "`random` has no settings")),
            "gp" => {
                let ei = GpSettings {
                    arms: vec![Acquisition::Ei],
                    ..GpSettings::default()
                };
                Ok(SamplerSpec::Gp(spec::apply("gp", &ei, &settings)?))
            }
            "gp-hedge" => Ok(SamplerSpec::Gp(spec::apply(
                "gp-hedge",
                &GpSettings::default(),
                &settings,
            )?)),
            other => Err(Error::invalid(
                "sampler",
                format!("`{other}`: expected random, gp or gp-hedge"),
            )),
        }
    }
}
