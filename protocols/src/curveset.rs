//! Logged learning-curve sets: the JSON Lines format of `BENCHMARKS.md`.
//!
//! One curve per line:
//!
//! ```json
//! {"source":"taskset","task":"...","config_id":17,"config":{"learning_rate":0.00087},
//!  "metric":"val_loss","higher_is_better":false,"values":[0.694,0.683,null]}
//! ```
//!
//! `values[e]` is the validation metric after epoch `e + 1`; `null` (or a
//! non-finite number) means the run diverged there and is kept as `NaN`.
//! Unknown fields are ignored. Files ending in `.gz` are decompressed on the
//! fly. A malformed line is an [`Error::Format`] naming file, line and field.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use serde_json::Value;

use foresight::error::{Error, Result};
use foresight::space::Value as ConfigValue;
use foresight::study::{Direction, Objective, Status, Study};

/// A hyperparameter value as logged: a number or a string (categorical).
#[derive(Debug, Clone, PartialEq)]
pub enum ParamValue {
    Number(f64),
    Text(String),
}

/// One logged training run.
#[derive(Debug, Clone)]
pub struct CurveRecord {
    /// The set the curve comes from (`"taskset"`, ...): rows of protocol P are keyed by it.
    pub source: String,
    /// The task (dataset and model) the configuration was trained on.
    pub task: String,
    /// The configuration's id within its task.
    pub config_id: u64,
    /// Hyperparameters, by name.
    pub config: BTreeMap<String, ParamValue>,
    /// Name of the metric (`"val_loss"`, `"val_accuracy"`, ...).
    pub metric: String,
    /// Whether larger values of the metric are better.
    pub higher_is_better: bool,
    /// `values[e]` = metric after epoch `e + 1`; `NaN` marks divergence.
    pub values: Vec<f64>,
}

impl CurveRecord {
    /// True when every value is finite (the run never diverged).
    pub fn is_finite(&self) -> bool {
        self.values.iter().all(|v| v.is_finite())
    }
}

/// Reads a whole curve set (`.jsonl` or `.jsonl.gz`). Blank lines are
/// skipped; a file without a curve is an error that says so.
pub fn read(path: impl AsRef<Path>) -> Result<Vec<CurveRecord>> {
    let path = path.as_ref();
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    let reader: Box<dyn Read> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let mut out = Vec::new();
    for (i, line) in BufReader::new(reader).lines().enumerate() {
        let line = line.map_err(io)?;
        if line.trim().is_empty() {
            continue;
        }
        out.push(parse_line(&line).map_err(|(field, message)| Error::Format {
            path: path.to_path_buf(),
            line: i + 1,
            field,
            message,
        })?);
    }
    nonempty(path, out)
}

/// `curves`, or an error if there are none: an empty set would make every
/// protocol print an empty table and say nothing.
fn nonempty(path: &Path, curves: Vec<CurveRecord>) -> Result<Vec<CurveRecord>> {
    if curves.is_empty() {
        return Err(Error::invalid(
            "curves",
            format!(
                "{} holds no curves (empty, or a header alone)",
                path.display()
            ),
        ));
    }
    Ok(curves)
}

/// The curves of a study's completed trials (those that ran to the
/// horizon), as one task named after `name`: what replay needs to measure
/// another strategy on a study's own runs, and protocol P to measure the
/// predictor on them. Errors: the study has no completed trial.
pub fn from_study(study: &Study, name: &str) -> Result<Vec<CurveRecord>> {
    let horizon = study.header.horizon;
    let records: Vec<CurveRecord> = study
        .trials
        .iter()
        .filter(|t| t.scores.len() == horizon && t.status == Some(Status::Completed))
        .map(|t| CurveRecord {
            source: "study".into(),
            task: name.to_string(),
            config_id: t.id as u64,
            config: t
                .config
                .iter()
                .map(|(k, v)| {
                    let v = match v {
                        ConfigValue::Int(i) => ParamValue::Number(*i as f64),
                        ConfigValue::Float(f) => ParamValue::Number(*f),
                        ConfigValue::Str(s) => ParamValue::Text(s.clone()),
                    };
                    (k.clone(), v)
                })
                .collect(),
            metric: "score".into(),
            higher_is_better: study.header.objective.direction == Direction::Maximize,
            values: t.scores.clone(),
        })
        .collect();
    if records.is_empty() {
        return Err(Error::invalid(
            "curves",
            format!("the study {name} has no completed trial"),
        ));
    }
    Ok(records)
}

