//! Creating and reading generations: the rules between a parsed request and
//! the store. All-or-nothing: everything is checked before the one
//! transaction that debits, inserts the task and job, and records the
//! idempotency key.

use crate::app::AppState;
use crate::providers::health::Availability;
use gengate_core::error::{FieldIssue, ValidationErrors};
use gengate_core::generation::{
    ClientRequestId, CreateGeneration, Generation, Task, TaskReference, TaskStatus,
};
use gengate_core::ids::{AccountId, TaskId};
use gengate_core::params::ReferenceItem;
use gengate_store::{
    CreateTaskError, IdemCompletion, IdemScope, NewTask, StoreError, StoredResponse, TaskFilter,
};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum GenerationError {
    #[error(transparent)]
    Invalid(#[from] ValidationErrors),
    #[error(transparent)]
    Create(#[from] CreateTaskError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The model's provider is unhealthy: refused before any charge.
    #[error("the provider of {model} is unavailable: {reason}")]
    ProviderUnavailable {
        model: String,
        reason: String,
        retry_after: Duration,
    },
}

pub fn location(id: &TaskId) -> String {
    format!("/api/v1/generations/{id}")
}

/// Resolves `referenceMediaItems` to files of this account. Every item that
/// does not name a live file of the caller is reported by its index.
pub async fn resolve_references(
    st: &AppState,
    account: &AccountId,
    model: &gengate_core::catalog::Model,
    items: &[ReferenceItem],
) -> Result<Vec<TaskReference>, ValidationErrors> {
    let mut errs = ValidationErrors::new();
    let mut out = Vec::new();
    for item in items {
        match st.files.resolve_reference(account, model, item).await {
            Ok(r) => out.push(r),
            Err(e) => errs.extend(e),
        }
    }
    errs.into_result().map(|_| out)
}

/// Debits and creates the task. `idem` is the caller's hold on its
/// idempotency key (scope and hold token); the stored answer is written in the same transaction.
pub async fn create(
    st: &AppState,
    account: &AccountId,
    req: CreateGeneration,
    references: Vec<TaskReference>,
    idem: Option<(&IdemScope, &str)>,
) -> Result<(Task, Generation), GenerationError> {
    let now = st.clock.now();
    // A provider known to refuse work would only hold the credits until the
    // task fails: refuse before anything is charged.
    if let Availability::Unhealthy {
        reason,
        retry_after,
        ..
    } = st.providers.availability_for(&req.model, now.as_millis())
    {
        return Err(GenerationError::ProviderUnavailable {
            model: req.model.id.clone(),
            reason,
            retry_after,
        });
    }
    let id = TaskId::generate();
    let provider = st.providers.provider_for(&req.model);
    let new = NewTask {
        id: id.clone(),
        account_id: account.clone(),
        model: req.model.id.clone(),
        prompt: req.prompt,
        params: req.params,
        references,
        price: req.model.base_credits,
        client_request_id: req.client_request_id,
        provider,
        now,
        deadline_at: now.plus(Duration::from_secs(req.model.internal.deadline_seconds)),
    };
    // The answer is known before commit, so the idempotency record can be
    // completed inside the same transaction as the debit.
    let preview = new.as_queued();
    let view = Generation::from_task(&preview, st.links.as_ref());
    let completion = idem.map(|(scope, token)| IdemCompletion {
        scope: scope.clone(),
        token: token.to_owned(),
        response: StoredResponse {
            status: 202,
            headers: vec![("location".into(), location(&id))],
            body: serde_json::to_string(&view).unwrap_or_default(),
        },
        expires_at: now.plus(st.config.idempotency_keep),
    });
    let task = st.store.create_task(&new, completion.as_ref()).await?;
    metrics::counter!("gengate_tasks_created_total", "model" => task.model.clone()).increment(1);
    metrics::counter!("gengate_credits_debited_total")
        .increment(u64::try_from(task.reserved_credits.get()).unwrap_or(0));
    st.runner_wakeup.notify_one();
    Ok((task, view))
}

pub async fn get(
    st: &AppState,
    account: &AccountId,
    id: &TaskId,
) -> Result<Option<Task>, StoreError> {
    st.store.get_task(account, id).await
}

#[derive(Debug, Clone)]
pub struct ListQuery {
    pub filter: TaskFilter,
}

pub fn parse_list_query(
    q: &std::collections::HashMap<String, String>,
) -> Result<ListQuery, ValidationErrors> {
    let mut errs = ValidationErrors::new();
    let mut filter = TaskFilter {
        limit: 20,
        ..Default::default()
    };
    if let Some(l) = q.get("limit") {
        match l.parse::<u32>() {
            Ok(n) if (1..=100).contains(&n) => filter.limit = n,
            _ => errs.push(
                "limit",
                FieldIssue::OutOfRange,
                "limit must be an integer from 1 to 100",
            ),
        }
    }
    if let Some(s) = q.get("starting_after") {
        match TaskId::parse(s) {
            Some(id) => filter.starting_after = Some(id),
            None => errs.push(
                "starting_after",
                FieldIssue::NotFound,
                "starting_after must be the id of one of your tasks",
            ),
        }
    }
    if let Some(s) = q.get("status") {
        match TaskStatus::parse(s) {
            Some(st) => filter.status = Some(st),
            None => errs.push(
                "status",
                FieldIssue::NotAllowed,
                "status must be one of queued, processing, succeeded, failed",
            ),
        }
    }
    // The same rules as on create: a value that could never have been
    // stored is a caller's bug, not an empty page.
    if let Some(c) = q.get("client_request_id") {
        match ClientRequestId::parse(c) {
            Ok(c) => filter.client_request_id = Some(c.as_str().to_owned()),
            Err((issue, msg)) => errs.push("client_request_id", issue, msg),
        }
    }
    errs.into_result().map(|_| ListQuery { filter })
}

pub async fn list(
    st: &AppState,
    account: &AccountId,
    q: &ListQuery,
) -> Result<(Vec<Task>, bool), GenerationError> {
    match st.store.list_tasks(account, &q.filter).await {
        Ok(r) => Ok(r),
        Err(StoreError::NotFound(_)) => Err(ValidationErrors::single(
            "starting_after",
            FieldIssue::NotFound,
            "starting_after must be the id of one of your tasks",
        )
        .into()),
        Err(e) => Err(e.into()),
    }
}

/// Long poll: returns as soon as the task's status differs from the one
/// given, or when `wait` is over. This process's runner wakes waiters at
/// once, the change feed wakes them for changes made by other nodes, and
/// each waiter re-reads its task only when woken (plus a slow safety
/// re-read), so ten thousand open polls cost no store reads while nothing
/// changes.
pub async fn wait_for_change(
    st: &AppState,
    account: &AccountId,
    task: Task,
    wait: Duration,
) -> Result<Task, StoreError> {
    const RECHECK: Duration = Duration::from_secs(15);
    let deadline = tokio::time::Instant::now() + wait;
    let handle = st.events.subscribe(&task.id);
    let start_status = task.status;
    let mut current = task;
    loop {
        let notified = handle.notified();
        tokio::pin!(notified);
        // Register before re-reading, so a change between the read and the
        // wait is not missed.
        notified.as_mut().enable();
        if let Some((status, _)) = st.store.task_updated_at(&current.id).await?
            && status != start_status
        {
            if let Some(t) = st.store.get_task(account, &current.id).await? {
                current = t;
            }
            break;
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            break;
        }
        let nap = (deadline - now).min(RECHECK);
        tokio::select! {
            _ = &mut notified => {}
            _ = tokio::time::sleep(nap) => {}
        }
    }
    st.events.unsubscribe(&current.id, handle);
    Ok(current)
}
