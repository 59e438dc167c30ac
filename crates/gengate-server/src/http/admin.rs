//! The admin API (`/api/admin/v1/`, issue 22): operator keys only, the same envelope,
//! paging and time formats as the public API, its own OpenAPI document. The rules
//! (roles, audit, credits) are in `gengate_engine::admin`; this parses and serialises.

use super::body::JsonBody;
use super::context::current_request_id;
use super::credits::{CreditTransactionList, transactions_page};
use super::error::{ApiError, ErrorEnvelope};
use super::extract::{Path, Query};
use super::idempotency::{self, Begun};
use crate::app::AppState;
use axum::Json;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use gengate_core::Timestamp;
use gengate_core::credits::LedgerKind;
use gengate_core::error::{ErrorCode, FieldIssue, ValidationErrors};
use gengate_core::ids::AccountId;
use gengate_engine::admin::{self, Actor, AdminError, OperatorAuthError};
use gengate_store::Account;
use gengate_store::operators::{AuditEntry, AuditFilter};
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

#[derive(OpenApi)]
#[openapi(
    info(title = "gengate — admin API v1", version = "1.0.0",
         description = "Run the business: accounts, credits, keys and the audit log across accounts. Operator keys (gg_op_…) only; a viewer reads, an admin also writes; every write is in the audit log."),
    modifiers(&OperatorSecurity),
    components(schemas(ErrorEnvelope)),
    components(schemas(gengate_engine::accounts::keys::KeyView)),
    tags((name = "accounts"), (name = "keys"), (name = "generations"), (name = "usage"), (name = "overview"), (name = "providers"), (name = "audit"), (name = "catalog"))
)]
pub struct AdminDoc;

struct OperatorSecurity;

impl utoipa::Modify for OperatorSecurity {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "operator",
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .bearer_format("operator key (gg_op_…)")
                        .build(),
                ),
            );
    }
}

/// The routes and the admin OpenAPI document (served at `/api/admin/v1/openapi.json`).
pub fn routes(state: &AppState) -> axum::Router<AppState> {
    let (router, doc) = OpenApiRouter::with_openapi(AdminDoc::openapi())
        .routes(routes!(list_accounts, create_account))
        .routes(routes!(get_account, update_account))
        .routes(routes!(list_keys, create_key))
        .routes(routes!(revoke_key, update_key))
        .routes(routes!(change_credits))
        .routes(routes!(account_transactions))
        .routes(routes!(list_audit))
        .routes(routes!(usage))
        .routes(routes!(list_generations))
        .routes(routes!(cluster))
        .routes(routes!(overview))
        .routes(routes!(whoami))
        .routes(routes!(reload_catalog))
        .routes(routes!(get_generation))
        .split_for_parts();
    let doc = std::sync::Arc::new(doc);
    router
        .route_layer(from_fn_with_state(state.clone(), guard))
        .route(
            "/api/admin/v1/openapi.json",
            axum::routing::get(move || {
                let doc = doc.clone();
                async move { Json(doc.as_ref().clone()) }
            }),
        )
}

/// The operator behind the request, put there by the guard.
#[derive(Clone)]
pub struct OperatorAuth(pub Actor);

async fn guard(State(st): State<AppState>, mut req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, key)| key.trim().to_owned());
    let Some(key) = presented else {
        return ApiError::new(
            ErrorCode::OperatorKeyInvalid,
            "send an operator key as Authorization: Bearer gg_op_…",
        )
        .into_response();
    };
    let op = match st.engine.authenticate_operator(&key).await {
        Ok(op) => op,
        Err(e) => {
            let (code, message) = match e {
                OperatorAuthError::Invalid if gengate_core::apikey::visible_prefix(&key).is_some() => (
                    ErrorCode::OperatorKeyInvalid,
                    "an account API key does not work here: the admin API takes operator keys (gg_op_…)".to_owned(),
                ),
                OperatorAuthError::Invalid => (ErrorCode::OperatorKeyInvalid, e.to_string()),
                OperatorAuthError::Revoked => (ErrorCode::OperatorKeyRevoked, e.to_string()),
                OperatorAuthError::Expired => (ErrorCode::OperatorKeyExpired, e.to_string()),
                OperatorAuthError::Store(s) => return ApiError::from(s).into_response(),
            };
            return ApiError::new(code, message).into_response();
        }
    };
    // A viewer reads: any other method is refused before its body is read.
    if !matches!(*req.method(), Method::GET | Method::HEAD) && !op.role.can_write() {
        return ApiError::new(
            ErrorCode::OperatorRoleDenied,
            format!(
                "operator {} is a {}: it may read, not change",
                op.name, op.role
            ),
        )
        .into_response();
    }
    req.extensions_mut().insert(OperatorAuth(Actor {
        name: op.name,
        role: op.role,
        request_id: Some(current_request_id()),
        operator: Some(op.id),
    }));
    next.run(req).await
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for OperatorAuth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<OperatorAuth>()
            .cloned()
            .ok_or_else(|| ApiError::internal("admin route without its guard"))
    }
}

impl From<AdminError> for ApiError {
    fn from(e: AdminError) -> Self {
        match e {
            AdminError::Invalid(v) => v.into(),
            AdminError::NotFound(what) => ApiError::not_found(what),
            AdminError::RoleDenied => ApiError::new(ErrorCode::OperatorRoleDenied, e.to_string()),
            AdminError::InsufficientCredits { .. } => ApiError {
                status: Some(StatusCode::CONFLICT),
                ..ApiError::new(
                    ErrorCode::InsufficientCredits,
                    format!("{e}; nothing was written"),
                )
            },
            AdminError::Store(s) => s.into(),
        }
    }
}

/// An account as the operator sees it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AdminAccount {
    #[schema(value_type = String, example = "acct_0123456789abcdefghijklmn")]
    pub id: AccountId,
    #[schema(example = "account")]
    pub object: &'static str,
    pub name: String,
    pub balance: i64,
    /// Its tasks run on the sandbox provider.
    pub sandbox: bool,
    /// `active`, or `suspended`: every call of its keys is `403 account_suspended`.
    #[schema(example = "active")]
    pub status: &'static str,
    #[schema(value_type = String)]
    pub created_at: Timestamp,
    /// The last use of one of its keys (to the minute) or task created in the last 30
    /// days; null if none.
    #[schema(value_type = Option<String>)]
    pub last_activity: Option<Timestamp>,
    /// Tasks created in the last 30 days.
    pub tasks_30d: i64,
    /// Credits consumed in the last 30 days (reserves minus refunds, as usage counts them).
    pub credits_30d: i64,
    /// Its prices are the list prices scaled by this many percent (-99 .. 1000; 0 = list).
    pub price_adjustment: i32,
    /// A `credits.low` event goes to its endpoints when the balance falls below this.
    pub low_balance_threshold: Option<i64>,
}

