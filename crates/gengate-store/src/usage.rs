//! Usage across accounts (issue 22): tasks and credits grouped by time, account, key,
//! model or status, from the ledger itself so the report equals it.
//!
//! The rule: money follows the ledger rows' times (a task's `reserve` row is charged
//! when it is written, and counts as charged while the task runs; its `refund` row is
//! refunded when it is written); task counts follow the tasks' creation times. So for
//! any range, `credits_net` summed over the groups is exactly the ledger's reserves
//! minus refunds written in that range, for the same accounts.

use futures_util::stream::BoxStream;
use gengate_core::Timestamp;
use gengate_core::ids::AccountId;

use crate::StoreResult;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageGroupBy {
    Day,
    Hour,
    Account,
    Key,
    Model,
    Status,
}

impl UsageGroupBy {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "day" => Self::Day,
            "hour" => Self::Hour,
            "account" => Self::Account,
            "key" => Self::Key,
            "model" => Self::Model,
            "status" => Self::Status,
            _ => return None,
        })
    }

    pub fn bucket_ms(self) -> Option<i64> {
        match self {
            Self::Day => Some(86_400_000),
            Self::Hour => Some(3_600_000),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct UsageQuery {
    /// Inclusive.
    pub from: Timestamp,
    /// Exclusive.
    pub to: Timestamp,
    pub group_by: UsageGroupBy,
    pub account: Option<AccountId>,
    /// Sandbox accounts (by their flag now) are left out unless asked for.
    pub include_sandbox: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRow {
    /// The bucket's start (RFC 3339) for `day`/`hour`; else the account id, key id
    /// (empty for tasks made before keys were recorded), model or status.
    pub group: String,
    pub tasks: i64,
    pub succeeded: i64,
    pub failed: i64,
    pub credits_charged: i64,
    pub credits_refunded: i64,
}

impl UsageRow {
    pub fn credits_net(&self) -> i64 {
        self.credits_charged - self.credits_refunded
    }
}

pub(crate) fn usage_sql(g: UsageGroupBy) -> String {
    let (tg, lg) = match g {
        UsageGroupBy::Day | UsageGroupBy::Hour => {
            let ms = g.bucket_ms().unwrap_or(86_400_000);
            // Floor, not truncation (`/` and `%` truncate toward zero in both
            // engines): a time before 1970 falls in its own bucket.
            (
                format!("(t.created_at - (((t.created_at % {ms}) + {ms}) % {ms}))"),
                format!("(l.created_at - (((l.created_at % {ms}) + {ms}) % {ms}))"),
            )
        }
        UsageGroupBy::Account => ("t.account_id".into(), "l.account_id".into()),
        UsageGroupBy::Key => ("t.api_key_id".into(), "t.api_key_id".into()),
        UsageGroupBy::Model => ("t.model".into(), "t.model".into()),
        UsageGroupBy::Status => ("t.status".into(), "t.status".into()),
    };
    // Time buckets stay integers (ms since the epoch), so they order as times.
    format!(
        "SELECT grp, CAST(SUM(tasks) AS BIGINT) AS tasks, CAST(SUM(succeeded) AS BIGINT) AS succeeded, \
                CAST(SUM(failed) AS BIGINT) AS failed, CAST(SUM(charged) AS BIGINT) AS charged, \
                CAST(SUM(refunded) AS BIGINT) AS refunded FROM ( \
           SELECT {tg} AS grp, CAST(1 AS BIGINT) AS tasks, \
                  CAST(CASE WHEN t.status = 'succeeded' THEN 1 ELSE 0 END AS BIGINT) AS succeeded, \
                  CAST(CASE WHEN t.status = 'failed' THEN 1 ELSE 0 END AS BIGINT) AS failed, \
                  CAST(0 AS BIGINT) AS charged, CAST(0 AS BIGINT) AS refunded \
             FROM tasks t JOIN accounts a ON a.id = t.account_id \
            WHERE t.created_at >= $1 AND t.created_at < $2 AND ($3 OR a.sandbox = FALSE) \
              AND (CAST($4 AS TEXT) IS NULL OR t.account_id = $4) \
           UNION ALL \
           SELECT {lg} AS grp, CAST(0 AS BIGINT), CAST(0 AS BIGINT), CAST(0 AS BIGINT), \
                  CASE WHEN l.kind = 'reserve' THEN -l.amount ELSE CAST(0 AS BIGINT) END, \
                  CASE WHEN l.kind = 'refund' THEN l.amount ELSE CAST(0 AS BIGINT) END \
             FROM ledger_entries l JOIN accounts a ON a.id = l.account_id LEFT JOIN tasks t ON t.id = l.task_id \
            WHERE l.kind IN ('reserve', 'refund') AND l.created_at >= $1 AND l.created_at < $2 \
              AND ($3 OR a.sandbox = FALSE) AND (CAST($4 AS TEXT) IS NULL OR l.account_id = $4) \
         ) u GROUP BY grp ORDER BY grp"
    )
}

/// Rows one at a time, as the database produces them.
pub type UsageStream<'a> = BoxStream<'a, StoreResult<UsageRow>>;
