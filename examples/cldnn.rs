//! A CLDNN raw-signal classifier, trained on PLAID, as a [`Trainable`] for
//! foresight.
//!
//! CLDNN (Sainath, Vinyals, Senior & Sak, "Convolutional, Long Short-Term
//! Memory, fully connected Deep Neural Networks", ICASSP 2015) stacks
//! convolutional layers, which extract local features and reduce the
//! signal's variation, an LSTM, which models how those features follow each
//! other in time, and fully connected layers, which map the result to class
//! scores. Here the input is a raw current signal rather than speech
//! features, and the model classifies a whole series:
//!
//! ```text
//! (B, 1, 256) signal, standardised
//!  -> 3 x [Conv1d(filters, kernel_size, "same" padding, no bias)
//!          -> batch norm -> ReLU -> max-pool 2]
//!  -> (B, 32 steps, filters) sequence
//!  -> LSTM(lstm_width), its last hidden state
//!  -> dropout -> Dense(lstm_width) -> ReLU -> dropout -> Dense(11) logits
//! ```
//!
//! As in the paper, the convolutions come first and work on the raw
//! signal's local structure (a mains cycle is 5 samples), max-pooling
//! shortens the sequence the LSTM has to model (8-fold here), and the
//! dense layers come last. Unlike the paper (two LSTM layers, a linear
//! projection before them, frame-level outputs) there is one LSTM layer,
//! the filters feed it directly, and the series is classified from the
//! LSTM's last state. Batch normalisation (Ioffe & Szegedy 2015) after
//! each convolution is not in the paper either; with it the training loss
//! after 20 epochs was about 0.9 instead of 1.1–1.4 (three seeds), and the
//! last state gave better test accuracy than the mean of the hidden states
//! (0.66–0.69 against 0.57–0.67). Training: cross-entropy, AdamW (Loshchilov
//! & Hutter 2019) with a constant step size.
//!
//! The data are PLAID (Gao et al., BuildSys 2014) as packaged by the UCR/UEA
//! time-series classification archive (Dau et al. 2019; Bagnall et al.
//! 2018): current signals of 11 kinds of household appliances, variable
//! length 100..1344, 537 training and 537 test series; see
//! `examples/data/README.md`.
//!
//! Everything random (weights, dropout masks, batch order) comes from one
//! `ChaCha8Rng` seeded with the trial's seed, so the same configuration and
//! seed give the same validation accuracies bit for bit, and a checkpoint
//! holds that generator's position, so a restored run continues exactly as
//! the uninterrupted one would have.
//!
//! `cargo run --release --example cldnn` tunes it with foresight for four
//! minutes on two workers (GP-Hedge proposes configurations, learning-curve
//! extrapolation stops runs that will not beat the best) and prints the best
//! configuration, its test accuracy and the epochs early stopping saved;
//! `--help` lists the settings.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use candle_core::{D, DType, Device, Tensor, Var};
use candle_nn::VarMap;
use clap::Parser;
use foresight::curve::Metric;
use foresight::journal::Status;
use foresight::progress::Output;
use foresight::space::{Config, Space, Value};
use foresight::trainable::{Trainable, TrialContext, TrialError};
use foresight::tuner::{Budget, Tuner};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

// ---------------------------------------------------------------------------
// Data: the `.ts` reader, preprocessing, the train/validation/test splits.
// ---------------------------------------------------------------------------

/// Length every series is cropped or zero-padded to.
///
/// PLAID's series share one sampling rate (one mains cycle is 5 samples in
/// every series), so the series are cropped, not resampled: resampling a
/// 1344-sample series and a 100-sample one to the same length would give
/// them mains periods of about 1 and 13 samples, and the convolutions would
/// have to learn every time scale. The first 256 samples hold the switch-on
/// transient (which starts within the first 44 samples in 3/4 of the series
/// and within the first 121 in 95%) and some 25 cycles of steady state.
/// 256 is the power of two nearest the median length (300), so three
/// max-pools of 2 leave an LSTM of 32 steps, and it keeps an epoch of a
/// mid-range configuration near 1 s on one core. The 45% of series that are
/// shorter (most of them 200 samples) are padded with zeros after
/// standardisation, i.e. with their own mean.
pub const SERIES_LEN: usize = 256;

/// Fraction of the UCR TRAIN file held out, per class, for validation.
pub const VALID_FRACTION: f64 = 0.2;

/// Seed of the stratified train/validation split. It is fixed, not the
/// trial's seed, so that every trial of a study is scored on the same
/// validation series.
pub const SPLIT_SEED: u64 = 20150419;

/// The folder holding `PLAID_TRAIN.ts.gz` and `PLAID_TEST.ts.gz`.
pub fn default_data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data")
}

/// The series of one sktime/UCR `.ts` file, univariate, with class labels.
#[derive(Debug, Clone, PartialEq)]
pub struct TsFile {
    /// The series, in file order.
    pub series: Vec<Vec<f64>>,
    /// The class label of each series, as written in the file.
    pub labels: Vec<String>,
    /// The labels declared by `@classLabel true ...`, in declared order, if
    /// the header declares them.
    pub class_labels: Option<Vec<String>>,
}

/// Reads a univariate, labelled `.ts` file; a name ending in `.gz` is
/// decompressed. Errors name the file and line.
pub fn read_ts(path: &Path) -> Result<TsFile, TrialError> {
    let name = path.display().to_string();
    let file = File::open(path).map_err(|e| format!("{name}: cannot open: {e}"))?;
    let reader: Box<dyn Read> = if name.ends_with(".gz") {
        Box::new(flate2::read::GzDecoder::new(file))
    } else {
        Box::new(file)
    };
    parse_ts(BufReader::new(reader), &name)
}

