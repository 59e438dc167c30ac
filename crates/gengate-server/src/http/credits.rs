use super::auth::Auth;
use super::error::{ApiError, ErrorEnvelope};
use super::extract::Query;
use crate::app::AppState;
use axum::Json;
use axum::extract::State;
use gengate_core::error::{FieldIssue, ValidationErrors};
use gengate_core::{Credits, Timestamp};
use gengate_store::LedgerEntry;
use serde::Serialize;
use std::collections::HashMap;

#[derive(Serialize, utoipa::ToSchema)]
pub struct CreditBalance {
    pub current_credits: Credits,
    /// A sandbox account: its tasks run on the sandbox provider (no upstream
    /// cost) with real credit accounting.
    pub sandbox: bool,
    /// A `credits.low` webhook event goes out when the balance falls below this; null:
    /// no alert. Set with `PATCH /api/v1/account`.
    pub low_balance_threshold: Option<i64>,
    /// The account's prices are the list prices scaled by this many percent (0: list).
    pub price_adjustment: i32,
}

/// The account's credit balance.
#[utoipa::path(get, path = "/api/v1/credits", tag = "credits", security(("bearer" = [])),
    responses((status = 200, body = CreditBalance), (status = 401, body = super::error::ErrorEnvelope)))]
pub async fn get_credits(
    State(st): State<AppState>,
    auth: Auth,
) -> Result<Json<CreditBalance>, ApiError> {
    let account = st
        .engine
        .account(&auth.account_id)
        .await?
        .ok_or_else(|| ApiError::not_found("account"))?;
    Ok(Json(CreditBalance {
        current_credits: account.balance,
        sandbox: account.sandbox,
        low_balance_threshold: account.low_balance_threshold,
        price_adjustment: account.price_adjustment,
    }))
}

/// One row of the account's ledger.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CreditTransaction {
    /// `ctx_<n>`; pass as `starting_after` to page.
    pub id: String,
    #[schema(example = "credit_transaction")]
    pub object: &'static str,
    /// `debit` (a task's price taken when it was created), `refund` (a failed
    /// task's price given back), `grant` or `adjustment` (by the operator).
    #[schema(example = "debit")]
    pub kind: &'static str,
    /// Signed: negative for a debit (and a downward adjustment), positive otherwise.
    #[schema(example = -90)]
    pub amount: i64,
    pub balance_after: Credits,
    pub task_id: Option<String>,
    pub reason: String,
    #[schema(value_type = String)]
    pub created_at: Timestamp,
}

impl CreditTransaction {
    pub fn of(e: &LedgerEntry) -> Self {
        Self {
            id: format!("ctx_{}", e.seq),
            object: "credit_transaction",
            kind: e.kind.public_name(),
            amount: e.amount,
            balance_after: e.balance_after,
            task_id: e.task_id.as_ref().map(|t| t.as_str().to_owned()),
            reason: e.reason.clone(),
            created_at: e.created_at,
        }
    }
}

fn parse_cursor(s: &str) -> Option<i64> {
    s.strip_prefix("ctx_")?.parse().ok().filter(|n| *n > 0)
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct CreditTransactionList {
    #[schema(example = "list")]
    pub object: &'static str,
    pub data: Vec<CreditTransaction>,
    pub has_more: bool,
}

/// The account's ledger, newest first: every change of its balance. The
/// balance is the sum of every `amount`.
#[utoipa::path(get, path = "/api/v1/credits/transactions", tag = "credits", security(("bearer" = [])),
    params(("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "1..=100, default 20"),
           ("starting_after" = Option<String>, Query, description = "the id of the last transaction of the previous page")),
    responses((status = 200, body = CreditTransactionList), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope)))]
pub async fn list_transactions(
    State(st): State<AppState>,
    auth: Auth,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<CreditTransactionList>, ApiError> {
    transactions_page(&st, &auth.account_id, &q).await.map(Json)
}

/// One page of an account's ledger from `limit` and `starting_after` (the admin API
/// reads any account's the same way).
pub async fn transactions_page(
    st: &AppState,
    account: &gengate_core::ids::AccountId,
    q: &HashMap<String, String>,
) -> Result<CreditTransactionList, ApiError> {
    let mut errs = ValidationErrors::new();
    let limit = gengate_core::paging::limit(q.get("limit").map(String::as_str), &mut errs);
    let before = match q.get("starting_after") {
        None => None,
        Some(s) => {
            let c = parse_cursor(s);
            if c.is_none() {
                errs.push(
                    "starting_after",
                    FieldIssue::NotFound,
                    "starting_after must be the id of an item of this list",
                );
            }
            c
        }
    };
    errs.into_result()?;
    let (entries, has_more) = st.engine.ledger_page(account, before, limit).await?;
    Ok(CreditTransactionList {
        object: "list",
        data: entries.iter().map(CreditTransaction::of).collect(),
        has_more,
    })
}