impl AdminAccount {
    fn with(mut self, a: Option<&gengate_store::operators::AccountActivity>) -> Self {
        if let Some(a) = a {
            self.last_activity = a.last_activity;
            self.tasks_30d = a.tasks;
            self.credits_30d = a.credits;
        }
        self
    }

    async fn full(st: &AppState, a: &Account) -> Result<Self, ApiError> {
        let activity = st
            .engine
            .store
            .account_activity(thirty_days_ago(st), Some(&a.id))
            .await?;
        Ok(Self::of(a).with(activity.get(&a.id)))
    }

    fn of(a: &Account) -> Self {
        Self {
            id: a.id.clone(),
            object: "account",
            name: a.name.clone(),
            balance: a.balance.get(),
            sandbox: a.sandbox,
            status: if a.suspended { "suspended" } else { "active" },
            created_at: a.created_at,
            last_activity: None,
            tasks_30d: 0,
            credits_30d: 0,
            price_adjustment: a.price_adjustment,
            low_balance_threshold: a.low_balance_threshold,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AdminAccountList {
    #[schema(example = "list")]
    pub object: &'static str,
    pub data: Vec<AdminAccount>,
    pub has_more: bool,
}

/// An optional RFC 3339 time parameter (empty is absent).
fn time_param(
    q: &HashMap<String, String>,
    name: &str,
    errs: &mut ValidationErrors,
) -> Option<Timestamp> {
    let raw = q.get(name).filter(|s| !s.is_empty())?;
    let t = Timestamp::parse_rfc3339(raw);
    if t.is_none() {
        errs.push(
            name,
            FieldIssue::InvalidFormat,
            format!("{name} is an RFC 3339 time"),
        );
    }
    t
}

/// The optional `account` parameter: an account id (empty is absent).
fn account_param(q: &HashMap<String, String>, errs: &mut ValidationErrors) -> Option<AccountId> {
    let raw = q.get("account").filter(|s| !s.is_empty())?;
    let a = AccountId::parse(raw);
    if a.is_none() {
        errs.push(
            "account",
            FieldIssue::InvalidFormat,
            "account is an account id (acct_…)",
        );
    }
    a
}

fn thirty_days_ago(st: &AppState) -> Timestamp {
    st.engine
        .clock
        .now()
        .minus(std::time::Duration::from_secs(30 * 86_400))
}

fn bool_param(
    q: &HashMap<String, String>,
    name: &str,
    errs: &mut ValidationErrors,
) -> Option<bool> {
    match q.get(name).map(String::as_str) {
        None | Some("") => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(_) => {
            errs.push(
                name,
                FieldIssue::InvalidType,
                format!("{name} is true or false"),
            );
            None
        }
    }
}

/// Accounts, newest first; `query` matches the name or the id (case-insensitive part).
#[utoipa::path(get, path = "/api/admin/v1/accounts", tag = "accounts", security(("operator" = [])),
    params(("query" = Option<String>, Query, description = "part of the name or id"),
           ("sandbox" = Option<bool>, Query),
           ("status" = Option<String>, Query, description = "active or suspended"),
           ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "1..=100, default 20"),
           ("starting_after" = Option<String>, Query, description = "the id of the last account of the previous page")),
    responses((status = 200, body = AdminAccountList), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope)))]
pub async fn list_accounts(
    State(st): State<AppState>,
    _op: OperatorAuth,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<AdminAccountList>, ApiError> {
    let mut errs = ValidationErrors::new();
    let limit = gengate_core::paging::limit(q.get("limit").map(String::as_str), &mut errs) as usize;
    let sandbox = bool_param(&q, "sandbox", &mut errs);
    let suspended = match q.get("status").map(String::as_str) {
        None | Some("") => None,
        Some("active") => Some(false),
        Some("suspended") => Some(true),
        Some(_) => {
            errs.push(
                "status",
                FieldIssue::NotAllowed,
                "status is active or suspended",
            );
            None
        }
    };
    errs.into_result()?;
    let query = q
        .get("query")
        .map(|s| s.to_lowercase())
        .filter(|s| !s.is_empty());
    let mut all = st.engine.store.list_accounts().await?;
    all.reverse();
    let matching: Vec<&Account> = all
        .iter()
        .filter(|a| sandbox.is_none_or(|s| a.sandbox == s))
        .filter(|a| suspended.is_none_or(|s| a.suspended == s))
        .filter(|a| {
            query.as_ref().is_none_or(|needle| {
                a.name.to_lowercase().contains(needle.as_str())
                    || a.id.as_str().contains(needle.as_str())
            })
        })
        .collect();
    let start = match q.get("starting_after") {
        None => 0,
        Some(after) => match matching.iter().position(|a| a.id.as_str() == after) {
            Some(i) => i + 1,
            None => {
                return Err(ValidationErrors::single(
                    "starting_after",
                    FieldIssue::NotFound,
                    "starting_after must be the id of an item of this list",
                )
                .into());
            }
        },
    };
    let activity = st
        .engine
        .store
        .account_activity(thirty_days_ago(&st), None)
        .await?;
    let page: Vec<AdminAccount> = matching
        .iter()
        .skip(start)
        .take(limit)
        .map(|a| AdminAccount::of(a).with(activity.get(&a.id)))
        .collect();
    Ok(Json(AdminAccountList {
        object: "list",
        has_more: matching.len() > start + page.len(),
        data: page,
    }))
}

fn text_field(
    obj: &serde_json::Map<String, Value>,
    name: &str,
    required: bool,
    errs: &mut ValidationErrors,
) -> Option<String> {
    match obj.get(name) {
        None | Some(Value::Null) if required => {
            errs.push(name, FieldIssue::Required, format!("{name} is required"));
            None
        }
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            errs.push(name, FieldIssue::InvalidType, format!("{name} is a string"));
            None
        }
    }
}

pub(super) fn object(body: &Value) -> Result<&serde_json::Map<String, Value>, ApiError> {
    body.as_object().ok_or_else(|| {
        ValidationErrors::single("body", FieldIssue::InvalidType, "the body is a JSON object")
            .into()
    })
}