/// Parses `.ts` text (see [`read_ts`]); `name` is used in error messages.
///
/// The format: header lines start with `#` (comments) or `@` (`@data` ends
/// the header; `@classLabel true l1 l2 ...` declares the labels;
/// `@univariate false`, `@timeStamps true` and `@classLabel false` are
/// refused), then one series a line: comma-separated numbers, `:`, the
/// class label.
pub fn parse_ts(reader: impl BufRead, name: &str) -> Result<TsFile, TrialError> {
    let mut series = Vec::new();
    let mut labels = Vec::new();
    let mut class_labels: Option<Vec<String>> = None;
    let mut in_data = false;
    for (i, line) in reader.lines().enumerate() {
        let at = format!("{name}:{}", i + 1);
        let line = line.map_err(|e| format!("{at}: cannot read: {e}"))?;
        let line = line.trim_start_matches('\u{feff}').trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if !in_data {
            let Some(header) = line.strip_prefix('@') else {
                return Err(format!(
                    "{at}: expected a header line (starting with '#' or '@') before @data"
                )
                .into());
            };
            let mut words = header.split_whitespace();
            let key = words.next().unwrap_or("").to_ascii_lowercase();
            let first = words.next().map(str::to_ascii_lowercase);
            match (key.as_str(), first.as_deref()) {
                ("data", _) => in_data = true,
                ("univariate", Some("false")) => {
                    return Err(format!("{at}: multivariate series are not supported").into());
                }
                ("timestamps", Some("true")) => {
                    return Err(format!("{at}: time stamps are not supported").into());
                }
                ("classlabel", Some("true")) => {
                    let declared: Vec<String> = words.map(str::to_string).collect();
                    if declared.is_empty() {
                        return Err(format!("{at}: @classLabel true lists no labels").into());
                    }
                    class_labels = Some(declared);
                }
                ("classlabel", _) => {
                    return Err(format!(
                        "{at}: the series must have class labels (@classLabel true ...)"
                    )
                    .into());
                }
                _ => {}
            }
            continue;
        }
        let Some((values, label)) = line.rsplit_once(':') else {
            return Err(format!("{at}: expected 'v1,v2,...:label', found no ':'").into());
        };
        if values.contains(':') {
            return Err(format!(
                "{at}: more than one ':' (several dimensions); only univariate series are \
                 supported"
            )
            .into());
        }
        let label = label.trim();
        if label.is_empty() {
            return Err(format!("{at}: empty class label after ':'").into());
        }
        if let Some(declared) = &class_labels
            && !declared.iter().any(|d| d == label)
        {
            return Err(format!(
                "{at}: class label '{label}' is not among those declared by @classLabel"
            )
            .into());
        }
        let mut xs = Vec::new();
        for (j, v) in values.split(',').enumerate() {
            let v = v.trim();
            let x: f64 = match v.parse() {
                Ok(x) => x,
                Err(_) if v == "?" || v.eq_ignore_ascii_case("nan") => {
                    return Err(format!(
                        "{at}: value {} is missing ('{v}'); missing values are not supported",
                        j + 1
                    )
                    .into());
                }
                Err(_) => {
                    return Err(format!("{at}: value {} ('{v}') is not a number", j + 1).into());
                }
            };
            if !x.is_finite() {
                return Err(format!("{at}: value {} ('{v}') is not finite", j + 1).into());
            }
            xs.push(x);
        }
        series.push(xs);
        labels.push(label.to_string());
    }
    if !in_data {
        return Err(format!("{name}: no @data line").into());
    }
    if series.is_empty() {
        return Err(format!("{name}: no series after @data").into());
    }
    Ok(TsFile {
        series,
        labels,
        class_labels,
    })
}

/// Crops (to its first `len` samples) or zero-pads one series to `len`
/// samples, standardised with the mean and standard deviation of the
/// samples it keeps; padding comes after standardisation, so it is the
/// series' mean. A constant series becomes zeros.
pub fn preprocess(series: &[f64], len: usize) -> Vec<f32> {
    let kept = &series[..series.len().min(len)];
    let n = kept.len().max(1) as f64;
    let mean = kept.iter().sum::<f64>() / n;
    let var = kept.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    let scale = if var.sqrt() > 1e-8 {
        1.0 / var.sqrt()
    } else {
        1.0
    };
    let mut out: Vec<f32> = kept.iter().map(|x| ((x - mean) * scale) as f32).collect();
    out.resize(len, 0.0);
    out
}

/// A set of preprocessed series: `x` holds `y.len()` rows of `len` samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    /// Row-major `(n, len)` samples.
    pub x: Vec<f32>,
    /// Class index of each row.
    pub y: Vec<u32>,
    /// Samples per row.
    pub len: usize,
}

impl Split {
    /// Number of series.
    pub fn n(&self) -> usize {
        self.y.len()
    }

    /// The rows `idx`, in that order.
    pub fn select(&self, idx: &[usize]) -> Split {
        let mut x = Vec::with_capacity(idx.len() * self.len);
        for &i in idx {
            x.extend_from_slice(&self.x[i * self.len..(i + 1) * self.len]);
        }
        Split {
            x,
            y: idx.iter().map(|&i| self.y[i]).collect(),
            len: self.len,
        }
    }

    /// The first `n` rows (all of them if there are fewer).
    pub fn head(&self, n: usize) -> Split {
        let idx: Vec<usize> = (0..n.min(self.n())).collect();
        self.select(&idx)
    }
}

/// The PLAID data, preprocessed: training and validation series (a
/// stratified split of the UCR TRAIN file) and the UCR TEST series.
#[derive(Debug, Clone, PartialEq)]
pub struct Data {
    pub train: Split,
    pub valid: Split,
    pub test: Split,
    /// Label of each class index.
    pub classes: Vec<String>,
}

impl Data {
    /// Loads `PLAID_TRAIN.ts[.gz]` and `PLAID_TEST.ts[.gz]` from `dir`,
    /// each series cropped or padded to `len` samples ([`SERIES_LEN`] is
    /// the example's choice), with [`VALID_FRACTION`] and [`SPLIT_SEED`].
    pub fn load(dir: &Path, len: usize) -> Result<Data, TrialError> {
        let find = |stem: &str| -> Result<PathBuf, TrialError> {
            let gz = dir.join(format!("{stem}.ts.gz"));
            let plain = dir.join(format!("{stem}.ts"));
            if gz.exists() {
                Ok(gz)
            } else if plain.exists() {
                Ok(plain)
            } else {
                Err(format!("{}: neither {stem}.ts.gz nor {stem}.ts", dir.display()).into())
            }
        };
        Data::from_files(
            &find("PLAID_TRAIN")?,
            &find("PLAID_TEST")?,
            len,
            VALID_FRACTION,
            SPLIT_SEED,
        )
    }

    /// Reads a training and a test `.ts` file, preprocesses every series to
    /// `len` samples ([`preprocess`]) and splits the training file into
    /// training and validation series ([`stratified_split`]). Class indices
    /// follow the training file's `@classLabel` order, or sorted labels
    /// (numerically if all are integers) when it declares none.
    pub fn from_files(
        train_path: &Path,
        test_path: &Path,
        len: usize,
        valid_fraction: f64,
        split_seed: u64,
    ) -> Result<Data, TrialError> {
        if len == 0 {
            return Err("series length must be positive".into());
        }
        let train = read_ts(train_path)?;
        let test = read_ts(test_path)?;
        let classes = match &train.class_labels {
            Some(declared) => declared.clone(),
            None => {
                let mut seen: Vec<String> = train.labels.clone();
                seen.sort_by(|a, b| match (a.parse::<i64>(), b.parse::<i64>()) {
                    (Ok(x), Ok(y)) => x.cmp(&y),
                    _ => a.cmp(b),
                });
                seen.dedup();
                seen
            }
        };
        let index: BTreeMap<&str, u32> = classes
            .iter()
            .enumerate()
            .map(|(i, c)| (c.as_str(), i as u32))
            .collect();
        let to_split = |file: &TsFile, path: &Path| -> Result<Split, TrialError> {
            let mut x = Vec::with_capacity(file.series.len() * len);
            let mut y = Vec::with_capacity(file.series.len());
            for (s, label) in file.series.iter().zip(&file.labels) {
                let Some(&c) = index.get(label.as_str()) else {
                    return Err(format!(
                        "{}: class label '{label}' does not occur in the training file",
                        path.display()
                    )
                    .into());
                };
                x.extend(preprocess(s, len));
                y.push(c);
            }
            Ok(Split { x, y, len })
        };
        let all_train = to_split(&train, train_path)?;
        let test = to_split(&test, test_path)?;
        let (train_idx, valid_idx) = stratified_split(&all_train.y, valid_fraction, split_seed)?;
        Ok(Data {
            train: all_train.select(&train_idx),
            valid: all_train.select(&valid_idx),
            test,
            classes,
        })
    }

