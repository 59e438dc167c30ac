//! Catalog-driven validation of a generation request. Every problem is
//! collected (not only the first) and named by its field path. What comes out
//! is normalised: select values as their canonical strings, defaults filled
//! in, so the stored task keeps exactly what will run.

use crate::catalog::{Model, ParamSpec, ParamType};
use crate::error::{FieldIssue, ValidationErrors};
use crate::text::{self, TextRule};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub const REFERENCE_ITEMS_KEY: &str = "referenceMediaItems";

/// Params after validation: only known keys, canonical values, defaults filled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NormalizedParams(Map<String, Value>);

impl NormalizedParams {
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(Value::as_str)
    }
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key)
    }
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }
    pub fn into_value(self) -> Value {
        Value::Object(self.0)
    }
    pub fn from_stored(v: Value) -> Self {
        match v {
            Value::Object(m) => Self(m),
            _ => Self(Map::new()),
        }
    }
}

/// One `params.referenceMediaItems[i]` as the caller sent it, checked for
/// shape only. Whether its URL names a live file of the caller is for the
/// files domain to decide (it needs the store).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReferenceItem {
    pub index: usize,
    pub url: String,
    pub kind: String,
    pub name: Option<String>,
    #[serde(rename = "mimeType")]
    pub mime_type: Option<String>,
    #[serde(rename = "durationSeconds")]
    pub duration_seconds: Option<f64>,
    #[serde(rename = "durationToken")]
    pub duration_token: Option<String>,
}

impl ReferenceItem {
    pub fn field(&self, sub: &str) -> String {
        format!("params.{REFERENCE_ITEMS_KEY}[{}].{sub}", self.index)
    }
}

const REFERENCE_ITEM_KEYS: [&str; 6] = [
    "url",
    "kind",
    "name",
    "mimeType",
    "durationSeconds",
    "durationToken",
];

/// Validates `params` against the model. Always returns what could be
/// normalised; problems are appended to `errs`.
pub fn validate_params(
    model: &Model,
    raw: Option<&Value>,
    errs: &mut ValidationErrors,
) -> (NormalizedParams, Vec<ReferenceItem>) {
    let empty = Map::new();
    let given = match raw {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(m)) => m,
        Some(_) => {
            errs.push(
                "params",
                FieldIssue::InvalidType,
                "params must be an object",
            );
            &empty
        }
    };

    for key in given.keys() {
        if key != REFERENCE_ITEMS_KEY && model.param(key).is_none() {
            let key = text::key_name(key);
            errs.push(
                format!("params.{key}"),
                FieldIssue::UnknownField,
                format!("params.{key} is not a parameter of {}", model.id),
            );
        }
    }

    let mut out = Map::new();
    for spec in &model.params {
        let field = format!("params.{}", spec.key);
        match given.get(&spec.key) {
            // null means "not given": callers that serialise optional fields
            // as null get the default rather than an error.
            None | Some(Value::Null) => {
                if spec.required {
                    errs.push(
                        field,
                        FieldIssue::Required,
                        format!("params.{} is required", spec.key),
                    );
                } else if let Some(d) = &spec.default {
                    out.insert(spec.key.clone(), d.clone());
                }
            }
            Some(v) => match normalise_value(spec, &field, v) {
                Ok(n) => {
                    out.insert(spec.key.clone(), n);
                }
                Err((issue, msg)) => errs.push(field, issue, msg),
            },
        }
    }

    let refs = parse_reference_items(model, given.get(REFERENCE_ITEMS_KEY), errs);

    for rule in &model.internal.rules {
        if refs.len() >= rule.when_min_references
            && out.get(&rule.param).and_then(Value::as_str) == Some(rule.forbidden_value.as_str())
        {
            errs.push(
                format!("params.{}", rule.param),
                FieldIssue::Conflict,
                rule.message.clone(),
            );
        }
    }

    (NormalizedParams(out), refs)
}

