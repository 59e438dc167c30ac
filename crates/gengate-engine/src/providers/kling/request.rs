//! Our contract → Kling's create body (the table in `shared/spec/UPSTREAM-KLING.md`).

use base64::Engine as _;
use bytes::Bytes;
use gengate_core::kling::KlingParams;
use gengate_kling::{CreateVideo, Family, Version, versions};

/// Our catalog's Kling models and the Kling version each runs on. A new Kling model is
/// catalog data plus one row here (docs/KLING.md).
pub const MODELS: [(&str, &Version); 4] = [
    ("kling-3-0", &versions::V3),
    ("kling-2-6", &versions::V2_6),
    ("kling-v2-5-turbo-pro", &versions::V2_5_TURBO),
    ("kling-v2-1-master", &versions::V2_1_MASTER),
];

/// Kling's limit on `prompt` and `negative_prompt`, in characters (every version).
pub const MAX_PROMPT_CHARS: usize = 2500;

pub fn version_for(model: &str) -> Option<&'static Version> {
    MODELS.iter().find(|(id, _)| *id == model).map(|(_, v)| *v)
}

/// Kling's documented ceiling for one image.
pub const MAX_IMAGE_BYTES: usize = 10 * 1024 * 1024;

/// One reference image as the runner hands it over.
pub struct RefImage<'a> {
    /// As sniffed when the file was uploaded.
    pub mime_type: &'a str,
    /// A signed gengate URL Kling can fetch.
    pub url: &'a str,
    pub bytes: &'a Bytes,
}

