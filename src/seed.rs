//! Derived seeds: every random choice of a study flows from its one seed
//! through this function (trial seeds, prediction seeds, Hyperband's
//! brackets), so that a study is reproducible.

/// The SplitMix64 finaliser (Steele, Lea & Flood, "Fast splittable
/// pseudorandom number generators", OOPSLA 2014): a bijection of `u64` that
/// spreads nearby inputs (a seed plus a small number) over the whole range.
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The golden-ratio increment of SplitMix64, to space inputs apart.
pub const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;
