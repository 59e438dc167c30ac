use super::auth::Auth;
use super::error::{ApiError, ErrorEnvelope};
use super::extract::Path;
use super::idempotency::{self, Begun};
use crate::app::AppState;
use axum::Json;
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use gengate_core::error::{ErrorCode, FieldIssue, ValidationErrors};
use gengate_core::ids::FileId;
use gengate_engine::files::{FileObject, FilesError, FilesService, MAX_UPLOAD_BYTES, Upload};
use sha2::{Digest, Sha256};

impl From<FilesError> for ApiError {
    fn from(e: FilesError) -> Self {
        match e {
            FilesError::Invalid(v) => v.into(),
            FilesError::Store(s) => s.into(),
            FilesError::Busy(m) => ApiError {
                retry_after_secs: Some(1),
                ..ApiError::new(
                    ErrorCode::ServerBusy,
                    format!("{m} (the image decode memory budget is in use)"),
                )
            },
            FilesError::Blob(m) => {
                tracing::warn!(error = %m, "blob storage failed");
                ApiError::unavailable("storage is unavailable; retry shortly")
            }
        }
    }
}

/// The multipart form (documentation of the wire format).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct UploadForm {
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    #[schema(example = "image")]
    kind: String,
    model: Option<String>,
    client_request_id: Option<String>,
}

/// Upload a reference file. The type is decided from the bytes; limits are
/// enforced while the body streams in (send `kind` before `file` to be cut
/// off at the kind's limit rather than at the largest one).
#[utoipa::path(post, path = "/api/v1/files", tag = "files", security(("bearer" = [])),
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[ -~]+$", description = "1..=255 printable ASCII characters; replays the first answer")),
    responses((status = 201, body = FileObject), (status = 400, body = ErrorEnvelope), (status = 413, body = ErrorEnvelope),
        (status = 503, description = "server_busy: the node's image decode memory budget stayed in use for the whole wait; `Retry-After` says when to retry | service_unavailable", body = ErrorEnvelope,
         headers(("Retry-After" = u64, description = "seconds")))))]
pub async fn upload_file(
    State(st): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    req: Request,
) -> Result<Response, ApiError> {
    let key = idempotency::parse_key(&headers)?;
    let hard_cap = MAX_UPLOAD_BYTES + 1024 * 1024;
    if headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > hard_cap)
    {
        return Err(ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("uploads are capped at {hard_cap} bytes"),
        ));
    }
    let mut form = Multipart::from_request(req, &st).await.map_err(|e| {
        ApiError::from(ValidationErrors::single(
            "body",
            FieldIssue::InvalidFormat,
            format!("the body must be multipart/form-data: {}", e.body_text()),
        ))
    })?;
    let up = read_form(&st, &mut form).await?;
    let mut h = Sha256::new();
    for part in [
        up.kind.as_bytes(),
        up.model.as_deref().unwrap_or("").as_bytes(),
        up.client_request_id.as_deref().unwrap_or("").as_bytes(),
        up.name.as_deref().unwrap_or("").as_bytes(),
    ] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    h.update(&up.bytes);
    let fingerprint_body = hex::encode(h.finalize());
    // Check before taking the idempotency key: a request that fails validation stores nothing.
    FilesService::limits_for(&st.engine.catalog.current(), &up.kind, up.model.as_deref())?;
    let hold = match idempotency::begin(
        &st,
        &auth,
        key,
        "POST",
        "/api/v1/files",
        fingerprint_body.as_bytes(),
    )
    .await?
    {
        Begun::Replay(r) => return Ok(r),
        Begun::Proceed(h) => h,
    };
    let obj = st.engine.upload_file(&auth.account_id, up, hold).await?;
    let body = serde_json::to_string(&obj).map_err(ApiError::internal)?;
    Ok((
        StatusCode::CREATED,
        [("content-type", "application/json")],
        body,
    )
        .into_response())
}

/// After refusing an oversized file, read and discard a bounded amount more
/// (nothing is kept) before answering. Closing with unread bytes in the
/// socket makes the client's kernel see a reset while it is still writing,
/// and most clients then report "broken pipe" instead of our answer; a short
/// lingering read, as web servers do on close, lets them read the 400.
async fn linger(field: &mut axum::extract::multipart::Field<'_>) {
    const LINGER_BYTES: usize = 16 * 1024 * 1024;
    const LINGER_TIME: std::time::Duration = std::time::Duration::from_secs(2);
    let mut seen = 0usize;
    let _ = tokio::time::timeout(LINGER_TIME, async {
        while seen < LINGER_BYTES {
            match field.chunk().await {
                Ok(Some(c)) => seen += c.len(),
                _ => break,
            }
        }
    })
    .await;
}

