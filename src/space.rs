//! Search spaces: the hyperparameters a tuner chooses, and their encoding
//! into the unit hypercube where the Gaussian process works.
//!
//! A parameter is a float or an integer on a linear or logarithmic scale, or
//! a categorical choice; it may be *conditional*, active only when a
//! categorical parent (declared earlier) takes one of given values.
//!
//! Encoding (`Space::encode`, `Space::decode`), one block of dimensions per
//! parameter, in declaration order:
//!
//! * float: one dimension, `u = (x - low) / (high - low)`, or on a log scale
//!   `u = (ln x - ln low) / (ln high - ln low)`;
//! * integer: one dimension, the same map applied to the interval
//!   `[low - 0.5, high + 0.5]`, so that the `high - low + 1` values own
//!   equal slices of `[0, 1]` (equal in log space for a log scale) and
//!   decoding rounds to the nearest integer;
//! * categorical with `k` choices: `k` dimensions, one-hot; decoding takes
//!   the largest coordinate;
//! * an inactive conditional parameter encodes as zeros in all its
//!   dimensions (so two configurations where it is inactive do not differ
//!   there) and is absent from a decoded configuration.
//!
//! `decode(encode(c)) == c` for every valid configuration `c`.
//!
//! ```
//! use foresight::space::{Scale, Space, Value};
//!
//! let space = Space::builder()
//!     .float("learning_rate", 0.001, 0.01, Scale::Log)
//!     .float("regulariser", 0.1, 1.0, Scale::Log)
//!     .int("hidden", 50, 100, Scale::Linear)
//!     .build()?;
//! let u = [0.5, 0.0, 1.0];
//! let config = space.decode(&u);
//! assert!((config["learning_rate"].as_f64() - 0.001f64.sqrt() * 0.01f64.sqrt()).abs() < 1e-12);
//! assert_eq!(config["hidden"], Value::Int(100));
//! assert_eq!(space.decode(&space.encode(&config)?), config);
//! # Ok::<(), foresight::Error>(())
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A hyperparameter value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    Int(i64),
    Float(f64),
    Str(String),
}

impl Value {
    /// The value as a number (`NaN` for a string).
    pub fn as_f64(&self) -> f64 {
        match self {
            Value::Int(i) => *i as f64,
            Value::Float(f) => *f,
            Value::Str(_) => f64::NAN,
        }
    }
}

/// A configuration: values of the active parameters, by name.
pub type Config = BTreeMap<String, Value>;

/// Reads a configuration into the user's own type (serde): a struct whose
/// fields are named as the parameters, so that a model's hyperparameters
/// are written once. Integers read into integer or float fields, floats
/// into float fields, categorical choices into strings (or unit enum
/// variants). Errors name the field.
///
/// ```
/// use foresight::space::{self, Config, Value};
///
/// #[derive(serde::Deserialize, serde::Serialize, Debug, PartialEq)]
/// struct Hyper { learning_rate: f64, hidden: usize, optimizer: String }
///
/// let config = Config::from([
///     ("learning_rate".to_string(), Value::Float(3e-3)),
///     ("hidden".to_string(), Value::Int(64)),
///     ("optimizer".to_string(), Value::Str("adam".into())),
/// ]);
/// let hyper: Hyper = space::from_config(&config)?;
/// assert_eq!(hyper.hidden, 64);
/// assert_eq!(space::to_config(&hyper)?, config);
/// # Ok::<(), foresight::Error>(())
/// ```
pub fn from_config<T: serde::de::DeserializeOwned>(config: &Config) -> Result<T> {
    let value = serde_json::to_value(config).map_err(|e| space_error("<config>", e.to_string()))?;
    serde_json::from_value(value).map_err(|e| {
        space_error(
            "<config>",
            format!(
                "cannot read the configuration into {}: {e}",
                short_type_name::<T>()
            ),
        )
    })
}

