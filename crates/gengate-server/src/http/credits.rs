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
}

/// The account's credit balance.
#[utoipa::path(get, path = "/api/v1/credits", tag = "credits", security(("bearer" = [])),
    responses((status = 200, body = CreditBalance), (status = 401, body = super::error::ErrorEnvelope)))]
pub async fn get_credits(
    State(st): State<AppState>,
    auth: Auth,
) -> Result<Json<CreditBalance>, ApiError> {
    Ok(Json(CreditBalance {
        current_credits: st.store.balance(&auth.account_id).await?,
    }))
}