    /// The first `n_train` training and `n_valid` validation series (both
    /// are in shuffled order, so a prefix mixes the classes), and the first
    /// `n_test` test series: for quick tests.
    pub fn truncated(&self, n_train: usize, n_valid: usize, n_test: usize) -> Data {
        Data {
            train: self.train.head(n_train),
            valid: self.valid.head(n_valid),
            test: self.test.head(n_test),
            classes: self.classes.clone(),
        }
    }

    /// Number of classes.
    pub fn n_classes(&self) -> usize {
        self.classes.len()
    }
}

/// Splits series with labels `labels` into (training, validation) indices:
/// in each class, a seeded shuffle and then `round(valid_fraction * n_c)`
/// series (at least one when the class has two or more) go to validation.
/// Both index lists come back shuffled.
pub fn stratified_split(
    labels: &[u32],
    valid_fraction: f64,
    seed: u64,
) -> Result<(Vec<usize>, Vec<usize>), TrialError> {
    if !(0.0..1.0).contains(&valid_fraction) {
        return Err(format!("validation fraction {valid_fraction} is not in [0, 1)").into());
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut by_class: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for (i, &c) in labels.iter().enumerate() {
        by_class.entry(c).or_default().push(i);
    }
    let (mut train, mut valid) = (Vec::new(), Vec::new());
    for members in by_class.values_mut() {
        shuffle(members, &mut rng);
        let n = members.len();
        let mut k = (valid_fraction * n as f64).round() as usize;
        if valid_fraction > 0.0 && n >= 2 {
            k = k.clamp(1, n - 1);
        }
        valid.extend_from_slice(&members[..k]);
        train.extend_from_slice(&members[k..]);
    }
    shuffle(&mut train, &mut rng);
    shuffle(&mut valid, &mut rng);
    Ok((train, valid))
}

/// Fisher–Yates shuffle drawing from `rng`.
pub fn shuffle<T>(items: &mut [T], rng: &mut ChaCha8Rng) {
    for i in (1..items.len()).rev() {
        let j = rng.random_range(0..=i);
        items.swap(i, j);
    }
}

// ---------------------------------------------------------------------------
// Hyperparameters and search space.
// ---------------------------------------------------------------------------

/// The tuned hyperparameters of one [`Cldnn`] run.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Hyper {
    /// AdamW step size.
    pub learning_rate: f64,
    /// AdamW decoupled weight decay (on the convolution, LSTM and dense
    /// weights; not on biases or batch-norm parameters).
    pub weight_decay: f64,
    /// Filters of each of the three convolutional layers.
    pub filters: usize,
    /// Kernel width of the convolutional layers, in samples.
    pub kernel_size: usize,
    /// LSTM cells, and width of the hidden dense layer.
    pub lstm_width: usize,
    /// Dropout rate before each dense layer.
    pub dropout: f64,
    /// Training mini-batch size.
    pub batch_size: usize,
}

impl Default for Hyper {
    /// A mid-range configuration of [`space`].
    fn default() -> Self {
        Hyper {
            learning_rate: 3e-3,
            weight_decay: 1e-3,
            filters: 32,
            kernel_size: 7,
            lstm_width: 64,
            dropout: 0.2,
            batch_size: 32,
        }
    }
}

impl Hyper {
    /// Reads the hyperparameters from a configuration of [`space`]; every
    /// parameter must be present (integers may also be given as integral
    /// floats or as strings, as a categorical gives them).
    pub fn from_config(config: &Config) -> Result<Hyper, TrialError> {
        let get = |name: &str| -> Result<&Value, TrialError> {
            config
                .get(name)
                .ok_or_else(|| format!("configuration lacks '{name}'").into())
        };
        let float = |name: &str| -> Result<f64, TrialError> {
            let v = match get(name)? {
                Value::Int(i) => *i as f64,
                Value::Float(f) => *f,
                Value::Str(s) => s
                    .parse()
                    .map_err(|_| format!("'{name}' = '{s}' is not a number"))?,
            };
            if !v.is_finite() {
                return Err(format!("'{name}' = {v} is not finite").into());
            }
            Ok(v)
        };
        let int = |name: &str| -> Result<usize, TrialError> {
            let v = float(name)?;
            if v < 1.0 || v.fract() != 0.0 || v > 1e9 {
                return Err(format!("'{name}' = {v} is not a positive integer").into());
            }
            Ok(v as usize)
        };
        let hyper = Hyper {
            learning_rate: float("learning_rate")?,
            weight_decay: float("weight_decay")?,
            filters: int("filters")?,
            kernel_size: int("kernel_size")?,
            lstm_width: int("lstm_width")?,
            dropout: float("dropout")?,
            batch_size: int("batch_size")?,
        };
        if hyper.learning_rate <= 0.0 {
            return Err(format!("learning_rate = {} must be positive", hyper.learning_rate).into());
        }
        if hyper.weight_decay < 0.0 {
            return Err(format!("weight_decay = {} is negative", hyper.weight_decay).into());
        }
        if !(0.0..1.0).contains(&hyper.dropout) {
            return Err(format!("dropout = {} is not in [0, 1)", hyper.dropout).into());
        }
        Ok(hyper)
    }

    /// The configuration that [`Hyper::from_config`] reads back as `self`.
    pub fn to_config(&self) -> Config {
        let mut c = Config::new();
        c.insert("learning_rate".into(), Value::Float(self.learning_rate));
        c.insert("weight_decay".into(), Value::Float(self.weight_decay));
        c.insert("filters".into(), Value::Int(self.filters as i64));
        c.insert("kernel_size".into(), Value::Int(self.kernel_size as i64));
        c.insert("lstm_width".into(), Value::Int(self.lstm_width as i64));
        c.insert("dropout".into(), Value::Float(self.dropout));
        c.insert("batch_size".into(), Value::Int(self.batch_size as i64));
        c
    }
}

