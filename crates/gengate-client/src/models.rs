//! The model catalog (`/api/v1/models`), and checking a request's params
//! against a model's parameter specs before anything is sent or charged.
//!
//! The catalog is data: every rule here is read from the model's `params`
//! and `reference_media`, so a new model or option needs no SDK change.

use crate::client::{Call, Client};
use crate::error::{FieldDetail, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The params key under which reference files are passed (API §4).
pub const REFERENCE_ITEMS_KEY: &str = "referenceMediaItems";

/// One model of the catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    /// e.g. `kling-3-0`.
    pub id: String,
    /// e.g. `Kling 3.0`.
    #[serde(default)]
    pub display_name: String,
    /// `image`, `video` or `audio`.
    #[serde(default)]
    pub category: String,
    /// `async_task`.
    #[serde(default)]
    pub runtime: String,
    /// Price of one task in credits.
    #[serde(default)]
    pub base_credits: i64,
    /// `FIXED`.
    #[serde(default)]
    pub billing_type: String,
    /// e.g. `text-to-video`, `image-to-video`.
    #[serde(default)]
    pub supported_modes: Vec<String>,
    /// Longest prompt in characters (Unicode scalar values).
    #[serde(default)]
    pub max_prompt_length: Option<usize>,
    /// `text`, `file`.
    #[serde(default)]
    pub supported_api_inputs: Vec<String>,
    /// Whether every task needs a file from the Files API.
    #[serde(default)]
    pub requires_files_api: bool,
    /// Modes that need uploaded references.
    #[serde(default)]
    pub requires_upload_for_modes: Vec<String>,
    /// Whether references may be arbitrary URLs.
    #[serde(default)]
    pub url_input_supported: bool,
    /// File kinds the model takes.
    #[serde(default)]
    pub file_kinds: Vec<String>,
    /// `available`, …
    #[serde(default)]
    pub api_status: String,
    /// `available`, …
    #[serde(default)]
    pub api_input_status: String,
    /// The parameter specs.
    #[serde(default)]
    pub params: Vec<ParamSpec>,
    /// What reference media the model takes, if any.
    #[serde(default)]
    pub reference_media: Option<ReferenceMedia>,
    /// Sentences for the user.
    #[serde(default)]
    pub notices: Vec<String>,
}

/// The type of a parameter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParamType {
    /// One of `options`.
    Select,
    /// A number within `min`/`max`, a multiple of `step` from `min`.
    Number,
    /// Free text.
    Text,
    /// A type this SDK does not know; passed through unchecked.
    #[serde(other)]
    Unknown,
}

/// One parameter of a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParamSpec {
    /// The key in `params`.
    pub key: String,
    /// Its type.
    #[serde(rename = "type")]
    pub kind: ParamType,
    /// Whether it must be given.
    #[serde(default)]
    pub required: bool,
    /// The value used when it is not given.
    #[serde(default)]
    pub default: Option<Value>,
    /// Allowed values of a select (canonically strings); empty for other types (the
    /// server sends `null` for them).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub options: Vec<Value>,
    /// Smallest number.
    #[serde(default)]
    pub min: Option<f64>,
    /// Largest number.
    #[serde(default)]
    pub max: Option<f64>,
    /// Granularity of a number.
    #[serde(default)]
    pub step: Option<f64>,
    /// A sentence about the parameter.
    #[serde(default)]
    pub description: String,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Value>, D::Error> {
    Ok(Option::<Vec<Value>>::deserialize(d)?.unwrap_or_default())
}

impl ParamSpec {
    /// The select options as the strings the API uses.
    pub fn option_strings(&self) -> Vec<String> {
        self.options.iter().map(canonical).collect()
    }

    /// Whether this is a `false`/`true` select (a switch on the command line).
    pub fn is_boolean(&self) -> bool {
        let mut o = self.option_strings();
        o.sort();
        self.kind == ParamType::Select && o == ["false", "true"]
    }
}

/// Reference media a model takes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReferenceMedia {
    /// Most files in one task.
    #[serde(default)]
    pub max_files: usize,
    /// Allowed kinds (`image`, `video`, `audio`).
    #[serde(default)]
    pub kinds: Vec<String>,
    /// Per kind: size and type limits.
    #[serde(default)]
    pub limits: BTreeMap<String, KindLimits>,
    /// A sentence on how references are used.
    #[serde(default)]
    pub rule: Option<String>,
}

/// Limits of one reference kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KindLimits {
    /// Largest file in bytes.
    #[serde(default)]
    pub max_bytes: Option<u64>,
    /// Allowed MIME types.
    #[serde(default)]
    pub mime_types: Vec<String>,
    /// Smallest side of an image, in pixels.
    #[serde(default)]
    pub min_side_px: Option<u32>,
    /// Widest allowed aspect ratio (either way).
    #[serde(default)]
    pub max_aspect_ratio: Option<f64>,
}