/// The configuration of a value of the user's own type (the inverse of
/// [`from_config`]): integer fields become [`Value::Int`], floats
/// [`Value::Float`], strings [`Value::Str`]. Errors: a field that is not a
/// number or a string.
pub fn to_config<T: Serialize>(value: &T) -> Result<Config> {
    let tree = serde_json::to_value(value).map_err(|e| space_error("<config>", e.to_string()))?;
    let object = tree
        .as_object()
        .ok_or_else(|| space_error("<config>", "a configuration is a struct of named fields"))?;
    object
        .iter()
        .map(|(k, v)| {
            let value = match v {
                serde_json::Value::Number(n) if n.is_f64() => {
                    Value::Float(n.as_f64().unwrap_or(f64::NAN))
                }
                serde_json::Value::Number(n) => match n.as_i64() {
                    Some(i) => Value::Int(i),
                    None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
                },
                serde_json::Value::String(s) => Value::Str(s.clone()),
                other => {
                    return Err(space_error(
                        k,
                        format!("{other} is not a number or a string"),
                    ));
                }
            };
            Ok((k.clone(), value))
        })
        .collect()
}

fn short_type_name<T>() -> &'static str {
    let full = std::any::type_name::<T>();
    full.rsplit("::").next().unwrap_or(full)
}

/// How a numeric parameter is spread over its range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scale {
    /// Evenly.
    #[default]
    Linear,
    /// Evenly in the logarithm (learning rates, weight decays, widths).
    Log,
}

/// The values a parameter takes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Domain {
    Float {
        low: f64,
        high: f64,
        #[serde(default)]
        scale: Scale,
    },
    Int {
        low: i64,
        high: i64,
        #[serde(default)]
        scale: Scale,
    },
    Categorical {
        choices: Vec<String>,
    },
}

/// When a conditional parameter is active.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Condition {
    /// A categorical parameter declared earlier.
    pub parent: String,
    /// The parent's values that activate the parameter.
    pub values: Vec<String>,
}

/// One hyperparameter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Param {
    pub name: String,
    pub domain: Domain,
    pub condition: Option<Condition>,
}

impl Param {
    /// Number of encoded dimensions.
    pub fn dims(&self) -> usize {
        match &self.domain {
            Domain::Categorical { choices } => choices.len(),
            _ => 1,
        }
    }
}

/// A validated search space. Serialised as its list of parameters (the
/// journal keeps it, to refuse a journal from a different space).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Vec<Param>", into = "Vec<Param>")]
pub struct Space {
    params: Vec<Param>,
    /// First encoded dimension of each parameter.
    offsets: Vec<usize>,
    dim: usize,
}

/// Builds a [`Space`] in code; [`SpaceBuilder::build`] validates it.
#[derive(Debug, Clone, Default)]
pub struct SpaceBuilder {
    params: Vec<Param>,
}

impl SpaceBuilder {
    /// A float in `[low, high]`.
    pub fn float(mut self, name: &str, low: f64, high: f64, scale: Scale) -> Self {
        self.params.push(Param {
            name: name.into(),
            domain: Domain::Float { low, high, scale },
            condition: None,
        });
        self
    }

    /// An integer in `[low, high]`.
    pub fn int(mut self, name: &str, low: i64, high: i64, scale: Scale) -> Self {
        self.params.push(Param {
            name: name.into(),
            domain: Domain::Int { low, high, scale },
            condition: None,
        });
        self
    }

    /// A categorical choice.
    pub fn categorical(mut self, name: &str, choices: &[&str]) -> Self {
        self.params.push(Param {
            name: name.into(),
            domain: Domain::Categorical {
                choices: choices.iter().map(|c| c.to_string()).collect(),
            },
            condition: None,
        });
        self
    }

    /// Makes the last parameter active only when `parent` takes one of `values`.
    pub fn when(mut self, parent: &str, values: &[&str]) -> Self {
        if let Some(p) = self.params.last_mut() {
            p.condition = Some(Condition {
                parent: parent.into(),
                values: values.iter().map(|v| v.to_string()).collect(),
            });
        }
        self
    }

    /// Validates the space (errors name the parameter).
    pub fn build(self) -> Result<Space> {
        Space::new(self.params)
    }
}

/// The TOML form of a parameter (`[[param]]` tables).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlParam {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    low: Option<toml::Value>,
    high: Option<toml::Value>,
    #[serde(default)]
    scale: Scale,
    choices: Option<Vec<String>>,
    condition: Option<Condition>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlSpace {
    param: Vec<TomlParam>,
}