fn normalise_value(
    spec: &ParamSpec,
    field: &str,
    v: &Value,
) -> Result<Value, (FieldIssue, String)> {
    match spec.kind {
        ParamType::Select => {
            let options = spec.options.as_deref().unwrap_or_default();
            let candidate = match v {
                Value::String(s) => {
                    if let Some(p) = text::problem(field, s, TextRule::Line) {
                        return Err(p);
                    }
                    s.clone()
                }
                Value::Bool(b) => b.to_string(),
                Value::Number(n) if n.is_i64() || n.is_u64() => n.to_string(),
                Value::Number(_) => {
                    return Err((
                        FieldIssue::NotAllowed,
                        format!("{field} must be one of {}", options.join(", ")),
                    ));
                }
                _ => {
                    return Err((
                        FieldIssue::InvalidType,
                        format!("{field} must be a string (one of {})", options.join(", ")),
                    ));
                }
            };
            if options.contains(&candidate) {
                Ok(Value::String(candidate))
            } else {
                Err((
                    FieldIssue::NotAllowed,
                    format!("{field} must be one of {}", options.join(", ")),
                ))
            }
        }
        ParamType::Number => {
            let n = match v {
                Value::Number(n) => n.as_f64(),
                Value::String(s) => {
                    if let Some(p) = text::problem(field, s, TextRule::Line) {
                        return Err(p);
                    }
                    s.trim().parse::<f64>().ok().filter(|f| f.is_finite())
                }
                _ => None,
            };
            let Some(n) = n else {
                return Err((FieldIssue::InvalidType, format!("{field} must be a number")));
            };
            if spec.min.is_some_and(|lo| n < lo) || spec.max.is_some_and(|hi| n > hi) {
                return Err((
                    FieldIssue::OutOfRange,
                    format!(
                        "{field} must be between {} and {}",
                        spec.min.map_or("-∞".into(), fmt_num),
                        spec.max.map_or("∞".into(), fmt_num)
                    ),
                ));
            }
            if let Some(step) = spec.step.filter(|s| *s > 0.0) {
                let base = spec.min.unwrap_or(0.0);
                let k = (n - base) / step;
                if (k - k.round()).abs() > 1e-9 {
                    return Err((
                        FieldIssue::NotAllowed,
                        format!(
                            "{field} must be a multiple of {} from {}",
                            fmt_num(step),
                            fmt_num(base)
                        ),
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
        ParamType::Text => {
            let Value::String(s) = v else {
                return Err((FieldIssue::InvalidType, format!("{field} must be a string")));
            };
            if let Some(p) = text::problem(field, s, TextRule::Prose) {
                return Err(p);
            }
            if let Some(max) = spec.max_length
                && s.chars().count() > max as usize
            {
                return Err((
                    FieldIssue::TooLong,
                    format!("{field} must be at most {max} characters"),
                ));
            }
            Ok(Value::String(s.clone()))
        }
    }
}

fn fmt_num(f: f64) -> String {
    if f.fract() == 0.0 {
        format!("{}", f as i64)
    } else {
        f.to_string()
    }
}

fn parse_reference_items(
    model: &Model,
    raw: Option<&Value>,
    errs: &mut ValidationErrors,
) -> Vec<ReferenceItem> {
    let base = format!("params.{REFERENCE_ITEMS_KEY}");
    let items = match raw {
        None | Some(Value::Null) => return Vec::new(),
        Some(Value::Array(a)) => a,
        Some(_) => {
            errs.push(
                base,
                FieldIssue::InvalidType,
                format!("params.{REFERENCE_ITEMS_KEY} must be an array"),
            );
            return Vec::new();
        }
    };
    let spec = &model.reference_media;
    if items.len() > spec.max_files as usize {
        errs.push(
            base.clone(),
            FieldIssue::TooLong,
            format!(
                "{} takes at most {} reference item{} for {}",
                base,
                spec.max_files,
                if spec.max_files == 1 { "" } else { "s" },
                model.id
            ),
        );
    }
    let mut out = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let at = format!("{base}[{index}]");
        let Value::Object(obj) = item else {
            errs.push(
                at,
                FieldIssue::InvalidType,
                "each reference item must be an object",
            );
            continue;
        };
        let mut ok = true;
        for k in obj.keys() {
            if !REFERENCE_ITEM_KEYS.contains(&k.as_str()) {
                let k = text::key_name(k);
                errs.push(
                    format!("{at}.{k}"),
                    FieldIssue::UnknownField,
                    format!("{at}.{k} is not a reference item field"),
                );
                ok = false;
            }
        }
        let text = |k: &str, errs: &mut ValidationErrors, ok: &mut bool| -> Option<String> {
            match obj.get(k) {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => {
                    // Kept even when refused, so it is not also reported as missing.
                    if !text::check(&format!("{at}.{k}"), s, TextRule::Line, errs) {
                        *ok = false;
                    }
                    Some(s.clone())
                }
                Some(_) => {
                    errs.push(
                        format!("{at}.{k}"),
                        FieldIssue::InvalidType,
                        format!("{at}.{k} must be a string"),
                    );
                    *ok = false;
                    None
                }
            }
        };
        let url = text("url", errs, &mut ok);
        let kind = text("kind", errs, &mut ok);
        let name = text("name", errs, &mut ok);
        let mime_type = text("mimeType", errs, &mut ok);
        let duration_token = text("durationToken", errs, &mut ok);
        let duration_seconds = match obj.get("durationSeconds") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => n.as_f64(),
            Some(_) => {
                errs.push(
                    format!("{at}.durationSeconds"),
                    FieldIssue::InvalidType,
                    format!("{at}.durationSeconds must be a number"),
                );
                ok = false;
                None
            }
        };
        if url.as_deref().is_none_or(str::is_empty) {
            errs.push(
                format!("{at}.url"),
                FieldIssue::Required,
                format!("{at}.url is required"),
            );
            ok = false;
        }
        match kind.as_deref() {
            None => {
                errs.push(
                    format!("{at}.kind"),
                    FieldIssue::Required,
                    format!("{at}.kind is required"),
                );
                ok = false;
            }
            Some(k)
                if !spec.kinds.iter().any(|x| x == k)
                    && text::first_refused(k, TextRule::Line).is_none() =>
            {
                errs.push(
                    format!("{at}.kind"),
                    FieldIssue::NotAllowed,
                    format!(
                        "{at}.kind must be one of {} for {}",
                        spec.kinds.join(", "),
                        model.id
                    ),
                );
                ok = false;
            }
            Some(_) => {}
        }
        if ok {
            out.push(ReferenceItem {
                index,
                url: url.unwrap_or_default(),
                kind: kind.unwrap_or_default(),
                name,
                mime_type,
                duration_seconds,
                duration_token,
            });
        }
    }
    out
}