pub(super) fn unknown_fields(
    obj: &serde_json::Map<String, Value>,
    known: &[&str],
    errs: &mut ValidationErrors,
) {
    for k in obj.keys().filter(|k| !known.contains(&k.as_str())) {
        errs.push(
            k.as_str(),
            FieldIssue::UnknownField,
            format!("unknown field {k}"),
        );
    }
}

/// Creates an account; initial `credits` arrive as a `grant` ledger row with `reason`.
#[utoipa::path(post, path = "/api/admin/v1/accounts", tag = "accounts", security(("operator" = [])),
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[ -~]+$", description = "1..=255 printable ASCII characters; a retry with the same key and body replays the first answer")),
    request_body(content = Object, description = "{name, sandbox?, credits?, reason?}"),
    responses((status = 201, body = AdminAccount), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope)))]
pub async fn create_account(
    State(st): State<AppState>,
    OperatorAuth(actor): OperatorAuth,
    headers: axum::http::HeaderMap,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let obj = object(&body)?;
    let mut errs = ValidationErrors::new();
    unknown_fields(obj, &["name", "sandbox", "credits", "reason"], &mut errs);
    let name = text_field(obj, "name", true, &mut errs);
    let reason = text_field(obj, "reason", false, &mut errs);
    let sandbox = match obj.get("sandbox") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            errs.push(
                "sandbox",
                FieldIssue::InvalidType,
                "sandbox is true or false",
            );
            false
        }
    };
    let credits = match obj.get("credits") {
        None | Some(Value::Null) => 0,
        Some(v) => v.as_i64().unwrap_or_else(|| {
            errs.push("credits", FieldIssue::InvalidType, "credits is an integer");
            0
        }),
    };
    errs.into_result()?;
    let hold = match idem_begin(&st, &actor, &headers, "/api/admin/v1/accounts", &body).await? {
        Begun::Replay(r) => return Ok(r),
        Begun::Proceed(h) => h,
    };
    let outcome = admin::create_account(
        st.engine.store.as_ref(),
        &actor,
        name.as_deref().unwrap_or_default(),
        sandbox,
        credits,
        reason.as_deref(),
        st.engine.clock.now(),
    )
    .await
    .map(|a| AdminAccount::of(&a))
    .map_err(ApiError::from);
    let view = settle(&st, hold, outcome, StatusCode::CREATED).await?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

/// Takes the operator's `Idempotency-Key` (if sent) for this POST: scoped to the
/// operator, the path and the canonical body, like the public API's.
async fn idem_begin(
    st: &AppState,
    actor: &Actor,
    headers: &axum::http::HeaderMap,
    path: &str,
    body: &Value,
) -> Result<Begun, ApiError> {
    let key = idempotency::parse_key(headers)?;
    let owner = AccountId::from_trusted(
        actor
            .operator
            .as_ref()
            .map_or_else(|| "cli".to_owned(), |o| o.to_string()),
    );
    idempotency::begin_for(
        st,
        &owner,
        key,
        "POST",
        path,
        gengate_core::idempotency::canonical_json(body).as_bytes(),
    )
    .await
}

/// Ends the hold with the answer a retry gets (or frees the key on an error).
async fn settle<T: Serialize>(
    st: &AppState,
    hold: Option<gengate_engine::generations::idempotency::IdemHold>,
    outcome: Result<T, ApiError>,
    status: StatusCode,
) -> Result<T, ApiError> {
    gengate_engine::generations::idempotency::settle(&st.engine, hold, outcome, |v| {
        Ok(gengate_store::StoredResponse {
            status: status.as_u16(),
            headers: Vec::new(),
            body: serde_json::to_string(v).map_err(ApiError::internal)?,
        })
    })
    .await
}

async fn account_of(st: &AppState, id: &str) -> Result<Account, ApiError> {
    let id = AccountId::parse(id).ok_or_else(|| ApiError::not_found("account"))?;
    st.engine
        .store
        .get_account(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("account"))
}

/// One account.
#[utoipa::path(get, path = "/api/admin/v1/accounts/{id}", tag = "accounts", security(("operator" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = AdminAccount), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn get_account(
    State(st): State<AppState>,
    _op: OperatorAuth,
    Path(id): Path<String>,
) -> Result<Json<AdminAccount>, ApiError> {
    Ok(Json(
        AdminAccount::full(&st, &account_of(&st, &id).await?).await?,
    ))
}

