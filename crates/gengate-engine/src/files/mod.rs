//! The Files API domain. An upload's type is decided from its bytes, never
//! from its name or declared type; images must decode within limits, video
//! and audio must have a measurable duration. The blob is stored once per
//! account and content. References in generations are resolved here: only a
//! live file of the caller, that fits the model's rules, is accepted.
//!
//! Owns uploads, their decode-memory budget and signed file links. Imports
//! `infra` only.

pub mod decode_budget;

use crate::files::decode_budget::{BudgetError, DecodeBudget, Reservation};
use crate::infra::blobs::{BlobError, Blobs};
use crate::infra::signing::{MediaLinks, SigningKey};
use base64::Engine as _;
use bytes::Bytes;
use gengate_core::Timestamp;
use gengate_core::catalog::{Catalog, KindLimits, Model};
use gengate_core::clock::SharedClock;
use gengate_core::error::{FieldIssue, ValidationErrors};
use gengate_core::generation::{ClientRequestId, TaskReference};
use gengate_core::ids::{AccountId, FileId};
use gengate_core::params::ReferenceItem;
use gengate_core::text::{self, TextRule};
use gengate_media::{ImageLimits, MediaKind};
use gengate_store::{DynStore, FileRecord, StoreError};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;

/// Per-kind limits of the Files API (API.md §7), used when no model is named.
pub fn default_limits(kind: &str) -> Option<(u64, &'static [&'static str])> {
    const MIB: u64 = 1024 * 1024;
    match kind {
        "image" => Some((10 * MIB, &["image/jpeg", "image/png", "image/webp"])),
        "video" => Some((50 * MIB, &["video/mp4", "video/quicktime", "video/webm"])),
        "audio" => Some((
            10 * MIB,
            &[
                "audio/mpeg",
                "audio/mp4",
                "audio/wav",
                "audio/x-wav",
                "audio/aac",
                "audio/ogg",
            ],
        )),
        _ => None,
    }
}

/// The largest upload any kind accepts: the streaming cap when `kind` comes
/// after `file` in the form.
pub const MAX_UPLOAD_BYTES: u64 = 50 * 1024 * 1024;

/// The public File object.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FileObject {
    pub id: FileId,
    #[cfg_attr(feature = "openapi", schema(example = "file"))]
    pub object: &'static str,
    pub kind: String,
    /// Signed, expiring link to the file; put it in `params.referenceMediaItems[].url`.
    pub url: String,
    pub name: Option<String>,
    pub mime_type: String,
    pub size_bytes: u64,
    pub sha256: String,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub duration_seconds: Option<f64>,
    /// For video and audio: a server-signed token binding account, file and duration.
    pub duration_token: Option<String>,
    pub model: Option<String>,
    pub client_request_id: Option<String>,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

/// A checked upload, before it is stored: every text field obeys the text
/// rules (`gengate_core::text`); the bytes are judged by [`FilesService::create`].
pub struct Upload {
    pub kind: String,
    pub model: Option<String>,
    pub client_request_id: Option<String>,
    pub name: Option<String>,
    pub bytes: Bytes,
}

/// Longest file name kept, in characters (file systems' usual limit).
pub const MAX_FILE_NAME_CHARS: usize = 255;