#[derive(Deserialize)]
struct ModelList {
    data: Vec<Model>,
}

/// `client.models()`: the catalog (public; no key needed).
#[derive(Debug, Clone, Copy)]
pub struct Models<'a> {
    pub(crate) client: &'a Client,
}

impl Client {
    /// The model catalog.
    pub fn models(&self) -> Models<'_> {
        Models { client: self }
    }
}

impl Models<'_> {
    /// Every model.
    pub async fn list(&self) -> Result<Vec<Model>> {
        let l: ModelList = self.client.json(Call::get("api/v1/models")).await?;
        Ok(l.data)
    }

    /// One model, e.g. `kling-3-0`.
    pub async fn get(&self, id: &str) -> Result<Model> {
        self.client
            .json(Call::get(format!("api/v1/models/{}", encode_segment(id))))
            .await
    }
}

/// Percent-encodes one path segment.
pub(crate) fn encode_segment(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// The API's canonical string of a value (`5` → `"5"`, `true` → `"true"`).
fn canonical(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn problem(field: String, issue: &str, message: String) -> FieldDetail {
    FieldDetail {
        field,
        issue: issue.to_owned(),
        message,
    }
}

impl Model {
    /// A parameter by key.
    pub fn param(&self, key: &str) -> Option<&ParamSpec> {
        self.params.iter().find(|p| p.key == key)
    }

    /// Checks a prompt and params as the server will, and returns every
    /// problem (with the server's field names and issue words), not only the
    /// first. Values are normalised to the API's canonical strings; keys not
    /// given are left out (the server fills defaults). `references` is the
    /// number of reference files that will be passed.
    pub fn check(
        &self,
        prompt: &str,
        params: &Map<String, Value>,
        references: usize,
    ) -> std::result::Result<Map<String, Value>, Vec<FieldDetail>> {
        let mut problems = Vec::new();
        if prompt.trim().is_empty() {
            problems.push(problem(
                "prompt".into(),
                "blank",
                "the prompt must not be blank".into(),
            ));
        }
        if let Some(max) = self.max_prompt_length
            && prompt.chars().count() > max
        {
            problems.push(problem(
                "prompt".into(),
                "too_long",
                format!(
                    "the prompt has {} characters; {} takes at most {max}",
                    prompt.chars().count(),
                    self.id
                ),
            ));
        }
        let mut out = Map::new();
        for (key, value) in params {
            let field = format!("params.{key}");
            if key == REFERENCE_ITEMS_KEY {
                out.insert(key.clone(), value.clone());
                continue;
            }
            let Some(spec) = self.param(key) else {
                let known: Vec<&str> = self.params.iter().map(|p| p.key.as_str()).collect();
                problems.push(problem(
                    field,
                    "unknown_field",
                    format!(
                        "{} has no parameter {key:?} (it has: {})",
                        self.id,
                        known.join(", ")
                    ),
                ));
                continue;
            };
            match check_value(spec, value) {
                Ok(v) => {
                    out.insert(key.clone(), v);
                }
                Err((issue, message)) => problems.push(problem(field, issue, message)),
            }
        }
        for spec in self.params.iter().filter(|p| p.required) {
            if !params.contains_key(&spec.key) {
                problems.push(problem(
                    format!("params.{}", spec.key),
                    "required",
                    format!("params.{} is required by {}", spec.key, self.id),
                ));
            }
        }
        if references > 0 {
            match &self.reference_media {
                None => problems.push(problem(
                    format!("params.{REFERENCE_ITEMS_KEY}"),
                    "not_allowed",
                    format!("{} takes no reference files", self.id),
                )),
                Some(r) if references > r.max_files => problems.push(problem(
                    format!("params.{REFERENCE_ITEMS_KEY}"),
                    "too_long",
                    format!(
                        "{} takes at most {} reference file(s); {references} given",
                        self.id, r.max_files
                    ),
                )),
                Some(_) => {}
            }
        }
        if problems.is_empty() {
            Ok(out)
        } else {
            Err(problems)
        }
    }
}

fn check_value(spec: &ParamSpec, v: &Value) -> std::result::Result<Value, (&'static str, String)> {
    let key = &spec.key;
    match spec.kind {
        ParamType::Select => {
            let given = match v {
                Value::String(_) | Value::Number(_) | Value::Bool(_) => canonical(v),
                _ => {
                    return Err((
                        "invalid_type",
                        format!("params.{key} must be a string, number or boolean"),
                    ));
                }
            };
            let options = spec.option_strings();
            if options.contains(&given) {
                Ok(Value::String(given))
            } else {
                Err((
                    "not_allowed",
                    format!(
                        "params.{key} must be one of {}; {given:?} is not",
                        options.join(", ")
                    ),
                ))
            }
        }
        ParamType::Number => {
            let n = match v {
                Value::Number(n) => n.as_f64(),
                Value::String(s) => s.trim().parse::<f64>().ok(),
                _ => None,
            }
            .filter(|n| n.is_finite())
            .ok_or(("invalid_type", format!("params.{key} must be a number")))?;
            if spec.min.is_some_and(|m| n < m) || spec.max.is_some_and(|m| n > m) {
                return Err((
                    "out_of_range",
                    format!(
                        "params.{key} must be between {} and {}",
                        spec.min.map_or("-∞".into(), |m| m.to_string()),
                        spec.max.map_or("∞".into(), |m| m.to_string())
                    ),
                ));
            }
            if let Some(step) = spec.step.filter(|s| *s > 0.0) {
                let k = (n - spec.min.unwrap_or(0.0)) / step;
                if (k - k.round()).abs() > 1e-9 {
                    return Err((
                        "not_allowed",
                        format!("params.{key} must be a multiple of {step}"),
                    ));
                }
            }
            Ok(serde_json::Number::from_f64(n)
                .map(|num| {
                    if n.fract() == 0.0 && n.abs() < 9e15 {
                        Value::from(n as i64)
                    } else {
                        Value::Number(num)
                    }
                })
                .unwrap_or(Value::Null))
        }
        ParamType::Text => match v {
            Value::String(_) => Ok(v.clone()),
            _ => Err(("invalid_type", format!("params.{key} must be a string"))),
        },
        ParamType::Unknown => Ok(v.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn model() -> Model {
        serde_json::from_value(json!({
            "id": "m", "max_prompt_length": 10,
            "params": [
                {"key": "duration", "type": "select", "options": ["3","4","5"], "default": "5"},
                {"key": "sound", "type": "select", "options": ["false","true"]},
                {"key": "seed", "type": "number", "min": 0, "max": 10, "step": 2},
                {"key": "style", "type": "text", "required": true},
                {"key": "future", "type": "vector"}
            ],
            "reference_media": {"max_files": 1, "kinds": ["image"], "limits": {}}
        }))
        .unwrap()
    }

    fn fields(p: &[FieldDetail]) -> Vec<(&str, &str)> {
        p.iter()
            .map(|d| (d.field.as_str(), d.issue.as_str()))
            .collect()
    }

    #[test]
    fn normalises_what_is_right() {
        let m = model();
        let p = json!({"duration": 4, "sound": true, "seed": "4", "style": "noir"});
        let out = m.check("hi", p.as_object().unwrap(), 1).unwrap();
        assert_eq!(
            Value::Object(out),
            json!({"duration": "4", "sound": "true", "seed": 4, "style": "noir"})
        );
        assert!(m.param("sound").unwrap().is_boolean());
        assert!(!m.param("duration").unwrap().is_boolean());
    }

    #[test]
    fn reports_every_problem_with_server_field_names() {
        let m = model();
        let p = json!({"duration": "16", "seed": 3, "colour": "red", "sound": [1]});
        let e = m.check("   ", p.as_object().unwrap(), 2).unwrap_err();
        let f = fields(&e);
        for want in [
            ("prompt", "blank"),
            ("params.duration", "not_allowed"),
            ("params.seed", "not_allowed"),
            ("params.colour", "unknown_field"),
            ("params.sound", "invalid_type"),
            ("params.style", "required"),
            ("params.referenceMediaItems", "too_long"),
        ] {
            assert!(f.contains(&want), "{want:?} missing from {f:?}");
        }
        let e = m
            .check("x".repeat(11).as_str(), &Map::new(), 0)
            .unwrap_err();
        assert!(fields(&e).contains(&("prompt", "too_long")));
        let p = json!({"seed": 12, "style": "s"});
        let e = m.check("ok", p.as_object().unwrap(), 0).unwrap_err();
        assert_eq!(fields(&e), [("params.seed", "out_of_range")]);
    }

    #[test]
    fn unknown_param_types_pass_through() {
        let m = model();
        let p = json!({"future": [1, 2], "style": "s"});
        let out = m.check("ok", p.as_object().unwrap(), 0).unwrap();
        assert_eq!(out["future"], json!([1, 2]));
    }

    #[test]
    fn a_number_or_text_param_with_null_options_reads() {
        // As the server sends them: `options: null` for every param that is not a select.
        let spec: ParamSpec = serde_json::from_value(json!({
            "key": "cfg_scale", "type": "number", "required": false, "default": 0.5,
            "options": null, "min": 0.0, "max": 1.0, "step": null, "description": "x"
        }))
        .expect("reads");
        assert!(spec.options.is_empty());
        assert_eq!(spec.max, Some(1.0));
    }
}