/// Suspends or resumes the account, switches it between sandbox and live, or sets its
/// price adjustment (percent on every list price, -99 .. 1000; new tasks only).
#[utoipa::path(patch, path = "/api/admin/v1/accounts/{id}", tag = "accounts", security(("operator" = [])),
    params(("id" = String, Path)),
    request_body(content = Object, description = "{status?: active|suspended, sandbox?, price_adjustment?, low_balance_threshold?: integer ≥ 0 | null}"),
    responses((status = 200, body = AdminAccount), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
              (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn update_account(
    State(st): State<AppState>,
    OperatorAuth(actor): OperatorAuth,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Json<AdminAccount>, ApiError> {
    let account = account_of(&st, &id).await?;
    let obj = object(&body)?;
    let mut errs = ValidationErrors::new();
    unknown_fields(
        obj,
        &[
            "status",
            "sandbox",
            "price_adjustment",
            "low_balance_threshold",
        ],
        &mut errs,
    );
    let low_balance_threshold =
        gengate_engine::alerts::parse_threshold(obj.get("low_balance_threshold"), &mut errs);
    let suspended = match text_field(obj, "status", false, &mut errs).as_deref() {
        None => None,
        Some("active") => Some(false),
        Some("suspended") => Some(true),
        Some(_) => {
            errs.push(
                "status",
                FieldIssue::NotAllowed,
                "status is active or suspended",
            );
            None
        }
    };
    let sandbox = match obj.get("sandbox") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => {
            errs.push(
                "sandbox",
                FieldIssue::InvalidType,
                "sandbox is true or false",
            );
            None
        }
    };
    let price_adjustment = match obj.get("price_adjustment") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_i64().and_then(|n| i32::try_from(n).ok()) {
            Some(n) => Some(n),
            None => {
                errs.push(
                    "price_adjustment",
                    FieldIssue::InvalidType,
                    "price_adjustment is a whole percent (e.g. -20 or 15)",
                );
                None
            }
        },
    };
    errs.into_result()?;
    let after = admin::update_account(
        st.engine.store.as_ref(),
        &actor,
        &account.id,
        &admin::AccountChange {
            suspended,
            sandbox,
            price_adjustment,
            low_balance_threshold,
        },
        st.engine.clock.now(),
    )
    .await?;
    if low_balance_threshold.is_some() {
        // Already below the new threshold: its credits.low goes out now.
        gengate_engine::alerts::check_low_balance(&st.engine, &after.id).await?;
    }
    // This node refuses the account's keys at once; the others when their auth feed
    // sees the epoch move (within --change-feed-ms).
    st.engine.keys.clear();
    Ok(Json(AdminAccount::full(&st, &after).await?))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AdminKeyList {
    #[schema(example = "list")]
    pub object: &'static str,
    pub data: Vec<gengate_engine::accounts::keys::KeyView>,
    pub has_more: bool,
}

/// The account's keys, newest first, revoked ones included.
#[utoipa::path(get, path = "/api/admin/v1/accounts/{id}/keys", tag = "keys", security(("operator" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = AdminKeyList), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn list_keys(
    State(st): State<AppState>,
    _op: OperatorAuth,
    Path(id): Path<String>,
) -> Result<Json<AdminKeyList>, ApiError> {
    let account = account_of(&st, &id).await?;
    let data = st.engine.list_keys(&account.id).await?;
    Ok(Json(AdminKeyList {
        object: "list",
        data,
        has_more: false,
    }))
}

/// A key for the account, made on its behalf: the secret is in this answer only.
#[utoipa::path(post, path = "/api/admin/v1/accounts/{id}/keys", tag = "keys", security(("operator" = [])),
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[ -~]+$", description = "1..=255 printable ASCII characters; a retry with the same key and body replays the first answer")),
    request_body(content = Object, description = "{name, scopes?, expires_at?} as for POST /api/v1/keys; an operator may give any scope"),
    responses((status = 201, body = gengate_engine::accounts::keys::KeyView), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
              (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn create_key(
    State(st): State<AppState>,
    OperatorAuth(actor): OperatorAuth,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let account = account_of(&st, &id).await?;
    let now = st.engine.clock.now();
    let req = gengate_core::apikey::request::parse_create(
        &body,
        &gengate_core::apikey::request::Caller {
            scopes: &gengate_core::scope::Scope::ALL,
            expires_at: None,
        },
        now,
    )?;
    let path = format!("/api/admin/v1/accounts/{}/keys", account.id);
    let hold = match idem_begin(&st, &actor, &headers, &path, &body).await? {
        Begun::Replay(r) => return Ok(r),
        Begun::Proceed(h) => h,
    };
    let issued = admin::create_key(st.engine.store.as_ref(), &actor, &account.id, req, now)
        .await
        .map_err(ApiError::from);
    // A replay answers the key without its secret: the secret is stored nowhere.
    let view = gengate_engine::generations::idempotency::settle(&st.engine, hold, issued, |i| {
        Ok(gengate_store::StoredResponse {
            status: StatusCode::CREATED.as_u16(),
            headers: Vec::new(),
            body: serde_json::to_string(&gengate_engine::accounts::keys::KeyView::of(&i.record))
                .map_err(ApiError::internal)?,
        })
    })
    .await?;
    let mut out = gengate_engine::accounts::keys::KeyView::of(&view.record);
    out.secret = Some(view.secret);
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

/// Revokes any account's key: refused at once on this node, within
/// `--change-feed-ms` on the others.
#[utoipa::path(delete, path = "/api/admin/v1/keys/{key_id}", tag = "keys", security(("operator" = [])),
    params(("key_id" = String, Path)),
    responses((status = 200, body = gengate_engine::accounts::keys::KeyView), (status = 401, body = ErrorEnvelope),
              (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn revoke_key(
    State(st): State<AppState>,
    OperatorAuth(actor): OperatorAuth,
    Path(key_id): Path<String>,
) -> Result<Json<gengate_engine::accounts::keys::KeyView>, ApiError> {
    let id =
        gengate_core::ids::ApiKeyId::parse(&key_id).ok_or_else(|| ApiError::not_found("key"))?;
    let record =
        admin::revoke_key(st.engine.store.as_ref(), &actor, &id, st.engine.clock.now()).await?;
    st.engine.keys.clear();
    Ok(Json(gengate_engine::accounts::keys::KeyView::of(&record)))
}

/// Sets or clears any key's spend limit (`{"spend_limit": {"limit": N, "window": "24h"} | null}`,
/// as `PATCH /api/v1/keys/{key_id}`); it applies from the key's next create.
#[utoipa::path(patch, path = "/api/admin/v1/keys/{key_id}", tag = "keys", security(("operator" = [])),
    params(("key_id" = String, Path)),
    request_body(content = Object, description = "{spend_limit: {limit, window?} | null}"),
    responses((status = 200, body = gengate_engine::accounts::keys::KeyView), (status = 400, body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn update_key(
    State(st): State<AppState>,
    OperatorAuth(actor): OperatorAuth,
    Path(key_id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Json<gengate_engine::accounts::keys::KeyView>, ApiError> {
    let id =
        gengate_core::ids::ApiKeyId::parse(&key_id).ok_or_else(|| ApiError::not_found("key"))?;
    let limit = super::keys::parse_patch(&body)?;
    let now = st.engine.clock.now();
    let record = admin::set_key_limit(st.engine.store.as_ref(), &actor, &id, limit, now).await?;
    let mut view = gengate_engine::accounts::keys::KeyView::of(&record);
    if let (Some(state), Some(_)) = (view.spend_limit.as_mut(), record.spend_limit) {
        state.spent = gengate_engine::accounts::key_spent(st.engine.store.as_ref(), &record, now)
            .await?
            .get();
    }
    Ok(Json(view))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct BalanceChange {
    #[schema(value_type = String)]
    pub account: AccountId,
    pub balance: i64,
}

/// A grant (positive) or an adjustment (signed) with its reason. A downward adjustment
/// past the balance is `409 insufficient_credits` and writes nothing.
#[utoipa::path(post, path = "/api/admin/v1/accounts/{id}/credits", tag = "accounts", security(("operator" = [])),
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[ -~]+$", description = "1..=255 printable ASCII characters; a retry with the same key and body replays the first answer")),
    request_body(content = Object, description = "{amount, kind: grant|adjustment, reason}"),
    responses((status = 200, body = BalanceChange), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
              (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)))]
pub async fn change_credits(
    State(st): State<AppState>,
    OperatorAuth(actor): OperatorAuth,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let account = account_of(&st, &id).await?;
    let obj = object(&body)?;
    let mut errs = ValidationErrors::new();
    unknown_fields(obj, &["amount", "kind", "reason"], &mut errs);
    let amount = match obj.get("amount") {
        None | Some(Value::Null) => {
            errs.push("amount", FieldIssue::Required, "amount is required");
            0
        }
        Some(v) => v.as_i64().unwrap_or_else(|| {
            errs.push("amount", FieldIssue::InvalidType, "amount is an integer");
            0
        }),
    };
    let kind = match text_field(obj, "kind", true, &mut errs).as_deref() {
        Some("grant") => Some(LedgerKind::Grant),
        Some("adjustment") => Some(LedgerKind::Adjust),
        Some(_) => {
            errs.push(
                "kind",
                FieldIssue::NotAllowed,
                "kind is grant or adjustment",
            );
            None
        }
        None => None,
    };
    let reason = text_field(obj, "reason", true, &mut errs);
    errs.into_result()?;
    let path = format!("/api/admin/v1/accounts/{}/credits", account.id);
    let hold = match idem_begin(&st, &actor, &headers, &path, &body).await? {
        Begun::Replay(r) => return Ok(r),
        Begun::Proceed(h) => h,
    };
    let now = st.engine.clock.now();
    let answer = |balance: gengate_core::Credits| BalanceChange {
        account: account.id.clone(),
        balance: balance.get(),
    };
    // Stored for replays inside the change's own transaction (the store builds it from
    // the new balance): a crash after the commit cannot let a retry grant again.
    let stored = |balance: gengate_core::Credits| gengate_store::StoredResponse {
        status: StatusCode::OK.as_u16(),
        headers: Vec::new(),
        body: serde_json::to_string(&answer(balance)).unwrap_or_default(),
    };
    let idem = hold.as_ref().map(|h| gengate_store::CreditsIdem {
        scope: &h.scope,
        token: &h.token,
        expires_at: now.plus(st.engine.config.idempotency_keep),
        response: &stored,
    });
    let outcome = admin::change_credits(
        st.engine.store.as_ref(),
        &actor,
        &account.id,
        kind.unwrap_or(LedgerKind::Grant),
        amount,
        reason.as_deref().unwrap_or_default(),
        now,
        idem,
    )
    .await
    .map_err(ApiError::from);
    let balance =
        gengate_engine::generations::idempotency::release_on_error(&st.engine, hold, outcome)
            .await?;
    Ok(Json(answer(balance)).into_response())
}

/// The account's ledger, newest first (the same rows as its public ledger).
#[utoipa::path(get, path = "/api/admin/v1/accounts/{id}/transactions", tag = "accounts", security(("operator" = [])),
    params(("id" = String, Path),
           ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "1..=100, default 20"),
           ("starting_after" = Option<String>, Query, description = "the id of the last transaction of the previous page")),
    responses((status = 200, body = CreditTransactionList), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn account_transactions(
    State(st): State<AppState>,
    _op: OperatorAuth,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<CreditTransactionList>, ApiError> {
    let account = account_of(&st, &id).await?;
    transactions_page(&st, &account.id, &q).await.map(Json)
}

/// One line of the audit log.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AuditLine {
    /// `aud_…`; pass as `starting_after` to page.
    pub id: String,
    #[schema(example = "audit_entry")]
    pub object: &'static str,
    /// An operator's name, or `cli` for the operator commands.
    pub actor: String,
    #[schema(example = "credits.grant")]
    pub action: String,
    pub target: String,
    pub account: Option<String>,
    pub before: Option<Value>,
    pub after: Option<Value>,
    pub request_id: Option<String>,
    #[schema(value_type = String)]
    pub at: Timestamp,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AuditList {
    #[schema(example = "list")]
    pub object: &'static str,
    pub data: Vec<AuditLine>,
    pub has_more: bool,
}

impl AuditLine {
    fn of(e: AuditEntry) -> Self {
        Self {
            id: format!("{}.{}", e.id, e.seq),
            object: "audit_entry",
            actor: e.actor,
            action: e.action,
            target: e.target,
            account: e.account_id.map(|a| a.to_string()),
            before: e.before,
            after: e.after,
            request_id: e.request_id,
            at: e.at,
        }
    }
}

/// Every operator action, newest first.
#[utoipa::path(get, path = "/api/admin/v1/audit", tag = "audit", security(("operator" = [])),
    params(("actor" = Option<String>, Query), ("account" = Option<String>, Query), ("action" = Option<String>, Query),
           ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "1..=100, default 20"),
           ("starting_after" = Option<String>, Query, description = "the id of the last entry of the previous page")),
    responses((status = 200, body = AuditList), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope)))]
pub async fn list_audit(
    State(st): State<AppState>,
    _op: OperatorAuth,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<AuditList>, ApiError> {
    let mut errs = ValidationErrors::new();
    let limit = gengate_core::paging::limit(q.get("limit").map(String::as_str), &mut errs);
    let before_seq = match q.get("starting_after") {
        None => None,
        Some(s) => {
            let seq = s.rsplit_once('.').and_then(|(_, n)| n.parse::<i64>().ok());
            if seq.is_none() {
                errs.push(
                    "starting_after",
                    FieldIssue::NotFound,
                    "starting_after must be the id of an item of this list",
                );
            }
            seq
        }
    };
    let account = account_param(&q, &mut errs);
    errs.into_result()?;
    let nonempty = |k: &str| q.get(k).filter(|s| !s.is_empty()).cloned();
    let (entries, has_more) = admin::audit_page(
        st.engine.store.as_ref(),
        &AuditFilter {
            actor: nonempty("actor"),
            account,
            action: nonempty("action"),
            before_seq,
            limit,
        },
    )
    .await?;
    Ok(Json(AuditList {
        object: "list",
        data: entries.into_iter().map(AuditLine::of).collect(),
        has_more,
    }))
}

/// One group of a usage report.
#[derive(Serialize, utoipa::ToSchema)]
pub struct UsageLine {
    /// The bucket's start (RFC 3339) for `day`/`hour`; else the account id, key id,
    /// model or status.
    pub group: String,
    pub tasks: i64,
    pub succeeded: i64,
    pub failed: i64,
    pub credits_charged: i64,
    pub credits_refunded: i64,
    pub credits_net: i64,
}

impl UsageLine {
    fn of(r: &gengate_store::usage::UsageRow) -> Self {
        Self {
            group: r.group.clone(),
            tasks: r.tasks,
            succeeded: r.succeeded,
            failed: r.failed,
            credits_charged: r.credits_charged,
            credits_refunded: r.credits_refunded,
            credits_net: r.credits_net(),
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct UsageReport {
    #[schema(example = "usage")]
    pub object: &'static str,
    #[schema(value_type = String)]
    pub from: Timestamp,
    #[schema(value_type = String)]
    pub to: Timestamp,
    #[schema(example = "day")]
    pub group_by: String,
    pub data: Vec<UsageLine>,
}

const USAGE_CSV_HEADER: &[&str] = &[
    "group",
    "tasks",
    "succeeded",
    "failed",
    "credits_charged",
    "credits_refunded",
    "credits_net",
];

fn csv_record(fields: &[String]) -> Result<bytes::Bytes, std::io::Error> {
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::with_capacity(96));
    w.write_record(fields).map_err(std::io::Error::other)?;
    w.into_inner()
        .map(bytes::Bytes::from)
        .map_err(|e| std::io::Error::other(e.to_string()))
}

/// Tasks and credits across accounts, grouped. Money follows the ledger rows' times (a
/// running task's reserve counts as charged until it settles), task counts the tasks'
/// creation times: summed over the groups, `credits_net` equals the ledger's reserves
/// minus refunds in the range. With `Accept: text/csv` or `format=csv`, RFC 4180 CSV
/// with a header line, streamed as the database produces it.
#[utoipa::path(get, path = "/api/admin/v1/usage", tag = "usage", security(("operator" = [])),
    params(("from" = Option<String>, Query, description = "RFC 3339, inclusive; default 30 days before `to`"),
           ("to" = Option<String>, Query, description = "RFC 3339, exclusive; default now"),
           ("group_by" = Option<String>, Query, description = "day (default), hour, account, key, model or status"),
           ("account" = Option<String>, Query, description = "only this account"),
           ("include_sandbox" = Option<bool>, Query, description = "sandbox accounts are left out unless true"),
           ("format" = Option<String>, Query, description = "csv for CSV (or send Accept: text/csv)")),
    responses((status = 200, body = UsageReport, content_type = "application/json"),
              (status = 200, description = "the same rows as CSV", content_type = "text/csv"),
              (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope)))]
pub async fn usage(
    State(st): State<AppState>,
    _op: OperatorAuth,
    headers: axum::http::HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let mut errs = ValidationErrors::new();
    let to = time_param(&q, "to", &mut errs).unwrap_or_else(|| st.engine.clock.now());
    let from = time_param(&q, "from", &mut errs)
        .unwrap_or_else(|| to.minus(std::time::Duration::from_secs(30 * 86_400)));
    if from >= to {
        errs.push("from", FieldIssue::OutOfRange, "from must be before to");
    }
    let group_by_raw = q.get("group_by").map(String::as_str).unwrap_or("day");
    let group_by = gengate_store::usage::UsageGroupBy::parse(group_by_raw);
    if group_by.is_none() {
        errs.push(
            "group_by",
            FieldIssue::NotAllowed,
            "group_by is day, hour, account, key, model or status",
        );
    }
    let include_sandbox = bool_param(&q, "include_sandbox", &mut errs).unwrap_or(false);
    let account = account_param(&q, &mut errs);
    let csv = match q.get("format").map(String::as_str) {
        None | Some("") => headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.split(',').any(|m| m.trim().starts_with("text/csv"))),
        Some("csv") => true,
        Some("json") => false,
        Some(_) => {
            errs.push("format", FieldIssue::NotAllowed, "format is json or csv");
            false
        }
    };
    errs.into_result()?;
    let query = gengate_store::usage::UsageQuery {
        from,
        to,
        group_by: group_by.unwrap_or(gengate_store::usage::UsageGroupBy::Day),
        account,
        include_sandbox,
    };
    if !csv {
        use futures_util::TryStreamExt;
        let rows: Vec<_> = st.engine.store.usage(&query).try_collect().await?;
        return Ok(Json(UsageReport {
            object: "usage",
            from,
            to,
            group_by: group_by_raw.to_owned(),
            data: rows.iter().map(UsageLine::of).collect(),
        })
        .into_response());
    }
    // Streamed: a bounded channel between the database cursor and the socket, so a
    // year of hourly rows is never held at once. A database error mid-way ends the
    // body early (the status line has gone out), which a CSV reader sees as truncation.
    // Each stream holds a database connection while the client reads: a few at once,
    // and a client that stops reading for STALL loses its stream (and the connection).
    static STREAMS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(4);
    const STALL: std::time::Duration = std::time::Duration::from_secs(30);
    let Ok(permit) = STREAMS.try_acquire() else {
        return Err(ApiError {
            retry_after_secs: Some(5),
            ..ApiError::new(
                ErrorCode::ServerBusy,
                "four CSV usage reports are streaming already; retry shortly (JSON answers are not limited)",
            )
        });
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(32);
    let store = st.engine.store.clone();
    tokio::spawn(async move {
        let _permit = permit;
        let send = |chunk| {
            let tx = tx.clone();
            async move {
                matches!(
                    tokio::time::timeout(STALL, tx.send(chunk)).await,
                    Ok(Ok(()))
                )
            }
        };
        use futures_util::StreamExt;
        let header: Vec<String> = USAGE_CSV_HEADER.iter().map(|h| (*h).to_owned()).collect();
        if !send(csv_record(&header)).await {
            return;
        }
        let mut rows = store.usage(&query);
        while let Some(row) = rows.next().await {
            let chunk = match row {
                Ok(r) => csv_record(&[
                    r.group.clone(),
                    r.tasks.to_string(),
                    r.succeeded.to_string(),
                    r.failed.to_string(),
                    r.credits_charged.to_string(),
                    r.credits_refunded.to_string(),
                    r.credits_net().to_string(),
                ]),
                Err(e) => {
                    tracing::warn!(error = %e, "usage report failed while streaming");
                    Err(std::io::Error::other(e.to_string()))
                }
            };
            let failed = chunk.is_err();
            if !send(chunk).await || failed {
                return;
            }
        }
    });
    let body =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) });
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"usage.csv\"",
            ),
        ],
        axum::body::Body::from_stream(body),
    )
        .into_response())
}

