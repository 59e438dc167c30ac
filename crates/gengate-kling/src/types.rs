//! The typed request and task shapes, and their mapping to Kling's JSON.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::error::KlingError;

/// Kling 3.0's model name (`versions::V3`); each create names its version's.
pub const MODEL_NAME: &str = crate::versions::V3.model_name;

/// Which endpoint family a task lives under. A task can only be queried under the family
/// that created it, so callers must store it next to the task id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    Text2Video,
    Image2Video,
}

impl Family {
    /// The URL path segment.
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Text2Video => "text2video",
            Family::Image2Video => "image2video",
        }
    }

    pub fn parse(s: &str) -> Option<Family> {
        match s {
            "text2video" => Some(Family::Text2Video),
            "image2video" => Some(Family::Image2Video),
            _ => None,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Family {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Family::parse(s).ok_or_else(|| format!("unknown kling family {s:?}"))
    }
}

/// One video to create. The mapping from gengate's contract (which family, which images)
/// is the adapter's job; this is already in Kling's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateVideo {
    /// The Kling model version: its `model_name`, and which fields it takes.
    pub version: &'static crate::versions::Version,
    pub family: Family,
    pub prompt: String,
    /// Sent when set and non-empty.
    pub negative_prompt: Option<String>,
    /// `std` (720p) or `pro` (1080p). Always sent: Kling defaults to std, our contract to pro.
    pub mode: String,
    pub duration_seconds: u32,
    pub sound: bool,
    /// Sent only for text2video; image2video output follows the image.
    pub aspect_ratio: Option<String>,
    pub multi_shot: bool,
    /// First frame: a URL, or raw base64 (a `data:` prefix is stripped before sending).
    pub image: Option<String>,
    /// Last frame, same forms as `image`.
    pub image_tail: Option<String>,
    pub callback_url: Option<String>,
    /// Our own task id, never the caller's idempotency key: it must be unique per Kling
    /// account, and it is how a create whose answer was lost is found again.
    pub external_task_id: String,
}

/// The create body exactly as Kling documents it.
#[derive(Debug, Serialize)]
pub(crate) struct CreateBody<'a> {
    model_name: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    negative_prompt: Option<&'a str>,
    mode: &'a str,
    duration: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    sound: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aspect_ratio: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    multi_shot: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    shot_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    image: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    image_tail: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    callback_url: Option<&'a str>,
    external_task_id: &'a str,
}

impl CreateVideo {
    pub(crate) fn body(&self) -> CreateBody<'_> {
        let aspect_ratio = match self.family {
            Family::Text2Video => self.aspect_ratio.as_deref(),
            Family::Image2Video => None,
        };
        let v = self.version;
        CreateBody {
            model_name: v.model_name,
            // An empty prompt is legal for image2video; omitting it avoids Kling judging an
            // empty string.
            prompt: Some(self.prompt.as_str()).filter(|p| !p.is_empty()),
            negative_prompt: self.negative_prompt.as_deref().filter(|p| !p.is_empty()),
            mode: &self.mode,
            duration: self.duration_seconds.to_string(),
            // Only what the version takes: 2.5 Turbo and 2.1 Master have no audio, and
            // only v3 has multi-shot.
            sound: v.sound.then_some(if self.sound { "on" } else { "off" }),
            aspect_ratio,
            multi_shot: v.multi_shot.then_some(self.multi_shot),
            shot_type: (v.multi_shot && self.multi_shot).then_some("intelligence"),
            image: self.image.as_deref().map(strip_data_url),
            image_tail: self.image_tail.as_deref().map(strip_data_url),
            callback_url: self.callback_url.as_deref(),
            external_task_id: &self.external_task_id,
        }
    }
}

/// Kling takes raw base64 only; a `data:image/png;base64,` prefix would be rejected.
fn strip_data_url(image: &str) -> &str {
    if image.starts_with("data:")
        && let Some(idx) = image.find(";base64,")
    {
        return &image[idx + ";base64,".len()..];
    }
    image
}