/// Why a task cannot be expressed as a Kling request. Each is a validation gap of ours
/// (the API should have refused the task), so the task fails with a refund.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MappingError {
    #[error("{0}")]
    Params(String),
    #[error(
        "the model {0} has no Kling version (add it to the table in providers/kling/request.rs)"
    )]
    UnknownModel(String),
    #[error("Kling takes at most {MAX_PROMPT_CHARS} characters of {field}; this one has {chars}")]
    PromptTooLong { field: &'static str, chars: usize },
    #[error("{0} takes no last frame: one reference image at most")]
    NoLastFrame(&'static str),
    #[error("Kling takes at most two reference images, the task has {0}")]
    TooManyImages(usize),
    #[error("Kling cannot combine two reference images with multi_shots")]
    MultiShotWithTwoImages,
    #[error("reference image {index} could not be converted to PNG: {detail}")]
    Convert { index: usize, detail: String },
    #[error("reference image {index} is {size} bytes as PNG, over Kling's 10 MB")]
    TooLarge { index: usize, size: usize },
}

/// The family a task goes to: decided by the reference count alone, and stored before
/// the create so the task is queried where it was made.
pub fn family_for(reference_count: usize) -> Family {
    if reference_count == 0 {
        Family::Text2Video
    } else {
        Family::Image2Video
    }
}

pub fn build(
    model: &str,
    task_id: &str,
    prompt: &str,
    params: &gengate_core::params::NormalizedParams,
    refs: &[RefImage<'_>],
    callback_url: Option<String>,
) -> Result<CreateVideo, MappingError> {
    let version = version_for(model).ok_or_else(|| MappingError::UnknownModel(model.to_owned()))?;
    let p = KlingParams::from_params(params).map_err(|e| MappingError::Params(e.to_string()))?;
    if refs.len() > 2 {
        return Err(MappingError::TooManyImages(refs.len()));
    }
    if refs.len() == 2 && !version.image_tail {
        return Err(MappingError::NoLastFrame(version.model_name));
    }
    // Our catalog may allow longer prompts than Kling (kling-v2-1-master: 5000): refuse
    // here, before anything is sent, rather than let Kling refuse it.
    let negative_prompt = params.get_str("negative_prompt").map(str::to_owned);
    for (field, text) in [
        ("prompt", Some(prompt)),
        ("negative_prompt", negative_prompt.as_deref()),
    ] {
        let chars = text.map_or(0, |t| t.chars().count());
        if chars > MAX_PROMPT_CHARS {
            return Err(MappingError::PromptTooLong { field, chars });
        }
    }
    if refs.len() == 2 && p.multi_shots {
        return Err(MappingError::MultiShotWithTwoImages);
    }
    let mut images = refs
        .iter()
        .enumerate()
        .map(|(i, r)| image_field(i, r))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter();
    let family = family_for(refs.len());
    // `cfg_scale` is accepted by our API for 2.5 Turbo and 2.1 Master (Rivya's catalog has
    // it) but Kling's v2.x take none: it is not sent (docs/KLING.md).
    Ok(CreateVideo {
        version,
        family,
        prompt: prompt.to_owned(),
        negative_prompt,
        mode: p.mode.as_str().to_owned(),
        duration_seconds: p.duration.seconds(),
        sound: p.sound,
        // The client drops it for image2video too; leaving it None here keeps the intent
        // visible: with an image, the output follows the image's shape.
        aspect_ratio: (family == Family::Text2Video).then(|| p.aspect_ratio.as_str().to_owned()),
        multi_shot: p.multi_shots,
        image: images.next(),
        image_tail: images.next(),
        callback_url,
        // Our own task id, never the caller's client_request_id: unique per Kling account,
        // and how a create whose answer was lost is found again.
        external_task_id: task_id.to_owned(),
    })
}

/// Kling lists jpg/jpeg/png only: those go by URL (Kling fetches the signed link), anything
/// else (webp) is converted to PNG here and sent inline as raw base64.
fn image_field(index: usize, r: &RefImage<'_>) -> Result<String, MappingError> {
    if matches!(r.mime_type, "image/jpeg" | "image/png") {
        return Ok(r.url.to_owned());
    }
    let png =
        gengate_media::to_png(r.bytes, &gengate_media::ImageLimits::default()).map_err(|e| {
            MappingError::Convert {
                index,
                detail: e.to_string(),
            }
        })?;
    if png.len() > MAX_IMAGE_BYTES {
        return Err(MappingError::TooLarge {
            index,
            size: png.len(),
        });
    }
    Ok(base64::engine::general_purpose::STANDARD.encode(png))
}

#[cfg(test)]
mod tests {
    use super::*;
    use gengate_core::params::NormalizedParams;
    use serde_json::json;

    fn params(multi: bool) -> NormalizedParams {
        NormalizedParams::from_stored(json!({
            "mode": "pro", "multi_shots": multi.to_string(), "duration": "7",
            "sound": "true", "aspect_ratio": "9:16"
        }))
    }

    #[test]
    fn each_catalog_kling_model_maps_to_its_version() {
        let turbo = NormalizedParams::from_stored(json!({
            "duration": "10", "aspect_ratio": "16:9", "negative_prompt": "blur", "cfg_scale": 0.5
        }));
        let req = build("kling-v2-5-turbo-pro", "t1", "a cat", &turbo, &[], None).unwrap();
        assert_eq!(req.version.model_name, "kling-v2-5-turbo");
        assert_eq!(req.mode, "pro", "no mode param: pro");
        assert_eq!(req.negative_prompt.as_deref(), Some("blur"));
        assert!(!req.sound && !req.multi_shot);
        let master = NormalizedParams::from_stored(json!({"duration": "5", "aspect_ratio": "1:1"}));
        assert_eq!(
            build("kling-v2-1-master", "t2", "a cat", &master, &[], None)
                .unwrap()
                .version
                .model_name,
            "kling-v2-1-master"
        );
        let six = NormalizedParams::from_stored(
            json!({"duration": "5", "sound": "true", "aspect_ratio": "1:1"}),
        );
        let req = build("kling-2-6", "t3", "a cat", &six, &[], None).unwrap();
        assert_eq!((req.version.model_name, req.sound), ("kling-v2-6", true));
        // What Kling would refuse is refused here, before anything is sent.
        let long = "x".repeat(MAX_PROMPT_CHARS + 1);
        assert_eq!(
            build("kling-v2-1-master", "t4", &long, &master, &[], None),
            Err(MappingError::PromptTooLong {
                field: "prompt",
                chars: MAX_PROMPT_CHARS + 1
            })
        );
        assert_eq!(
            build("kling-9", "t5", "a cat", &master, &[], None),
            Err(MappingError::UnknownModel("kling-9".into()))
        );
        for (id, _) in MODELS {
            assert!(version_for(id).is_some(), "{id}");
        }
    }

    #[test]
    fn text_only_is_text2video_with_everything_sent() {
        let req = build(
            "kling-3-0",
            "t1",
            "a cat",
            &params(true),
            &[],
            Some("http://cb".into()),
        )
        .unwrap();
        assert_eq!(req.family, Family::Text2Video);
        assert_eq!(req.mode, "pro");
        assert_eq!(req.duration_seconds, 7);
        assert!(req.sound && req.multi_shot);
        assert_eq!(req.aspect_ratio.as_deref(), Some("9:16"));
        assert_eq!(req.external_task_id, "t1");
        assert_eq!(req.callback_url.as_deref(), Some("http://cb"));
        assert_eq!(req.image, None);
    }

    #[test]
    fn images_go_first_then_tail_and_webp_becomes_png() {
        let png = Bytes::from(gengate_media::corpus::png(320, 320));
        let webp = Bytes::from(gengate_media::corpus::webp(320, 320));
        let refs = [
            RefImage {
                mime_type: "image/png",
                url: "http://g/a",
                bytes: &png,
            },
            RefImage {
                mime_type: "image/webp",
                url: "http://g/b",
                bytes: &webp,
            },
        ];
        let req = build("kling-3-0", "t2", "", &params(false), &refs, None).unwrap();
        assert_eq!(req.family, Family::Image2Video);
        assert_eq!(req.aspect_ratio, None);
        assert_eq!(req.image.as_deref(), Some("http://g/a"));
        let tail = base64::engine::general_purpose::STANDARD
            .decode(req.image_tail.unwrap())
            .unwrap();
        assert!(
            tail.starts_with(b"\x89PNG\r\n\x1a\n"),
            "webp was sent as PNG"
        );
        assert_eq!(
            build("kling-3-0", "t3", "", &params(true), &refs, None),
            Err(MappingError::MultiShotWithTwoImages)
        );
    }
}
