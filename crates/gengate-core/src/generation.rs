//! Generation tasks: the create request (parsed, never merely validated),
//! the state machine, and the one public serializer used by create, status,
//! list and webhooks.

use crate::catalog::{Catalog, Model};
use crate::credits::Credits;
use crate::error::{FieldIssue, ValidationErrors};
use crate::ids::{AccountId, FileId, TaskId};
use crate::params::{NormalizedParams, ReferenceItem, validate_params};
use crate::text::{self, TextRule};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A prompt of 1..=max Unicode scalar values that is not only whitespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Prompt(String);

impl Prompt {
    pub fn parse(s: &str, max_chars: u32) -> Result<Self, (FieldIssue, String)> {
        if s.trim().is_empty() {
            return Err((FieldIssue::Blank, "prompt must not be blank".into()));
        }
        if let Some(p) = text::problem("prompt", s, TextRule::Prose) {
            return Err(p);
        }
        let n = s.chars().count();
        if n > max_chars as usize {
            return Err((
                FieldIssue::TooLong,
                format!("prompt must be at most {max_chars} characters (got {n})"),
            ));
        }
        Ok(Self(s.to_owned()))
    }
    pub fn from_stored(s: String) -> Self {
        Self(s)
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The caller's own trace id: 1..=128 characters, no control characters
/// (the same rule for the JSON field, the upload form field and the list
/// filter, so whatever can be stored can be searched for).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ClientRequestId(String);

impl ClientRequestId {
    pub const MAX_CHARS: usize = 128;
    pub fn parse(s: &str) -> Result<Self, (FieldIssue, String)> {
        let n = s.chars().count();
        if n == 0 {
            return Err((
                FieldIssue::TooShort,
                "client_request_id must not be empty".into(),
            ));
        }
        if n > Self::MAX_CHARS {
            return Err((
                FieldIssue::TooLong,
                format!(
                    "client_request_id must be at most {} characters",
                    Self::MAX_CHARS
                ),
            ));
        }
        if let Some(p) = text::problem("client_request_id", s, TextRule::Line) {
            return Err(p);
        }
        Ok(Self(s.to_owned()))
    }
    pub fn from_stored(s: String) -> Self {
        Self(s)
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A fully checked `POST /api/v1/generations` body. References are checked
/// for shape; the files domain resolves them against the store.
#[derive(Debug, Clone)]
pub struct CreateGeneration {
    pub model: Model,
    pub prompt: Prompt,
    pub params: NormalizedParams,
    pub references: Vec<ReferenceItem>,
    pub client_request_id: Option<ClientRequestId>,
}

const TOP_LEVEL_KEYS: [&str; 4] = ["model", "prompt", "params", "client_request_id"];

pub fn parse_create_request(
    catalog: &Catalog,
    body: &Value,
) -> Result<CreateGeneration, ValidationErrors> {
    let mut errs = ValidationErrors::new();
    let Value::Object(obj) = body else {
        return Err(ValidationErrors::single(
            "body",
            FieldIssue::InvalidType,
            "the request body must be a JSON object",
        ));
    };
    for k in obj.keys() {
        if !TOP_LEVEL_KEYS.contains(&k.as_str()) {
            let name = text::key_name(k);
            let msg = if k == "files" {
                "files is not a request field: upload files through /api/v1/files and reference them in params.referenceMediaItems".to_owned()
            } else {
                format!("{name} is not a request field")
            };
            errs.push(name, FieldIssue::UnknownField, msg);
        }
    }

    let model = match obj.get("model") {
        None | Some(Value::Null) => {
            errs.push("model", FieldIssue::Required, "model is required");
            None
        }
        Some(Value::String(id)) => match catalog.get(id) {
            Some(m) => Some(m),
            None => {
                errs.push(
                    "model",
                    FieldIssue::NotAllowed,
                    format!("model {id:?} is not in the catalog (see GET /api/v1/models)"),
                );
                None
            }
        },
        Some(_) => {
            errs.push("model", FieldIssue::InvalidType, "model must be a string");
            None
        }
    };

    let max_prompt = model.map_or(u32::MAX, |m| m.max_prompt_length);
    let prompt = match obj.get("prompt") {
        None | Some(Value::Null) => {
            errs.push("prompt", FieldIssue::Required, "prompt is required");
            None
        }
        Some(Value::String(s)) => match Prompt::parse(s, max_prompt) {
            Ok(p) => Some(p),
            Err((issue, msg)) => {
                errs.push("prompt", issue, msg);
                None
            }
        },
        Some(_) => {
            errs.push("prompt", FieldIssue::InvalidType, "prompt must be a string");
            None
        }
    };

    let client_request_id = match obj.get("client_request_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => match ClientRequestId::parse(s) {
            Ok(c) => Some(c),
            Err((issue, msg)) => {
                errs.push("client_request_id", issue, msg);
                None
            }
        },
        Some(_) => {
            errs.push(
                "client_request_id",
                FieldIssue::InvalidType,
                "client_request_id must be a string",
            );
            None
        }
    };

    // Params are checked only against a known model; with an unknown model
    // there is nothing to check them against, and the model error says so.
    let checked = model.map(|m| validate_params(m, obj.get("params"), &mut errs));
    if obj
        .get("params")
        .is_some_and(|p| !p.is_object() && !p.is_null())
        && model.is_none()
    {
        errs.push(
            "params",
            FieldIssue::InvalidType,
            "params must be an object",
        );
    }

    errs.into_result()?;
    match (model, prompt, checked) {
        (Some(model), Some(prompt), Some((params, references))) => Ok(CreateGeneration {
            model: model.clone(),
            prompt,
            params,
            references,
            client_request_id,
        }),
        // Unreachable while every None above pushes an error; kept total.
        _ => Err(ValidationErrors::single(
            "body",
            FieldIssue::InvalidType,
            "the request is invalid",
        )),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    Queued,
    Processing,
    Succeeded,
    Failed,
}

impl TaskStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Processing => "processing",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => Self::Queued,
            "processing" => Self::Processing,
            "succeeded" => Self::Succeeded,
            "failed" => Self::Failed,
            _ => return None,
        })
    }
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed)
    }
    /// The only moves there are; nothing goes back.
    pub fn can_become(self, next: TaskStatus) -> bool {
        matches!(
            (self, next),
            (Self::Queued, Self::Processing)
                | (Self::Queued, Self::Failed)
                | (Self::Processing, Self::Succeeded)
                | (Self::Processing, Self::Failed)
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TaskErrorCode {
    GenerationFailed,
    ContentRejected,
    GenerationTimeout,
    UpstreamUnavailable,
    /// The caller canceled the task before it ran (or while the sandbox ran it).
    Canceled,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TaskError {
    pub code: TaskErrorCode,
    pub message: String,
}

/// One output as stored: the blob key, never a URL (URLs are signed and
/// expire, so they are made when the task is shown).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredMedia {
    pub blob_key: String,
    pub mime_type: String,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub duration_seconds: Option<f64>,
    pub size_bytes: u64,
    pub has_audio: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredResult {
    pub media: Vec<StoredMedia>,
}

/// A resolved reference file, as kept on the task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskReference {
    pub file_id: FileId,
    pub kind: String,
    pub mime_type: String,
    pub blob_key: String,
    pub width: Option<u32>,
    pub height: Option<u32>,
}

/// The stored task, as the store returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    pub id: TaskId,
    pub account_id: AccountId,
    pub model: String,
    pub status: TaskStatus,
    pub prompt: Prompt,
    pub params: NormalizedParams,
    pub references: Vec<TaskReference>,
    pub reserved_credits: Credits,
    pub final_credits: Credits,
    pub client_request_id: Option<ClientRequestId>,
    pub result: Option<StoredResult>,
    pub error: Option<TaskError>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub deadline_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MediaItem {
    pub url: String,
    pub mime_type: String,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub duration_seconds: Option<f64>,
    pub size_bytes: u64,
    pub has_audio: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GenerationResult {
    pub primary_url: String,
    pub urls: Vec<String>,
    pub media: Vec<MediaItem>,
    /// When the signed URLs stop working; fetch the task again for fresh ones.
    pub expires_at: Timestamp,
}

/// The public Generation object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Generation {
    pub id: TaskId,
    pub status: TaskStatus,
    pub model: String,
    pub reserved_credits: Credits,
    pub final_credits: Credits,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub result: Option<GenerationResult>,
    pub error: Option<TaskError>,
    pub client_request_id: Option<String>,
}

/// Signs a blob key into a URL for callers: (url, expires_at).
pub trait UrlSigner {
    fn sign(&self, blob_key: &str) -> (String, Timestamp);
}

impl Generation {
    pub fn from_task(task: &Task, signer: &dyn UrlSigner) -> Self {
        let result = task
            .result
            .as_ref()
            .filter(|_| task.status == TaskStatus::Succeeded)
            .and_then(|r| {
                let mut expires = None;
                let media: Vec<MediaItem> = r
                    .media
                    .iter()
                    .map(|m| {
                        let (url, exp) = signer.sign(&m.blob_key);
                        expires = Some(expires.map_or(exp, |e: Timestamp| e.min(exp)));
                        MediaItem {
                            url,
                            mime_type: m.mime_type.clone(),
                            width: m.width,
                            height: m.height,
                            duration_seconds: m.duration_seconds,
                            size_bytes: m.size_bytes,
                            has_audio: m.has_audio,
                        }
                    })
                    .collect();
                let first = media.first()?.url.clone();
                Some(GenerationResult {
                    primary_url: first,
                    urls: media.iter().map(|m| m.url.clone()).collect(),
                    expires_at: expires.unwrap_or(task.updated_at),
                    media,
                })
            });
        Self {
            id: task.id.clone(),
            status: task.status,
            model: task.model.clone(),
            reserved_credits: task.reserved_credits,
            final_credits: task.final_credits,
            created_at: task.created_at,
            updated_at: task.updated_at,
            result,
            error: task
                .error
                .clone()
                .filter(|_| task.status == TaskStatus::Failed),
            client_request_id: task
                .client_request_id
                .as_ref()
                .map(|c| c.as_str().to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn catalog() -> Catalog {
        Catalog::builtin().unwrap()
    }

    fn fields(e: &ValidationErrors) -> Vec<(&str, FieldIssue)> {
        e.problems()
            .iter()
            .map(|p| (p.field.as_str(), p.issue))
            .collect()
    }

    /// The builtin catalog plus a model with a free-text and a number param.
    fn catalog_with_text_params() -> Catalog {
        let mut file: Value = serde_json::from_str(crate::catalog::BUILTIN_CATALOG).unwrap();
        let mut m = file["models"][0].clone();
        m["id"] = "texty".into();
        m["params"] = json!([
            {"key": "negative_prompt", "type": "text", "max_length": 200, "description": "Avoid"},
            {"key": "steps", "type": "number", "min": 1, "max": 50, "step": 1, "default": 20, "description": "Steps"}
        ]);
        m["internal"]["rules"] = json!([]);
        file["models"].as_array_mut().unwrap().push(m);
        Catalog::from_json(&file.to_string()).unwrap()
    }

    #[test]
    fn control_characters_are_refused_in_every_text_field_by_name() {
        let c = catalog_with_text_params();
        let e = parse_create_request(
            &c,
            &json!({"model": "texty", "prompt": "a\u{0000}b", "client_request_id": "id\n",
                    "params": {"negative_prompt": "x\u{001b}", "steps": "2\u{0000}",
                               "referenceMediaItems": [{"url": "u\u{0000}", "kind": "image\u{0000}", "name": "n\u{0007}"}]}}),
        )
        .unwrap_err();
        let f = fields(&e);
        for field in [
            "prompt",
            "client_request_id",
            "params.negative_prompt",
            "params.steps",
            "params.referenceMediaItems[0].url",
            "params.referenceMediaItems[0].kind",
            "params.referenceMediaItems[0].name",
        ] {
            assert!(
                f.contains(&(field, FieldIssue::InvalidFormat)),
                "{field} not refused: {f:?}"
            );
        }
        assert_eq!(f.len(), 7, "each field once: {f:?}");

        // Prose keeps tab and newlines; ids do not.
        let g = parse_create_request(
            &c,
            &json!({"model": "texty", "prompt": "one\r\ntwo\tthree",
                    "params": {"negative_prompt": "blur\nnoise"}}),
        )
        .unwrap();
        assert_eq!(g.prompt.as_str(), "one\r\ntwo\tthree");
        assert_eq!(g.params.get_str("negative_prompt"), Some("blur\nnoise"));
        assert!(ClientRequestId::parse("a\tb").is_err());
        assert!(ClientRequestId::parse("a-b_c.d:e/f").is_ok());
    }

    /// Found by tests/fuzz.rs: an empty key was reported as field "".
    #[test]
    fn unknown_keys_that_do_not_read_as_names_are_quoted() {
        let e = parse_create_request(
            &catalog(),
            &json!({"model": "kling-3-0", "prompt": "x", "": 1, "a\u{0}": 2, "params": {"": 3}}),
        )
        .unwrap_err();
        let f = fields(&e);
        for expected in ["\"\"", "\"a\\u0000\"", "params.\"\""] {
            assert!(
                f.contains(&(expected, FieldIssue::UnknownField)),
                "{expected} in {f:?}"
            );
        }
    }

    /// Found by tests/fuzz.rs: without serde_json's `float_roundtrip`, a
    /// number could come back 1 ulp off after serialise → parse.
    #[test]
    fn numbers_survive_serialise_and_parse_exactly() {
        let v = json!([{"k": -1.400492368522259e-244}, 0.1, 1e308, 5e-324]);
        let back: Value = serde_json::from_str(&crate::idempotency::canonical_json(&v)).unwrap();
        assert_eq!(back, v);
    }

    #[test]
    fn minimal_request_fills_defaults() {
        let g = parse_create_request(
            &catalog(),
            &json!({"model": "kling-3-0", "prompt": "a cat"}),
        )
        .unwrap();
        assert_eq!(
            g.params.clone().into_value(),
            json!({"mode":"pro","multi_shots":"false","duration":"5","sound":"false","aspect_ratio":"16:9"})
        );
    }

    #[test]
    fn json_natives_are_normalised_to_canonical_strings() {
        let g = parse_create_request(
            &catalog(),
            &json!({"model": "kling-3-0", "prompt": "x", "params": {"duration": 7, "sound": true, "multi_shots": false}}),
        )
        .unwrap();
        assert_eq!(g.params.get_str("duration"), Some("7"));
        assert_eq!(g.params.get_str("sound"), Some("true"));
        assert_eq!(g.params.get_str("multi_shots"), Some("false"));
    }

    #[test]
    fn every_bad_field_is_reported() {
        let e = parse_create_request(
            &catalog(),
            &json!({"model": "kling-3-0", "prompt": "  ", "files": [], "client_request_id": "x".repeat(129),
                    "params": {"duration": 16, "mode": "ultra", "sound": "yes", "aspect_ratio": 1.5, "seed": 3}}),
        )
        .unwrap_err();
        let f = fields(&e);
        for expected in [
            ("files", FieldIssue::UnknownField),
            ("prompt", FieldIssue::Blank),
            ("client_request_id", FieldIssue::TooLong),
            ("params.duration", FieldIssue::NotAllowed),
            ("params.mode", FieldIssue::NotAllowed),
            ("params.sound", FieldIssue::NotAllowed),
            ("params.aspect_ratio", FieldIssue::NotAllowed),
            ("params.seed", FieldIssue::UnknownField),
        ] {
            assert!(f.contains(&expected), "missing {expected:?} in {f:?}");
        }
        assert_eq!(f.len(), 8);
    }

    #[test]
    fn prompt_length_counts_characters_not_bytes() {
        let urdu = "ک".repeat(2000);
        assert!(
            parse_create_request(&catalog(), &json!({"model": "kling-3-0", "prompt": urdu}))
                .is_ok()
        );
        let e = parse_create_request(
            &catalog(),
            &json!({"model": "kling-3-0", "prompt": "ک".repeat(2001)}),
        )
        .unwrap_err();
        assert_eq!(fields(&e), [("prompt", FieldIssue::TooLong)]);
        let emoji = "🎬".repeat(2000);
        assert!(
            parse_create_request(&catalog(), &json!({"model": "kling-3-0", "prompt": emoji}))
                .is_ok()
        );
    }

    #[test]
    fn unknown_model_and_wrong_types() {
        let e = parse_create_request(&catalog(), &json!({"model": "kling-9", "prompt": 5}))
            .unwrap_err();
        assert_eq!(
            fields(&e),
            [
                ("model", FieldIssue::NotAllowed),
                ("prompt", FieldIssue::InvalidType)
            ]
        );
        let e = parse_create_request(&catalog(), &json!([1, 2])).unwrap_err();
        assert_eq!(fields(&e), [("body", FieldIssue::InvalidType)]);
        let e = parse_create_request(
            &catalog(),
            &json!({"model": "kling-3-0", "prompt": "x", "params": []}),
        )
        .unwrap_err();
        assert_eq!(fields(&e), [("params", FieldIssue::InvalidType)]);
    }

    #[test]
    fn reference_items_are_checked_for_shape_count_and_rules() {
        let img = |u: &str| json!({"url": u, "kind": "image"});
        let e = parse_create_request(
            &catalog(),
            &json!({"model": "kling-3-0", "prompt": "x", "params": {"multi_shots": "true",
                    "referenceMediaItems": [img("a"), img("b")]}}),
        )
        .unwrap_err();
        assert_eq!(fields(&e), [("params.multi_shots", FieldIssue::Conflict)]);

        let e = parse_create_request(
            &catalog(),
            &json!({"model": "kling-3-0", "prompt": "x", "params": {
                    "referenceMediaItems": [img("a"), {"url": "b", "kind": "video", "extra": 1}, img("c")]}}),
        )
        .unwrap_err();
        let f = fields(&e);
        assert!(f.contains(&("params.referenceMediaItems", FieldIssue::TooLong)));
        assert!(f.contains(&("params.referenceMediaItems[1].kind", FieldIssue::NotAllowed)));
        assert!(f.contains(&(
            "params.referenceMediaItems[1].extra",
            FieldIssue::UnknownField
        )));
    }

    #[test]
    fn state_machine_only_moves_forward() {
        use TaskStatus::*;
        assert!(Queued.can_become(Processing));
        assert!(Processing.can_become(Succeeded));
        assert!(Queued.can_become(Failed));
        assert!(!Succeeded.can_become(Failed));
        assert!(!Failed.can_become(Succeeded));
        assert!(!Processing.can_become(Queued));
        assert!(!Queued.can_become(Succeeded));
    }
}