/// A task's state at Kling.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TaskStatus {
    Submitted,
    Processing,
    /// Kling's spelling is `succeed`.
    Succeed,
    Failed,
    /// A status this client does not know. Treat it as still running (and it is logged).
    Unknown(String),
}

impl TaskStatus {
    pub fn parse(s: &str) -> TaskStatus {
        match s {
            "submitted" => TaskStatus::Submitted,
            "processing" => TaskStatus::Processing,
            "succeed" => TaskStatus::Succeed,
            "failed" => TaskStatus::Failed,
            other => TaskStatus::Unknown(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            TaskStatus::Submitted => "submitted",
            TaskStatus::Processing => "processing",
            TaskStatus::Succeed => "succeed",
            TaskStatus::Failed => "failed",
            TaskStatus::Unknown(s) => s,
        }
    }

    /// Succeed or failed: nothing will change any more.
    pub fn is_terminal(&self) -> bool {
        matches!(self, TaskStatus::Succeed | TaskStatus::Failed)
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One output video.
#[derive(Debug, Clone, PartialEq)]
pub struct KlingVideo {
    pub id: String,
    /// Deleted by Kling after 30 days: copy it as soon as the task succeeds.
    pub url: String,
    /// Seconds; Kling sends a string that may be fractional.
    pub duration: f64,
}

/// A task as Kling reports it (create answer, query, list item or callback).
#[derive(Debug, Clone, PartialEq)]
pub struct KlingTask {
    pub task_id: String,
    pub status: TaskStatus,
    /// The reason on failure (e.g. moderation). Empty strings become `None`.
    pub status_msg: Option<String>,
    pub external_task_id: Option<String>,
    pub videos: Vec<KlingVideo>,
    pub created_at_ms: Option<i64>,
    pub updated_at_ms: Option<i64>,
}

#[derive(Deserialize)]
struct TaskWire {
    #[serde(deserialize_with = "string_or_number")]
    task_id: String,
    task_status: String,
    #[serde(default)]
    task_status_msg: Option<String>,
    #[serde(default)]
    task_info: Option<TaskInfoWire>,
    #[serde(default)]
    task_result: Option<TaskResultWire>,
    #[serde(default, deserialize_with = "opt_i64_lenient")]
    created_at: Option<i64>,
    #[serde(default, deserialize_with = "opt_i64_lenient")]
    updated_at: Option<i64>,
}

#[derive(Deserialize)]
struct TaskInfoWire {
    #[serde(default)]
    external_task_id: Option<String>,
}

#[derive(Deserialize)]
struct TaskResultWire {
    #[serde(default)]
    videos: Option<Vec<VideoWire>>,
}

#[derive(Deserialize)]
struct VideoWire {
    #[serde(deserialize_with = "string_or_number")]
    id: String,
    url: String,
    #[serde(deserialize_with = "string_or_number")]
    duration: String,
}

// Kling documents ids and durations as strings; accepting numbers too costs nothing and
// survives a JSON encoder on their side that "helpfully" emits numbers.
fn string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match Value::deserialize(d)? {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!(
            "expected a string or a number, got {other}"
        ))),
    }
}

fn opt_i64_lenient<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.parse().ok(),
        _ => None,
    })
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}