/// The search space of [`Cldnn`], for AdamW on PLAID:
///
/// * `learning_rate` 1e-4..1e-2, log: a decade either side of the usual
///   3e-3 for a small network (in 20 epochs of the default configuration,
///   1e-3 and 3e-3 did about equally well and 1e-2 worse);
/// * `weight_decay` 1e-5..1e-1, log (decoupled, so multiplied by the step
///   size: 1e-1 is strong but not destructive);
/// * `filters` 8..64, log; `kernel_size` 3..11 (a mains cycle is 5
///   samples, so 3 sees part of one and 11 two);
/// * `lstm_width` 16..128, log;
/// * `dropout` 0..0.5;
/// * `batch_size` 16..64, log (the training split has 428 series: 7 to 27
///   steps an epoch).
///
/// An epoch takes about 1 s on one core for the default configuration,
/// 0.4 s with 16 filters and 32 cells, 2.4 s with 64 and 128.
pub fn space() -> Space {
    Space::builder()
        .float("learning_rate", 1e-4, 1e-2, true)
        .float("weight_decay", 1e-5, 1e-1, true)
        .int("filters", 8, 64, true)
        .int("kernel_size", 3, 11, false)
        .int("lstm_width", 16, 128, true)
        .float("dropout", 0.0, 0.5, false)
        .int("batch_size", 16, 64, true)
        .build()
        .expect("the CLDNN search space is valid")
}

// ---------------------------------------------------------------------------
// The model.
// ---------------------------------------------------------------------------

/// Number of convolution + max-pool blocks (each halves the length).
pub const CONV_BLOCKS: usize = 3;

/// Batch size of the evaluation passes (no gradients, so larger).
const EVAL_BATCH: usize = 128;

/// How a value is drawn when a parameter is initialised.
#[derive(Debug, Clone)]
enum Init {
    /// Uniform on `[-bound, bound]`.
    Uniform(f64),
    /// These values.
    Values(Vec<f32>),
}

/// The decoupled-weight-decay Adam optimiser (Loshchilov & Hutter 2019),
/// written here so that its moments can be checkpointed.
struct AdamW {
    lr: f64,
    weight_decay: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    /// Steps taken.
    t: u64,
    /// First and second moments, one per parameter.
    m: Vec<Tensor>,
    v: Vec<Tensor>,
}

impl AdamW {
    fn new(params: &[Param], lr: f64, weight_decay: f64) -> candle_core::Result<AdamW> {
        let zeros = |p: &Param| p.var.zeros_like();
        Ok(AdamW {
            lr,
            weight_decay,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            t: 0,
            m: params
                .iter()
                .map(zeros)
                .collect::<candle_core::Result<_>>()?,
            v: params
                .iter()
                .map(zeros)
                .collect::<candle_core::Result<_>>()?,
        })
    }

    /// One step: `m = b1 m + (1 - b1) g`, `v = b2 v + (1 - b2) g^2`,
    /// `w = (1 - lr wd) w - lr m^ / (sqrt(v^) + eps)` with bias-corrected
    /// `m^`, `v^` (no decay on biases).
    fn step(
        &mut self,
        params: &[Param],
        grads: &candle_core::backprop::GradStore,
    ) -> candle_core::Result<()> {
        self.t += 1;
        let t = self.t as i32;
        let (b1, b2) = (self.beta1, self.beta2);
        let bias1 = 1.0 - b1.powi(t);
        let bias2 = 1.0 - b2.powi(t);
        for (i, p) in params.iter().enumerate() {
            let Some(g) = grads.get(p.var.as_tensor()) else {
                continue;
            };
            let g = g.detach();
            let m = (self.m[i].affine(b1, 0.0)? + g.affine(1.0 - b1, 0.0)?)?;
            let v = (self.v[i].affine(b2, 0.0)? + g.sqr()?.affine(1.0 - b2, 0.0)?)?;
            let denom = v.affine(1.0 / bias2, 0.0)?.sqrt()?.affine(1.0, self.eps)?;
            let update = (m.affine(self.lr / bias1, 0.0)? / denom)?;
            let decay = if p.decay {
                1.0 - self.lr * self.weight_decay
            } else {
                1.0
            };
            let new = (p.var.as_tensor().detach().affine(decay, 0.0)? - update)?;
            p.var.set(&new)?;
            self.m[i] = m;
            self.v[i] = v;
        }
        Ok(())
    }
}

/// One trained tensor: its name in the [`VarMap`], the variable, and
/// whether weight decay applies to it.
struct Param {
    name: String,
    var: Var,
    decay: bool,
}

/// One convolutional layer and its batch normalisation (Ioffe & Szegedy
/// 2015) over the batch and time axes, per filter.
struct ConvBlock {
    /// `(filters, in, kernel)`.
    weight: Tensor,
    /// Scale and shift after normalisation, `(filters)`.
    gamma: Tensor,
    beta: Tensor,
    /// Running mean and variance for evaluation (momentum
    /// [`BN_MOMENTUM`]); variables outside the optimiser, saved with the
    /// weights.
    running_mean: Var,
    running_var: Var,
}

/// Weight of the newest batch in the running batch-norm statistics.
const BN_MOMENTUM: f64 = 0.1;

/// Added to the variance in batch normalisation.
const BN_EPS: f64 = 1e-5;

impl ConvBlock {
    /// Batch normalisation of `y` `(batch, filters, len)`: with the batch's
    /// statistics when `training` (and the running ones updated), else with
    /// the running ones.
    fn normalise(&self, y: &Tensor, training: bool) -> candle_core::Result<Tensor> {
        let (mean, var) = if training {
            let (b, _, l) = y.dims3()?;
            let mean = y.mean_keepdim(2)?.mean_keepdim(0)?;
            let centred = y.broadcast_sub(&mean)?;
            let var = centred.sqr()?.mean_keepdim(2)?.mean_keepdim(0)?;
            let n = (b * l) as f64;
            let unbiased = if n > 1.0 { n / (n - 1.0) } else { 1.0 };
            let m = BN_MOMENTUM;
            let rm = (self.running_mean.as_tensor().affine(1.0 - m, 0.0)?
                + mean.detach().flatten_all()?.affine(m, 0.0)?)?;
            let rv = (self.running_var.as_tensor().affine(1.0 - m, 0.0)?
                + var.detach().flatten_all()?.affine(m * unbiased, 0.0)?)?;
            self.running_mean.set(&rm)?;
            self.running_var.set(&rv)?;
            (mean, var)
        } else {
            (
                self.running_mean.as_tensor().reshape((1, (), 1))?,
                self.running_var.as_tensor().reshape((1, (), 1))?,
            )
        };
        let scale = (var.affine(1.0, BN_EPS)?.sqrt()?.recip()?)
            .broadcast_mul(&self.gamma.reshape((1, (), 1))?)?;
        y.broadcast_sub(&mean)?
            .broadcast_mul(&scale)?
            .broadcast_add(&self.beta.reshape((1, (), 1))?)
    }
}

