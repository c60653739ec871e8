//! The lines a training program prints, and the epoch reports in them.
//!
//! A program reports one line per epoch on stdout, in one of two forms
//! (tried in this order), or a pattern of the user's:
//!
//! * a JSON object: `{"epoch": 3, "val_accuracy": 0.71, "train_loss": 0.42}`;
//! * `key=value` pairs (or `key: value`), separated by spaces or commas, as
//!   Katib's and Guild's conventions have it: `epoch=3 val_accuracy=0.71`;
//! * [`LineFormat::Pattern`]: a regular expression with a named group
//!   `value` (and optionally `epoch`), for a program whose output cannot be
//!   changed: `acc (?P<value>[0-9.]+) at epoch (?P<epoch>\d+)`.
//!
//! A line is an epoch's report when it holds the study's metric; every
//! other line (progress bars, warnings, a different metric) is only kept in
//! the trial's log. In the first two forms the other numeric fields become
//! the report's metrics, `epoch` (or `step`) numbers the epoch, and text
//! fields become attributes. `nan`, `inf` and `-inf` (also as JSON strings)
//! are non-finite scores: the trial diverged.

use std::collections::BTreeMap;

use crate::trial::EpochReport;

/// How a program's lines are read.
#[derive(Debug, Clone)]
pub enum LineFormat {
    /// JSON objects or `key=value` pairs, whichever a line is.
    Auto,
    /// A regular expression with a named group `value` (and optionally
    /// `epoch`).
    Pattern(regex::Regex),
}

/// One epoch's report found in a line, with the epoch number the program
/// gave, if it gave one.
#[derive(Debug, Clone, PartialEq)]
pub struct Reported {
    pub report: EpochReport,
    pub epoch: Option<usize>,
}

impl LineFormat {
    /// A user's pattern. Errors: not a regular expression, or without a
    /// named group `value`.
    pub fn pattern(re: &str) -> crate::Result<LineFormat> {
        let bad = |m: String| crate::Error::invalid("pattern", format!("`{re}`: {m}"));
        let compiled = regex::Regex::new(re).map_err(|e| bad(e.to_string()))?;
        if !compiled.capture_names().any(|n| n == Some("value")) {
            return Err(bad(
                "needs a named group `value`, as in `acc (?P<value>[0-9.]+)`".into(),
            ));
        }
        Ok(LineFormat::Pattern(compiled))
    }

    /// The report in `line`, if the line holds `metric`.
    pub fn parse(&self, line: &str, metric: &str) -> Option<Reported> {
        match self {
            LineFormat::Auto => {
                let line = line.trim();
                if line.starts_with('{') {
                    parse_json(line, metric)
                } else {
                    parse_pairs(line, metric)
                }
            }
            LineFormat::Pattern(re) => {
                let caps = re.captures(line)?;
                let score = number(caps.name("value")?.as_str())?;
                let epoch = caps.name("epoch").and_then(|e| e.as_str().parse().ok());
                Some(Reported {
                    report: EpochReport::new(score),
                    epoch,
                })
            }
        }
    }
}

/// A number as programs print them, including `nan` and `inf`.
fn number(text: &str) -> Option<f64> {
    let t = text.trim().trim_matches('"');
    match t.to_ascii_lowercase().as_str() {
        "nan" => Some(f64::NAN),
        "inf" | "+inf" | "infinity" => Some(f64::INFINITY),
        "-inf" | "-infinity" => Some(f64::NEG_INFINITY),
        _ => t.parse().ok(),
    }
}

/// The epoch number a field gives, if it is one.
fn epoch_of(value: f64) -> Option<usize> {
    (value >= 0.0 && value.fract() == 0.0 && value < 1e12).then_some(value as usize)
}

fn is_epoch_key(key: &str) -> bool {
    key == "epoch" || key == "step"
}

fn parse_json(line: &str, metric: &str) -> Option<Reported> {
    let object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(line).ok()?;
    let as_number = |v: &serde_json::Value| match v {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => number(s),
        _ => None,
    };
    let score = as_number(object.get(metric)?)?;
    let mut report = EpochReport::new(score);
    let mut epoch = None;
    for (key, value) in &object {
        if key == metric {
            continue;
        }
        match (as_number(value), value) {
            (Some(v), _) if is_epoch_key(key) => epoch = epoch_of(v),
            (Some(v), serde_json::Value::Number(_)) => {
                report.metrics.insert(key.clone(), v);
            }
            (_, serde_json::Value::Null) => {}
            (_, other) => {
                report.attrs.insert(key.clone(), other.clone());
            }
        }
    }
    Some(Reported { report, epoch })
}

