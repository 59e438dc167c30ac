//! `GET /api/v1/credits`: the account's balance.

use crate::client::{Call, Client};
use crate::error::Result;
use serde::{Deserialize, Serialize};

/// The account's balance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreditBalance {
    /// Credits available now.
    pub current_credits: i64,
    /// Whether the account runs every task on the sandbox provider (servers
    /// that support sandbox accounts say so).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<bool>,
}

impl Client {
    /// The account's balance (scope `credits:read`).
    pub async fn credits(&self) -> Result<CreditBalance> {
        self.json(Call::get("api/v1/credits")).await
    }
}