impl KlingTask {
    /// Reads one task object (the `data` of a create or query answer, a list item, or a
    /// bare callback body).
    pub fn from_json(value: &Value) -> Result<KlingTask, KlingError> {
        let wire = TaskWire::deserialize(value)
            .map_err(|e| KlingError::Malformed(format!("task object: {e}")))?;
        let status = TaskStatus::parse(&wire.task_status);
        if let TaskStatus::Unknown(s) = &status {
            tracing::warn!(task_id = %wire.task_id, status = %s, "unknown kling task status; treating it as running");
        }
        let videos = wire
            .task_result
            .and_then(|r| r.videos)
            .unwrap_or_default()
            .into_iter()
            .map(|v| {
                let duration = v.duration.trim().parse::<f64>().map_err(|_| {
                    KlingError::Malformed(format!(
                        "video duration {:?} is not a number",
                        v.duration
                    ))
                })?;
                Ok(KlingVideo {
                    id: v.id,
                    url: v.url,
                    duration,
                })
            })
            .collect::<Result<Vec<_>, KlingError>>()?;
        Ok(KlingTask {
            task_id: wire.task_id,
            status,
            status_msg: non_empty(wire.task_status_msg),
            external_task_id: non_empty(wire.task_info.and_then(|i| i.external_task_id)),
            videos,
            created_at_ms: wire.created_at,
            updated_at_ms: wire.updated_at,
        })
    }
}

