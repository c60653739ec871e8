//! The data of the CLDNN example: the `.ts` reader, preprocessing, and the
//! training, validation and test splits.
//!
//! The data are PLAID (Gao et al., BuildSys 2014) as packaged by the UCR/UEA
//! time-series classification archive (Dau et al. 2019; Bagnall et al.
//! 2018): current signals of 11 kinds of household appliances, variable
//! length 100..1344, 537 training and 537 test series; see
//! `examples/data/README.md`.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use foresight::trial::TrialError;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

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
    #[allow(dead_code, reason = "for `Data::truncated`")]
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
    #[allow(dead_code, reason = "for the tests")]
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