/// The network's weights and its forward pass.
struct Net {
    /// The convolutional layers.
    conv: Vec<ConvBlock>,
    /// `(filters, 4 width)` input weights, `(width, 4 width)` recurrent
    /// weights, `(4 width)` bias; gates in the order input, forget, output,
    /// candidate.
    lstm: (Tensor, Tensor, Tensor),
    /// `(width, width)` weight and bias of the hidden dense layer.
    dense: (Tensor, Tensor),
    /// `(width, classes)` weight and bias of the output layer.
    output: (Tensor, Tensor),
    kernel_size: usize,
    width: usize,
}

/// Maps candle's errors into a [`TrialError`].
fn ce(e: candle_core::Error) -> TrialError {
    Box::new(e)
}

impl Net {
    /// Logits `(batch, classes)` of the series `x` (`(batch, 1, len)`);
    /// with a generator, dropout of rate `dropout` is applied (training).
    fn forward(
        &self,
        x: &Tensor,
        dropout: f64,
        mut rng: Option<&mut ChaCha8Rng>,
    ) -> Result<Tensor, TrialError> {
        let k = self.kernel_size;
        let h = self.width;
        let mut a = x.clone();
        let training = rng.is_some();
        for block in &self.conv {
            // Padding k / 2 keeps the length for odd k (adds one for even k).
            a = a
                .conv1d(&block.weight, k / 2, 1, 1, 1)
                .and_then(|y| block.normalise(&y, training))
                .and_then(|y| y.relu())
                .and_then(|y| max_pool2(&y))
                .map_err(ce)?;
        }
        let (w_ih, w_hh, bias) = &self.lstm;
        let last = (|| -> candle_core::Result<Tensor> {
            let (batch, f, steps) = a.dims3()?;
            // Input projections of all steps at once: (batch, steps, 4h).
            let seq = a
                .transpose(1, 2)?
                .contiguous()?
                .reshape((batch * steps, f))?;
            let gx = seq
                .matmul(w_ih)?
                .broadcast_add(bias)?
                .reshape((batch, steps, 4 * h))?;
            let mut state: Option<(Tensor, Tensor)> = None;
            for t in 0..steps {
                let mut g = gx.narrow(1, t, 1)?.squeeze(1)?;
                if let Some((hp, _)) = &state {
                    g = (g + hp.matmul(w_hh)?)?;
                }
                let sig = candle_nn::ops::sigmoid(&g.narrow(1, 0, 3 * h)?)?;
                let (i, fg, o) = (
                    sig.narrow(1, 0, h)?,
                    sig.narrow(1, h, h)?,
                    sig.narrow(1, 2 * h, h)?,
                );
                let u = g.narrow(1, 3 * h, h)?.tanh()?;
                let c = match &state {
                    Some((_, cp)) => ((fg * cp)? + (i * u)?)?,
                    None => (i * u)?,
                };
                let hn = (o * c.tanh()?)?;
                state = Some((hn, c));
            }
            match state {
                Some((last, _)) => Ok(last),
                None => candle_core::bail!("the LSTM has no steps"),
            }
        })()
        .map_err(ce)?;
        let z = match rng.as_deref_mut() {
            Some(r) => apply_dropout(&last, dropout, r)?,
            None => last,
        };
        let z = z
            .matmul(&self.dense.0)
            .and_then(|y| y.broadcast_add(&self.dense.1))
            .and_then(|y| y.relu())
            .map_err(ce)?;
        let z = match rng {
            Some(r) => apply_dropout(&z, dropout, r)?,
            None => z,
        };
        z.matmul(&self.output.0)
            .and_then(|y| y.broadcast_add(&self.output.1))
            .map_err(ce)
    }

    /// Accuracy on `split` (no dropout).
    fn accuracy(&self, split: &Split) -> Result<f64, TrialError> {
        if split.n() == 0 {
            return Err("cannot score an empty split".into());
        }
        let mut correct = 0usize;
        let all: Vec<usize> = (0..split.n()).collect();
        for idx in all.chunks(EVAL_BATCH) {
            let (x, y) = batch(split, idx)?;
            let logits = self.forward(&x, 0.0, None)?.detach();
            let hits = logits
                .argmax(D::Minus1)
                .and_then(|p| p.eq(&y))
                .and_then(|e| e.to_dtype(DType::U32))
                .and_then(|e| e.sum_all())
                .and_then(|e| e.to_scalar::<u32>())
                .map_err(ce)?;
            correct += hits as usize;
        }
        Ok(correct as f64 / split.n() as f64)
    }
}

/// Inverted dropout with rate `p`, the mask drawn from `rng` (nothing is
/// drawn when `p` is 0).
fn apply_dropout(x: &Tensor, p: f64, rng: &mut ChaCha8Rng) -> Result<Tensor, TrialError> {
    if p <= 0.0 {
        return Ok(x.clone());
    }
    let keep = (1.0 / (1.0 - p)) as f32;
    let mask: Vec<f32> = (0..x.elem_count())
        .map(|_| if rng.random::<f64>() < p { 0.0 } else { keep })
        .collect();
    let mask = Tensor::from_vec(mask, x.shape(), x.device()).map_err(ce)?;
    (x * mask).map_err(ce)
}

/// A `(n, 1, len)` batch of the rows `idx` of `split`, and their labels.
fn batch(split: &Split, idx: &[usize]) -> Result<(Tensor, Tensor), TrialError> {
    let sel = split.select(idx);
    let x = Tensor::from_vec(sel.x, (idx.len(), 1, split.len), &Device::Cpu).map_err(ce)?;
    let y = Tensor::from_vec(sel.y, idx.len(), &Device::Cpu).map_err(ce)?;
    Ok((x, y))
}

/// Max-pooling of width and stride 2 over the last dimension of
/// `(batch, channels, len)` (an odd last sample is dropped).
fn max_pool2(x: &Tensor) -> candle_core::Result<Tensor> {
    let (b, c, l) = x.dims3()?;
    x.narrow(2, 0, 2 * (l / 2))?
        .reshape((b, c, l / 2, 2))?
        .max(3)
}

/// Runs `f` in `pool`, or on the calling thread if there is none.
fn run_in<R: Send>(pool: Option<&rayon::ThreadPool>, f: impl FnOnce() -> R + Send) -> R {
    match pool {
        Some(pool) => pool.install(f),
        None => f(),
    }
}

/// The CLDNN model of this example (see the module documentation for the
/// architecture) and its training state: a [`Trainable`].
pub struct Cldnn {
    hyper: Hyper,
    data: Arc<Data>,
    /// The parameters by name, for checkpoints.
    varmap: VarMap,
    /// The trained parameters, in creation order (the optimiser's
    /// order); the batch-norm running statistics are in `varmap` only.
    params: Vec<Param>,
    net: Net,
    opt: AdamW,
    /// The source of dropout masks and batch orders.
    rng: ChaCha8Rng,
    epoch: usize,
    /// Mean training loss of the last epoch.
    train_loss: f64,
    /// The pool the work runs in (see [`Cldnn::with_threads`]).
    pool: Option<Arc<rayon::ThreadPool>>,
}

