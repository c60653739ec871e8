// The side of `run.sh` for commits with the study-core API (storage,
// objective, `Trainable::Report`).
use foresight::prelude::*;

include!("ab_common.rs");

struct Trivial {
    x: f64,
    epoch: usize,
}

impl Trainable for Trivial {
    type Report = f64;
    fn train_epoch(&mut self) -> Result<f64, TrialError> {
        self.epoch += 1;
        Ok(work_epoch(self.x, self.epoch))
    }
}

fn run_tuner(dir: &std::path::Path, lc: bool, trials: usize, horizon: usize) -> usize {
    let space = Space::builder()
        .float("x", 0.0, 1.0, Scale::Linear)
        .build()
        .unwrap();
    let tuner = Tuner::new(space.clone(), Objective::accuracy(), horizon)
        .sampler(RandomSampler::new(space, 1))
        .seed(1)
        .budget(Budget {
            trials: Some(trials),
            ..Budget::default()
        })
        .storage(Journal::new(dir))
        .threads_per_trial(1)
        .output(Output::Quiet);
    let tuner = if lc {
        tuner.policy(LearningCurve::default())
    } else {
        tuner.policy(NoStopping)
    };
    tuner
        .run(|c: &Config, _: &TrialContext| {
            Ok(Trivial {
                x: c["x"].as_f64(),
                epoch: 0,
            })
        })
        .unwrap()
        .epochs_used
}