fn parse_pairs(line: &str, metric: &str) -> Option<Reported> {
    // Tokens separated by spaces or commas: `key=value`, `key:value`, or
    // `key:` followed by its value; anything else is prose.
    let tokens: Vec<&str> = line
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|t| !t.is_empty())
        .collect();
    let mut fields: BTreeMap<&str, &str> = BTreeMap::new();
    let mut i = 0;
    while i < tokens.len() {
        let t = tokens[i];
        i += 1;
        if let Some((k, v)) = t.split_once('=') {
            if !k.is_empty() && !v.is_empty() {
                fields.insert(k, v);
            }
        } else if let Some(k) = t.strip_suffix(':') {
            let value = tokens
                .get(i)
                .filter(|v| !v.ends_with(':') && !v.contains('='));
            if let (false, Some(v)) = (k.is_empty(), value) {
                fields.insert(k, v);
                i += 1;
            }
        } else if let Some((k, v)) = t.split_once(':')
            && !k.is_empty()
            && !v.is_empty()
        {
            fields.insert(k, v);
        }
    }
    let score = number(fields.get(metric)?)?;
    let mut report = EpochReport::new(score);
    let mut epoch = None;
    for (key, text) in fields {
        if key == metric {
            continue;
        }
        match number(text) {
            Some(v) if is_epoch_key(key) => epoch = epoch_of(v),
            Some(v) => {
                report.metrics.insert(key.to_string(), v);
            }
            None => {
                report.attrs.insert(key.to_string(), text.into());
            }
        }
    }
    Some(Reported { report, epoch })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auto(line: &str) -> Option<Reported> {
        LineFormat::Auto.parse(line, "val_accuracy")
    }

    #[test]
    fn json_lines() {
        let r = auto(r#"{"epoch": 3, "val_accuracy": 0.71, "train_loss": 0.42, "lr": "cosine"}"#)
            .unwrap();
        assert_eq!(r.epoch, Some(3));
        assert_eq!(r.report.score, 0.71);
        assert_eq!(r.report.metrics["train_loss"], 0.42);
        assert_eq!(r.report.attrs["lr"], "cosine");
        assert!(
            auto(r#"{"val_accuracy": "NaN"}"#)
                .unwrap()
                .report
                .score
                .is_nan()
        );
        assert!(auto(r#"{"val_loss": 0.3}"#).is_none(), "another metric");
        assert!(auto(r#"{"val_accuracy": 0.7"#).is_none(), "broken JSON");
    }

    #[test]
    fn key_value_lines() {
        let r = auto("epoch=4 val_accuracy=0.75, train_loss=0.4 device=cuda:0").unwrap();
        assert_eq!(r.epoch, Some(4));
        assert_eq!(r.report.score, 0.75);
        assert_eq!(r.report.metrics["train_loss"], 0.4);
        assert_eq!(r.report.attrs["device"], "cuda:0");
        let r = auto("Epoch 4 done: val_accuracy: 0.8 step: 400").unwrap();
        assert_eq!((r.report.score, r.epoch), (0.8, Some(400)));
        assert!(auto("val_accuracy=nan").unwrap().report.score.is_nan());
        assert_eq!(
            auto("val_accuracy=-inf").unwrap().report.score,
            f64::NEG_INFINITY
        );
        for garbage in [
            "",
            "loading data...",
            "100%|█████| 391/391",
            "val_accuracy=",
            "val_accuracy=high",
        ] {
            assert!(auto(garbage).is_none(), "{garbage:?}");
        }
    }

    #[test]
    fn a_pattern_of_the_users() {
        let f = LineFormat::pattern(r"acc (?P<value>[0-9.]+) at epoch (?P<epoch>\d+)").unwrap();
        assert!(
            LineFormat::pattern(r"acc ([0-9.]+)").is_err(),
            "no `value` group"
        );
        assert!(LineFormat::pattern(r"acc (").is_err());
        let r = f.parse("INFO acc 0.93 at epoch 12", "ignored").unwrap();
        assert_eq!((r.report.score, r.epoch), (0.93, Some(12)));
        assert!(f.parse("INFO loss 0.2", "ignored").is_none());
    }
}
