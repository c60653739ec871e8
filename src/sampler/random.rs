//! Random search.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::Sampler;
use crate::error::{Error, Result};
use crate::space::{Config, Space};

/// Uniform random search over the encoded cube.
#[derive(Debug, Clone)]
pub struct RandomSampler {
    space: Space,
    rng: ChaCha8Rng,
}

impl RandomSampler {
    pub fn new(space: Space, seed: u64) -> Self {
        RandomSampler {
            space,
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }
}

impl Sampler for RandomSampler {
    fn name(&self) -> String {
        "random".into()
    }

    fn reseed(&mut self, seed: u64) {
        self.rng = ChaCha8Rng::seed_from_u64(seed);
    }

    fn ask(&mut self, _pending: &[Config]) -> Result<Config> {
        let u: Vec<f64> = (0..self.space.dim())
            .map(|_| self.rng.random::<f64>())
            .collect();
        Ok(self.space.decode(&u))
    }

    fn ask_among(&mut self, candidates: &[Config], _pending: &[Config]) -> Result<usize> {
        if candidates.is_empty() {
            return Err(Error::invalid("sampler", "no candidates"));
        }
        Ok(self.rng.random_range(0..candidates.len()))
    }

    fn tell(&mut self, _config: &Config, _value: f64, _variance: f64) -> Result<()> {
        Ok(())
    }
}
