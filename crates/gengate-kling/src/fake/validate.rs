//! The create-body checks Kling documents, applied the way the fake applies them.

use serde_json::{Map, Value};

use crate::types::Family;
use crate::versions::{self, Version};

/// What the rest of the fake needs from an accepted body.
#[derive(Debug, Clone)]
pub(crate) struct Accepted {
    pub prompt: String,
    pub duration_seconds: u32,
    pub external_task_id: Option<String>,
    pub callback_url: Option<String>,
}

/// A refusal: Kling's code and message.
pub(crate) type Refusal = (i64, String);

const ASPECT_RATIOS: [&str; 3] = ["16:9", "9:16", "1:1"];
const MAX_PROMPT_CHARS: usize = 2500;

fn invalid(msg: impl Into<String>) -> Refusal {
    (1201, msg.into())
}

fn opt_str<'a>(body: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>, Refusal> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(invalid(format!("{key} must be a string"))),
    }
}

/// `strict` makes the fake refuse what our contract says we never send (a missing
/// `model_name`, `mode`, `duration` or `sound`; `aspect_ratio` or images on the wrong
/// family) where real Kling might quietly apply a default or ignore the field, so that a
/// regression in our mapping fails a test instead of producing the wrong video.
pub(crate) fn validate_create(
    family: Family,
    body: &Value,
    strict: bool,
) -> Result<Accepted, Refusal> {
    let Some(body) = body.as_object() else {
        return Err((1200, "request body must be a JSON object".into()));
    };

    // The version decides which fields exist (versions.rs, with Kling's sources).
    let version: &Version = match opt_str(body, "model_name")? {
        Some(name) => match versions::by_model_name(name) {
            Some(v) => v,
            None if strict => {
                return Err(invalid(format!("model_name {name:?} is not served here")));
            }
            None => &versions::V3,
        },
        None if strict => return Err(invalid("model_name is required")),
        None => &versions::V3,
    };
    let name = version.model_name;

    if body.contains_key("cfg_scale") {
        return Err(invalid(format!("cfg_scale is not supported by {name}")));
    }

    let mode = match opt_str(body, "mode")? {
        Some(m @ ("std" | "pro")) => m,
        Some(other) => return Err(invalid(format!("mode {other:?} must be std or pro"))),
        None if strict => return Err(invalid("mode is required")),
        None => "std",
    };
    if mode == "std" && !version.std_mode {
        return Err(invalid(format!("mode std is not supported by {name}")));
    }

    let duration_seconds = match opt_str(body, "duration")? {
        Some(d) => match d.parse::<u32>() {
            Ok(n) if version.durations.contains(&n) && d == n.to_string() => n,
            _ => {
                return Err(invalid(format!(
                    "duration {d:?} is not supported by {name} (it takes {:?})",
                    version.durations
                )));
            }
        },
        None if strict => return Err(invalid("duration is required")),
        None => 5,
    };

    let sound_on = match opt_str(body, "sound")? {
        Some(_) if !version.sound => {
            return Err(invalid(format!("sound is not supported by {name}")));
        }
        Some(s @ ("on" | "off")) => s == "on",
        Some(other) => return Err(invalid(format!("sound {other:?} must be on or off"))),
        None if strict && version.sound => return Err(invalid("sound is required")),
        None => false,
    };
    if sound_on && mode == "std" && version.sound_needs_pro {
        return Err(invalid(format!("sound on needs mode pro for {name}")));
    }

    let prompt = opt_str(body, "prompt")?.unwrap_or_default().to_owned();
    if prompt.chars().count() > MAX_PROMPT_CHARS {
        return Err(invalid("prompt is longer than 2500 characters"));
    }
    if opt_str(body, "negative_prompt")?.is_some_and(|n| n.chars().count() > MAX_PROMPT_CHARS) {
        return Err(invalid("negative_prompt is longer than 2500 characters"));
    }

    let aspect_ratio = opt_str(body, "aspect_ratio")?;
    let image = opt_str(body, "image")?;
    let image_tail = opt_str(body, "image_tail")?;
    match family {
        Family::Text2Video => {
            if prompt.trim().is_empty() {
                return Err(invalid("prompt is required for text2video"));
            }
            if let Some(ar) = aspect_ratio
                && !ASPECT_RATIOS.contains(&ar)
            {
                return Err(invalid(format!("aspect_ratio {ar:?} is not supported")));
            }
            if strict && (image.is_some() || image_tail.is_some()) {
                return Err(invalid("image and image_tail belong to image2video"));
            }
        }
        Family::Image2Video => {
            if strict && aspect_ratio.is_some() {
                return Err(invalid(
                    "aspect_ratio is not a parameter of image2video (the output follows the image)",
                ));
            }
            match image {
                Some(img) if !img.is_empty() => check_image("image", img)?,
                _ => return Err(invalid("image is required for image2video")),
            }
            if let Some(tail) = image_tail {
                if !version.image_tail {
                    return Err(invalid(format!("image_tail is not supported by {name}")));
                }
                if mode == "std" && version.image_tail_pro_only {
                    // Kling's own wording for this refusal.
                    return Err(invalid(format!(
                        "model/mode/duration({name}/std/{duration_seconds}) is not supported with image_tail"
                    )));
                }
                if version.image_tail_needs_silence && sound_on {
                    return Err(invalid(format!("image_tail needs sound off for {name}")));
                }
                check_image("image_tail", tail)?;
            }
        }
    }

    let multi_shot = match body.get("multi_shot") {
        None | Some(Value::Null) => false,
        Some(_) if !version.multi_shot && strict => {
            return Err(invalid(format!("multi_shot is not supported by {name}")));
        }
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(invalid("multi_shot must be a boolean")),
    };
    if multi_shot && !version.multi_shot {
        return Err(invalid(format!("multi_shot is not supported by {name}")));
    }
    let shot_type = opt_str(body, "shot_type")?;
    if multi_shot {
        match shot_type {
            Some("intelligence") => {}
            Some("customize") => {
                let prompts = body.get("multi_prompt").and_then(Value::as_array);
                if prompts.is_none_or(|p| p.is_empty()) {
                    return Err(invalid("shot_type customize needs multi_prompt"));
                }
            }
            Some(other) => return Err(invalid(format!("shot_type {other:?} is not supported"))),
            None => return Err(invalid("multi_shot needs shot_type")),
        }
        if image_tail.is_some() {
            return Err(invalid("multi_shot cannot be combined with image_tail"));
        }
    } else if strict && shot_type.is_some() {
        return Err(invalid("shot_type without multi_shot"));
    }

    let callback_url = opt_str(body, "callback_url")?;
    if let Some(cb) = callback_url {
        let ok = url::Url::parse(cb).is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
        if !ok {
            return Err(invalid("callback_url must be an http(s) URL"));
        }
    }

    let external_task_id = opt_str(body, "external_task_id")?;
    if external_task_id.is_some_and(str::is_empty) {
        return Err(invalid("external_task_id must not be empty"));
    }

    Ok(Accepted {
        prompt,
        duration_seconds,
        external_task_id: external_task_id.map(str::to_owned),
        callback_url: callback_url.map(str::to_owned),
    })
}

