//! Speed of one prediction on a 50-epoch prefix (a real LCBench-surrogate
//! curve from `curves/`): the reference configuration (Domhan et al.'s
//! budget of 100 walkers × 2500 steps over the joint posterior) against
//! foresight's default, in the same process.
//!
//! `cargo bench --bench predictor`; `benches/domhan_reference.py` times the
//! Python reference on the same prefix.

use criterion::{Criterion, criterion_group, criterion_main};
use foresight::curve::{Metric, PredictorConfig};
use foresight_protocols::curveset;

/// The first curve of the bundled LCBench sample: 50 observed epochs of 52.
fn prefix() -> (Vec<f64>, usize) {
    let set = curveset::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../curves/lcbench-4.jsonl.gz"
    ))
    .expect("bundled curves");
    let curve = &set[0];
    (curve.values[..50].to_vec(), curve.values.len())
}

fn bench(c: &mut Criterion) {
    let (observed, horizon) = prefix();
    let mut group = c.benchmark_group("predict_50_epochs");
    group.sample_size(10);
    for (name, config) in [
        ("reference", PredictorConfig::reference()),
        ("default", PredictorConfig::default()),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                config
                    .predict(&observed, horizon, Metric::Accuracy)
                    .expect("prediction")
                    .final_value()
                    .prob_better(0.9)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
