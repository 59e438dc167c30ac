//! The model catalog is data (`catalog/models.json`), not code: a model whose
//! parameters are of the known kinds (select, number, text) needs no Rust
//! change. Public fields serialise as `GET /api/v1/models` shows them; the
//! `internal` block (deadline, provider routing, cross-field rules) never leaves
//! the server.

use crate::credits::Credits;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Image,
    Video,
    Audio,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ParamType {
    Select,
    Number,
    Text,
}

#[cfg(feature = "openapi")]
fn param_default_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([
            Type::String,
            Type::Number,
            Type::Boolean,
            Type::Null,
        ]))
        .build()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ParamSpec {
    pub key: String,
    #[serde(rename = "type")]
    pub kind: ParamType,
    #[serde(default)]
    pub required: bool,
    /// A select's default is one of its options (a string); a number's is
    /// a number; `null` when there is none.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(schema_with = param_default_schema))]
    pub default: Option<serde_json::Value>,
    #[serde(default)]
    pub options: Option<Vec<String>>,
    #[serde(default)]
    pub min: Option<f64>,
    #[serde(default)]
    pub max: Option<f64>,
    #[serde(default)]
    pub step: Option<f64>,
    /// For `text` params: the longest value accepted, in characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<u32>,
    #[serde(default)]
    pub description: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct KindLimits {
    pub max_bytes: u64,
    pub mime_types: Vec<String>,
    /// Smallest accepted width and height (images), in pixels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_side_px: Option<u32>,
    /// Widest accepted aspect ratio either way (2.5 means 1:2.5 .. 2.5:1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_aspect_ratio: Option<f64>,
    /// Whether a video/audio reference must carry a server-signed `durationToken`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub requires_duration_token: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ReferenceMediaSpec {
    pub max_files: u32,
    pub kinds: Vec<String>,
    /// Limits per kind, keyed by kind (`image`, `video`, `audio`).
    pub limits: BTreeMap<String, KindLimits>,
    pub rule: String,
}

/// A cross-field rule: with at least `when_min_references` reference items,
/// `param` must not equal `forbidden_value`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReferenceParamRule {
    pub when_min_references: usize,
    pub param: String,
    pub forbidden_value: String,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelInternal {
    /// Which provider family serves the model (`kling`); the sandbox can
    /// stand in for any of them.
    pub provider: String,
    /// A task still running this long after creation fails as
    /// `generation_timeout` and is refunded.
    pub deadline_seconds: u64,
    #[serde(default)]
    pub rules: Vec<ReferenceParamRule>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Model {
    pub id: String,
    pub display_name: String,
    pub category: Category,
    pub runtime: String,
    /// The price with every param at its default (for `FIXED`, the price).
    pub base_credits: Credits,
    /// `FIXED` (always `base_credits`) or `RULES` (see `pricing`).
    pub billing_type: String,
    /// How a `RULES` model's price follows the request (docs/PRICING.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pricing: Option<crate::pricing::PriceRules>,
    pub supported_modes: Vec<String>,
    pub max_prompt_length: u32,
    pub supported_api_inputs: Vec<String>,
    pub requires_files_api: bool,
    pub requires_upload_for_modes: Vec<String>,
    pub url_input_supported: bool,
    pub file_kinds: Vec<String>,
    pub api_status: String,
    pub api_input_status: String,
    pub params: Vec<ParamSpec>,
    pub reference_media: ReferenceMediaSpec,
    pub notices: Vec<String>,
    #[serde(skip_serializing)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub internal: ModelInternal,
    /// `pricing::price_version` of this model, worked out once when the catalog loads
    /// (every create records it).
    #[serde(skip)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub price_version: String,
}

impl Model {
    pub fn param(&self, key: &str) -> Option<&ParamSpec> {
        self.params.iter().find(|p| p.key == key)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    models: Vec<Model>,
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("catalog is not valid JSON for the catalog schema: {0}")]
    Parse(#[from] serde_json::Error),
    #[error("catalog problem in model {model:?}: {problem}")]
    Invalid { model: String, problem: String },
}

#[derive(Debug, Clone)]
pub struct Catalog {
    models: Vec<Model>,
}

/// The catalog shipped with the binary; `--catalog FILE` replaces it.
pub const BUILTIN_CATALOG: &str = include_str!("../../../catalog/models.json");

impl Catalog {
    pub fn builtin() -> Result<Self, CatalogError> {
        Self::from_json(BUILTIN_CATALOG)
    }

    /// Parses and checks the catalog, so a bad file stops the server at
    /// start rather than producing odd validation at request time.
    pub fn from_json(text: &str) -> Result<Self, CatalogError> {
        let mut file: CatalogFile = serde_json::from_str(text)?;
        for m in &mut file.models {
            m.price_version = crate::pricing::price_version(m);
        }
        for m in &file.models {
            check_model(m).map_err(|problem| CatalogError::Invalid {
                model: m.id.clone(),
                problem,
            })?;
        }
        let mut ids: Vec<_> = file.models.iter().map(|m| m.id.as_str()).collect();
        ids.sort_unstable();
        if ids.windows(2).any(|w| w[0] == w[1]) {
            return Err(CatalogError::Invalid {
                model: "*".into(),
                problem: "duplicate model id".into(),
            });
        }
        Ok(Self {
            models: file.models,
        })
    }

    pub fn models(&self) -> &[Model] {
        &self.models
    }

    pub fn get(&self, id: &str) -> Option<&Model> {
        self.models.iter().find(|m| m.id == id)
    }
}

fn check_model(m: &Model) -> Result<(), String> {
    for p in &m.params {
        if p.key == crate::params::REFERENCE_ITEMS_KEY {
            return Err(format!("param key {:?} is reserved", p.key));
        }
        match p.kind {
            ParamType::Select => {
                let opts = p.options.as_ref().filter(|o| !o.is_empty());
                let Some(opts) = opts else {
                    return Err(format!("select param {} has no options", p.key));
                };
                if let Some(d) = &p.default {
                    let d = d
                        .as_str()
                        .ok_or_else(|| format!("default of {} must be a string option", p.key))?;
                    if !opts.iter().any(|o| o == d) {
                        return Err(format!("default of {} is not one of its options", p.key));
                    }
                }
            }
            ParamType::Number => {
                if let (Some(lo), Some(hi)) = (p.min, p.max)
                    && lo > hi
                {
                    return Err(format!("number param {} has min > max", p.key));
                }
            }
            ParamType::Text => {}
        }
    }
    for k in &m.reference_media.kinds {
        if !m.reference_media.limits.contains_key(k) {
            return Err(format!("reference kind {k} has no limits"));
        }
    }
    for r in &m.internal.rules {
        if m.param(&r.param).is_none() {
            return Err(format!("rule names unknown param {}", r.param));
        }
    }
    if m.internal.deadline_seconds == 0 {
        return Err("deadline_seconds must be positive".into());
    }
    crate::pricing::check(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_catalog_has_kling_3_0_as_the_seed_gives_it() {
        let c = Catalog::builtin().unwrap();
        let m = c.get("kling-3-0").unwrap();
        assert_eq!(m.base_credits.get(), 90);
        assert_eq!(m.max_prompt_length, 2000);
        assert_eq!(m.category, Category::Video);
        let keys: Vec<_> = m.params.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            ["mode", "multi_shots", "duration", "sound", "aspect_ratio"]
        );
        let d = m.param("duration").unwrap();
        assert_eq!(d.options.as_ref().unwrap().len(), 13);
        assert_eq!(d.default, Some(serde_json::json!("5")));
        assert_eq!(
            m.param("mode").unwrap().default,
            Some(serde_json::json!("pro"))
        );
        assert_eq!(m.reference_media.max_files, 2);
        assert_eq!(
            m.reference_media.limits["image"].max_bytes,
            10 * 1024 * 1024
        );
    }

    #[test]
    fn internal_block_is_not_public() {
        let c = Catalog::builtin().unwrap();
        let v = serde_json::to_value(c.get("kling-3-0").unwrap()).unwrap();
        assert!(v.get("internal").is_none());
    }

    #[test]
    fn a_second_model_needs_only_data() {
        let mut file: serde_json::Value = serde_json::from_str(BUILTIN_CATALOG).unwrap();
        let mut m = file["models"][0].clone();
        m["id"] = "other-video".into();
        m["params"] = serde_json::json!([
            {"key": "steps", "type": "number", "min": 1, "max": 50, "step": 1, "default": 20, "description": "Steps"},
            {"key": "style", "type": "text", "max_length": 20, "description": "Style"}
        ]);
        m["internal"]["rules"] = serde_json::json!([]);
        file["models"].as_array_mut().unwrap().push(m);
        let c = Catalog::from_json(&file.to_string()).unwrap();
        assert!(c.get("other-video").is_some());
    }

    #[test]
    fn a_select_default_outside_its_options_is_refused() {
        let mut file: serde_json::Value = serde_json::from_str(BUILTIN_CATALOG).unwrap();
        file["models"][0]["params"][2]["default"] = "16".into();
        assert!(Catalog::from_json(&file.to_string()).is_err());
    }
}
