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

use crate::error::{Error, Result};

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

/// Reads a whole curve set (`.jsonl` or `.jsonl.gz`). Blank lines are skipped.
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
    Ok(out)
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
}
