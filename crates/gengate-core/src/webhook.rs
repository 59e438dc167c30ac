//! Webhook endpoints and events as the public API sees them (API.md §8):
//! what an endpoint may be created or changed with, which event types exist,
//! and the envelope every event is delivered in. The URL rules (SSRF) need
//! name resolution and live with the delivery code, not here.

use crate::error::{FieldIssue, ValidationErrors};
use crate::ids::EventId;
use crate::text::{self, TextRule};
use crate::time::Timestamp;
use serde::Serialize;
use serde_json::Value;

/// The `api_version` every event carries: the contract's date.
pub const API_VERSION: &str = "2026-05-11";

/// Longest endpoint name, in characters.
pub const MAX_NAME_CHARS: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    GenerationSucceeded,
    GenerationFailed,
    /// The account's balance fell below its `low_balance_threshold` (once per dip).
    CreditsLow,
    /// A key reached its spend limit (once per spend window).
    KeySpendLimitReached,
    /// Sent by `POST /webhooks/{id}/test` to that endpoint only; never subscribed to.
    WebhookTest,
}

impl EventType {
    /// The types an endpoint may subscribe to.
    pub const SUBSCRIBABLE: [EventType; 4] = [
        Self::GenerationSucceeded,
        Self::GenerationFailed,
        Self::CreditsLow,
        Self::KeySpendLimitReached,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::GenerationSucceeded => "generation.succeeded",
            Self::GenerationFailed => "generation.failed",
            Self::CreditsLow => "credits.low",
            Self::KeySpendLimitReached => "key.spend_limit_reached",
            Self::WebhookTest => "webhook.test",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::GenerationSucceeded,
            Self::GenerationFailed,
            Self::CreditsLow,
            Self::KeySpendLimitReached,
            Self::WebhookTest,
        ]
        .into_iter()
        .find(|t| t.as_str() == s)
    }
}

/// A non-empty, duplicate-free set of subscribable event types, in the
/// order first given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventTypes(Vec<EventType>);

impl EventTypes {
    pub fn all() -> Self {
        Self(EventType::SUBSCRIBABLE.to_vec())
    }

    pub fn contains(&self, t: EventType) -> bool {
        self.0.contains(&t)
    }

    pub fn as_strs(&self) -> Vec<&'static str> {
        self.0.iter().map(|t| t.as_str()).collect()
    }

    /// Reads back what the store wrote; unknown names are dropped so an
    /// older binary reading a newer row still works.
    pub fn from_stored(names: &[String]) -> Self {
        let mut v = Vec::new();
        for n in names {
            if let Some(t) = EventType::parse(n)
                && !v.contains(&t)
            {
                v.push(t);
            }
        }
        Self(v)
    }

    fn parse_field(value: &Value, errs: &mut ValidationErrors) -> Option<Self> {
        let Value::Array(items) = value else {
            errs.push(
                "event_types",
                FieldIssue::InvalidType,
                "event_types must be an array of event type names",
            );
            return None;
        };
        if items.is_empty() {
            errs.push(
                "event_types",
                FieldIssue::TooShort,
                "event_types must name at least one event type",
            );
            return None;
        }
        let mut out = Vec::new();
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let field = format!("event_types[{i}]");
            match item.as_str().map(|s| (s, EventType::parse(s))) {
                Some((_, Some(t))) if EventType::SUBSCRIBABLE.contains(&t) => {
                    if !out.contains(&t) {
                        out.push(t);
                    }
                }
                Some((s, _)) => {
                    ok = false;
                    errs.push(
                        field,
                        FieldIssue::NotAllowed,
                        format!(
                            "{s:?} is not an event type one can subscribe to (allowed: {})",
                            EventType::SUBSCRIBABLE.map(EventType::as_str).join(", ")
                        ),
                    );
                }
                None => {
                    ok = false;
                    errs.push(field, FieldIssue::InvalidType, "event types are strings");
                }
            }
        }
        ok.then_some(Self(out))
    }
}

/// A validated endpoint name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointName(String);

