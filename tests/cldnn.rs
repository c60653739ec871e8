//! The CLDNN example (`examples/cldnn/`) on a small slice of PLAID:
//! accuracies in [0, 1], a positive validation cross-entropy, the same
//! seed gives the same accuracies bit for bit, and a run restored from a checkpoint continues as the uninterrupted
//! run does. Also the `.ts` reader's errors.

#[path = "../examples/cldnn/data.rs"]
#[allow(dead_code)]
mod data;
#[path = "../examples/cldnn/model.rs"]
#[allow(dead_code)]
mod model;

use std::sync::{Arc, OnceLock};

use data::{Data, parse_ts, preprocess, stratified_split};
use foresight::trial::{Trainable, TrialContext};
use model::{Cldnn, Hyper};

/// 64 training, 32 validation and 32 test series, loaded once.
fn small_data() -> Arc<Data> {
    static DATA: OnceLock<Arc<Data>> = OnceLock::new();
    DATA.get_or_init(|| {
        let data = Data::load(&data::default_data_dir(), data::SERIES_LEN).expect("PLAID loads");
        assert_eq!(data.n_classes(), 11);
        assert_eq!(data.train.n() + data.valid.n(), 537);
        assert_eq!(data.test.n(), 537);
        Arc::new(data.truncated(64, 32, 32))
    })
    .clone()
}

fn context(seed: u64, dir: &std::path::Path) -> TrialContext {
    TrialContext {
        trial: 0,
        seed,
        horizon: 3,
        worker: 0,
        threads: 1,
        time_limit: None,
        checkpoint_dir: dir.to_path_buf(),
    }
}

