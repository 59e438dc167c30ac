//! Operators and the audit log (issue 22): who runs the business, and every change
//! they made, through the admin API or on the command line.

use async_trait::async_trait;
use gengate_core::Timestamp;
use gengate_core::ids::{AccountId, AuditId, OperatorId};
use gengate_core::operator::OperatorRole;

use crate::StoreResult;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorRecord {
    pub id: OperatorId,
    pub name: String,
    pub role: OperatorRole,
    pub visible_prefix: String,
    pub key_hash: String,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
    pub last_used_at: Option<Timestamp>,
}

#[derive(Debug, Clone)]
pub struct NewOperator {
    pub name: String,
    pub role: OperatorRole,
    pub visible_prefix: String,
    pub key_hash: String,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
}

/// One line of the audit log. `before`/`after` are the changed values as JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    pub seq: i64,
    pub id: AuditId,
    pub at: Timestamp,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub account_id: Option<AccountId>,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
    pub request_id: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NewAudit {
    pub at: Timestamp,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub account_id: Option<AccountId>,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
    pub request_id: Option<String>,
}

/// Which audit lines, newest first: those with `seq < before_seq`.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub account: Option<AccountId>,
    pub action: Option<String>,
    pub before_seq: Option<i64>,
    pub limit: u32,
}

/// Tasks across accounts, newest first: those older than `starting_after`.
#[derive(Debug, Clone, Default)]
pub struct AdminTaskQuery {
    pub account: Option<AccountId>,
    pub status: Option<gengate_core::generation::TaskStatus>,
    pub model: Option<String>,
    pub provider: Option<String>,
    /// The upstream account (a Kling account's name) the task was sent to.
    pub upstream_account: Option<String>,
    pub created_after: Option<Timestamp>,
    pub created_before: Option<Timestamp>,
    pub starting_after: Option<gengate_core::ids::TaskId>,
    pub limit: u32,
}

/// A task with what only an operator sees: the key, the provider and its saved state.
#[derive(Debug, Clone)]
pub struct AdminTask {
    pub task: gengate_core::generation::Task,
    pub api_key_id: Option<String>,
    pub provider: String,
    pub upstream: Option<serde_json::Value>,
    /// The version of the model's price the task was created with (none before issue 23).
    pub price_version: Option<String>,
}

/// A webhook event of a task, with each endpoint's delivery: (endpoint, status, attempts).
#[derive(Debug, Clone)]
pub struct TaskEvent {
    pub id: String,
    pub event_type: String,
    pub created_at: Timestamp,
    pub deliveries: Vec<(String, String, i64)>,
}

/// Tasks waiting and running now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpenTasks {
    pub queued: i64,
    pub processing: i64,
}

/// A task that ended: which provider ran it, when it was created and when it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinishedTask {
    pub provider: String,
    pub created_at: Timestamp,
    pub ended_at: Timestamp,
}

/// What a node last reported: its role and its providers as it sees them.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeReport {
    pub node: String,
    pub role: String,
    pub boot: String,
    pub reported_at: Timestamp,
    pub report: serde_json::Value,
}

/// An account's recent use: tasks created and credits consumed (reserves minus refunds,
/// as usage counts them) since a time, and its last activity (a key used, to the
/// minute, or a task created since that time).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountActivity {
    pub tasks: i64,
    pub credits: i64,
    pub last_activity: Option<Timestamp>,
}

#[async_trait]
pub trait OperatorStore: Send + Sync {
    /// Every account with any activity (or only `account`), by id. Reads the window's
    /// tasks and ledger rows by their time index, never the whole history.
    async fn account_activity(
        &self,
        since: Timestamp,
        account: Option<&AccountId>,
    ) -> StoreResult<std::collections::HashMap<AccountId, AccountActivity>>;
    /// Replaces the node's report.
    async fn report_node(&self, r: &NodeReport) -> StoreResult<()>;
    async fn node_reports(&self) -> StoreResult<Vec<NodeReport>>;
    /// Forgets nodes that have not reported since `before` (gone for good); how many.
    async fn prune_node_reports(&self, before: Timestamp) -> StoreResult<u64>;
    async fn get_api_key(
        &self,
        id: &gengate_core::ids::ApiKeyId,
    ) -> StoreResult<Option<crate::ApiKeyRecord>>;
    /// How many tasks are `queued` and `processing` now, across accounts.
    async fn open_tasks(&self) -> StoreResult<OpenTasks>;
    /// The most recent `limit` tasks that succeeded at or after `since`, newest first:
    /// their provider, creation and end times (by the `updated_at` index).
    async fn recent_successes(
        &self,
        since: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<FinishedTask>>;
    /// Per UTC hour since `since` (its start in ms, oldest first): tasks created in it,
    /// and tasks that ended (succeeded or failed) in it, by their `updated_at`.
    async fn hourly_flow(&self, since: Timestamp) -> StoreResult<Vec<(i64, i64, i64)>>;
    /// `NotFound` when `starting_after` is not a task.
    async fn admin_tasks(&self, q: &AdminTaskQuery) -> StoreResult<(Vec<AdminTask>, bool)>;
    async fn admin_task(&self, id: &gengate_core::ids::TaskId) -> StoreResult<Option<AdminTask>>;
    /// The ledger rows of one task (its reserve and, if it failed, its refund).
    async fn task_ledger(
        &self,
        id: &gengate_core::ids::TaskId,
    ) -> StoreResult<Vec<crate::LedgerEntry>>;
    /// The task's webhook events with their deliveries.
    async fn task_events(&self, id: &gengate_core::ids::TaskId) -> StoreResult<Vec<TaskEvent>>;
    /// `Conflict` when the name is taken (revoked operators keep their name).
    async fn create_operator(&self, op: &NewOperator) -> StoreResult<OperatorRecord>;
    async fn find_operator_by_prefix(&self, prefix: &str) -> StoreResult<Option<OperatorRecord>>;
    async fn find_operator_by_name(&self, name: &str) -> StoreResult<Option<OperatorRecord>>;
    /// Oldest first.
    async fn list_operators(&self) -> StoreResult<Vec<OperatorRecord>>;
    /// False when there is no such live operator.
    async fn revoke_operator(&self, name: &str, now: Timestamp) -> StoreResult<bool>;
    /// Records that the operator's key was used at `now` (never moves the time back).
    async fn touch_operator(&self, id: &OperatorId, now: Timestamp) -> StoreResult<()>;
    async fn append_audit(&self, entry: &NewAudit) -> StoreResult<AuditEntry>;
    /// Newest first; the bool is "has more".
    async fn audit_page(&self, filter: &AuditFilter) -> StoreResult<(Vec<AuditEntry>, bool)>;
}