impl EndpointName {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn parse_field(value: &Value, errs: &mut ValidationErrors) -> Option<Self> {
        text::name("name", value, MAX_NAME_CHARS, errs).map(Self)
    }
}

/// `POST /webhooks` after its shape is checked. The URL is still a string:
/// its rules are checked by the caller, which can resolve names.
#[derive(Debug, Clone)]
pub struct CreateEndpoint {
    pub name: EndpointName,
    pub url: String,
    pub event_types: EventTypes,
}

/// `PATCH /webhooks/{id}`: only the fields present change.
#[derive(Debug, Clone, Default)]
pub struct UpdateEndpoint {
    pub name: Option<EndpointName>,
    pub url: Option<String>,
    pub event_types: Option<EventTypes>,
    /// `status: "active" | "disabled"`.
    pub enabled: Option<bool>,
}

const CREATE_KEYS: [&str; 3] = ["name", "url", "event_types"];
const UPDATE_KEYS: [&str; 4] = ["name", "url", "event_types", "status"];

fn object<'a>(
    body: &'a Value,
    allowed: &[&str],
    errs: &mut ValidationErrors,
) -> Option<&'a serde_json::Map<String, Value>> {
    let Value::Object(obj) = body else {
        errs.push(
            "body",
            FieldIssue::InvalidType,
            "the request body must be a JSON object",
        );
        return None;
    };
    for k in obj.keys() {
        if !allowed.contains(&k.as_str()) {
            let k = text::key_name(k);
            errs.push(
                k.clone(),
                FieldIssue::UnknownField,
                format!("{k} is not a field of a webhook endpoint"),
            );
        }
    }
    Some(obj)
}

fn url_field(value: &Value, errs: &mut ValidationErrors) -> Option<String> {
    match value {
        Value::String(s) if !s.trim().is_empty() => {
            // URL parsers silently drop tabs and newlines; refusing them keeps
            // the stored URL the one the caller sees and the one we call.
            text::check("url", s, TextRule::Line, errs).then(|| s.trim().to_owned())
        }
        Value::String(_) => {
            errs.push("url", FieldIssue::Blank, "url must not be blank");
            None
        }
        _ => {
            errs.push("url", FieldIssue::InvalidType, "url must be a string");
            None
        }
    }
}

pub fn parse_create_endpoint(body: &Value) -> Result<CreateEndpoint, ValidationErrors> {
    let mut errs = ValidationErrors::new();
    let Some(obj) = object(body, &CREATE_KEYS, &mut errs) else {
        return Err(errs);
    };
    let name = match obj.get("name") {
        None | Some(Value::Null) => {
            errs.push("name", FieldIssue::Required, "name is required");
            None
        }
        Some(v) => EndpointName::parse_field(v, &mut errs),
    };
    let url = match obj.get("url") {
        None | Some(Value::Null) => {
            errs.push("url", FieldIssue::Required, "url is required");
            None
        }
        Some(v) => url_field(v, &mut errs),
    };
    // Omitted means every subscribable type, which is what a first endpoint
    // usually wants; an explicit empty list is a mistake and refused.
    let event_types = match obj.get("event_types") {
        None | Some(Value::Null) => Some(EventTypes::all()),
        Some(v) => EventTypes::parse_field(v, &mut errs),
    };
    match (name, url, event_types) {
        (Some(name), Some(url), Some(event_types)) if errs.is_empty() => Ok(CreateEndpoint {
            name,
            url,
            event_types,
        }),
        _ => Err(errs),
    }
}

pub fn parse_update_endpoint(body: &Value) -> Result<UpdateEndpoint, ValidationErrors> {
    let mut errs = ValidationErrors::new();
    let Some(obj) = object(body, &UPDATE_KEYS, &mut errs) else {
        return Err(errs);
    };
    let mut out = UpdateEndpoint::default();
    for (k, v) in obj {
        if v.is_null() {
            errs.push(
                k.clone(),
                FieldIssue::InvalidType,
                format!("{k} cannot be null; leave it out to keep it"),
            );
            continue;
        }
        match k.as_str() {
            "name" => out.name = EndpointName::parse_field(v, &mut errs),
            "url" => out.url = url_field(v, &mut errs),
            "event_types" => out.event_types = EventTypes::parse_field(v, &mut errs),
            "status" => match v.as_str() {
                Some("active") => out.enabled = Some(true),
                Some("disabled") => out.enabled = Some(false),
                _ => errs.push(
                    "status",
                    FieldIssue::NotAllowed,
                    "status must be \"active\" or \"disabled\"",
                ),
            },
            _ => {}
        }
    }
    errs.into_result().map(|()| out)
}

