//! Creating and reading generations: the rules between a parsed request and
//! the store. All-or-nothing: everything is checked before the one
//! transaction that debits, inserts the task and job, and records the
//! idempotency key.
//!
//! Owns a task's life as the API sees it: create (price, debit, spend limit,
//! provider health, references), read (with the ended-task cache), list,
//! wait for a change (events, plus the store as the fallback), cancel, and
//! the idempotency holds of requests. Works on the `Engine` handle (store,
//! caches, and the runner's wake-up signal it pokes after a create); may
//! import `accounts`, `files`, `providers` (to route and ask health) and
//! `infra`; never `runner` or `webhooks` (the store writes webhook events in
//! the task's transaction).

pub mod ended_cache;
pub mod events;
pub mod idempotency;

use crate::Engine;
use crate::providers::health::Availability;
use gengate_core::Credits;
use gengate_core::error::{FieldIssue, ValidationErrors};
use gengate_core::generation::{
    ClientRequestId, CreateGeneration, Generation, Task, TaskReference, TaskStatus,
};
use gengate_core::ids::{AccountId, ApiKeyId, TaskId};
use gengate_core::params::ReferenceItem;
use gengate_store::{
    CreateTaskError, IdemCompletion, IdemScope, NewTask, StoreError, StoredResponse, TaskFilter,
};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum GenerationError {
    #[error(transparent)]
    Invalid(#[from] ValidationErrors),
    #[error(transparent)]
    Create(#[from] CreateTaskError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The key's spend limit has no room for this task; nothing was charged.
    #[error("spend limit exceeded")]
    SpendLimit(SpendRefusal),
    /// The model's provider is unhealthy: refused before any charge.
    #[error("the provider of {model} is unavailable: {reason}")]
    ProviderUnavailable {
        model: String,
        reason: String,
        retry_after: Duration,
    },
}

pub use crate::accounts::spend::SpendRefusal;

pub fn location(id: &TaskId) -> String {
    format!("/api/v1/generations/{id}")
}

/// Resolves `referenceMediaItems` to files of this account. Every item that
/// does not name a live file of the caller is reported by its index.
pub async fn resolve_references(
    st: &Engine,
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

/// What a create with this request would cost this account now, and its balance after
/// it (negative: the create would be refused with `insufficient_credits`). Charges
/// nothing and holds nothing.
pub async fn quote(
    st: &Engine,
    account: &AccountId,
    req: &CreateGeneration,
) -> Result<(gengate_core::pricing::Quote, i64), GenerationError> {
    let row = st.store.get_account(account).await?;
    let (adjustment, balance) = row
        .as_ref()
        .map_or((0, 0), |a| (a.price_adjustment, a.balance.get()));
    let q = gengate_core::pricing::quote(&req.model, &req.params, adjustment);
    let after = balance - q.credits;
    Ok((q, after))
}

/// Debits and creates the task. `idem` is the caller's hold on its
/// idempotency key (scope and hold token); the stored answer is written in the same transaction.
pub async fn create(
    st: &Engine,
    account: &AccountId,
    key: &ApiKeyId,
    req: CreateGeneration,
    references: Vec<TaskReference>,
    idem: Option<(&IdemScope, &str)>,
) -> Result<(Task, Generation), GenerationError> {
    let now = st.clock.now();
    // A sandbox account's tasks run on the sandbox whatever the model's
    // route: the flag as it is now (an operator's switch applies to tasks
    // created after it).
    let row = st.store.get_account(account).await?;
    let sandbox = row.as_ref().is_some_and(|a| a.sandbox);
    // The price is fixed here, from the model as this request parsed it and the
    // account's adjustment now: a later price change applies to later tasks only.
    let quote = gengate_core::pricing::quote(
        &req.model,
        &req.params,
        row.as_ref().map_or(0, |a| a.price_adjustment),
    );
    let provider = st.providers.provider_for_account(&req.model, sandbox);
    // A provider known to refuse work would only hold the credits until the
    // task fails: refuse before anything is charged.
    if let Availability::Unhealthy {
        reason,
        retry_after,
        ..
    } = st.providers.availability_of(&provider, now.as_millis())
    {
        return Err(GenerationError::ProviderUnavailable {
            model: req.model.id.clone(),
            reason,
            retry_after,
        });
    }
    let id = TaskId::generate();
    let new = NewTask {
        id: id.clone(),
        account_id: account.clone(),
        model: req.model.id.clone(),
        prompt: req.prompt,
        params: req.params,
        references,
        price: Credits::new(quote.credits).unwrap_or(Credits::ZERO),
        price_version: Some(quote.price_version),
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
    let task = match st
        .store
        .create_task_for_key(&new, Some(key), completion.as_ref())
        .await
    {
        Ok(t) => t,
        Err(CreateTaskError::SpendLimitExceeded {
            limit,
            spent,
            price,
        }) => {
            // Informational, read after the refusal: the refusal itself was
            // decided in the debit's transaction.
            let held = st.store.key_spend(key, limit.counts_after(now)).await?;
            // The owner hears of it once per window, not once per refused create.
            if let Err(e) = crate::alerts::spend_limit_reached(st, key).await {
                tracing::warn!(error = %e, key = %key, "key.spend_limit_reached not written; no retry");
            }
            return Err(GenerationError::SpendLimit(SpendRefusal {
                limit,
                spent,
                price,
                frees_at: limit.room_frees_at(&held, price),
            }));
        }
        Err(e) => return Err(e.into()),
    };
    tracing::info!(task = %task.id, model = %task.model, provider = %new.provider, sandbox_account = sandbox, "task created");
    metrics::counter!("gengate_tasks_created_total", "model" => task.model.clone()).increment(1);
    metrics::counter!("gengate_credits_debited_total")
        .increment(u64::try_from(task.reserved_credits.get()).unwrap_or(0));
    st.runner_wakeup.notify_one();
    // Only an account with a threshold that this debit may have crossed pays for the
    // check (a write); the sweeper catches what a crash here would miss.
    if let Some(threshold) = row.as_ref().and_then(|a| a.low_balance_threshold)
        && row.as_ref().map_or(0, |a| a.balance.get()) - task.reserved_credits.get() < threshold
        && let Err(e) = crate::alerts::check_low_balance(st, account).await
    {
        tracing::warn!(error = %e, account = %account, "low-balance check failed; the sweeper retries");
    }
    Ok((task, view))
}

/// One task of `account`. An ended task comes from the in-process cache
/// after its first read (`ended_cache.rs`: it can no longer change), shared,
/// not copied: a status read of it only serialises.
pub async fn get(
    st: &Engine,
    account: &AccountId,
    id: &TaskId,
) -> Result<Option<Arc<Task>>, StoreError> {
    if let Some(t) = st.ended_tasks.get(account, id) {
        return Ok(Some(t));
    }
    let task = st.store.get_task(account, id).await?.map(Arc::new);
    if let Some(t) = &task {
        st.ended_tasks.offer(account, t);
    }
    Ok(task)
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
        limit: gengate_core::paging::limit(q.get("limit").map(String::as_str), &mut errs),
        ..Default::default()
    };
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
    st: &Engine,
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

/// What a long poll waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitUntil {
    /// Any change of status (the default of `GET …?wait=N`).
    Change,
    /// The end of the task (`until=terminal`; `Prefer: wait` on create).
    Terminal,
}

/// Long poll: returns as soon as the task's status differs from the one
/// given (or, with `WaitUntil::Terminal`, once it has ended), or when `wait` is over. This process's runner wakes waiters at
/// once, the change feed wakes them for changes made by other nodes, and
/// each waiter re-reads its task only when woken (plus a slow safety
/// re-read), so ten thousand open polls cost no store reads while nothing
/// changes.
pub async fn wait_for_change(
    st: &Engine,
    account: &AccountId,
    task: Task,
    wait: Duration,
    until: WaitUntil,
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
        let done = |status: TaskStatus| match until {
            WaitUntil::Change => status != start_status,
            WaitUntil::Terminal => status.is_terminal(),
        };
        if let Some((status, _)) = st.store.task_updated_at(&current.id).await?
            && done(status)
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

#[derive(Debug, thiserror::Error)]
pub enum CancelError {
    #[error("no such task")]
    NotFound,
    /// The task's upstream has it and cannot stop it; nothing changed.
    #[error("the task is already running at its provider, which cannot cancel it")]
    NotCancelable { status: TaskStatus },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The error a canceled task ends with.
pub fn canceled_error() -> gengate_core::generation::TaskError {
    gengate_core::generation::TaskError {
        code: gengate_core::generation::TaskErrorCode::Canceled,
        message: "canceled at the caller's request; the reserved credits were refunded".into(),
    }
}

/// Cancel: ends a task that no upstream holds yet (or that only the
/// sandbox is running) as `failed`/`canceled` with a full refund, through
/// the store's compare-and-set on the task's status and upstream state, so
/// of a cancel and the runner (picking the job up, submitting it, finishing
/// it) exactly one wins. An ended task is returned as it is.
pub async fn cancel(st: &Engine, account: &AccountId, id: &TaskId) -> Result<Task, CancelError> {
    // Each lost compare-and-set means the state moved on; a handful of
    // rounds covers every move a provider makes before it is not cancelable.
    for _ in 0..8 {
        let Some(c) = st.store.task_control(account, id).await? else {
            return Err(CancelError::NotFound);
        };
        if c.task.status.is_terminal() {
            return Ok(c.task);
        }
        // Unreadable state is judged as "something may be upstream".
        let upstream: Option<serde_json::Value> = c
            .upstream
            .as_ref()
            .map(|text| serde_json::from_str(text).unwrap_or(serde_json::Value::Bool(true)));
        let cancelable = match st.providers.get(&c.provider) {
            Some(p) => p.cancelable(upstream.as_ref()),
            // A provider this node does not run: only "nothing sent" is safe.
            None => upstream.is_none(),
        };
        if !cancelable {
            return Err(CancelError::NotCancelable {
                status: c.task.status,
            });
        }
        let error = canceled_error();
        match st
            .store
            .cancel_task(account, id, c.upstream.as_deref(), &error, st.clock.now())
            .await?
        {
            gengate_store::Transition::Won => {
                metrics::counter!("gengate_tasks_finished_total", "status" => "failed", "code" => "Canceled")
                    .increment(1);
                tracing::info!(task = %id, provider = %c.provider, "task canceled and refunded");
                st.events.changed(id);
                return st
                    .store
                    .get_task(account, id)
                    .await?
                    .ok_or(CancelError::NotFound);
            }
            gengate_store::Transition::Lost => continue,
        }
    }
    Err(CancelError::Store(StoreError::Unavailable(
        "the task kept changing while being canceled; retry".into(),
    )))
}