/// A task in the operator's list.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AdminGeneration {
    pub id: String,
    #[schema(example = "generation")]
    pub object: &'static str,
    pub account: String,
    /// The key it was created with (none for tasks older than keys being recorded).
    pub key: Option<String>,
    pub model: String,
    #[schema(example = "succeeded")]
    pub status: &'static str,
    /// `sandbox` or `kling`.
    pub provider: String,
    /// The upstream account (a Kling account's name) it was sent to, once it was.
    pub upstream_account: Option<String>,
    /// The vendor's task id, once the vendor accepted it.
    pub upstream_task_id: Option<String>,
    pub credits_reserved: i64,
    /// The version of the model's price it was created with (docs/PRICING.md).
    pub price_version: Option<String>,
    /// The error code of a failed task.
    pub error: Option<String>,
    #[schema(value_type = String)]
    pub created_at: Timestamp,
    #[schema(value_type = String)]
    pub updated_at: Timestamp,
}

impl AdminGeneration {
    fn of(t: &gengate_store::operators::AdminTask) -> Self {
        let up = |k: &str| {
            t.upstream
                .as_ref()
                .and_then(|u| u.get(k))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        Self {
            id: t.task.id.to_string(),
            object: "generation",
            account: t.task.account_id.to_string(),
            key: t.api_key_id.clone(),
            model: t.task.model.clone(),
            status: t.task.status.as_str(),
            provider: t.provider.clone(),
            upstream_account: up("account"),
            upstream_task_id: up("task_id"),
            credits_reserved: t.task.reserved_credits.get(),
            price_version: t.price_version.clone(),
            error: t
                .task
                .error
                .as_ref()
                .and_then(|e| serde_json::to_value(e.code).ok())
                .and_then(|v| v.as_str().map(str::to_owned)),
            created_at: t.task.created_at,
            updated_at: t.task.updated_at,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AdminGenerationList {
    #[schema(example = "list")]
    pub object: &'static str,
    pub data: Vec<AdminGeneration>,
    pub has_more: bool,
}

/// Tasks across accounts, newest first.
#[utoipa::path(get, path = "/api/admin/v1/generations", tag = "generations", security(("operator" = [])),
    params(("account" = Option<String>, Query), ("status" = Option<String>, Query), ("model" = Option<String>, Query),
           ("provider" = Option<String>, Query), ("upstream_account" = Option<String>, Query),
           ("created_after" = Option<String>, Query, description = "RFC 3339, inclusive"),
           ("created_before" = Option<String>, Query, description = "RFC 3339, exclusive"),
           ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "1..=100, default 20"),
           ("starting_after" = Option<String>, Query, description = "the id of the last task of the previous page")),
    responses((status = 200, body = AdminGenerationList), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope)))]
