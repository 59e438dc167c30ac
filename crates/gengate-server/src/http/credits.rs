use super::auth::Auth;
use super::error::ApiError;
use crate::app::AppState;
use axum::Json;
use axum::extract::State;
use gengate_core::Credits;
use serde::Serialize;

#[derive(Serialize, utoipa::ToSchema)]
pub struct CreditBalance {
    pub current_credits: Credits,
    /// A sandbox account: its tasks run on the sandbox provider (no upstream
    /// cost) with real credit accounting.
    pub sandbox: bool,
}

/// The account's credit balance.
#[utoipa::path(get, path = "/api/v1/credits", tag = "credits", security(("bearer" = [])),
    responses((status = 200, body = CreditBalance), (status = 401, body = super::error::ErrorEnvelope)))]
pub async fn get_credits(
    State(st): State<AppState>,
    auth: Auth,
) -> Result<Json<CreditBalance>, ApiError> {
    let account = st
        .store
        .get_account(&auth.account_id)
        .await?
        .ok_or_else(|| ApiError::not_found("account"))?;
    Ok(Json(CreditBalance {
        current_credits: account.balance,
        sandbox: account.sandbox,
    }))
}