impl Upload {
    /// Checks the form's text fields, reporting every problem. An empty
    /// `model` means none.
    pub fn parse(
        kind: String,
        model: Option<String>,
        client_request_id: Option<String>,
        name: Option<String>,
        bytes: Bytes,
    ) -> Result<Self, ValidationErrors> {
        let mut errs = ValidationErrors::new();
        text::check("kind", &kind, TextRule::Line, &mut errs);
        let model = model.filter(|m| !m.is_empty());
        if let Some(m) = &model {
            text::check("model", m, TextRule::Line, &mut errs);
        }
        let client_request_id = match client_request_id.map(|c| ClientRequestId::parse(&c)) {
            None => None,
            Some(Ok(c)) => Some(c.as_str().to_owned()),
            Some(Err((issue, msg))) => {
                errs.push("client_request_id", issue, msg);
                None
            }
        };
        if let Some(n) = &name
            && text::check("file.filename", n, TextRule::Line, &mut errs)
            && n.chars().count() > MAX_FILE_NAME_CHARS
        {
            errs.push(
                "file.filename",
                FieldIssue::TooLong,
                format!("the file name must be at most {MAX_FILE_NAME_CHARS} characters"),
            );
        }
        errs.into_result()?;
        Ok(Self {
            kind,
            model,
            client_request_id,
            name,
            bytes,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    #[error(transparent)]
    Invalid(#[from] ValidationErrors),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("storage unavailable: {0}")]
    Blob(String),
    /// The decode memory budget stayed taken for the whole wait.
    #[error("busy: {0}")]
    Busy(String),
}

impl From<BlobError> for FilesError {
    fn from(e: BlobError) -> Self {
        FilesError::Blob(e.to_string())
    }
}

pub struct FilesService {
    store: DynStore,
    links: Arc<MediaLinks>,
    blobs: Blobs,
    key: SigningKey,
    clock: SharedClock,
    ttl: Duration,
    decode_budget: Arc<DecodeBudget>,
}

fn invalid(
    field: impl Into<String>,
    issue: FieldIssue,
    msg: impl Into<String>,
) -> ValidationErrors {
    ValidationErrors::single(field, issue, msg)
}

impl FilesService {
    pub fn new(
        store: DynStore,
        links: Arc<MediaLinks>,
        blobs: Blobs,
        ttl: Duration,
        decode_budget: Arc<DecodeBudget>,
    ) -> Self {
        let key = links.key.clone();
        let clock = links.clock.clone();
        Self {
            store,
            links,
            blobs,
            key,
            clock,
            ttl,
            decode_budget,
        }
    }

    pub fn decode_budget(&self) -> &DecodeBudget {
        &self.decode_budget
    }

    /// Reserves an image's decode memory, its cost read from the header
    /// (hostile bytes: off the async threads, like the decode).
    async fn reserve_decode(
        &self,
        bytes: &Bytes,
        mime: &'static str,
        limits: ImageLimits,
    ) -> Result<Reservation, FilesError> {
        let head = bytes.clone();
        let cost = tokio::task::spawn_blocking(move || {
            gengate_media::image_decode_cost(&head, mime, &limits)
        })
        .await
        .map_err(|e| FilesError::Blob(format!("inspection task failed: {e}")))?
        .map_err(|e| invalid("file", FieldIssue::InvalidFormat, e.to_string()))?;
        self.decode_budget.reserve(cost).await.map_err(|e| match e {
            BudgetError::TooLarge { .. } => invalid(
                "file",
                FieldIssue::TooLarge,
                format!("the image is too large to check: {e}"),
            )
            .into(),
            BudgetError::Busy => FilesError::Busy(e.to_string()),
        })
    }

    /// The size and type rules that apply to an upload of `kind`, with `model` if named.
    pub fn limits_for(
        catalog: &Catalog,
        kind: &str,
        model: Option<&str>,
    ) -> Result<(u64, Vec<String>, Option<KindLimits>), ValidationErrors> {
        let Some((max, mimes)) = default_limits(kind) else {
            return Err(invalid(
                "kind",
                FieldIssue::NotAllowed,
                "kind must be one of image, video, audio",
            ));
        };
        let Some(model_id) = model else {
            return Ok((max, mimes.iter().map(|m| (*m).to_owned()).collect(), None));
        };
        let Some(m) = catalog.get(model_id) else {
            return Err(invalid(
                "model",
                FieldIssue::NotAllowed,
                format!("model {model_id:?} is not in the catalog"),
            ));
        };
        match m.reference_media.limits.get(kind) {
            Some(l) if m.reference_media.kinds.iter().any(|k| k == kind) => {
                Ok((l.max_bytes.min(max), l.mime_types.clone(), Some(l.clone())))
            }
            _ => Err(invalid(
                "kind",
                FieldIssue::NotAllowed,
                format!(
                    "{model_id} takes reference files of kind {}",
                    m.reference_media.kinds.join(", ")
                ),
            )),
        }
    }

    /// Checks the bytes against the rules and stores the file.
    pub async fn create(
        &self,
        catalog: &Catalog,
        account: &AccountId,
        up: Upload,
    ) -> Result<FileRecord, FilesError> {
        let (max, mimes, model_limits) = Self::limits_for(catalog, &up.kind, up.model.as_deref())?;
        if up.bytes.len() as u64 > max {
            return Err(invalid(
                "file",
                FieldIssue::TooLarge,
                format!(
                    "file is {} bytes; {} files may be at most {max} bytes",
                    up.bytes.len(),
                    up.kind
                ),
            )
            .into());
        }
        if up.bytes.is_empty() {
            return Err(invalid("file", FieldIssue::Required, "file is empty").into());
        }
        let head = &up.bytes[..up.bytes.len().min(gengate_media::SNIFF_LEN)];
        let Some(sniffed) = gengate_media::sniff(head) else {
            return Err(invalid(
                "file",
                FieldIssue::UnsupportedMediaType,
                "file is not a recognised image, video or audio format",
            )
            .into());
        };
        if sniffed.kind.as_str() != up.kind {
            return Err(invalid(
                "file",
                FieldIssue::UnsupportedMediaType,
                format!(
                    "file is {} ({}), which does not match kind {}",
                    sniffed.mime,
                    sniffed.kind.as_str(),
                    up.kind
                ),
            )
            .into());
        }
        if !mimes.iter().any(|m| m == sniffed.mime) {
            return Err(invalid(
                "file",
                FieldIssue::UnsupportedMediaType,
                format!(
                    "file is {}; {} files must be one of {}",
                    sniffed.mime,
                    up.kind,
                    mimes.join(", ")
                ),
            )
            .into());
        }
        let bytes = up.bytes.clone();
        let mime = sniffed.mime;
        let kind = sniffed.kind;
        let limits = ImageLimits::default();
        // Moved into the decode task and dropped when the decode ends, even if
        // this request is dropped first (the client hung up).
        let reservation = match kind {
            MediaKind::Image => Some(self.reserve_decode(&up.bytes, mime, limits).await?),
            MediaKind::Video | MediaKind::Audio => None,
        };
        // Decoding is CPU work on hostile input: keep it off the async threads.
        let measured = tokio::task::spawn_blocking(move || {
            let _held = reservation;
            match kind {
                MediaKind::Image => gengate_media::inspect_image(&bytes, mime, &limits)
                    .map(|i| (Some(i.width), Some(i.height), None)),
                MediaKind::Video | MediaKind::Audio => {
                    gengate_media::probe_duration(&bytes, mime).map(|d| (None, None, Some(d)))
                }
            }
        })
        .await
        .map_err(|e| FilesError::Blob(format!("inspection task failed: {e}")))?;
        let (width, height, duration) =
            measured.map_err(|e| invalid("file", FieldIssue::InvalidFormat, e.to_string()))?;
        if let (Some(l), Some(w), Some(h)) = (&model_limits, width, height) {
            let mut errs = ValidationErrors::new();
            check_image_rules(l, w, h, "file", &mut errs);
            errs.into_result()?;
        }
        let sha = hex::encode(Sha256::digest(&up.bytes));
        let blob_key = blob_key_for(&self.key, account, &sha, mime);
        // Same content, same account: the blob is already there.
        if self.blobs.size(&blob_key).await.is_err() {
            self.blobs.put(&blob_key, up.bytes.clone()).await?;
        }
        let now = self.clock.now();
        let rec = FileRecord {
            id: FileId::generate(),
            account_id: account.clone(),
            kind: up.kind,
            mime_type: mime.to_owned(),
            name: up.name,
            size_bytes: up.bytes.len() as u64,
            sha256: sha,
            blob_key,
            width,
            height,
            duration_seconds: duration.map(|d| (d * 1000.0).round() / 1000.0),
            model: up.model,
            client_request_id: up.client_request_id,
            created_at: now,
            expires_at: now.plus(self.ttl),
        };
        self.store.insert_file(&rec).await?;
        metrics::counter!("gengate_files_uploaded_total", "kind" => rec.kind.clone()).increment(1);
        Ok(rec)
    }

    pub async fn get(
        &self,
        account: &AccountId,
        id: &FileId,
    ) -> Result<Option<FileRecord>, StoreError> {
        self.store.get_file(account, id, self.clock.now()).await
    }

    pub fn object(&self, f: &FileRecord) -> FileObject {
        FileObject {
            id: f.id.clone(),
            object: "file",
            kind: f.kind.clone(),
            url: self.links.link(&f.blob_key, f.expires_at),
            name: f.name.clone(),
            mime_type: f.mime_type.clone(),
            size_bytes: f.size_bytes,
            sha256: f.sha256.clone(),
            width: f.width,
            height: f.height,
            duration_seconds: f.duration_seconds,
            duration_token: f
                .duration_seconds
                .map(|d| duration_token(&self.key, &f.account_id, &f.id, d, f.expires_at)),
            model: f.model.clone(),
            client_request_id: f.client_request_id.clone(),
            created_at: f.created_at,
            expires_at: f.expires_at,
        }
    }

    /// Resolves one `referenceMediaItems[i]` to a live file of `account`
    /// that fits the model's rules.
    pub async fn resolve_reference(
        &self,
        account: &AccountId,
        model: &Model,
        item: &ReferenceItem,
    ) -> Result<TaskReference, ValidationErrors> {
        let url_field = item.field("url");
        let not_ours = || {
            invalid(
                item.field("url"),
                FieldIssue::NotFound,
                format!(
                    "{} must be the url of a live file you uploaded through /api/v1/files",
                    item.field("url")
                ),
            )
        };
        let Some(blob_key) = self.blob_key_of_link(&item.url) else {
            return Err(not_ours());
        };
        let file = match self
            .store
            .find_file_by_blob(account, &blob_key, self.clock.now())
            .await
        {
            Ok(Some(f)) => f,
            Ok(None) => return Err(not_ours()),
            Err(e) => {
                tracing::warn!(error = %e, "resolving a reference failed");
                return Err(invalid(
                    url_field,
                    FieldIssue::NotFound,
                    "the file could not be looked up; retry",
                ));
            }
        };
        let mut errs = ValidationErrors::new();
        if file.kind != item.kind {
            errs.push(
                item.field("kind"),
                FieldIssue::Conflict,
                format!(
                    "{} says {} but the file is {}",
                    item.field("kind"),
                    item.kind,
                    file.kind
                ),
            );
        }
        match model.reference_media.limits.get(&file.kind) {
            None => errs.push(
                item.field("kind"),
                FieldIssue::NotAllowed,
                format!("{} does not take {} references", model.id, file.kind),
            ),
            Some(l) => {
                if !l.mime_types.contains(&file.mime_type) {
                    errs.push(
                        url_field.clone(),
                        FieldIssue::UnsupportedMediaType,
                        format!(
                            "the file is {}; {} takes {}",
                            file.mime_type,
                            model.id,
                            l.mime_types.join(", ")
                        ),
                    );
                }
                if file.size_bytes > l.max_bytes {
                    errs.push(
                        url_field.clone(),
                        FieldIssue::TooLarge,
                        format!(
                            "the file is {} bytes; {} takes at most {}",
                            file.size_bytes, model.id, l.max_bytes
                        ),
                    );
                }
                if let (Some(w), Some(h)) = (file.width, file.height) {
                    check_image_rules(l, w, h, &url_field, &mut errs);
                }
                if l.requires_duration_token {
                    let ok = match (&item.duration_token, file.duration_seconds) {
                        (Some(t), Some(d)) => verify_duration_token(
                            &self.key,
                            account,
                            &file.id,
                            d,
                            t,
                            self.clock.now(),
                        ),
                        _ => false,
                    };
                    if !ok {
                        errs.push(item.field("durationToken"), FieldIssue::InvalidFormat, format!("{} must be the duration_token /api/v1/files returned for this file", item.field("durationToken")));
                    }
                }
            }
        }
        errs.into_result()?;
        Ok(TaskReference {
            file_id: file.id,
            kind: file.kind,
            mime_type: file.mime_type,
            blob_key: file.blob_key,
            width: file.width,
            height: file.height,
        })
    }

    /// The blob key named by one of our signed links, if the link is ours,
    /// untampered and unexpired.
    fn blob_key_of_link(&self, url: &str) -> Option<String> {
        let rest = url.split_once("://").map_or(url, |(_, r)| r);
        let path_and_query = &rest[rest.find('/')?..];
        let (path, query) = path_and_query.split_once('?')?;
        let key = path.strip_prefix("/media/")?;
        let mut exp = None;
        let mut sig = None;
        for pair in query.split('&') {
            match pair.split_once('=') {
                Some(("expires", v)) => exp = Some(v),
                Some(("sig", v)) => sig = Some(v),
                _ => {}
            }
        }
        self.links.check(key, exp?, sig?).ok()?;
        key.starts_with("files/").then(|| key.to_owned())
    }

    /// Deletes expired files and the blobs nothing uses any more.
    pub async fn sweep_expired(&self) {
        loop {
            match self.store.expire_files(self.clock.now(), 500).await {
                Ok(keys) if keys.is_empty() => return,
                Ok(keys) => {
                    for k in keys {
                        if let Err(e) = self.blobs.delete(&k).await {
                            tracing::warn!(error = %e, blob = %k, "could not delete an expired blob");
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "expiring files failed");
                    return;
                }
            }
        }
    }
}

fn check_image_rules(l: &KindLimits, w: u32, h: u32, field: &str, errs: &mut ValidationErrors) {
    if let Some(min) = l.min_side_px
        && (w < min || h < min)
    {
        errs.push(
            field,
            FieldIssue::OutOfRange,
            format!("the image is {w}x{h}; each side must be at least {min} px"),
        );
    }
    if let Some(max) = l.max_aspect_ratio {
        let ratio = f64::from(w.max(h)) / f64::from(w.min(h).max(1));
        if ratio > max + 1e-9 {
            errs.push(field, FieldIssue::OutOfRange, format!("the image's aspect ratio is {ratio:.2}:1; it must be between 1:{max} and {max}:1"));
        }
    }
}

/// Blob keys reveal neither the account nor the content hash.
fn blob_key_for(key: &SigningKey, account: &AccountId, sha: &str, mime: &str) -> String {
    let ext = match mime {
        "image/jpeg" => "jpg",
        "image/png" => "png",
        "image/webp" => "webp",
        "image/gif" => "gif",
        "video/mp4" => "mp4",
        "video/quicktime" => "mov",
        "video/webm" => "webm",
        "audio/mpeg" => "mp3",
        "audio/mp4" => "m4a",
        "audio/wav" | "audio/x-wav" => "wav",
        "audio/aac" => "aac",
        "audio/ogg" => "ogg",
        _ => "bin",
    };
    let id = key.mac(&[b"blob", account.as_str().as_bytes(), sha.as_bytes()]);
    format!("files/{}.{ext}", &id[..40])
}

/// `dt1.<payload>.<mac>`: payload = base64url(file id, duration in ms,
/// expiry); the MAC also covers the account, so a token is useless to
/// another account and cannot be altered.
pub fn duration_token(
    key: &SigningKey,
    account: &AccountId,
    file: &FileId,
    seconds: f64,
    expires: Timestamp,
) -> String {
    let payload = format!(
        "{}|{}|{}",
        file,
        (seconds * 1000.0).round() as i64,
        expires.unix_seconds()
    );
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(payload.as_bytes());
    let mac = key.mac(&[
        b"duration-token",
        account.as_str().as_bytes(),
        b64.as_bytes(),
    ]);
    format!("dt1.{b64}.{}", &mac[..32])
}

pub fn verify_duration_token(
    key: &SigningKey,
    account: &AccountId,
    file: &FileId,
    seconds: f64,
    token: &str,
    now: Timestamp,
) -> bool {
    let mut parts = token.split('.');
    let (Some("dt1"), Some(b64), Some(mac), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let expected = key.mac(&[
        b"duration-token",
        account.as_str().as_bytes(),
        b64.as_bytes(),
    ]);
    if !gengate_core::apikey::hashes_equal(&expected[..32], mac) {
        return false;
    }
    let Ok(raw) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(b64) else {
        return false;
    };
    let Ok(text) = String::from_utf8(raw) else {
        return false;
    };
    let f: Vec<&str> = text.split('|').collect();
    let [fid, ms, exp] = f.as_slice() else {
        return false;
    };
    let (Ok(ms), Ok(exp)) = (ms.parse::<i64>(), exp.parse::<i64>()) else {
        return false;
    };
    *fid == file.as_str() && ms == (seconds * 1000.0).round() as i64 && exp >= now.unix_seconds()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duration_tokens_bind_account_file_duration_and_expiry() {
        let key = SigningKey::from_secret("k");
        let acc = AccountId::generate();
        let other = AccountId::generate();
        let file = FileId::generate();
        let now = Timestamp::from_millis(1_800_000_000_000);
        let exp = now.plus(Duration::from_secs(60));
        let t = duration_token(&key, &acc, &file, 4.25, exp);
        assert!(verify_duration_token(&key, &acc, &file, 4.25, &t, now));
        assert!(
            !verify_duration_token(&key, &other, &file, 4.25, &t, now),
            "foreign account"
        );
        assert!(
            !verify_duration_token(&key, &acc, &FileId::generate(), 4.25, &t, now),
            "other file"
        );
        assert!(
            !verify_duration_token(&key, &acc, &file, 9.0, &t, now),
            "other duration"
        );
        assert!(
            !verify_duration_token(
                &key,
                &acc,
                &file,
                4.25,
                &t,
                exp.plus(Duration::from_secs(2))
            ),
            "expired"
        );
        let forged = duration_token(&SigningKey::from_secret("other"), &acc, &file, 4.25, exp);
        assert!(
            !verify_duration_token(&key, &acc, &file, 4.25, &forged, now),
            "forged"
        );
        let mut altered = t.clone();
        altered.replace_range(5..6, if &t[5..6] == "A" { "B" } else { "A" });
        assert!(
            !verify_duration_token(&key, &acc, &file, 4.25, &altered, now),
            "altered"
        );
        assert!(!verify_duration_token(
            &key, &acc, &file, 4.25, "garbage", now
        ));
    }

    #[test]
    fn upload_text_fields_follow_the_text_rule_and_report_every_problem() {
        let parse = |kind: &str, model: Option<&str>, crid: Option<&str>, name: Option<&str>| {
            Upload::parse(
                kind.to_owned(),
                model.map(str::to_owned),
                crid.map(str::to_owned),
                name.map(str::to_owned),
                Bytes::new(),
            )
        };
        let fields = |r: Result<Upload, ValidationErrors>| -> Vec<String> {
            r.err()
                .map(|e| e.problems().iter().map(|p| p.field.clone()).collect())
                .unwrap_or_default()
        };
        assert!(parse("image", Some(""), Some("id-1"), Some("a b.png")).is_ok());
        assert_eq!(
            parse("image", None, None, Some("a\u{0}b.png"))
                .err()
                .map(|e| e.problems()[0].issue),
            Some(FieldIssue::InvalidFormat)
        );
        assert_eq!(
            fields(parse(
                "im\u{0}",
                Some("m\u{1}"),
                Some("c\n"),
                Some("\u{1b}.png")
            )),
            ["kind", "model", "client_request_id", "file.filename"]
        );
        assert_eq!(
            fields(parse("image", None, Some(""), Some(&"n".repeat(256)))),
            ["client_request_id", "file.filename"]
        );
        let up = parse("image", Some(""), None, None).expect("clean");
        assert_eq!(up.model, None, "an empty model means none");
    }

    #[test]
    fn image_rules_follow_the_catalog() {
        let l = KindLimits {
            max_bytes: 10,
            mime_types: vec![],
            min_side_px: Some(300),
            max_aspect_ratio: Some(2.5),
            requires_duration_token: false,
        };
        let check = |w, h| {
            let mut e = ValidationErrors::new();
            check_image_rules(&l, w, h, "f", &mut e);
            e.is_empty()
        };
        assert!(check(300, 300));
        assert!(check(750, 300));
        assert!(!check(751, 300));
        assert!(!check(299, 600));
        assert!(check(300, 750));
    }
}
