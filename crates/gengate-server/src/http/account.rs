//! The account's own settings (issue 23): `PATCH /api/v1/account`.

use super::admin::{object, unknown_fields};
use super::auth::Auth;
use super::body::JsonBody;
use super::credits::CreditBalance;
use super::error::{ApiError, ErrorEnvelope};
use crate::app::AppState;
use axum::Json;
use axum::extract::State;
use gengate_core::error::ValidationErrors;

/// Changes the account's settings: `low_balance_threshold` (credits; `null` turns the
/// alert off). When the balance falls below it, one `credits.low` webhook event goes
/// out; the next only after the balance has been back at or above it. Answers the
/// balance view with the new settings.
#[utoipa::path(patch, path = "/api/v1/account", tag = "credits", security(("bearer" = [])),
    request_body(content = Object, description = "{low_balance_threshold: integer ≥ 0 | null}"),
    responses((status = 200, body = CreditBalance), (status = 400, description = "validation_failed", body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope), (status = 403, description = "api_scope_denied (needs keys:manage)", body = ErrorEnvelope)))]
pub async fn update_account(
    State(st): State<AppState>,
    auth: Auth,
    JsonBody(body): JsonBody,
) -> Result<Json<CreditBalance>, ApiError> {
    let obj = object(&body)?;
    let mut errs = ValidationErrors::new();
    unknown_fields(obj, &["low_balance_threshold"], &mut errs);
    let threshold =
        gengate_engine::alerts::parse_threshold(obj.get("low_balance_threshold"), &mut errs);
    errs.into_result()?;
    if let Some(t) = threshold
        && !gengate_engine::alerts::set_threshold(&st.engine, &auth.account_id, t).await?
    {
        return Err(ApiError::not_found("account"));
    }
    super::credits::get_credits(State(st), auth).await
}
