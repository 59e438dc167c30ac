//! Alerts on money (issue 23): `credits.low` when an account's balance falls below its
//! `low_balance_threshold` (once per dip: again only after the balance has been back at
//! or above it), and `key.spend_limit_reached` when a key's create is refused by its
//! spend limit (once per spend window). Both are webhook events of the account, written
//! in the same transaction as the state that says they went out, so two nodes never send
//! one twice.
//!
//! A node checks an account right after it debits it (a create); a sweeper on every node
//! visits the accounts whose state is out of step with their balance, so an alert still
//! goes out when the node that debited died before its check, and re-arms after refunds
//! and grants.

use crate::Engine;
use gengate_core::ids::{AccountId, ApiKeyId, EventId};
use gengate_store::StoreError;
use std::time::Duration;
use tokio::sync::watch;

/// How often the sweeper looks for due alerts and re-arms.
pub const SWEEP_EVERY: Duration = Duration::from_secs(2);

/// Sends the account's `credits.low` if one is due, or re-arms it. True when it sent.
pub async fn check_low_balance(st: &Engine, account: &AccountId) -> Result<bool, StoreError> {
    let sent = st
        .store
        .low_balance_alert(account, &EventId::generate(), st.clock.now())
        .await?
        .is_some();
    if sent {
        tracing::info!(account = %account, "credits.low: the balance fell below its threshold");
        st.webhooks.wakeup.notify_one();
    }
    Ok(sent)
}

/// Sends the key's `key.spend_limit_reached` unless it already went out this window.
pub async fn spend_limit_reached(st: &Engine, key: &ApiKeyId) -> Result<bool, StoreError> {
    let sent = st
        .store
        .spend_limit_alert(key, &EventId::generate(), st.clock.now())
        .await?;
    if sent {
        tracing::info!(key = %key, "key.spend_limit_reached");
        st.webhooks.wakeup.notify_one();
    }
    Ok(sent)
}

/// Visits every account whose low-balance state is due (an alert or a re-arm).
pub async fn sweeper(st: Engine, mut stop: watch::Receiver<bool>) {
    loop {
        match st.store.low_balance_due(500).await {
            Ok(due) => {
                for a in due {
                    if let Err(e) = check_low_balance(&st, &a).await {
                        tracing::warn!(error = %e, account = %a, "low-balance check failed; retried next sweep");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "low-balance sweep failed; retried"),
        }
        tokio::select! {
            _ = tokio::time::sleep(SWEEP_EVERY) => {}
            _ = stop.changed() => return,
        }
    }
}

/// The largest threshold accepted (a balance is an i64; nobody means more than this).
pub const MAX_THRESHOLD: i64 = 1_000_000_000_000;

/// `low_balance_threshold` in a PATCH body: absent (`None`), `null` to clear
/// (`Some(None)`), or a whole number of credits from 0 (`Some(Some(n))`).
pub fn parse_threshold(
    v: Option<&serde_json::Value>,
    errs: &mut gengate_core::error::ValidationErrors,
) -> Option<Option<i64>> {
    match v? {
        serde_json::Value::Null => Some(None),
        v => match v.as_i64().filter(|n| (0..=MAX_THRESHOLD).contains(n)) {
            Some(n) => Some(Some(n)),
            None => {
                errs.push(
                    "low_balance_threshold",
                    gengate_core::error::FieldIssue::OutOfRange,
                    format!(
                        "low_balance_threshold is a whole number of credits from 0 to {MAX_THRESHOLD}, or null to turn the alert off"
                    ),
                );
                None
            }
        },
    }
}

/// Sets (or clears) the account's threshold; a `credits.low` is due at once when the
/// balance is already below the new threshold.
pub async fn set_threshold(
    st: &Engine,
    account: &AccountId,
    threshold: Option<i64>,
) -> Result<bool, StoreError> {
    if !st
        .store
        .set_low_balance_threshold(account, threshold)
        .await?
    {
        return Ok(false);
    }
    check_low_balance(st, account).await?;
    Ok(true)
}
