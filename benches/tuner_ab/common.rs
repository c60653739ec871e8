// The tuner's overhead per epoch, the loop both sides of `run.sh` share:
// each side's `ab.rs` includes this and brings its own `run_tuner` (the
// tuner's API of its commit). Prints, per repetition and policy, the
// overhead per epoch in wall and CPU time (µs): the tuner's run of 100
// trials × 30 trivial epochs (200 µs of arithmetic each) against a plain
// loop over the same epochs.
use std::hint::black_box;
use std::time::{Duration, Instant};

const WORK: Duration = Duration::from_micros(200);

fn work_epoch(x: f64, epoch: usize) -> f64 {
    let start = Instant::now();
    let mut acc = 0.0f64;
    while start.elapsed() < WORK {
        for i in 0..100 {
            acc = black_box(acc + (i as f64).sqrt());
        }
    }
    let limit = 0.95 - 0.8 * (x - 0.3).powi(2);
    limit * (1.0 - (-(epoch as f64) / 3.0).exp()) + 1e-12 * acc.min(0.0)
}

/// Process CPU seconds (user + system) from /proc/self/stat.
fn cpu() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap();
    let after = &s[s.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    let (u, st): (f64, f64) = (f[11].parse().unwrap(), f[12].parse().unwrap());
    (u + st) / 100.0
}

fn main() {
    let reps: usize = std::env::var("REPS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(6);
    let (trials, horizon) = (100usize, 30usize);
    let epochs = (trials * horizon) as f64;
    for _ in 0..reps {
        let (t0, c0) = (Instant::now(), cpu());
        for t in 0..trials {
            for e in 1..=horizon {
                black_box(work_epoch(t as f64 / trials as f64, e));
            }
        }
        let (plain, plain_cpu) = (t0.elapsed().as_secs_f64(), cpu() - c0);
        for lc in [false, true] {
            let dir = std::env::temp_dir().join(format!("ab-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            let (t0, c0) = (Instant::now(), cpu());
            let used = run_tuner(&dir, lc, trials, horizon);
            let (secs, cpus) = (t0.elapsed().as_secs_f64(), cpu() - c0);
            let _ = std::fs::remove_dir_all(&dir);
            let n = used as f64;
            println!(
                "{} wall_us {:.1} cpu_us {:.1}",
                if lc { "lc" } else { "none" },
                1e6 * (secs - plain * n / epochs) / n,
                1e6 * (cpus - plain_cpu * n / epochs) / n
            );
        }
    }
}
