//! The fake's HTTP face: Kling's endpoints, its envelope, its auth and its error codes.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use hyper::body::Frame;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, errors::ErrorKind};
use serde_json::{Value, json};

use super::server::ConnKill;
use super::state::{Shared, Status, Task, now_ms};
use super::validate::validate_create;
use super::{Fault, MODERATION_MESSAGE, PROMPT_MODERATION, PROMPT_REJECT, RecordedRequest};
use crate::error::documented_http_status;
use crate::types::Family;

/// Big enough for two base64 images at Kling's 10 MB limit each.
const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;
/// Kling's documented page size bounds.
const MAX_PAGE_SIZE: usize = 500;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/videos/{family}", get(list).post(create))
        .route("/v1/videos/{family}/{task_id}", get(get_task))
        .route("/files/{file}", get(file))
        .route("/fake/completions", get(completions))
        .fallback(not_found)
        .method_not_allowed_fallback(wrong_method)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(shared)
}

fn default_message(code: i64) -> &'static str {
    match code {
        1000 => "Authentication failed",
        1001 => "Authorization is empty",
        1002 => "Authorization is invalid",
        1003 => "Authorization is not yet valid",
        1004 => "Authorization has expired",
        1100 => "Account exception",
        1101 => "Account in arrears",
        1102 => "Resource pack depleted or expired",
        1103 => "Unauthorized access to requested resource",
        1200 => "Invalid request parameters",
        1201 => "Invalid parameters",
        1202 => "Invalid request method",
        1203 => "Requested resource does not exist",
        1300 => "Trigger strategy of the platform",
        1301 => "Trigger the content security policy of the platform",
        1302 => "API request is too fast",
        1303 => "Concurrency or QPS exceeds the prepaid resource package limit",
        1304 => "Trigger the IP whitelisting policy",
        5000 => "Server internal error",
        5001 => "Server temporarily unavailable",
        5002 => "Server internal timeout",
        _ => "Error",
    }
}

fn ok(s: &Shared, data: Value) -> Response {
    let body =
        json!({"code": 0, "message": "SUCCEED", "request_id": s.next_request_id(), "data": data});
    (StatusCode::OK, axum::Json(body)).into_response()
}