impl TryFrom<Vec<Param>> for Space {
    type Error = Error;
    fn try_from(params: Vec<Param>) -> Result<Space> {
        Space::new(params)
    }
}

impl From<Space> for Vec<Param> {
    fn from(space: Space) -> Vec<Param> {
        space.params
    }
}

fn space_error(param: &str, message: impl Into<String>) -> Error {
    Error::Space {
        param: param.to_string(),
        message: message.into(),
    }
}

impl Space {
    /// A builder.
    pub fn builder() -> SpaceBuilder {
        SpaceBuilder::default()
    }

    /// Parses the TOML form:
    ///
    /// ```toml
    /// [[param]]
    /// name = "learning_rate"
    /// type = "float"        # "float", "int" or "categorical"
    /// low = 0.001
    /// high = 0.01
    /// scale = "log"     # "linear" (the default) or "log"
    ///
    /// [[param]]
    /// name = "optimizer"
    /// type = "categorical"
    /// choices = ["adam", "sgd"]
    ///
    /// [[param]]
    /// name = "momentum"
    /// type = "float"
    /// low = 0.0
    /// high = 0.99
    /// condition = { parent = "optimizer", values = ["sgd"] }
    /// ```
    pub fn from_toml(text: &str) -> Result<Space> {
        let parsed: TomlSpace =
            toml::from_str(text).map_err(|e| space_error("<file>", e.to_string()))?;
        let mut params = Vec::new();
        for p in parsed.param {
            let num = |v: &Option<toml::Value>, what: &str| -> Result<f64> {
                match v {
                    Some(toml::Value::Float(f)) => Ok(*f),
                    Some(toml::Value::Integer(i)) => Ok(*i as f64),
                    Some(_) => Err(space_error(&p.name, format!("`{what}` must be a number"))),
                    None => Err(space_error(&p.name, format!("`{what}` is missing"))),
                }
            };
            let int = |v: &Option<toml::Value>, what: &str| -> Result<i64> {
                match v {
                    Some(toml::Value::Integer(i)) => Ok(*i),
                    Some(_) => Err(space_error(&p.name, format!("`{what}` must be an integer"))),
                    None => Err(space_error(&p.name, format!("`{what}` is missing"))),
                }
            };
            let domain = match p.kind.as_str() {
                "float" => Domain::Float {
                    low: num(&p.low, "low")?,
                    high: num(&p.high, "high")?,
                    scale: p.scale,
                },
                "int" => Domain::Int {
                    low: int(&p.low, "low")?,
                    high: int(&p.high, "high")?,
                    scale: p.scale,
                },
                "categorical" => Domain::Categorical {
                    choices: p
                        .choices
                        .clone()
                        .ok_or_else(|| space_error(&p.name, "`choices` is missing"))?,
                },
                other => {
                    return Err(space_error(
                        &p.name,
                        format!("unknown type `{other}` (float, int or categorical)"),
                    ));
                }
            };
            params.push(Param {
                name: p.name,
                domain,
                condition: p.condition,
            });
        }
        Space::new(params)
    }