/// A small configuration, so that the test runs in seconds.
fn small_config() -> foresight::space::Config {
    Hyper {
        filters: 8,
        lstm_width: 16,
        batch_size: 16,
        ..Hyper::default()
    }
    .to_config()
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("foresight-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn cldnn_is_deterministic_and_resumes_identically() {
    let data = small_data();
    let dir = temp_dir("cldnn");
    let config = small_config();
    let ctx = context(7, &dir);

    // Uninterrupted run of 3 epochs, checkpointed after epoch 2.
    let mut a = Cldnn::new(&config, &ctx, Arc::clone(&data)).unwrap();
    let (mut accs, mut losses, mut valid) = (Vec::new(), Vec::new(), Vec::new());
    assert!(a.valid_loss().is_nan());
    for epoch in 1..=3 {
        let acc = a.train_epoch().unwrap();
        assert!(acc.is_finite() && (0.0..=1.0).contains(&acc), "{acc}");
        assert!(a.train_loss().is_finite() && a.train_loss() > 0.0);
        assert!(a.valid_loss().is_finite() && a.valid_loss() > 0.0);
        accs.push(acc);
        losses.push(a.train_loss());
        valid.push(a.valid_loss());
        if epoch == 2 {
            assert!(a.save(&dir).unwrap());
        }
    }
    let test = a.test_accuracy().unwrap();
    assert!((0.0..=1.0).contains(&test));

    // The same seed: the same accuracies (and training losses, which
    // depend on every weight, dropout mask and batch order), bit for bit.
    let mut b = Cldnn::new(&config, &ctx, Arc::clone(&data)).unwrap();
    for e in 0..2 {
        assert_eq!(b.train_epoch().unwrap().to_bits(), accs[e].to_bits());
        assert_eq!(b.train_loss().to_bits(), losses[e].to_bits());
    }
    // Another seed: another run.
    let mut other_seed = Cldnn::new(&config, &context(8, &dir), Arc::clone(&data)).unwrap();
    other_seed.train_epoch().unwrap();
    assert_ne!(other_seed.train_loss().to_bits(), losses[0].to_bits());

    // A fresh model restored from the epoch-2 checkpoint continues as the
    // uninterrupted run did, and so does the run that saved it.
    let mut c = Cldnn::new(&config, &ctx, Arc::clone(&data)).unwrap();
    assert!(c.restore(&dir).unwrap());
    assert_eq!(c.epoch(), 2);
    assert_eq!(c.train_epoch().unwrap().to_bits(), accs[2].to_bits());
    assert_eq!(c.train_loss().to_bits(), losses[2].to_bits());
    assert_eq!(c.valid_loss().to_bits(), valid[2].to_bits());
    assert_eq!(b.train_epoch().unwrap().to_bits(), accs[2].to_bits());
    assert_eq!(b.train_loss().to_bits(), losses[2].to_bits());
    assert_eq!(c.test_accuracy().unwrap().to_bits(), test.to_bits());

    // An empty folder holds no checkpoint; another configuration's is refused.
    let empty = temp_dir("cldnn-empty");
    assert!(!c.restore(&empty).unwrap());
    let mut other = config.clone();
    other.insert("dropout".into(), foresight::space::Value::Float(0.3));
    let mut d = Cldnn::new(&other, &ctx, Arc::clone(&data)).unwrap();
    assert!(d.restore(&dir).is_err());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn config_errors_are_reported() {
    let data = small_data();
    let dir = temp_dir("cldnn-config");
    let mut config = small_config();
    config.remove("filters");
    let err = Cldnn::new(&config, &context(0, &dir), Arc::clone(&data))
        .err()
        .unwrap();
    assert!(err.to_string().contains("filters"), "{err}");
    let mut config = small_config();
    config.insert("dropout".into(), foresight::space::Value::Float(1.0));
    assert!(Cldnn::new(&config, &context(0, &dir), data).is_err());
    // Every configuration of the search space is accepted.
    let space = model::space();
    let dims = space.dim();
    for u in [vec![0.0; dims], vec![1.0; dims], vec![0.5; dims]] {
        let c = space.decode(&u);
        Hyper::from_config(&c).unwrap();
    }
}

#[test]
fn ts_reader_reports_file_and_line() {
    let ok = "# comment\n@problemName x\n@classLabel true a b\n@data\n1,2,3:a\n4.5,-1e-3:b\n";
    let file = parse_ts(ok.as_bytes(), "ok.ts").unwrap();
    assert_eq!(file.series, vec![vec![1.0, 2.0, 3.0], vec![4.5, -1e-3]]);
    assert_eq!(file.labels, vec!["a", "b"]);
    assert_eq!(file.class_labels, Some(vec!["a".into(), "b".into()]));

    let cases = [
        (
            "@data\n1,2:a\n1,x,3:a\n",
            "bad.ts:3",
            "value 2 ('x') is not a number",
        ),
        ("@data\n1,2,3\n", "bad.ts:2", "no ':'"),
        ("@data\n1,?,3:a\n", "bad.ts:2", "missing"),
        ("@data\n1,2:\n", "bad.ts:2", "empty class label"),
        ("@data\n1,2:3,4:a\n", "bad.ts:2", "univariate"),
        ("@classLabel true a\n@data\n1:b\n", "bad.ts:3", "'b'"),
        ("1,2:a\n", "bad.ts:1", "header"),
        ("@univariate false\n@data\n", "bad.ts:1", "multivariate"),
        ("# only comments\n", "bad.ts", "no @data"),
        ("@data\n\n", "bad.ts", "no series"),
    ];
    for (text, at, what) in cases {
        let err = parse_ts(text.as_bytes(), "bad.ts").unwrap_err().to_string();
        assert!(err.starts_with(at), "{err:?} should start with {at:?}");
        assert!(err.contains(what), "{err:?} should mention {what:?}");
    }
}

#[test]
fn preprocessing_and_split() {
    // Cropped to its first 4 samples and standardised; padded with zeros.
    let long = preprocess(&[1.0, 3.0, 1.0, 3.0, 100.0], 4);
    assert_eq!(long, vec![-1.0, 1.0, -1.0, 1.0]);
    let short = preprocess(&[2.0, 4.0], 4);
    assert_eq!(short, vec![-1.0, 1.0, 0.0, 0.0]);
    assert_eq!(preprocess(&[5.0, 5.0], 3), vec![0.0, 0.0, 0.0]);

    // Stratified: each class keeps its share in validation; seeded.
    let labels: Vec<u32> = (0..100).map(|i| if i < 80 { 0 } else { 1 }).collect();
    let (train, valid) = stratified_split(&labels, 0.25, 3).unwrap();
    assert_eq!(train.len() + valid.len(), 100);
    assert_eq!(valid.iter().filter(|&&i| labels[i] == 0).count(), 20);
    assert_eq!(valid.iter().filter(|&&i| labels[i] == 1).count(), 5);
    let mut all: Vec<usize> = train.iter().chain(&valid).copied().collect();
    all.sort();
    assert_eq!(all, (0..100).collect::<Vec<_>>());
    assert_eq!(stratified_split(&labels, 0.25, 3).unwrap(), (train, valid));
}