/// The envelope of every delivered event.
#[derive(Debug, Clone, Serialize)]
pub struct EventEnvelope {
    pub id: EventId,
    #[serde(rename = "type")]
    pub event_type: &'static str,
    pub api_version: &'static str,
    pub created_at: String,
    pub data: Value,
}

impl EventEnvelope {
    pub fn new(id: EventId, event_type: EventType, created_at: Timestamp, data: Value) -> Self {
        Self {
            id,
            event_type: event_type.as_str(),
            api_version: API_VERSION,
            created_at: created_at.rfc3339(),
            data,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(e: &ValidationErrors) -> Vec<String> {
        e.problems().iter().map(|p| p.field.clone()).collect()
    }

    #[test]
    fn create_names_every_bad_field() {
        let e = parse_create_endpoint(&json!({
            "name": "  ", "url": 5, "event_types": ["generation.succeeded", "nope", 3], "extra": 1
        }))
        .unwrap_err();
        assert_eq!(
            fields(&e),
            ["extra", "name", "url", "event_types[1]", "event_types[2]"]
        );
    }

    #[test]
    fn create_defaults_event_types_and_dedups() {
        let c = parse_create_endpoint(&json!({"name": "n", "url": "https://x.example/h"})).unwrap();
        assert_eq!(c.event_types, EventTypes::all());
        let c = parse_create_endpoint(&json!({
            "name": "n", "url": "https://x.example/h",
            "event_types": ["generation.failed", "generation.failed"]
        }))
        .unwrap();
        assert_eq!(c.event_types.as_strs(), ["generation.failed"]);
        let e = parse_create_endpoint(&json!({"name": "n", "url": "u", "event_types": []}))
            .unwrap_err();
        assert_eq!(fields(&e), ["event_types"]);
    }

    #[test]
    fn webhook_test_is_not_subscribable() {
        let e = parse_create_endpoint(&json!({
            "name": "n", "url": "https://x.example", "event_types": ["webhook.test"]
        }))
        .unwrap_err();
        assert_eq!(fields(&e), ["event_types[0]"]);
    }

    #[test]
    fn update_takes_only_what_is_given() {
        let u = parse_update_endpoint(&json!({"status": "disabled"})).unwrap();
        assert_eq!(u.enabled, Some(false));
        assert!(u.name.is_none() && u.url.is_none() && u.event_types.is_none());
        let e = parse_update_endpoint(&json!({"status": "paused", "name": null, "secret": "x"}))
            .unwrap_err();
        let mut f = fields(&e);
        f.sort();
        assert_eq!(f, ["name", "secret", "status"]);
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        let long = "é".repeat(MAX_NAME_CHARS + 1);
        let e =
            parse_create_endpoint(&json!({"name": long, "url": "https://a.example"})).unwrap_err();
        assert_eq!(e.problems()[0].issue, FieldIssue::TooLong);
        let c =
            parse_create_endpoint(&json!({"name": " ops ", "url": "https://a.example"})).unwrap();
        assert_eq!(c.name.as_str(), "ops");
    }

    #[test]
    fn envelope_has_the_contract_fields() {
        let v = serde_json::to_value(EventEnvelope::new(
            EventId::from_trusted("evt_x".into()),
            EventType::GenerationFailed,
            Timestamp::from_millis(0),
            json!({"id": "task_1"}),
        ))
        .unwrap();
        assert_eq!(
            v,
            json!({"id": "evt_x", "type": "generation.failed", "api_version": "2026-05-11",
                   "created_at": "1970-01-01T00:00:00.000Z", "data": {"id": "task_1"}})
        );
    }
}