    /// Validates `params` and lays out the encoding.
    pub fn new(params: Vec<Param>) -> Result<Space> {
        if params.is_empty() {
            return Err(space_error("<space>", "no parameters"));
        }
        for (i, p) in params.iter().enumerate() {
            if p.name.is_empty() {
                return Err(space_error("<unnamed>", "empty name"));
            }
            if params[..i].iter().any(|q| q.name == p.name) {
                return Err(space_error(&p.name, "declared twice"));
            }
            match &p.domain {
                Domain::Float { low, high, scale } => {
                    let log = &(*scale == Scale::Log);
                    if !(low.is_finite() && high.is_finite() && low < high) {
                        return Err(space_error(
                            &p.name,
                            format!("need low < high (got {low}, {high})"),
                        ));
                    }
                    if *log && !(*low > 0.0) {
                        return Err(space_error(
                            &p.name,
                            format!("a log scale needs low > 0 (got {low})"),
                        ));
                    }
                }
                Domain::Int { low, high, scale } => {
                    let log = &(*scale == Scale::Log);
                    if low >= high {
                        return Err(space_error(
                            &p.name,
                            format!("need low < high (got {low}, {high})"),
                        ));
                    }
                    if *log && *low < 1 {
                        return Err(space_error(
                            &p.name,
                            format!("a log scale needs low >= 1 (got {low})"),
                        ));
                    }
                }
                Domain::Categorical { choices } => {
                    if choices.is_empty() {
                        return Err(space_error(&p.name, "no choices"));
                    }
                    for (j, c) in choices.iter().enumerate() {
                        if choices[..j].contains(c) {
                            return Err(space_error(&p.name, format!("choice `{c}` listed twice")));
                        }
                    }
                }
            }
            if let Some(cond) = &p.condition {
                let Some(parent) = params[..i].iter().find(|q| q.name == cond.parent) else {
                    return Err(space_error(
                        &p.name,
                        format!(
                            "condition on unknown parent `{}` (declare the parent first)",
                            cond.parent
                        ),
                    ));
                };
                let Domain::Categorical { choices } = &parent.domain else {
                    return Err(space_error(
                        &p.name,
                        format!("condition parent `{}` is not categorical", cond.parent),
                    ));
                };
                if cond.values.is_empty() {
                    return Err(space_error(&p.name, "condition lists no values"));
                }
                if let Some(v) = cond.values.iter().find(|v| !choices.contains(v)) {
                    return Err(space_error(
                        &p.name,
                        format!("condition value `{v}` is not a choice of `{}`", cond.parent),
                    ));
                }
            }
        }
        let mut offsets = Vec::with_capacity(params.len());
        let mut dim = 0;
        for p in &params {
            offsets.push(dim);
            dim += p.dims();
        }
        Ok(Space {
            params,
            offsets,
            dim,
        })
    }

    /// The parameters, in declaration order.
    pub fn params(&self) -> &[Param] {
        &self.params
    }

    /// Number of encoded dimensions.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The encoded dimensions of parameter `i`.
    pub fn dims_of(&self, i: usize) -> std::ops::Range<usize> {
        self.offsets[i]..self.offsets[i] + self.params[i].dims()
    }

    /// Whether parameter `i` is active in a (partially decoded) configuration.
    fn active(&self, i: usize, config: &Config) -> bool {
        match &self.params[i].condition {
            None => true,
            Some(c) => matches!(config.get(&c.parent), Some(Value::Str(v)) if c.values.contains(v)),
        }
    }

    /// Encodes a configuration into `[0, 1]^dim` (module documentation).
    /// Errors: a missing active parameter, a value outside its domain, a
    /// value of the wrong type.
    pub fn encode(&self, config: &Config) -> Result<Vec<f64>> {
        let mut u = vec![0.0; self.dim];
        for (i, p) in self.params.iter().enumerate() {
            if !self.active(i, config) {
                continue;
            }
            let v = config
                .get(&p.name)
                .ok_or_else(|| space_error(&p.name, "missing from the configuration"))?;
            let o = self.offsets[i];
            match (&p.domain, v) {
                (Domain::Float { low, high, scale }, Value::Float(_) | Value::Int(_)) => {
                    let log = &(*scale == Scale::Log);
                    let x = v.as_f64();
                    if !(x >= *low && x <= *high) {
                        return Err(space_error(&p.name, format!("{x} outside [{low}, {high}]")));
                    }
                    u[o] = to_unit(x, *low, *high, *log);
                }
                (Domain::Int { low, high, scale }, Value::Int(x)) => {
                    let log = &(*scale == Scale::Log);
                    if x < low || x > high {
                        return Err(space_error(&p.name, format!("{x} outside [{low}, {high}]")));
                    }
                    u[o] = to_unit(*x as f64, *low as f64 - 0.5, *high as f64 + 0.5, *log);
                }
                (Domain::Categorical { choices }, Value::Str(s)) => {
                    let k = choices
                        .iter()
                        .position(|c| c == s)
                        .ok_or_else(|| space_error(&p.name, format!("`{s}` is not a choice")))?;
                    u[o + k] = 1.0;
                }
                _ => {
                    return Err(space_error(
                        &p.name,
                        format!("value {v:?} has the wrong type"),
                    ));
                }
            }
        }
        Ok(u)
    }