/// Reads a callback body: the bare task object Kling documents, or one wrapped in `data`
/// (with or without the rest of the envelope). Nothing signs a callback: treat the result
/// as a hint and re-query the task before trusting it.
pub fn parse_callback(body: &[u8]) -> Result<KlingTask, KlingError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| KlingError::Malformed(format!("callback body is not JSON: {e}")))?;
    let Some(obj) = value.as_object() else {
        return Err(KlingError::Malformed(
            "callback body is not a JSON object".into(),
        ));
    };
    if obj.contains_key("task_id") {
        return KlingTask::from_json(&value);
    }
    match obj.get("data") {
        Some(data) if data.is_object() => KlingTask::from_json(data),
        _ => Err(KlingError::Malformed(
            "callback body has neither task_id nor a data object".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample(family: Family) -> CreateVideo {
        CreateVideo {
            version: &crate::versions::V3,
            family,
            prompt: "a cat".into(),
            negative_prompt: None,
            mode: "pro".into(),
            duration_seconds: 5,
            sound: true,
            aspect_ratio: Some("16:9".into()),
            multi_shot: false,
            image: None,
            image_tail: None,
            callback_url: None,
            external_task_id: "task_1".into(),
        }
    }

    #[test]
    fn a_2x_body_names_its_version_and_leaves_out_what_it_does_not_take() {
        let mut v = sample(Family::Text2Video);
        v.version = &crate::versions::V2_5_TURBO;
        v.negative_prompt = Some("blur".into());
        v.multi_shot = true;
        let body = serde_json::to_value(v.body()).expect("json");
        assert_eq!(
            body,
            json!({
                "model_name": "kling-v2-5-turbo", "prompt": "a cat", "negative_prompt": "blur",
                "mode": "pro", "duration": "5", "aspect_ratio": "16:9", "external_task_id": "task_1"
            })
        );
        let mut v = sample(Family::Text2Video);
        v.version = &crate::versions::V2_6;
        let body = serde_json::to_value(v.body()).expect("json");
        assert_eq!(body["model_name"], "kling-v2-6");
        assert_eq!(body["sound"], "on");
        assert!(body.get("multi_shot").is_none());
    }

    #[test]
    fn text2video_body_has_the_documented_fields() {
        let body = serde_json::to_value(sample(Family::Text2Video).body()).expect("json");
        assert_eq!(
            body,
            json!({
                "model_name": "kling-v3", "prompt": "a cat", "mode": "pro", "duration": "5",
                "sound": "on", "aspect_ratio": "16:9", "multi_shot": false,
                "external_task_id": "task_1"
            })
        );
    }

    #[test]
    fn image2video_body_drops_aspect_ratio_and_data_prefixes() {
        let mut req = sample(Family::Image2Video);
        req.image = Some("data:image/png;base64,iVBORw0KGgo=".into());
        req.image_tail = Some("https://example.test/b.jpg".into());
        req.multi_shot = true;
        req.sound = false;
        let body = serde_json::to_value(req.body()).expect("json");
        assert_eq!(body.get("aspect_ratio"), None);
        assert_eq!(body["image"], "iVBORw0KGgo=");
        assert_eq!(body["image_tail"], "https://example.test/b.jpg");
        assert_eq!(body["multi_shot"], true);
        assert_eq!(body["shot_type"], "intelligence");
        assert_eq!(body["sound"], "off");
        assert_eq!(body.get("cfg_scale"), None);
    }

    #[test]
    fn family_round_trips_through_its_path_segment() {
        for f in [Family::Text2Video, Family::Image2Video] {
            assert_eq!(Family::parse(f.as_str()), Some(f));
            assert_eq!(f.to_string().parse::<Family>(), Ok(f));
        }
        assert_eq!(Family::parse("text2image"), None);
    }

    #[test]
    fn task_parses_with_numeric_ids_and_fractional_durations() {
        let task = KlingTask::from_json(&json!({
            "task_id": 860117402271547392u64,
            "task_status": "succeed",
            "task_status_msg": "",
            "task_info": {"external_task_id": "task_9"},
            "task_result": {"videos": [{"id": 7, "url": "https://cdn.test/v.mp4", "duration": "5.041"}]},
            "created_at": 1722769557708i64,
            "updated_at": "1722769657708"
        }))
        .expect("parses");
        assert_eq!(task.task_id, "860117402271547392");
        assert_eq!(task.status, TaskStatus::Succeed);
        assert_eq!(task.status_msg, None);
        assert_eq!(task.external_task_id.as_deref(), Some("task_9"));
        assert_eq!(task.videos.len(), 1);
        assert_eq!(task.videos[0].id, "7");
        assert!((task.videos[0].duration - 5.041).abs() < 1e-9);
        assert_eq!(task.created_at_ms, Some(1722769557708));
        assert_eq!(task.updated_at_ms, Some(1722769657708));
    }

    #[test]
    fn unknown_status_is_kept_and_not_terminal() {
        let task = KlingTask::from_json(&json!({"task_id": "1", "task_status": "queueing"}))
            .expect("parses");
        assert_eq!(task.status, TaskStatus::Unknown("queueing".into()));
        assert!(!task.status.is_terminal());
        assert!(task.videos.is_empty());
    }

    #[test]
    fn callback_accepts_bare_and_wrapped_bodies() {
        let bare =
            br#"{"task_id":"42","task_status":"processing","task_info":{"external_task_id":"t"}}"#;
        let wrapped = br#"{"code":0,"message":"SUCCEED","request_id":"r","data":{"task_id":"42","task_status":"failed","task_status_msg":"risk control"}}"#;
        let data_only = br#"{"data":{"task_id":"42","task_status":"succeed"}}"#;
        let a = parse_callback(bare).expect("bare");
        assert_eq!(a.status, TaskStatus::Processing);
        assert_eq!(a.external_task_id.as_deref(), Some("t"));
        let b = parse_callback(wrapped).expect("wrapped");
        assert_eq!(b.status, TaskStatus::Failed);
        assert_eq!(b.status_msg.as_deref(), Some("risk control"));
        assert_eq!(
            parse_callback(data_only).expect("data").status,
            TaskStatus::Succeed
        );
    }

    #[test]
    fn callback_rejects_garbage() {
        for body in [
            &b"not json"[..],
            b"[1,2]",
            b"{\"data\": 3}",
            b"{\"task_status\":\"x\"}",
        ] {
            assert!(matches!(
                parse_callback(body),
                Err(KlingError::Malformed(_))
            ));
        }
    }

    #[test]
    fn bad_duration_is_malformed() {
        let err = KlingTask::from_json(&json!({
            "task_id": "1", "task_status": "succeed",
            "task_result": {"videos": [{"id": "v", "url": "u", "duration": "five"}]}
        }))
        .expect_err("rejects");
        assert!(matches!(err, KlingError::Malformed(_)));
    }
}