pub async fn list_generations(
    State(st): State<AppState>,
    _op: OperatorAuth,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<AdminGenerationList>, ApiError> {
    let mut errs = ValidationErrors::new();
    let limit = gengate_core::paging::limit(q.get("limit").map(String::as_str), &mut errs);
    let text = |k: &str| q.get(k).filter(|s| !s.is_empty()).cloned();
    let account = account_param(&q, &mut errs);
    let status = match text("status") {
        None => None,
        Some(s) => {
            let parsed = gengate_core::generation::TaskStatus::parse(&s);
            if parsed.is_none() {
                errs.push(
                    "status",
                    FieldIssue::NotAllowed,
                    "status is queued, processing, succeeded or failed",
                );
            }
            parsed
        }
    };
    let created_after = time_param(&q, "created_after", &mut errs);
    let created_before = time_param(&q, "created_before", &mut errs);
    let starting_after = match text("starting_after") {
        None => None,
        Some(s) => {
            let id = gengate_core::ids::TaskId::parse(&s);
            if id.is_none() {
                errs.push(
                    "starting_after",
                    FieldIssue::NotFound,
                    "starting_after must be the id of an item of this list",
                );
            }
            id
        }
    };
    errs.into_result()?;
    let query = gengate_store::operators::AdminTaskQuery {
        account,
        status,
        model: text("model"),
        provider: text("provider"),
        upstream_account: text("upstream_account"),
        created_after,
        created_before,
        starting_after,
        limit,
    };
    let (tasks, has_more) = match st.engine.store.admin_tasks(&query).await {
        Err(gengate_store::StoreError::NotFound(_)) => {
            return Err(ValidationErrors::single(
                "starting_after",
                FieldIssue::NotFound,
                "starting_after must be the id of an item of this list",
            )
            .into());
        }
        other => other?,
    };
    Ok(Json(AdminGenerationList {
        object: "list",
        data: tasks.iter().map(AdminGeneration::of).collect(),
        has_more,
    }))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct TimelineStep {
    /// `created`, `charged`, `submitted` (to the vendor), `succeeded`, `failed`, `refunded`.
    pub what: String,
    #[schema(value_type = String)]
    pub at: Timestamp,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct EventDelivery {
    pub endpoint: String,
    /// `pending`, `succeeded` or `failed`.
    pub status: String,
    pub attempts: i64,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct TaskEventView {
    pub id: String,
    #[schema(example = "generation.succeeded")]
    pub r#type: String,
    #[schema(value_type = String)]
    pub created_at: Timestamp,
    pub deliveries: Vec<EventDelivery>,
}

/// Everything about one task.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AdminGenerationDetail {
    #[serde(flatten)]
    pub summary: AdminGeneration,
    /// What the API user sees (`GET /api/v1/generations/{id}`), links signed now.
    #[schema(value_type = Object)]
    pub public: Value,
    /// The prompt as the caller sent it.
    pub prompt: String,
    /// The parameters as the task runs them (defaults filled in).
    #[schema(value_type = Object)]
    pub params: Value,
    /// The provider's saved state (for Kling: phase, account, task id, times).
    pub upstream: Option<Value>,
    pub credits_charged: i64,
    pub credits_refunded: i64,
    /// The task's ledger rows: its reserve and, if it failed, its refund.
    pub ledger: Vec<super::credits::CreditTransaction>,
    pub timeline: Vec<TimelineStep>,
    pub events: Vec<TaskEventView>,
}

/// Everything about a task: account, key, input, upstream, money, webhooks.
#[utoipa::path(get, path = "/api/admin/v1/generations/{id}", tag = "generations", security(("operator" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = AdminGenerationDetail), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn get_generation(
    State(st): State<AppState>,
    _op: OperatorAuth,
    Path(id): Path<String>,
) -> Result<Json<AdminGenerationDetail>, ApiError> {
    let id =
        gengate_core::ids::TaskId::parse(&id).ok_or_else(|| ApiError::not_found("generation"))?;
    let store = &st.engine.store;
    let t = store
        .admin_task(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("generation"))?;
    let ledger = store.task_ledger(&id).await?;
    let events = store.task_events(&id).await?;
    let sum = |kind: LedgerKind| {
        ledger
            .iter()
            .filter(|e| e.kind == kind)
            .map(|e| e.amount.abs())
            .sum::<i64>()
    };
    let (reserved, refunded) = (sum(LedgerKind::Reserve), sum(LedgerKind::Refund));
    let mut timeline = vec![TimelineStep {
        what: "created".into(),
        at: t.task.created_at,
    }];
    for e in &ledger {
        let what = match e.kind {
            LedgerKind::Reserve => "charged",
            LedgerKind::Refund => "refunded",
            _ => continue,
        };
        timeline.push(TimelineStep {
            what: what.into(),
            at: e.created_at,
        });
    }
    if let Some(ms) = t
        .upstream
        .as_ref()
        .and_then(|u| u.get("submitted_at_ms"))
        .and_then(Value::as_i64)
    {
        timeline.push(TimelineStep {
            what: "submitted".into(),
            at: Timestamp::from_millis(ms),
        });
    }
    if t.task.status.is_terminal() {
        timeline.push(TimelineStep {
            what: t.task.status.as_str().into(),
            at: t.task.updated_at,
        });
    }
    timeline.sort_by_key(|s| s.at);
    let public = serde_json::to_value(st.engine.view(&t.task)).map_err(ApiError::internal)?;
    Ok(Json(AdminGenerationDetail {
        summary: AdminGeneration::of(&t),
        public,
        prompt: t.task.prompt.as_str().to_owned(),
        params: t.task.params.clone().into_value(),
        upstream: t.upstream.clone(),
        credits_charged: reserved - refunded,
        credits_refunded: refunded,
        ledger: ledger
            .iter()
            .map(super::credits::CreditTransaction::of)
            .collect(),
        timeline,
        events: events
            .into_iter()
            .map(|e| TaskEventView {
                id: e.id,
                r#type: e.event_type,
                created_at: e.created_at,
                deliveries: e
                    .deliveries
                    .into_iter()
                    .map(|(endpoint, status, attempts)| EventDelivery {
                        endpoint,
                        status,
                        attempts,
                    })
                    .collect(),
            })
            .collect(),
    }))
}

/// Providers, Kling accounts and nodes of the whole cluster, from every node's report
/// (written every second): the same answer from any node. An account is unhealthy when
/// any live node finds it so; counters are summed over live nodes.
#[utoipa::path(get, path = "/api/admin/v1/providers", tag = "providers", security(("operator" = [])),
    responses((status = 200, description = "{object: cluster, providers: [...], nodes: [...]}", body = Object),
              (status = 401, body = ErrorEnvelope)))]