    /// Decodes a point of `[0, 1]^dim` (coordinates are clamped).
    pub fn decode(&self, u: &[f64]) -> Config {
        let mut config = Config::new();
        for (i, p) in self.params.iter().enumerate() {
            if !self.active(i, &config) {
                continue;
            }
            let o = self.offsets[i];
            let value = match &p.domain {
                Domain::Float { low, high, scale } => Value::Float(
                    from_unit(u[o].clamp(0.0, 1.0), *low, *high, *scale == Scale::Log)
                        .clamp(*low, *high),
                ),
                Domain::Int { low, high, scale } => {
                    let log = &(*scale == Scale::Log);
                    let x = from_unit(
                        u[o].clamp(0.0, 1.0),
                        *low as f64 - 0.5,
                        *high as f64 + 0.5,
                        *log,
                    );
                    Value::Int((x.round() as i64).clamp(*low, *high))
                }
                Domain::Categorical { choices } => {
                    let k = (0..choices.len())
                        .max_by(|&a, &b| u[o + a].total_cmp(&u[o + b]).then(b.cmp(&a)))
                        .expect("non-empty choices");
                    Value::Str(choices[k].clone())
                }
            };
            config.insert(p.name.clone(), value);
        }
        config
    }

    /// The canonical encoding of a point: `encode(decode(u))` (integers on
    /// their slice centres, categoricals one-hot, inactive parameters zero).
    pub fn snap(&self, u: &[f64]) -> Vec<f64> {
        self.encode(&self.decode(u))
            .expect("a decoded configuration is valid")
    }
}

fn to_unit(x: f64, low: f64, high: f64, log: bool) -> f64 {
    if log {
        (x.ln() - low.ln()) / (high.ln() - low.ln())
    } else {
        (x - low) / (high - low)
    }
}

