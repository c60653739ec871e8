//! foresight's benchmark protocols, apart from the library users link:
//!
//! * [`curveset`] — logged learning-curve sets (JSON Lines of
//!   `BENCHMARKS.md`, or a long CSV of one's own runs);
//! * [`predict`] — protocol P: the learning-curve predictor on logged
//!   curves (accuracy, calibration, stop decisions, speed);
//! * [`replay`] — protocol R: tuning replayed on logged curves through the
//!   real tuner on a simulated clock, samplers and policies side by side.
//!
//! Protocol B (Bayesian optimisation on test functions) is
//! `examples/bo_bench.rs`; the `foresight` command line (`cli/`) runs P and
//! R. `docs/benchmarks.md` has the measurements and the commands behind
//! them.

pub mod curveset;
pub mod predict;
pub mod replay;