pub async fn cluster(
    State(st): State<AppState>,
    _op: OperatorAuth,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(st.engine.cluster().await?))
}

/// Tasks waiting and running now, and create-to-result times (p50/p95) per hour and per
/// provider over the last `hours` (default 24, at most 168), from the window's newest
/// 10,000 successes.
#[utoipa::path(get, path = "/api/admin/v1/overview", tag = "overview", security(("operator" = [])),
    params(("hours" = Option<u32>, Query, minimum = 1, maximum = 168, description = "the window, 1..=168, default 24")),
    responses((status = 200, description = "{object: overview, queued, processing, window_hours, sampled, latency: {tasks, p50_ms, p95_ms} | null, hourly: [{hour, tasks, p50_ms, p95_ms}], by_provider: [{provider, tasks, p50_ms, p95_ms}]}", body = Object),
              (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope)))]
pub async fn overview(
    State(st): State<AppState>,
    _op: OperatorAuth,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let hours = match q.get("hours").map(String::as_str) {
        None | Some("") => 24,
        Some(raw) => match raw.parse::<u32>() {
            Ok(h @ 1..=168) => h,
            _ => {
                return Err(ValidationErrors::single(
                    "hours",
                    FieldIssue::OutOfRange,
                    "hours is a whole number from 1 to 168",
                )
                .into());
            }
        },
    };
    let o =
        admin::overview::overview(st.engine.store.as_ref(), st.engine.clock.now(), hours).await?;
    let mut v = serde_json::to_value(&o).map_err(ApiError::internal)?;
    if let Some(m) = v.as_object_mut() {
        m.insert("object".into(), Value::from("overview"));
    }
    Ok(Json(v))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct OperatorMe {
    #[schema(example = "operator")]
    pub object: &'static str,
    pub name: String,
    /// `admin` or `viewer`.
    #[schema(example = "viewer")]
    pub role: &'static str,
}

/// The operator the key belongs to, and its role (the console shows a viewer no write controls).
#[utoipa::path(get, path = "/api/admin/v1/me", tag = "overview", security(("operator" = [])),
    responses((status = 200, body = OperatorMe), (status = 401, body = ErrorEnvelope)))]