async fn read_form(st: &AppState, form: &mut Multipart) -> Result<Upload, ApiError> {
    let mut kind: Option<String> = None;
    let mut model: Option<String> = None;
    let mut crid: Option<String> = None;
    let mut file: Option<(Option<String>, bytes::Bytes)> = None;
    let mut errs = ValidationErrors::new();
    let field_err = |e: axum::extract::multipart::MultipartError| -> ApiError {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                ErrorCode::PayloadTooLarge,
                "the upload is larger than the hard cap",
            )
        } else if super::body::stalled(&e) {
            ApiError::new(
                ErrorCode::RequestTimeout,
                "the upload stopped arriving; send the rest without pausing",
            )
        } else {
            ValidationErrors::single(
                "body",
                FieldIssue::InvalidFormat,
                format!("malformed multipart body: {}", e.body_text()),
            )
            .into()
        }
    };
    while let Some(mut field) = form.next_field().await.map_err(field_err)? {
        let name = field.name().unwrap_or("").to_owned();
        match name.as_str() {
            "file" => {
                // Stream with the tightest limit known so far; never hold
                // more than limit + one chunk.
                let limit = kind
                    .as_deref()
                    .and_then(|k| {
                        FilesService::limits_for(&st.engine.catalog.current(), k, model.as_deref())
                            .ok()
                    })
                    .map_or(MAX_UPLOAD_BYTES, |(max, _, _)| max);
                let filename = field.file_name().map(str::to_owned);
                let mut buf = bytes::BytesMut::new();
                while let Some(chunk) = field.chunk().await.map_err(field_err)? {
                    if (buf.len() + chunk.len()) as u64 > limit {
                        drop(buf);
                        linger(&mut field).await;
                        return Err(ValidationErrors::single(
                            "file",
                            FieldIssue::TooLarge,
                            format!(
                                "file is larger than {limit} bytes{}",
                                kind.as_deref()
                                    .map(|k| format!(", the limit for {k} files"))
                                    .unwrap_or_default()
                            ),
                        )
                        .into());
                    }
                    buf.extend_from_slice(&chunk);
                }
                file = Some((filename, buf.freeze()));
            }
            "kind" | "model" | "client_request_id" => {
                let text = field.text().await.map_err(field_err)?;
                // A bound on what is held before the domain's own rules run.
                if text.len() > 1024 {
                    errs.push(
                        name.clone(),
                        FieldIssue::TooLong,
                        format!("{name} is too long"),
                    );
                    continue;
                }
                match name.as_str() {
                    "kind" => kind = Some(text),
                    "model" => model = Some(text).filter(|m| !m.is_empty()),
                    _ => crid = Some(text),
                }
            }
            other => errs.push(
                other.to_owned(),
                FieldIssue::UnknownField,
                format!("{other} is not a field of the upload form"),
            ),
        }
    }
    if kind.is_none() {
        errs.push(
            "kind",
            FieldIssue::Required,
            "kind is required (image, video or audio)",
        );
    }
    if file.is_none() {
        errs.push("file", FieldIssue::Required, "file is required");
    }
    let (name, bytes) = file.unwrap_or_default();
    match Upload::parse(kind.unwrap_or_default(), model, crid, name, bytes) {
        Ok(up) if errs.is_empty() => Ok(up),
        Ok(_) => Err(errs.into()),
        Err(e) => {
            errs.extend(e);
            Err(errs.into())
        }
    }
}

/// A file of the account.
#[utoipa::path(get, path = "/api/v1/files/{file_id}", tag = "files", security(("bearer" = [])),
    params(("file_id" = String, Path)),
    responses((status = 200, body = FileObject), (status = 404, body = ErrorEnvelope)))]
pub async fn get_file(
    State(st): State<AppState>,
    auth: Auth,
    Path(file_id): Path<String>,
) -> Result<Json<FileObject>, ApiError> {
    let id = FileId::parse(&file_id).ok_or_else(|| ApiError::not_found("file"))?;
    st.engine
        .get_file(&auth.account_id, &id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("file"))
}