fn error_with_status(s: &Shared, http_status: u16, code: i64, message: &str) -> Response {
    let status = StatusCode::from_u16(http_status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    // An error carries no `data`, as Kling documents.
    let body = json!({"code": code, "message": message, "request_id": s.next_request_id()});
    (status, axum::Json(body)).into_response()
}

fn error(s: &Shared, code: i64, message: &str) -> Response {
    error_with_status(
        s,
        documented_http_status(code).unwrap_or(500),
        code,
        message,
    )
}

/// What happens after the handler has done its work.
#[derive(Default)]
struct After {
    slow: Option<Duration>,
    lose_answer: bool,
}

impl After {
    async fn finish(self, resp: Response, kill: Option<&ConnKill>) -> Response {
        if let Some(delay) = self.slow {
            tokio::time::sleep(delay).await;
        }
        if self.lose_answer {
            drop_connection(kill).await;
        }
        resp
    }
}

/// Closes the socket without answering. Never returns when the connection can be killed:
/// the connection task drops this handler's future along with the socket.
async fn drop_connection(kill: Option<&ConnKill>) {
    if let Some(kill) = kill {
        kill.kill();
        std::future::pending::<()>().await;
    }
}

/// The part every API call shares: record, consume an injected fault, add latency, and
/// check the token. Faults come before auth because they stand for whatever sits in front
/// of Kling's logic (or Kling failing as a whole).
async fn preamble(
    s: &Shared,
    kill: Option<&ConnKill>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<After, Response> {
    let (fault, latency, skew) = {
        let mut inner = s.lock();
        inner.requests.push(RecordedRequest {
            method: method.to_string(),
            path: uri.path().to_owned(),
            query: uri.query().map(str::to_owned),
            authorization: headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        });
        (
            inner.faults.pop_front(),
            inner.latency,
            inner.clock_skew_secs,
        )
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let mut after = After::default();
    match fault {
        None => {}
        Some(Fault::Error(code)) => return Err(error(s, code, default_message(code))),
        Some(Fault::ErrorWithStatus { http_status, code }) => {
            return Err(error_with_status(
                s,
                http_status,
                code,
                default_message(code),
            ));
        }
        Some(Fault::Raw { http_status, body }) => {
            let status =
                StatusCode::from_u16(http_status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return Err((status, [(header::CONTENT_TYPE, "text/html")], body).into_response());
        }
        Some(Fault::Malformed) => {
            let body = r#"{"code":0,"message":"SUCCEED","data":{"task_id":"86"#;
            return Err((
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                body,
            )
                .into_response());
        }
        Some(Fault::Drop) => {
            drop_connection(kill).await;
            return Err((
                StatusCode::INTERNAL_SERVER_ERROR,
                "connection could not be dropped",
            )
                .into_response());
        }
        Some(Fault::Slow(delay)) => after.slow = Some(delay),
        Some(Fault::LostAnswer) => after.lose_answer = true,
    }
    if let Err((code, msg)) = check_auth(s, headers, skew) {
        return Err(error(s, code, &msg));
    }
    Ok(after)
}

/// Kling's auth codes: 1001 no header, 1002 not a usable token, 1000 wrong key or
/// signature, 1003 not yet valid, 1004 expired. No leeway: our `nbf` already carries 5 s.
fn check_auth(s: &Shared, headers: &HeaderMap, skew_secs: i64) -> Result<(), (i64, String)> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err((1001, default_message(1001).into()));
    };
    let value = value
        .to_str()
        .map_err(|_| (1002, "Authorization is not text".to_string()))?;
    let token = value
        .strip_prefix("Bearer ")
        .map(str::trim)
        .ok_or_else(|| (1002, "Authorization must be a Bearer token".to_string()))?;
    if token.is_empty() {
        return Err((1001, default_message(1001).into()));
    }
    let header =
        jsonwebtoken::decode_header(token).map_err(|e| (1002, format!("not a JWT: {e}")))?;
    if header.alg != Algorithm::HS256 {
        return Err((1002, format!("alg {:?} is not HS256", header.alg)));
    }
    let mut validation = Validation::new(Algorithm::HS256);
    // Time claims are checked below against the fake's (skewable) clock, to give each
    // failure its own Kling code.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let data = jsonwebtoken::decode::<Value>(
        token,
        &DecodingKey::from_secret(s.secret_key().as_bytes()),
        &validation,
    )
    .map_err(|e| match e.kind() {
        ErrorKind::InvalidSignature => (1000, "signature does not match".to_string()),
        _ => (1002, format!("unreadable token: {e}")),
    })?;
    let claims = data.claims;
    if claims.get("iss").and_then(Value::as_str) != Some(s.access_key.as_str()) {
        return Err((1000, "unknown access key".into()));
    }
    let (Some(exp), Some(nbf)) = (
        claims.get("exp").and_then(Value::as_i64),
        claims.get("nbf").and_then(Value::as_i64),
    ) else {
        return Err((1002, "exp and nbf are required".into()));
    };
    let now = crate::auth::system_now_secs() + skew_secs;
    if nbf > now {
        return Err((1003, default_message(1003).into()));
    }
    if exp <= now {
        return Err((1004, default_message(1004).into()));
    }
    Ok(())
}

type Kill = Option<axum::Extension<ConnKill>>;

async fn create(
    State(s): State<Arc<Shared>>,
    kill: Kill,
    Path(family): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let kill = kill.as_ref().map(|k| &k.0);
    let after = match preamble(&s, kill, &method, &uri, &headers).await {
        Ok(after) => after,
        Err(resp) => return resp,
    };
    let mut after = after;
    after.lose_answer |= s.lock().drop_create_answers;
    let resp = do_create(&s, &family, &body);
    after.finish(resp, kill).await
}

fn do_create(s: &Shared, family: &str, body: &[u8]) -> Response {
    let Some(family) = Family::parse(family) else {
        return error(s, 1203, "unknown video family");
    };
    let parsed: Result<Value, _> = serde_json::from_slice(body);
    let mut inner = s.lock();
    inner.creates_received += 1;
    let parsed = match parsed {
        Ok(v) => v,
        Err(e) => {
            inner
                .create_bodies
                .push(Value::String(String::from_utf8_lossy(body).into_owned()));
            return error(s, 1200, &format!("request body is not JSON: {e}"));
        }
    };
    inner.create_bodies.push(parsed.clone());
    if let Some(code) = inner.create_refusal {
        return error(s, code, default_message(code));
    }
    let accepted = match validate_create(family, &parsed, s.strict) {
        Ok(a) => a,
        Err((code, msg)) => return error(s, code, &msg),
    };
    if accepted.prompt.contains(PROMPT_REJECT) {
        return error(s, 1301, default_message(1301));
    }
    if let Some(ext) = &accepted.external_task_id
        && inner
            .tasks
            .iter()
            .any(|t| t.external_task_id.as_ref() == Some(ext))
    {
        return error(s, 1201, &format!("external_task_id {ext:?} already exists"));
    }
    if Shared::active_count(&inner) >= inner.concurrency_limit {
        return error(s, 1303, default_message(1303));
    }

    let seq = inner.next_seq;
    inner.next_seq += 1;
    // Long numeric strings, like Kling's, so a client that treats ids as numbers breaks here.
    let task_id = (860_117_402_271_547_392u64 + seq).to_string();
    let now = now_ms();
    let task = Task {
        task_id: task_id.clone(),
        family,
        status: Status::Submitted,
        status_msg: String::new(),
        external_task_id: accepted.external_task_id,
        callback_url: accepted.callback_url,
        created_at_ms: now,
        updated_at_ms: now,
        phase_since: Instant::now(),
        duration_seconds: accepted.duration_seconds,
        fail_at_end: accepted
            .prompt
            .contains(PROMPT_MODERATION)
            .then(|| MODERATION_MESSAGE.to_owned()),
        video_id: None,
        body: parsed,
        finished_at_us: None,
    };
    let idx = inner.tasks.len();
    inner.by_id.insert(task_id, idx);
    inner.tasks.push(task);
    let active = Shared::active_count(&inner);
    inner.max_concurrent = inner.max_concurrent.max(active);
    let t = &inner.tasks[idx];
    let data = s.task_json(t);
    s.queue_callback(s.callback_for(inner.callbacks_enabled, t));
    drop(inner);
    ok(s, data)
}

async fn get_task(
    State(s): State<Arc<Shared>>,
    kill: Kill,
    Path((family, task_id)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let kill = kill.as_ref().map(|k| &k.0);
    let after = match preamble(&s, kill, &method, &uri, &headers).await {
        Ok(after) => after,
        Err(resp) => return resp,
    };
    let resp = {
        let inner = s.lock();
        let found = Family::parse(&family).and_then(|family| {
            inner
                .by_id
                .get(&task_id)
                .and_then(|&i| inner.tasks.get(i))
                .filter(|t| t.family == family)
        });
        match found {
            Some(t) => ok(&s, s.task_json(t)),
            // Asking under the other family is as unknown as a made-up id.
            None => error(&s, 1203, &format!("task {task_id} does not exist")),
        }
    };
    after.finish(resp, kill).await
}

async fn list(
    State(s): State<Arc<Shared>>,
    kill: Kill,
    Path(family): Path<String>,
    RawQuery(query): RawQuery,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let kill = kill.as_ref().map(|k| &k.0);
    let after = match preamble(&s, kill, &method, &uri, &headers).await {
        Ok(after) => after,
        Err(resp) => return resp,
    };
    let resp = do_list(&s, &family, query.as_deref().unwrap_or_default());
    after.finish(resp, kill).await
}

fn do_list(s: &Shared, family: &str, query: &str) -> Response {
    let Some(family) = Family::parse(family) else {
        return error(s, 1203, "unknown video family");
    };
    let mut page_num = 1usize;
    let mut page_size = 30usize;
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        let target = match k.as_ref() {
            "pageNum" => &mut page_num,
            "pageSize" => &mut page_size,
            _ => continue,
        };
        match v.parse::<usize>() {
            Ok(n) => *target = n,
            Err(_) => return error(s, 1201, &format!("{k} must be a positive integer")),
        }
    }
    if page_num == 0 || !(1..=MAX_PAGE_SIZE).contains(&page_size) {
        return error(s, 1201, "pageNum must be >= 1 and pageSize 1..500");
    }
    let inner = s.lock();
    // Tasks are stored in creation order; the list is newest first.
    let items: Vec<Value> = inner
        .tasks
        .iter()
        .rev()
        .filter(|t| t.family == family)
        .skip((page_num - 1).saturating_mul(page_size))
        .take(page_size)
        .map(|t| s.task_json(t))
        .collect();
    drop(inner);
    ok(s, Value::Array(items))
}

/// Result files, served like a CDN: no auth, no envelope, no injected faults.
async fn file(State(s): State<Arc<Shared>>, Path(file): Path<String>) -> Response {
    let Some(video_id) = file.strip_suffix(".mp4") else {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    };
    let (bytes, chunked) = {
        let inner = s.lock();
        let exists = inner
            .tasks
            .iter()
            .any(|t| t.status == Status::Succeed && t.video_id.as_deref() == Some(video_id));
        if !exists {
            return (StatusCode::NOT_FOUND, "not found").into_response();
        }
        (inner.video_bytes.clone(), inner.chunked_files)
    };
    let mut resp = if chunked {
        Response::new(Body::new(ChunkedBody::new(bytes)))
    } else {
        Response::new(Body::from(bytes))
    };
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("video/mp4"));
    resp
}