fn from_unit(u: f64, low: f64, high: f64, log: bool) -> f64 {
    if log {
        (low.ln() + u * (high.ln() - low.ln())).exp()
    } else {
        low + u * (high - low)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn seed_space() -> Space {
        Space::builder()
            .float("learning_rate", 0.001, 0.01, Scale::Log)
            .float("regulariser", 0.1, 1.0, Scale::Log)
            .int("hidden", 50, 100, Scale::Linear)
            .build()
            .unwrap()
    }

    fn mixed_space() -> Space {
        Space::builder()
            .float("lr", 1e-4, 1e-1, Scale::Log)
            .float("dropout", 0.0, 0.5, Scale::Linear)
            .int("layers", 1, 4, Scale::Linear)
            .int("batch", 16, 512, Scale::Log)
            .categorical("optimizer", &["adam", "sgd", "rmsprop"])
            .float("momentum", 0.0, 0.99, Scale::Linear)
            .when("optimizer", &["sgd", "rmsprop"])
            .build()
            .unwrap()
    }

    #[test]
    fn seed_example_encodes_as_documented() {
        let s = seed_space();
        assert_eq!(s.dim(), 3);
        let c = s.decode(&[0.0, 1.0, 0.0]);
        assert!((c["learning_rate"].as_f64() - 0.001).abs() < 1e-15);
        assert!((c["regulariser"].as_f64() - 1.0).abs() < 1e-15);
        assert_eq!(c["hidden"], Value::Int(50));
        let u = s.encode(&c).unwrap();
        assert!((u[0] - 0.0).abs() < 1e-12 && (u[1] - 1.0).abs() < 1e-12);
        // 51 integers own equal slices: 50 owns [0, 1/51).
        assert!((u[2] - 0.5 / 51.0).abs() < 1e-12);
    }

    /// decode(encode(c)) == c for random configurations of every kind, and
    /// encode(decode(u)) is a fixed point of snapping.
    #[test]
    fn round_trips_for_every_parameter_kind() {
        let s = mixed_space();
        assert_eq!(s.dim(), 1 + 1 + 1 + 1 + 3 + 1);
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut saw_inactive = false;
        let mut saw_active = false;
        for _ in 0..500 {
            let u: Vec<f64> = (0..s.dim()).map(|_| rng.random::<f64>()).collect();
            let c = s.decode(&u);
            match c.get("momentum") {
                None => saw_inactive = true,
                Some(_) => saw_active = true,
            }
            let e = s.encode(&c).unwrap();
            assert_eq!(s.decode(&e), c);
            assert_eq!(s.snap(&e), e);
            assert!(e.iter().all(|v| (0.0..=1.0).contains(v)));
        }
        assert!(saw_inactive && saw_active);
    }

    #[test]
    fn integers_are_uniform_over_their_values() {
        let s = Space::builder()
            .int("k", 1, 4, Scale::Linear)
            .build()
            .unwrap();
        let mut counts = [0; 4];
        for i in 0..4000 {
            let u = (i as f64 + 0.5) / 4000.0;
            if let Value::Int(k) = s.decode(&[u])["k"] {
                counts[(k - 1) as usize] += 1;
            }
        }
        assert_eq!(counts, [1000; 4]);
    }

    #[test]
    fn inactive_parameters_encode_as_zero() {
        let s = mixed_space();
        let mut c = s.decode(&[0.5; 8]);
        c.insert("optimizer".into(), Value::Str("adam".into()));
        c.remove("momentum");
        let u = s.encode(&c).unwrap();
        assert_eq!(u[7], 0.0);
        assert_eq!(&u[4..7], &[1.0, 0.0, 0.0]);
    }

    #[test]
    fn invalid_spaces_are_rejected_naming_the_parameter() {
        let err = |b: SpaceBuilder| b.build().unwrap_err().to_string();
        let e = err(Space::builder().float("lr", 0.1, 0.1, Scale::Linear));
        assert!(e.contains("`lr`") && e.contains("low < high"), "{e}");
        let e = err(Space::builder().float("lr", 0.0, 1.0, Scale::Log));
        assert!(e.contains("`lr`") && e.contains("log"), "{e}");
        let e = err(Space::builder().int("n", 0, 10, Scale::Log));
        assert!(e.contains("`n`"), "{e}");
        let e = err(Space::builder().categorical("opt", &[]));
        assert!(e.contains("`opt`") && e.contains("no choices"), "{e}");
        let e = err(Space::builder()
            .float("m", 0.0, 1.0, Scale::Linear)
            .when("opt", &["sgd"]));
        assert!(
            e.contains("`m`") && e.contains("unknown parent `opt`"),
            "{e}"
        );
        let e = err(Space::builder()
            .categorical("opt", &["adam"])
            .float("m", 0.0, 1.0, Scale::Linear)
            .when("opt", &["sgd"]));
        assert!(e.contains("`m`") && e.contains("not a choice"), "{e}");
        let e = err(Space::builder().float("a", 0.0, 1.0, Scale::Linear).float(
            "a",
            0.0,
            1.0,
            Scale::Linear,
        ));
        assert!(e.contains("declared twice"), "{e}");
    }

    #[test]
    fn toml_form_parses_and_validates() {
        let s = Space::from_toml(
            r#"
            [[param]]
            name = "lr"
            type = "float"
            low = 0.0001
            high = 0.1
            scale = "log"

            [[param]]
            name = "units"
            type = "int"
            low = 8
            high = 128

            [[param]]
            name = "opt"
            type = "categorical"
            choices = ["adam", "sgd"]

            [[param]]
            name = "momentum"
            type = "float"
            low = 0
            high = 0.99
            condition = { parent = "opt", values = ["sgd"] }
            "#,
        )
        .unwrap();
        assert_eq!(s.params().len(), 4);
        assert_eq!(s.dim(), 5);
        let e = Space::from_toml("[[param]]\nname = \"x\"\ntype = \"float\"\nlow = 1\nhigh = 0\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("`x`") && e.contains("low < high"), "{e}");
        let e = Space::from_toml("[[param]]\nname = \"x\"\ntype = \"real\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown type"), "{e}");
        let e = Space::from_toml("[[param]]\nname = \"x\"\ntype = \"int\"\nlow = 1.5\nhigh = 3\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("integer"), "{e}");
    }

    #[test]
    fn encoding_rejects_bad_configurations() {
        let s = seed_space();
        let mut c = s.decode(&[0.5; 3]);
        c.insert("hidden".into(), Value::Int(101));
        assert!(s.encode(&c).is_err());
        c.insert("hidden".into(), Value::Str("x".into()));
        assert!(s.encode(&c).is_err());
        c.remove("hidden");
        assert!(s.encode(&c).unwrap_err().to_string().contains("missing"));
    }
}
