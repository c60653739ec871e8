//! The cost of a command trial's reported epoch: a Python program prints
//! 1000 epochs as fast as it can, alone (into /dev/null) and as the trial
//! of a study (foresight follows its log, parses each line, the controller
//! decides, the journal records), in the same process:
//!
//! ```sh
//! cargo bench --bench command
//! ```
//!
//! The overhead per epoch is the difference of the two wall times over the
//! 1000 epochs; five repetitions, median and range. No stopping (the
//! policy's own cost is the tuner benchmark's business).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use foresight::prelude::*;
use foresight::trial::command::TrainingCommand;

const EPOCHS: usize = 1000;

/// Prints `EPOCHS` JSON lines, flushed one by one, as a training program
/// following the protocol would.
const PROGRAM: &str = r#"
import json, sys
for e in range(1, int(sys.argv[1]) + 1):
    print(json.dumps({"epoch": e, "val_accuracy": 0.5 + 0.4 * e / (e + 10.0), "train_loss": 1.0 / e}), flush=True)
"#;

fn main() {
    let dir = std::env::temp_dir().join(format!("foresight-bench-command-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let program = dir.join("program.py");
    std::fs::write(&program, PROGRAM).unwrap();
    let space = Space::builder()
        .float("x", 0.0, 1.0, Scale::Linear)
        .build()
        .unwrap();
    let (mut alone, mut tuned) = (Vec::new(), Vec::new());
    for rep in 0..5 {
        let start = Instant::now();
        let status = Command::new("python3")
            .arg(&program)
            .arg(EPOCHS.to_string())
            .env("PYTHONUNBUFFERED", "1")
            .stdout(Stdio::null())
            .status()
            .expect("python3 runs");
        assert!(status.success());
        alone.push(start.elapsed());
        tuned.push(study(&dir.join(format!("study-{rep}")), &program, &space));
    }
    let _ = std::fs::remove_dir_all(&dir);
    let secs = |v: &[Duration]| -> Vec<f64> { v.iter().map(|d| d.as_secs_f64()).collect() };
    let (alone, tuned) = (secs(&alone), secs(&tuned));
    let per_epoch: Vec<f64> = tuned
        .iter()
        .zip(&alone)
        .map(|(t, a)| 1e6 * (t - a) / EPOCHS as f64)
        .collect();
    let median = foresight::stats::median;
    let range = |v: &[f64]| {
        let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        format!("[{lo:.1}, {hi:.1}]")
    };
    println!("{EPOCHS} epochs printed as fast as the program can; medians of 5 [range]");
    println!("| program alone | as a trial | overhead per epoch |");
    println!("|---:|---:|---:|");
    println!(
        "| {:.3} s | {:.3} s | {:.1} µs {} |",
        median(&alone),
        median(&tuned),
        median(&per_epoch),
        range(&per_epoch)
    );
}

/// One study of one trial running the program, recorded in `dir`: its
/// wall time.
fn study(dir: &Path, program: &Path, space: &Space) -> Duration {
    let command = TrainingCommand::new(
        vec![
            "python3".into(),
            program.display().to_string(),
            EPOCHS.to_string(),
        ],
        "val_accuracy",
        dir.join("trials"),
    );
    let runner = command.clone();
    let start = Instant::now();
    let study = Tuner::new(space.clone(), Objective::accuracy(), EPOCHS)
        .sampler(RandomSampler::new(space.clone(), 0))
        .policy(NoStopping)
        .budget(Budget {
            trials: Some(1),
            ..Budget::default()
        })
        .storage(Journal::new(dir))
        .output(Output::Quiet)
        .run(move |c, ctx| runner.start(c, ctx))
        .unwrap();
    let elapsed = start.elapsed();
    command.stop_all();
    assert_eq!(
        study.trials[0].scores.len(),
        EPOCHS,
        "{:?}",
        study.trials[0].message
    );
    elapsed
}