/// Not Kling's: every task with its creation time and when it finished, for the bench
/// (`bench/callback.py`), which cannot reach the handle of a fake in another process. No
/// auth, no faults, not recorded as a request: it is the harness looking in, not a client.
async fn completions(State(s): State<Arc<Shared>>) -> Response {
    let inner = s.lock();
    let tasks: Vec<Value> = inner.tasks.iter().map(Shared::completion_json).collect();
    (StatusCode::OK, axum::Json(json!({ "tasks": tasks }))).into_response()
}

async fn not_found(State(s): State<Arc<Shared>>) -> Response {
    error(&s, 1203, default_message(1203))
}

async fn wrong_method(State(s): State<Arc<Shared>>) -> Response {
    error(&s, 1202, default_message(1202))
}

/// A body with no length, sent in small pieces, so downloads are tested without a
/// Content-Length to lean on.
struct ChunkedBody {
    chunks: VecDeque<Bytes>,
}

impl ChunkedBody {
    const CHUNK: usize = 4096;

    fn new(bytes: Bytes) -> Self {
        let mut chunks = VecDeque::new();
        let mut rest = bytes;
        while !rest.is_empty() {
            let take = rest.len().min(Self::CHUNK);
            chunks.push_back(rest.split_to(take));
        }
        Self { chunks }
    }
}

impl hyper::body::Body for ChunkedBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.chunks.pop_front().map(|c| Ok(Frame::data(c))))
    }
}
