//! From command-line flags to a request the model accepts, decided by the
//! catalog alone: `--duration 5` is just `--param duration=5`, checked
//! against the model's param specs; a flag the model has no param for is an
//! error naming the params it does have.

use gengate_client::{FieldDetail, Model, Upload, sniff};
use serde_json::{Map, Value};

/// One requested param and the flag it came from (for messages).
#[derive(Debug, Clone, PartialEq)]
pub struct Requested {
    pub key: String,
    pub value: Value,
    pub flag: String,
}

/// Parses `--param key=value`.
pub fn parse_kv(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
        _ => Err(format!("--param takes key=value, got {s:?}")),
    }
}

/// Builds params from the requested values; every problem is reported.
pub fn build(model: &Model, requested: &[Requested]) -> (Map<String, Value>, Vec<FieldDetail>) {
    let mut out = Map::new();
    let mut problems = Vec::new();
    for r in requested {
        if let Some(prev) = out.get(&r.key)
            && prev != &r.value
        {
            problems.push(FieldDetail {
                field: format!("params.{}", r.key),
                issue: "conflict".into(),
                message: format!("{} is given twice with different values", r.flag),
            });
            continue;
        }
        if model.param(&r.key).is_none() {
            let known: Vec<String> = model
                .params
                .iter()
                .map(|p| format!("--{}", p.key.replace('_', "-")))
                .collect();
            problems.push(FieldDetail {
                field: format!("params.{}", r.key),
                issue: "unknown_field".into(),
                message: format!(
                    "{} does not apply: {} has no parameter {:?} (it takes {})",
                    r.flag,
                    model.id,
                    r.key,
                    known.join(", ")
                ),
            });
            continue;
        }
        out.insert(r.key.clone(), r.value.clone());
    }
    (out, problems)
}

/// Checks reference files against the model's `reference_media` before
/// anything is uploaded: kind, type and size, from the bytes.
pub fn check_refs(model: &Model, refs: &[(String, Upload)]) -> Vec<FieldDetail> {
    let mut problems = Vec::new();
    let Some(spec) = &model.reference_media else {
        if !refs.is_empty() {
            problems.push(FieldDetail {
                field: "--ref".into(),
                issue: "not_allowed".into(),
                message: format!("{} takes no reference files", model.id),
            });
        }
        return problems;
    };
    for (i, (name, upload)) in refs.iter().enumerate() {
        let field = format!("params.referenceMediaItems[{i}]");
        let Some((kind, mime)) = sniff(upload.bytes()) else {
            problems.push(FieldDetail {
                field,
                issue: "invalid_media".into(),
                message: format!("{name}: not an image, video or audio file this API knows"),
            });
            continue;
        };
        if !spec.kinds.iter().any(|k| k == kind.as_str()) {
            problems.push(FieldDetail {
                field,
                issue: "not_allowed".into(),
                message: format!(
                    "{name} is {kind} ({mime}); {} takes {}",
                    model.id,
                    spec.kinds.join(", ")
                ),
            });
            continue;
        }
        if let Some(limits) = spec.limits.get(kind.as_str()) {
            if !limits.mime_types.is_empty() && !limits.mime_types.iter().any(|m| m == mime) {
                problems.push(FieldDetail {
                    field: field.clone(),
                    issue: "not_allowed".into(),
                    message: format!(
                        "{name} is {mime}; {} takes {}",
                        model.id,
                        limits.mime_types.join(", ")
                    ),
                });
            }
            if let Some(max) = limits.max_bytes
                && upload.len() > max
            {
                problems.push(FieldDetail {
                    field,
                    issue: "too_large".into(),
                    message: format!("{name} is {} bytes; at most {max}", upload.len()),
                });
            }
        }
    }
    problems
}

/// The problems, one line per field.
pub fn describe(model: &Model, problems: &[FieldDetail]) -> String {
    let mut s = format!("error: the request does not fit {}:", model.id);
    for p in problems {
        s.push_str(&format!("\n  {}: {}", p.field, p.message));
        if let Some(key) = p.field.strip_prefix("params.")
            && let Some(spec) = model.param(key)
            && !spec.options.is_empty()
            && !spec.is_boolean()
            && !p.message.contains("must be one of")
        {
            s.push_str(&format!(" (allowed: {})", spec.option_strings().join(", ")));
        }
    }
    s.push_str(&format!(
        "\nNothing was sent or charged. `gengate models {}` lists its parameters.",
        model.id
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn model() -> Model {
        serde_json::from_value(json!({
            "id": "m",
            "params": [
                {"key": "duration", "type": "select", "options": ["3","5"]},
                {"key": "aspect_ratio", "type": "select", "options": ["16:9","9:16"]}
            ],
            "reference_media": {"max_files": 2, "kinds": ["image"],
                "limits": {"image": {"max_bytes": 20, "mime_types": ["image/png"]}}}
        }))
        .unwrap()
    }

    fn req(key: &str, v: &str, flag: &str) -> Requested {
        Requested {
            key: key.into(),
            value: Value::String(v.into()),
            flag: flag.into(),
        }
    }

    #[test]
    fn flags_map_to_params_by_key_and_unknown_ones_are_named() {
        let (p, problems) = build(
            &model(),
            &[
                req("duration", "5", "--duration"),
                req("sound", "true", "--sound"),
                req("duration", "3", "--param duration=3"),
            ],
        );
        assert_eq!(Value::Object(p), json!({"duration": "5"}));
        assert_eq!(problems.len(), 2);
        assert!(problems[0].message.contains("--sound does not apply"));
        assert!(problems[0].message.contains("--aspect-ratio"));
        assert_eq!(problems[1].issue, "conflict");
    }

    #[test]
    fn references_are_checked_from_their_bytes() {
        let png = Upload::from_bytes(&b"\x89PNG\r\n\x1a\nxx"[..], None);
        let big = Upload::from_bytes([&b"\x89PNG\r\n\x1a\n"[..], &[0u8; 30]].concat(), None);
        let jpeg = Upload::from_bytes(&b"\xff\xd8\xff\xe0"[..], None);
        let text = Upload::from_bytes(&b"hello"[..], None);
        let p = check_refs(
            &model(),
            &[
                ("a.png".into(), png),
                ("big.png".into(), big),
                ("c.jpg".into(), jpeg),
                ("d.txt".into(), text),
            ],
        );
        let issues: Vec<&str> = p.iter().map(|d| d.issue.as_str()).collect();
        assert_eq!(issues, ["too_large", "not_allowed", "invalid_media"]);
    }

    #[test]
    fn kv_parsing() {
        assert_eq!(parse_kv("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert!(parse_kv("=x").is_err());
        assert!(parse_kv("novalue").is_err());
    }
}