impl Cldnn {
    /// Builds a model for configuration `config` (see [`space`]) with
    /// weights drawn from `ChaCha8Rng::seed_from_u64(ctx.seed)`: Kaiming-
    /// uniform for the ReLU layers (convolutions, hidden dense layer),
    /// Glorot-uniform per gate for the LSTM and for the output layer, zero
    /// biases except the LSTM's forget gate (1, as Jozefowicz et al. 2015
    /// advise), batch-norm scales 1 and shifts 0. The same generator then
    /// draws the batch orders and dropout masks.
    ///
    /// The model runs its work in a pool of one thread of its own, so that
    /// trials on parallel workers do not compete for cores (see
    /// [`Cldnn::with_threads`]); for candle's matrix products to keep to
    /// that thread, the program must also call [`single_threaded_matmul`]
    /// first.
    pub fn new(config: &Config, ctx: &TrialContext, data: Arc<Data>) -> Result<Cldnn, TrialError> {
        let hyper = Hyper::from_config(config)?;
        if data.train.n() == 0 || data.valid.n() == 0 {
            return Err("the training and validation splits must not be empty".into());
        }
        if data.train.len >> CONV_BLOCKS == 0 {
            return Err(format!(
                "series of {} samples are too short for {CONV_BLOCKS} max-pools",
                data.train.len
            )
            .into());
        }
        let mut rng = ChaCha8Rng::seed_from_u64(ctx.seed);
        let varmap = VarMap::new();
        let mut params = Vec::new();
        let mut param =
            |name: &str, shape: &[usize], init: Init, decay: bool| -> Result<Tensor, TrialError> {
                let n: usize = shape.iter().product();
                let values: Vec<f32> = match init {
                    Init::Uniform(bound) => (0..n)
                        .map(|_| ((2.0 * rng.random::<f64>() - 1.0) * bound) as f32)
                        .collect(),
                    Init::Values(v) => v,
                };
                let t = Tensor::from_vec(values, shape, &Device::Cpu).map_err(ce)?;
                let var = Var::from_tensor(&t).map_err(ce)?;
                varmap
                    .data()
                    .lock()
                    .map_err(|_| "the VarMap's lock is poisoned")?
                    .insert(name.to_string(), var.clone());
                let tensor = var.as_tensor().clone();
                params.push(Param {
                    name: name.to_string(),
                    var,
                    decay,
                });
                Ok(tensor)
            };
        let zeros = |n: usize| Init::Values(vec![0.0; n]);
        let ones = |n: usize| Init::Values(vec![1.0; n]);
        let (f, k, h) = (hyper.filters, hyper.kernel_size, hyper.lstm_width);
        let mut conv = Vec::new();
        for b in 0..CONV_BLOCKS {
            let c_in = if b == 0 { 1 } else { f };
            let bound = (6.0 / (c_in * k) as f64).sqrt();
            let w = param(
                &format!("conv{b}.weight"),
                &[f, c_in, k],
                Init::Uniform(bound),
                true,
            )?;
            let gamma = param(&format!("conv{b}.bn.gamma"), &[f], ones(f), false)?;
            let beta = param(&format!("conv{b}.bn.beta"), &[f], zeros(f), false)?;
            let stat = |name: &str, init: f32| -> Result<Var, TrialError> {
                let t = Tensor::from_vec(vec![init; f], f, &Device::Cpu).map_err(ce)?;
                let var = Var::from_tensor(&t).map_err(ce)?;
                varmap
                    .data()
                    .lock()
                    .map_err(|_| "the VarMap's lock is poisoned")?
                    .insert(format!("conv{b}.bn.{name}"), var.clone());
                Ok(var)
            };
            conv.push(ConvBlock {
                weight: w,
                gamma,
                beta,
                running_mean: stat("running_mean", 0.0)?,
                running_var: stat("running_var", 1.0)?,
            });
        }
        let w_ih = param(
            "lstm.w_ih",
            &[f, 4 * h],
            Init::Uniform((6.0 / (f + h) as f64).sqrt()),
            true,
        )?;
        let w_hh = param(
            "lstm.w_hh",
            &[h, 4 * h],
            Init::Uniform((3.0 / h as f64).sqrt()),
            true,
        )?;
        let mut forget_one = vec![0f32; 4 * h];
        forget_one[h..2 * h].fill(1.0);
        let lstm_b = param("lstm.bias", &[4 * h], Init::Values(forget_one), false)?;
        let dense_w = param(
            "dense.weight",
            &[h, h],
            Init::Uniform((6.0 / h as f64).sqrt()),
            true,
        )?;
        let dense_b = param("dense.bias", &[h], zeros(h), false)?;
        let n_out = data.n_classes();
        let out_w = param(
            "output.weight",
            &[h, n_out],
            Init::Uniform((6.0 / (h + n_out) as f64).sqrt()),
            true,
        )?;
        let out_b = param("output.bias", &[n_out], zeros(n_out), false)?;
        let net = Net {
            conv,
            lstm: (w_ih, w_hh, lstm_b),
            dense: (dense_w, dense_b),
            output: (out_w, out_b),
            kernel_size: k,
            width: h,
        };
        let opt = AdamW::new(&params, hyper.learning_rate, hyper.weight_decay).map_err(ce)?;
        Ok(Cldnn {
            hyper,
            data,
            varmap,
            params,
            net,
            opt,
            rng,
            epoch: 0,
            train_loss: f64::NAN,
            pool: Some(Arc::new(thread_pool(1)?)),
        })
    }

    /// Runs the model's work in a pool of `Some(n)` threads of its own, or,
    /// with `None`, on the calling thread with candle's default parallelism
    /// (rayon's global pool: as many threads as cores, or
    /// `RAYON_NUM_THREADS`).
    pub fn with_threads(mut self, threads: Option<usize>) -> Result<Cldnn, TrialError> {
        self.pool = match threads {
            Some(n) => Some(Arc::new(thread_pool(n)?)),
            None => None,
        };
        Ok(self)
    }

    /// The hyperparameters.
    pub fn hyper(&self) -> &Hyper {
        &self.hyper
    }

    /// Epochs trained so far.
    pub fn epoch(&self) -> usize {
        self.epoch
    }

    /// Mean training loss (cross-entropy, with dropout) of the last epoch
    /// (NaN before the first).
    pub fn train_loss(&self) -> f64 {
        self.train_loss
    }