/// The objective of a task's curves: the direction they record, with the
/// range their values show — `[0, 1]` or `[0, 100]` (a percentage) for a
/// maximised metric whose values lie there, `>= 0` for a minimised one. A
/// metric whose values leave those ranges gets no range; learning-curve
/// stopping refuses it with an error that says so.
pub fn objective_of(records: &[CurveRecord]) -> Objective {
    let values = || {
        records
            .iter()
            .flat_map(|r| r.values.iter().copied())
            .filter(|v| v.is_finite())
    };
    let within = |lo: f64, hi: f64| values().all(|v| (lo..=hi).contains(&v));
    match records.first().map(|r| r.higher_is_better) {
        Some(true) if within(0.0, 1.0) => Objective::accuracy(),
        Some(true) if within(0.0, 100.0) => Objective::maximize().range(0.0, 100.0),
        Some(true) => Objective::maximize(),
        _ if within(0.0, f64::INFINITY) => Objective::loss(),
        _ => Objective::minimize(),
    }
}

type FieldError = (String, String);

fn parse_line(line: &str) -> std::result::Result<CurveRecord, FieldError> {
    let value: Value =
        serde_json::from_str(line).map_err(|e| ("<line>".to_string(), format!("not JSON: {e}")))?;
    let obj = value
        .as_object()
        .ok_or_else(|| ("<line>".to_string(), "not a JSON object".to_string()))?;
    let field = |name: &str| {
        obj.get(name)
            .ok_or_else(|| (name.to_string(), "missing".to_string()))
    };
    let string = |name: &str| -> std::result::Result<String, FieldError> {
        field(name)?
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| (name.to_string(), "expected a string".to_string()))
    };

    let values = field("values")?
        .as_array()
        .ok_or_else(|| ("values".to_string(), "expected an array".to_string()))?;
    if values.is_empty() {
        return Err(("values".to_string(), "empty curve".to_string()));
    }
    let values = values
        .iter()
        .enumerate()
        .map(|(i, v)| match v {
            Value::Null => Ok(f64::NAN),
            Value::Number(n) => Ok(n.as_f64().filter(|x| x.is_finite()).unwrap_or(f64::NAN)),
            _ => Err((
                format!("values[{i}]"),
                "expected a number or null".to_string(),
            )),
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;

    let higher_is_better = field("higher_is_better")?.as_bool().ok_or_else(|| {
        (
            "higher_is_better".to_string(),
            "expected true or false".to_string(),
        )
    })?;
    let config_id = match obj.get("config_id") {
        None => 0,
        Some(v) => v.as_u64().ok_or_else(|| {
            (
                "config_id".to_string(),
                "expected a non-negative integer".to_string(),
            )
        })?,
    };
    let mut config = BTreeMap::new();
    if let Some(c) = obj.get("config") {
        let c = c
            .as_object()
            .ok_or_else(|| ("config".to_string(), "expected an object".to_string()))?;
        for (k, v) in c {
            let p = match v {
                Value::Number(n) => ParamValue::Number(n.as_f64().unwrap_or(f64::NAN)),
                Value::String(s) => ParamValue::Text(s.clone()),
                Value::Bool(b) => ParamValue::Text(b.to_string()),
                _ => {
                    return Err((
                        format!("config.{k}"),
                        "expected a number, string or boolean".to_string(),
                    ));
                }
            };
            config.insert(k.clone(), p);
        }
    }
    Ok(CurveRecord {
        source: match obj.get("source") {
            None => String::new(),
            Some(_) => string("source")?,
        },
        task: string("task")?,
        config_id,
        config,
        metric: match obj.get("metric") {
            None => String::new(),
            Some(_) => string("metric")?,
        },
        higher_is_better,
        values,
    })
}

/// Reads a long CSV of logged curves, as users export their own runs: a
/// header with the columns `trial`, `epoch` and `value`, and one more column
/// per hyperparameter; one row per (trial, epoch). Epochs of a trial must be
/// `1..=T` without gaps (in any order); its hyperparameters must not change
/// between rows. An empty value, `nan`, `inf` or `null` is divergence. The
/// task is the file's stem, the source `"csv"`; `higher_is_better` says the
/// metric's direction (a CSV does not).
pub fn read_csv(path: impl AsRef<Path>, higher_is_better: bool) -> Result<Vec<CurveRecord>> {
    let path = path.as_ref();
    let format = |line: usize, field: &str, message: String| Error::Format {
        path: path.to_path_buf(),
        line,
        field: field.to_string(),
        message,
    };
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(path)
        .map_err(|e| match e.into_kind() {
            csv::ErrorKind::Io(source) => Error::Io {
                path: path.to_path_buf(),
                source,
            },
            other => format(1, "<header>", format!("{other:?}")),
        })?;
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| format(1, "<header>", e.to_string()))?
        .iter()
        .map(str::to_string)
        .collect();
    let column = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| format(1, name, "missing column".into()))
    };
    let (c_trial, c_epoch, c_value) = (column("trial")?, column("epoch")?, column("value")?);
    let params: Vec<(usize, &String)> = header
        .iter()
        .enumerate()
        .filter(|(i, _)| ![c_trial, c_epoch, c_value].contains(i))
        .collect();
    // trial -> (config, epoch -> value, first line)
    type Trial = (BTreeMap<String, ParamValue>, BTreeMap<usize, f64>, usize);
    let mut trials: BTreeMap<String, Trial> = BTreeMap::new();
    for (i, row) in reader.records().enumerate() {
        let line = i + 2;
        let row = row.map_err(|e| format(line, "<row>", e.to_string()))?;
        let get = |c: usize| row.get(c).unwrap_or("");
        let trial = get(c_trial).to_string();
        let epoch: usize = get(c_epoch)
            .parse()
            .ok()
            .filter(|&e| e >= 1)
            .ok_or_else(|| format(line, "epoch", "expected an integer >= 1".into()))?;
        let text = get(c_value);
        let value = match text.to_ascii_lowercase().as_str() {
            "" | "nan" | "null" | "inf" | "-inf" => f64::NAN,
            t => t
                .parse::<f64>()
                .map_err(|_| format(line, "value", format!("`{text}` is not a number")))?,
        };
        let config: BTreeMap<String, ParamValue> = params
            .iter()
            .map(|&(c, name)| {
                let v = get(c);
                let pv = v
                    .parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite())
                    .map_or_else(|| ParamValue::Text(v.to_string()), ParamValue::Number);
                (name.clone(), pv)
            })
            .collect();
        let entry = trials
            .entry(trial.clone())
            .or_insert_with(|| (config.clone(), BTreeMap::new(), line));
        if entry.0 != config {
            return Err(format(
                line,
                "<hyperparameters>",
                format!(
                    "trial `{trial}` changes its hyperparameters (first seen on line {})",
                    entry.2
                ),
            ));
        }
        if entry.1.insert(epoch, value).is_some() {
            return Err(format(
                line,
                "epoch",
                format!("trial `{trial}` has epoch {epoch} twice"),
            ));
        }
    }
    let task = path
        .file_stem()
        .map_or_else(|| "csv".to_string(), |s| s.to_string_lossy().into_owned());
    let mut out = Vec::new();
    for (k, (name, (config, epochs, line))) in trials.into_iter().enumerate() {
        let n = epochs.len();
        if epochs.keys().last() != Some(&n) {
            let missing = (1..=n).find(|e| !epochs.contains_key(e)).unwrap_or(n);
            return Err(format(
                line,
                "epoch",
                format!("trial `{name}` has no epoch {missing} (epochs must be 1..=T)"),
            ));
        }
        out.push(CurveRecord {
            source: "csv".into(),
            task: task.clone(),
            config_id: k as u64,
            config,
            metric: "value".into(),
            higher_is_better,
            values: epochs.into_values().collect(),
        });
    }
    if out.is_empty() {
        return Err(format(1, "<rows>", "no rows".into()));
    }
    nonempty(path, out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write_tmp(name: &str, text: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("foresight-curveset-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    const GOOD: &str = r#"{"source":"s","task":"t","config_id":3,"config":{"lr":0.1,"act":"relu"},"metric":"val_loss","higher_is_better":false,"values":[0.7,0.6,null],"extra":[1]}"#;

    #[test]
    fn reads_a_line_with_nulls_as_divergence() {
        let p = write_tmp("good.jsonl", &format!("{GOOD}\n\n"));
        let r = read(&p).unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].config_id, 3);
        assert_eq!(r[0].values.len(), 3);
        assert!(r[0].values[2].is_nan());
        assert!(!r[0].is_finite());
        assert_eq!(r[0].config["act"], ParamValue::Text("relu".into()));
    }

    #[test]
    fn reads_gzip() {
        let dir = std::env::temp_dir().join(format!("foresight-curveset-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("good.jsonl.gz");
        let mut enc = flate2::write::GzEncoder::new(
            std::fs::File::create(&p).unwrap(),
            flate2::Compression::default(),
        );
        writeln!(enc, "{GOOD}").unwrap();
        enc.finish().unwrap();
        assert_eq!(read(&p).unwrap()[0].task, "t");
    }

    fn error_of(text: &str) -> String {
        let p = write_tmp("bad.jsonl", &format!("{GOOD}\n{text}\n"));
        read(&p).unwrap_err().to_string()
    }

    #[test]
    fn malformed_lines_name_file_line_and_field() {
        let e = error_of(r#"{"task":"t","higher_is_better":true}"#);
        assert!(
            e.contains("bad.jsonl:2") && e.contains("`values`: missing"),
            "{e}"
        );
        let e = error_of(r#"{"task":"t","higher_is_better":true,"values":[]}"#);
        assert!(e.contains("`values`: empty curve"), "{e}");
        let e = error_of(r#"{"task":"t","higher_is_better":true,"values":[0.1,"x"]}"#);
        assert!(e.contains("`values[1]`"), "{e}");
        let e = error_of(r#"{"task":"t","higher_is_better":"yes","values":[0.1]}"#);
        assert!(e.contains("`higher_is_better`"), "{e}");
        let e = error_of(r#"{"task":7,"higher_is_better":true,"values":[0.1]}"#);
        assert!(e.contains("`task`: expected a string"), "{e}");
        let e = error_of("{not json");
        assert!(e.contains("not JSON"), "{e}");
    }

    #[test]
    fn missing_file_is_an_io_error() {
        let e = read("/nonexistent/curves.jsonl").unwrap_err();
        assert!(matches!(e, Error::Io { .. }));
    }

    fn csv_file(name: &str, text: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("foresight-csv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn reads_a_long_csv() {
        let p = csv_file(
            "runs.csv",
            "trial,epoch,value,lr,opt\n\
             a,2,0.5,0.1,adam\n\
             a,1,0.4,0.1,adam\n\
             b,1,0.3,0.01,sgd\n\
             b,2,nan,0.01,sgd\n",
        );
        let recs = read_csv(&p, true).unwrap();
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].task, "runs");
        assert_eq!(recs[0].values, vec![0.4, 0.5]);
        assert!(recs[1].values[1].is_nan());
        assert_eq!(recs[1].config["lr"], ParamValue::Number(0.01));
        assert_eq!(recs[1].config["opt"], ParamValue::Text("sgd".into()));
    }

    #[test]
    fn malformed_csvs_name_the_line() {
        let cases = [
            ("trial,value\na,1\n", "missing column"),
            ("trial,epoch,value\na,0,1\n", ":2: field `epoch`"),
            ("trial,epoch,value\na,1,x\n", "not a number"),
            ("trial,epoch,value\na,1,1\na,3,1\n", "no epoch 2"),
            ("trial,epoch,value\na,1,1\na,1,2\n", "epoch 1 twice"),
            (
                "trial,epoch,value,lr\na,1,1,0.1\na,2,1,0.2\n",
                "changes its hyperparameters",
            ),
            ("trial,epoch,value\n", "no rows"),
        ];
        for (i, (text, want)) in cases.iter().enumerate() {
            let p = csv_file(&format!("bad{i}.csv"), text);
            let err = read_csv(&p, false).unwrap_err().to_string();
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }
    #[test]
    fn the_objective_follows_the_values() {
        let acc = |values: Vec<f64>| CurveRecord {
            source: "s".into(),
            task: "t".into(),
            config_id: 0,
            config: BTreeMap::new(),
            metric: "m".into(),
            higher_is_better: true,
            values,
        };
        assert_eq!(objective_of(&[acc(vec![0.1, 0.9])]), Objective::accuracy());
        assert_eq!(
            objective_of(&[acc(vec![10.0, 87.5, f64::NAN])]),
            Objective::maximize().range(0.0, 100.0)
        );
        assert_eq!(objective_of(&[acc(vec![-3.0, 0.5])]), Objective::maximize());
        let mut loss = acc(vec![2.0, 0.3]);
        loss.higher_is_better = false;
        assert_eq!(objective_of(&[loss.clone()]), Objective::loss());
        loss.values = vec![0.5, -1.0];
        assert_eq!(objective_of(&[loss]), Objective::minimize());
    }

    #[test]
    fn an_empty_set_is_an_error() {
        let err = read(write_tmp("empty.jsonl", "\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("holds no curves"), "{err}");
        let err = read_csv(csv_file("header.csv", "trial,epoch,value,lr\n"), true)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no rows"), "{err}");
    }
}