/// A URL or raw base64. The fake does not decode the picture, so size, dimensions and
/// format limits are not checked.
fn check_image(field: &str, value: &str) -> Result<(), Refusal> {
    if value.starts_with("http://") || value.starts_with("https://") {
        return Ok(());
    }
    if value.starts_with("data:") {
        return Err(invalid(format!(
            "{field} must be raw base64 without a data: prefix"
        )));
    }
    let is_base64 = !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='));
    if !is_base64 {
        return Err(invalid(format!("{field} is neither a URL nor base64")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t2v() -> Value {
        json!({"model_name": "kling-v3", "prompt": "a cat", "mode": "pro", "duration": "5",
               "sound": "on", "aspect_ratio": "16:9", "multi_shot": false, "external_task_id": "t1"})
    }

    fn refused(family: Family, body: Value, strict: bool) -> i64 {
        match validate_create(family, &body, strict) {
            Ok(_) => 0,
            Err((code, _)) => code,
        }
    }

    /// A text2video body for the 2.x versions: no sound, no multi_shot unless asked.
    fn v2(model: &str) -> Value {
        json!({"model_name": model, "prompt": "a cat", "mode": "pro", "duration": "5",
               "aspect_ratio": "1:1", "external_task_id": "t1"})
    }

    fn i2v(model: &str, extra: Value) -> Value {
        let mut b = json!({"model_name": model, "prompt": "", "mode": "pro", "duration": "10",
                           "image": "https://img.test/a.png", "external_task_id": "t2"});
        for (k, v) in extra.as_object().into_iter().flatten() {
            b[k] = v.clone();
        }
        b
    }

    #[test]
    fn each_version_takes_only_its_fields() {
        let with = |mut b: Value, k: &str, v: Value| {
            b[k] = v;
            b
        };
        // Accepted as documented.
        // v2.6 has sound, so (strictly) always sends it; the others never do.
        let base = |m: &str| {
            if m == "kling-v2-6" {
                with(v2(m), "sound", json!("off"))
            } else {
                v2(m)
            }
        };
        for m in ["kling-v2-6", "kling-v2-5-turbo", "kling-v2-1-master"] {
            assert_eq!(refused(Family::Text2Video, base(m), true), 0, "{m}");
            assert_eq!(
                refused(
                    Family::Text2Video,
                    with(base(m), "negative_prompt", json!("blur")),
                    true
                ),
                0,
                "{m}"
            );
            assert_eq!(
                refused(
                    Family::Text2Video,
                    with(base(m), "duration", json!("7")),
                    true
                ),
                1201,
                "{m}: 5 or 10 only"
            );
            assert_eq!(
                refused(
                    Family::Text2Video,
                    with(base(m), "cfg_scale", json!(0.5)),
                    true
                ),
                1201,
                "{m}"
            );
            assert_eq!(
                refused(
                    Family::Text2Video,
                    with(base(m), "multi_shot", json!(true)),
                    true
                ),
                1201,
                "{m}"
            );
        }
        assert_eq!(
            refused(
                Family::Text2Video,
                with(v2("kling-v2-6"), "sound", json!("on")),
                true
            ),
            0
        );
        assert_eq!(
            refused(Family::Text2Video, v2("kling-v2-6"), true),
            1201,
            "v2.6 has sound: required like v3"
        );
        for m in ["kling-v2-5-turbo", "kling-v2-1-master"] {
            assert_eq!(
                refused(Family::Text2Video, with(v2(m), "sound", json!("off")), true),
                1201,
                "{m} has no sound"
            );
        }
        let std_sound = with(
            with(v2("kling-v2-6"), "sound", json!("on")),
            "mode",
            json!("std"),
        );
        assert_eq!(
            refused(Family::Text2Video, std_sound, true),
            1201,
            "v2.6 audio needs pro"
        );
        assert_eq!(
            refused(
                Family::Text2Video,
                with(v2("kling-v2-1-master"), "mode", json!("std")),
                true
            ),
            1201
        );
        // Last frames: pro only on 2.5 Turbo, never on 2.1 Master, silent on 2.6.
        let tail = json!({"image_tail": "https://img.test/b.png"});
        assert_eq!(
            refused(
                Family::Image2Video,
                i2v("kling-v2-5-turbo", tail.clone()),
                true
            ),
            0
        );
        let mut std_tail = i2v("kling-v2-5-turbo", tail.clone());
        std_tail["mode"] = json!("std");
        let (code, msg) = validate_create(Family::Image2Video, &std_tail, true).unwrap_err();
        assert_eq!(
            (code, msg.as_str()),
            (
                1201,
                "model/mode/duration(kling-v2-5-turbo/std/10) is not supported with image_tail"
            )
        );
        assert_eq!(
            refused(
                Family::Image2Video,
                i2v("kling-v2-1-master", tail.clone()),
                true
            ),
            1201
        );
        let mut loud = i2v("kling-v2-6", tail);
        loud["sound"] = json!("on");
        assert_eq!(refused(Family::Image2Video, loud.clone(), true), 1201);
        loud["sound"] = json!("off");
        assert_eq!(refused(Family::Image2Video, loud, true), 0);
    }

    #[test]
    fn a_documented_body_is_accepted() {
        let ok = validate_create(Family::Text2Video, &t2v(), true).expect("valid");
        assert_eq!(ok.duration_seconds, 5);
        assert_eq!(ok.external_task_id.as_deref(), Some("t1"));
    }

    #[test]
    fn out_of_contract_fields_are_refused_with_1201() {
        let cases: Vec<(&str, Value)> = vec![
            ("cfg_scale", json!(0.5)),
            ("duration", json!("16")),
            ("duration", json!("2")),
            ("duration", json!(5)),
            ("duration", json!("05")),
            ("mode", json!("4k")),
            ("sound", json!(true)),
            ("aspect_ratio", json!("4:3")),
            ("model_name", json!("kling-v1")),
            ("callback_url", json!("ftp://x")),
        ];
        for (key, value) in cases {
            let mut body = t2v();
            body[key] = value.clone();
            assert_eq!(
                refused(Family::Text2Video, body, true),
                1201,
                "{key}={value}"
            );
        }
    }

    #[test]
    fn strict_mode_requires_what_we_always_send() {
        for key in ["model_name", "mode", "duration", "sound"] {
            let mut body = t2v();
            body.as_object_mut().expect("object").remove(key);
            assert_eq!(
                refused(Family::Text2Video, body.clone(), true),
                1201,
                "{key}"
            );
            assert_eq!(refused(Family::Text2Video, body, false), 0, "{key} lenient");
        }
    }

    #[test]
    fn image2video_rules() {
        let mut body = t2v();
        body["aspect_ratio"] = Value::Null;
        assert_eq!(
            refused(Family::Image2Video, body.clone(), true),
            1201,
            "image required"
        );
        body["image"] = json!("data:image/png;base64,AAAA");
        assert_eq!(
            refused(Family::Image2Video, body.clone(), true),
            1201,
            "data prefix"
        );
        body["image"] = json!("iVBORw0KGgo=");
        assert_eq!(refused(Family::Image2Video, body.clone(), true), 0);
        body["aspect_ratio"] = json!("16:9");
        assert_eq!(
            refused(Family::Image2Video, body.clone(), true),
            1201,
            "aspect strict"
        );
        assert_eq!(
            refused(Family::Image2Video, body.clone(), false),
            0,
            "aspect lenient"
        );
        body["aspect_ratio"] = Value::Null;
        body["multi_shot"] = json!(true);
        body["shot_type"] = json!("intelligence");
        body["image_tail"] = json!("https://x.test/b.png");
        assert_eq!(
            refused(Family::Image2Video, body, true),
            1201,
            "multi_shot+tail"
        );
    }

    #[test]
    fn multi_shot_needs_a_shot_type() {
        let mut body = t2v();
        body["multi_shot"] = json!(true);
        assert_eq!(refused(Family::Text2Video, body.clone(), true), 1201);
        body["shot_type"] = json!("intelligence");
        assert_eq!(refused(Family::Text2Video, body, true), 0);
    }

    #[test]
    fn a_non_object_body_is_1200() {
        assert_eq!(refused(Family::Text2Video, json!([1]), true), 1200);
    }
}