    /// Trains one epoch: the training series in an order drawn from the
    /// model's generator, mini-batches of `batch_size` (the last may be
    /// smaller), cross-entropy loss, one AdamW step each. Returns the mean
    /// training loss.
    fn fit_epoch(&mut self) -> Result<f64, TrialError> {
        let data = Arc::clone(&self.data);
        let mut order: Vec<usize> = (0..data.train.n()).collect();
        shuffle(&mut order, &mut self.rng);
        let mut total = 0.0;
        for idx in order.chunks(self.hyper.batch_size) {
            let (x, y) = batch(&data.train, idx)?;
            let logits = self
                .net
                .forward(&x, self.hyper.dropout, Some(&mut self.rng))?;
            let loss = candle_nn::loss::cross_entropy(&logits, &y).map_err(ce)?;
            let value = loss.to_scalar::<f32>().map_err(ce)? as f64;
            if !value.is_finite() {
                return Err(format!("training loss is {value} (diverged)").into());
            }
            total += value * idx.len() as f64;
            let grads = loss.backward().map_err(ce)?;
            self.opt.step(&self.params, &grads).map_err(ce)?;
        }
        self.epoch += 1;
        self.train_loss = total / data.train.n() as f64;
        Ok(self.train_loss)
    }

    /// Accuracy on the validation split.
    pub fn valid_accuracy(&self) -> Result<f64, TrialError> {
        run_in(self.pool.as_deref(), || self.net.accuracy(&self.data.valid))
    }

    /// Accuracy on the UCR TEST series: for the final report of the best
    /// configuration only, never for tuning.
    pub fn test_accuracy(&self) -> Result<f64, TrialError> {
        run_in(self.pool.as_deref(), || self.net.accuracy(&self.data.test))
    }
}

/// A rayon pool of `threads` threads.
pub fn thread_pool(threads: usize) -> Result<rayon::ThreadPool, TrialError> {
    Ok(rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()?)
}

/// What [`Cldnn::save`] writes next to the weights.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Checkpoint {
    /// Epochs trained.
    epoch: usize,
    /// The configuration, to refuse a checkpoint of another one.
    hyper: Hyper,
    /// AdamW steps taken.
    adam_steps: u64,
    /// The generator: seed (hex), stream, and word position (decimal,
    /// since JSON numbers cannot hold a u128).
    rng_seed: String,
    rng_stream: u64,
    rng_word_pos: String,
}

const CHECKPOINT_STATE: &str = "cldnn-state.json";

fn weights_file(epoch: usize) -> String {
    format!("cldnn-weights-{epoch}.safetensors")
}

fn adam_file(epoch: usize) -> String {
    format!("cldnn-adamw-{epoch}.safetensors")
}

impl Trainable for Cldnn {
    /// One epoch of training, then the validation accuracy.
    fn train_epoch(&mut self) -> Result<f64, TrialError> {
        let pool = self.pool.clone();
        run_in(pool.as_deref(), || {
            self.fit_epoch()?;
            self.net.accuracy(&self.data.valid)
        })
    }

    /// Writes the weights (the [`VarMap`], safetensors), the AdamW moments
    /// (safetensors) and the epoch, optimiser step count and generator
    /// position (JSON) into `dir`. The JSON file, written last and renamed
    /// into place, names the epoch whose tensor files it goes with, so a
    /// kill in the middle of a save leaves the previous checkpoint valid.
    fn save(&mut self, dir: &Path) -> Result<bool, TrialError> {
        std::fs::create_dir_all(dir)?;
        let previous = read_checkpoint(dir).ok().flatten().map(|c| c.epoch);
        self.varmap
            .save(dir.join(weights_file(self.epoch)))
            .map_err(ce)?;
        let mut moments = std::collections::HashMap::new();
        for (i, p) in self.params.iter().enumerate() {
            moments.insert(format!("m.{}", p.name), self.opt.m[i].clone());
            moments.insert(format!("v.{}", p.name), self.opt.v[i].clone());
        }
        candle_core::safetensors::save(&moments, dir.join(adam_file(self.epoch))).map_err(ce)?;
        let state = Checkpoint {
            epoch: self.epoch,
            hyper: self.hyper.clone(),
            adam_steps: self.opt.t,
            rng_seed: self
                .rng
                .get_seed()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
            rng_stream: self.rng.get_stream(),
            rng_word_pos: self.rng.get_word_pos().to_string(),
        };
        let tmp = dir.join(format!("{CHECKPOINT_STATE}.tmp"));
        std::fs::write(&tmp, serde_json::to_string_pretty(&state)?)?;
        std::fs::rename(&tmp, dir.join(CHECKPOINT_STATE))?;
        if let Some(old) = previous.filter(|&e| e != self.epoch) {
            let _ = std::fs::remove_file(dir.join(weights_file(old)));
            let _ = std::fs::remove_file(dir.join(adam_file(old)));
        }
        Ok(true)
    }

    /// Restores what [`Cldnn::save`] wrote into `dir` (false if it holds no
    /// checkpoint); refuses a checkpoint of another configuration.
    fn restore(&mut self, dir: &Path) -> Result<bool, TrialError> {
        let Some(state) = read_checkpoint(dir)? else {
            return Ok(false);
        };
        if state.hyper != self.hyper {
            return Err(format!(
                "{}: the checkpoint is of another configuration ({:?})",
                dir.display(),
                state.hyper
            )
            .into());
        }
        self.varmap
            .load(dir.join(weights_file(state.epoch)))
            .map_err(ce)?;
        let adam_path = dir.join(adam_file(state.epoch));
        let moments = candle_core::safetensors::load(&adam_path, &Device::Cpu).map_err(ce)?;
        for (i, p) in self.params.iter().enumerate() {
            for (prefix, slot) in [("m", &mut self.opt.m[i]), ("v", &mut self.opt.v[i])] {
                let key = format!("{prefix}.{}", p.name);
                let t = moments
                    .get(&key)
                    .ok_or_else(|| format!("{}: no tensor '{key}'", adam_path.display()))?;
                if t.shape() != slot.shape() {
                    return Err(
                        format!("{}: '{key}' has the wrong shape", adam_path.display()).into(),
                    );
                }
                *slot = t.clone();
            }
        }
        let bad_seed = || format!("{}: bad rng_seed", dir.display());
        if state.rng_seed.len() != 64 {
            return Err(bad_seed().into());
        }
        let mut seed = [0u8; 32];
        for (i, byte) in seed.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&state.rng_seed[2 * i..2 * i + 2], 16)
                .map_err(|_| bad_seed())?;
        }
        let word_pos: u128 = state
            .rng_word_pos
            .parse()
            .map_err(|_| format!("{}: bad rng_word_pos", dir.display()))?;
        let mut rng = ChaCha8Rng::from_seed(seed);
        rng.set_stream(state.rng_stream);
        rng.set_word_pos(word_pos);
        self.rng = rng;
        self.opt.t = state.adam_steps;
        self.epoch = state.epoch;
        Ok(true)
    }
}

/// The checkpoint state in `dir`, if there is one.
fn read_checkpoint(dir: &Path) -> Result<Option<Checkpoint>, TrialError> {
    let path = dir.join(CHECKPOINT_STATE);
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path)?;
    let state = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(Some(state))
}

