// The side of `run.sh` for commits before the study-core API (up to
// 85b5e60: `study_dir`, `Metric`, `Trainable` returning `f64`).
use foresight::curve::Metric;
use foresight::policy::{LearningCurve, NoStopping};
use foresight::progress::Output;
use foresight::sampler::RandomSampler;
use foresight::space::{Config, Space};
use foresight::trainable::{Trainable, TrialContext, TrialError};
use foresight::tuner::{Budget, Tuner};

include!("ab_common.rs");

struct Trivial {
    x: f64,
    epoch: usize,
}
impl Trainable for Trivial {
    fn train_epoch(&mut self) -> Result<f64, TrialError> {
        self.epoch += 1;
        Ok(work_epoch(self.x, self.epoch))
    }
}

fn run_tuner(dir: &std::path::Path, lc: bool, trials: usize, horizon: usize) -> usize {
    let space = Space::builder()
        .float("x", 0.0, 1.0, false)
        .build()
        .unwrap();
    let tuner = Tuner::new(space.clone(), Metric::Accuracy, horizon)
        .sampler(RandomSampler::new(space, 1))
        .budget(Budget {
            trials: Some(trials),
            ..Budget::default()
        })
        .study_dir(dir)
        .output(Output::Quiet);
    let tuner = if lc {
        tuner.policy(LearningCurve::seeded(1))
    } else {
        tuner.policy(NoStopping)
    };
    tuner
        .run(|c: &Config, _: &TrialContext| {
            Ok::<_, TrialError>(Trivial {
                x: c["x"].as_f64(),
                epoch: 0,
            })
        })
        .unwrap()
        .epochs_used
}