pub async fn whoami(op: OperatorAuth) -> Json<OperatorMe> {
    Json(OperatorMe {
        object: "operator",
        name: op.0.name.clone(),
        role: op.0.role.as_str(),
    })
}

/// Re-reads this node's `--catalog FILE`, as SIGHUP does: the new catalog replaces the
/// old one whole, or (a file that cannot be read, or any model in it invalid) nothing
/// changes and the answer says why. New tasks get the new prices; tasks already created
/// keep theirs. Each node reads its own file: call every node (or SIGHUP them).
#[utoipa::path(post, path = "/api/admin/v1/catalog/reload", tag = "catalog", security(("operator" = [])),
    responses((status = 200, description = "{object: catalog, models: [{id, billing_type, base_credits, price_version}]}", body = Object),
              (status = 400, description = "validation_failed on `catalog`: the file was refused, the old catalog stays", body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope)))]
pub async fn reload_catalog(
    State(st): State<AppState>,
    OperatorAuth(actor): OperatorAuth,
) -> Result<Json<Value>, ApiError> {
    let describe = |c: &gengate_core::catalog::Catalog| -> Value {
        c.models()
            .iter()
            .map(|m| {
                serde_json::json!({"id": m.id, "billing_type": m.billing_type, "base_credits": m.base_credits,
                                   "price_version": gengate_core::pricing::price_version(m)})
            })
            .collect()
    };
    let before = describe(&st.engine.catalog.current());
    if let Err(e) = st.engine.catalog.reload() {
        tracing::error!(error = %e, operator = %actor.name, "catalog reload refused, the previous one stays");
        return Err(ValidationErrors::single(
            "catalog",
            FieldIssue::InvalidFormat,
            format!("not reloaded, the previous catalog stays: {e}"),
        )
        .into());
    }
    let after = describe(&st.engine.catalog.current());
    admin::record(
        st.engine.store.as_ref(),
        &actor,
        "catalog.reload",
        "catalog",
        None,
        Some(before),
        Some(after.clone()),
        st.engine.clock.now(),
    )
    .await?;
    tracing::info!(operator = %actor.name, "catalog reloaded through the admin API");
    Ok(Json(
        serde_json::json!({"object": "catalog", "models": after}),
    ))
}