// ---------------------------------------------------------------------------
// The program: one default configuration (the tuner wiring comes later).
// ---------------------------------------------------------------------------

/// Makes candle's CPU matrix products single-threaded, by setting
/// `RAYON_NUM_THREADS=1`: candle reads that variable at every product to
/// choose the product's parallelism, and nothing else sets it (not running
/// inside a one-thread rayon pool: the product is then still split for all
/// cores and run piece by piece).
///
/// Measured on 2 cores with two runs of the default configuration at once
/// (as two tuner workers run trials): 1.5 s an epoch each with this and
/// the model's one-thread pool, 3.4 s with the one-thread pool alone, 4.8 s
/// with candle's default threading. Alone on the machine the three are
/// within noise of each other (1.2–1.8 s an epoch), but the last two use
/// 1.2–1.7 times the CPU time.
///
/// The variable also sizes rayon's global pool if that pool is built after
/// it without an explicit thread count: build any global pool with
/// `ThreadPoolBuilder::num_threads`.
///
/// # Safety
///
/// Changes the process's environment: call it before any other thread is
/// started (first thing in `main`), see [`std::env::set_var`].
pub unsafe fn single_threaded_matmul() {
    // SAFETY: the caller guarantees that no other thread exists yet.
    unsafe { std::env::set_var("RAYON_NUM_THREADS", "1") };
}

/// Tunes the CLDNN on PLAID with foresight.
#[derive(Debug, Parser)]
#[command(about = "Tune a CLDNN on PLAID with foresight")]
struct Args {
    /// The study folder (journal, checkpoints, report). A folder holding a
    /// study with the same settings is resumed.
    #[arg(long, default_value = "runs/cldnn")]
    study: PathBuf,
    /// Wall-clock budget, minutes.
    #[arg(long, default_value_t = 4.0)]
    minutes: f64,
    /// Also stop after this many trials.
    #[arg(long)]
    trials: Option<usize>,
    /// Epochs of a full run.
    #[arg(long, default_value_t = 20)]
    horizon: usize,
    /// Trials trained at once (one thread each).
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Stopping policy: lc (learning-curve extrapolation), median, asha,
    /// hyperband or none.
    #[arg(long, default_value = "lc")]
    policy: String,
    /// Seed of the study.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print every event as a JSON line instead of progress bars.
    #[arg(long)]
    json: bool,
    /// Print nothing while tuning.
    #[arg(long)]
    quiet: bool,
    /// Folder holding PLAID_TRAIN.ts[.gz] and PLAID_TEST.ts[.gz].
    #[arg(long)]
    data: Option<PathBuf>,
}

/// A [`Cldnn`] that, after its last epoch, also measures its accuracy on the
/// test series (reported for the best configuration only; never used for
/// tuning).
struct Tracked {
    model: Cldnn,
    trial: usize,
    horizon: usize,
    test: Arc<std::sync::Mutex<BTreeMap<usize, f64>>>,
}

impl Trainable for Tracked {
    fn train_epoch(&mut self) -> Result<f64, TrialError> {
        let acc = self.model.train_epoch()?;
        if self.model.epoch() == self.horizon {
            let test = self.model.test_accuracy()?;
            self.test
                .lock()
                .map_err(|_| "poisoned")?
                .insert(self.trial, test);
        }
        Ok(acc)
    }

    fn save(&mut self, dir: &Path) -> Result<bool, TrialError> {
        self.model.save(dir)
    }

    fn restore(&mut self, dir: &Path) -> Result<bool, TrialError> {
        self.model.restore(dir)
    }
}

fn main() -> Result<(), TrialError> {
    // SAFETY: no other thread has been started yet.
    unsafe { single_threaded_matmul() };
    let args = Args::parse();
    let data = Arc::new(Data::load(
        &args.data.clone().unwrap_or_else(default_data_dir),
        SERIES_LEN,
    )?);
    let policy = foresight::replay::PolicyKind::parse(&args.policy)?.build(args.seed);
    let output = match (args.json, args.quiet) {
        (true, _) => Output::Json,
        (false, true) => Output::Quiet,
        (false, false) => Output::Bars,
    };
    if output == Output::Bars {
        eprintln!(
            "tuning a CLDNN on PLAID ({} train, {} validation series): {} workers, {} epochs per run, {} min, policy {}, study {}",
            data.train.n(),
            data.valid.n(),
            args.workers,
            args.horizon,
            args.minutes,
            args.policy,
            args.study.display()
        );
    }
    let test = Arc::new(std::sync::Mutex::new(BTreeMap::new()));
    let study = Tuner::new(space(), Metric::Accuracy, args.horizon)
        .policy(policy)
        .workers(args.workers)
        .seed(args.seed)
        .budget(Budget {
            trials: args.trials,
            wall: Some(Duration::from_secs_f64(args.minutes * 60.0)),
            ..Budget::default()
        })
        .study_dir(&args.study)
        .output(output)
        .run(|config, ctx| {
            Ok::<_, TrialError>(Tracked {
                model: Cldnn::new(config, ctx, data.clone())?,
                trial: ctx.trial,
                horizon: ctx.horizon,
                test: test.clone(),
            })
        })?;
    let Some(best) = study.best() else {
        println!("no trial completed within the budget; raise --minutes");
        return Ok(());
    };
    // The best trial's test accuracy; a trial completed before a crash is
    // trained again (deterministically, from its seed) to measure it.
    let recorded = test.lock().map_err(|_| "poisoned")?.get(&best.id).copied();
    let test_accuracy = match recorded {
        Some(t) => t,
        None => {
            let ctx = TrialContext {
                trial: best.id,
                seed: best.seed,
                horizon: args.horizon,
                checkpoint_dir: args.study.join("checkpoints"),
            };
            let mut model = Cldnn::new(&best.config, &ctx, data.clone())?;
            for _ in 0..args.horizon {
                model.train_epoch()?;
            }
            model.test_accuracy()?
        }
    };
    let used = study.epochs_used;
    let full = study.epochs_without_stopping();
    println!("best configuration (trial {}):", best.id);
    for (name, value) in &best.config {
        match value {
            Value::Float(x) => println!("  {name:<14} {x:.4e}"),
            Value::Int(i) => println!("  {name:<14} {i}"),
            Value::Str(t) => println!("  {name:<14} {t}"),
        }
    }
    println!(
        "validation accuracy {:.4}, test accuracy {:.4}",
        best.final_score().unwrap_or(f64::NAN),
        test_accuracy
    );
    println!(
        "{} trials ({} completed, {} stopped early); {} epochs trained, {} without early stopping: {} epochs ({:.0}%) saved",
        study.trials.len(),
        study.count(Some(Status::Completed)),
        study.count(Some(Status::Stopped)),
        used,
        full,
        full - used,
        100.0 * (full - used) as f64 / full.max(1) as f64
    );
    println!("report: foresight report {}", args.study.display());
    Ok(())
}
