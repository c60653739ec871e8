//! Samplers and stopping policies named in text, as the command line and
//! study files name them: `name`, or `name(key=value, ...)` to change
//! settings from the named component's defaults — `lc(threshold=0.01,
//! min_epochs=6)`, `gp-hedge(eta=0.5)`, `lc(predictor.walkers=64)`.
//!
//! Keys are the component's settings as it serialises them (nested ones
//! dotted); values are JSON (`0.01`, `true`, `"ucb"`) or bare words taken as
//! text. An unknown key is an error that lists the known ones. Each
//! component parses its own name where it is defined
//! ([`crate::policy::parse`], [`crate::sampler::SamplerSpec`]).

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// `name(key=value, ...)` split into the name and its settings.
pub fn split(spec: &str) -> Result<(String, Vec<(String, String)>)> {
    let spec = spec.trim();
    let bad = |m: &str| Error::invalid("component", format!("`{spec}`: {m}"));
    let Some(open) = spec.find('(') else {
        if spec.contains(')') {
            return Err(bad("a `)` without `(`"));
        }
        return Ok((spec.to_string(), Vec::new()));
    };
    let inner = spec[open + 1..]
        .strip_suffix(')')
        .ok_or_else(|| bad("expected `)` at the end"))?;
    let mut settings = Vec::new();
    for part in split_list(inner) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| bad(&format!("`{part}` is not key=value")))?;
        settings.push((k.trim().to_string(), v.trim().to_string()));
    }
    Ok((spec[..open].trim().to_string(), settings))
}

/// Splits a list at its top-level commas (those outside parentheses):
/// `none,lc(threshold=0.01,min_epochs=6)` is two items.
pub fn split_list(text: &str) -> Vec<String> {
    let mut items = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                items.push(text[start..i].trim().to_string());
                start = i + 1;
            }
            _ => {}
        }
    }
    let last = text[start..].trim();
    if !last.is_empty() || !items.is_empty() {
        items.push(last.to_string());
    }
    items.retain(|s| !s.is_empty());
    items
}

/// `base` with `settings` changed, by way of its serialised form.
pub fn apply<T: Serialize + DeserializeOwned>(
    name: &str,
    base: &T,
    settings: &[(String, String)],
) -> Result<T> {
    if settings.is_empty() {
        return serde_json::from_value(serde_json::to_value(base).map_err(|e| bad(name, e))?)
            .map_err(|e| bad(name, e));
    }
    let mut tree = serde_json::to_value(base).map_err(|e| bad(name, e))?;
    for (key, text) in settings {
        let value =
            serde_json::from_str(text).unwrap_or_else(|_| serde_json::Value::String(text.clone()));
        let mut node = &mut tree;
        for part in key.split('.') {
            let known: Vec<String> = node
                .as_object()
                .map(|o| o.keys().cloned().collect())
                .unwrap_or_default();
            node = match node.get_mut(part) {
                Some(n) => n,
                None => {
                    return Err(Error::invalid(
                        "component",
                        format!(
                            "`{name}` has no setting `{key}`{}",
                            if known.is_empty() {
                                String::new()
                            } else {
                                format!(" (it has: {})", known.join(", "))
                            }
                        ),
                    ));
                }
            };
        }
        *node = value;
    }
    serde_json::from_value(tree).map_err(|e| bad(name, e))
}

fn bad(name: &str, e: impl std::fmt::Display) -> Error {
    Error::invalid("component", format!("`{name}`: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct S {
        threshold: f64,
        every: usize,
        inner: Inner,
    }
    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Inner {
        walkers: usize,
        name: String,
    }

    #[test]
    fn names_settings_and_lists() {
        assert_eq!(split("lc").unwrap(), ("lc".to_string(), vec![]));
        let (name, s) = split("lc(threshold=0.01, inner.walkers=64)").unwrap();
        assert_eq!(name, "lc");
        assert_eq!(s.len(), 2);
        assert!(split("lc(threshold)").is_err());
        assert!(split("lc(threshold=1").is_err());
        assert_eq!(
            split_list("none, lc(a=1,b=2),median"),
            vec!["none", "lc(a=1,b=2)", "median"]
        );
        let base = S {
            threshold: 0.05,
            every: 1,
            inner: Inner {
                walkers: 32,
                name: "x".into(),
            },
        };
        let (_, s) = split("lc(threshold=0.01, inner.walkers=64, inner.name=y)").unwrap();
        let got = apply("lc", &base, &s).unwrap();
        assert_eq!(got.threshold, 0.01);
        assert_eq!(got.inner.walkers, 64);
        assert_eq!(got.inner.name, "y");
        let (_, s) = split("lc(treshold=0.01)").unwrap();
        let err = apply("lc", &base, &s).unwrap_err().to_string();
        assert!(
            err.contains("no setting `treshold`") && err.contains("threshold"),
            "{err}"
        );
        let (_, s) = split("lc(every=-1)").unwrap();
        assert!(apply("lc", &base, &s).is_err());
    }
}
