//! The Kling 3.0 provider: submits tasks to Kling, follows them to the end, and hands the
//! finished video's URL to the runner (which copies it into our storage).
//!
//! Every decision starts from the task's saved upstream state (`state.rs`), so any worker
//! on any node, after any crash, picks up where the last one stopped. The one dangerous
//! moment — between sending create and storing its answer — is covered by writing
//! `submitting` first and reconciling by `external_task_id` (= our task id) before any
//! second create: a blind retry would make, and bill, a second video.
//!
//! Several Kling accounts may stand behind the provider (`pool.rs`, issue 14). The
//! account a create goes to is written into `submitting` with it, so polling, callbacks'
//! re-queries and crash reconciliation ask that account only; a task moves to another
//! account only when the first is known not to have it (a clean refusal, or a lookup
//! that finds nothing). Accounts leave rotation for account-wide refusals
//! (`account_health.rs`); when none is left the provider is unhealthy and the policy of
//! `providers/health.rs` applies.
//!
//! Errors are decided by Kling's body `code` (`gengate_kling::ErrorClass`): rate limits
//! and outages back off with the task still queued, a full account holds the task until
//! one of our slots frees (`slots.rs`), moderation fails it as `content_rejected`, and
//! parameter problems fail it (refunded by the runner's `fail`) with a loud log and a
//! metric.

mod account_health;
pub mod accounts;
mod pool;
mod request;
mod settings;
mod slots;
mod state;

use super::health::{Availability, ProviderHealth};
use super::{Output, Progress, Provider, ProviderCtx, ProviderError};
use account_health::Cause;
use async_trait::async_trait;
use gengate_core::clock::SharedClock;
use gengate_core::generation::{TaskError, TaskErrorCode};
use gengate_core::ids::TaskId;
use gengate_kling::{ErrorClass, Family, KlingError, KlingTask, TaskStatus};
use serde_json::{Value, json};
use std::time::Duration;

pub use account_health::AccountHealth;
pub use pool::{Account, DEFAULT_ACCOUNT, Pick, Pool};
pub use request::{MappingError, RefImage, family_for};
pub use settings::{KlingArgs, wire};
pub use slots::Slots;
pub use state::{FamilyName, Upstream};

/// The provider's name in routing, job rows and callback URLs.
pub const NAME: &str = "kling";
/// Retry delays never grow past this.
const MAX_RETRY: Duration = Duration::from_secs(120);
/// Polls slow down as a task ages, up to this many times the base interval.
const MAX_POLL_FACTOR: u32 = 6;
/// An auth failure is an operator problem: no point asking again within seconds.
const MIN_AUTH_RETRY: Duration = Duration::from_secs(5);
/// How much of Kling's failure message reaches the caller.
const MAX_REASON_CHARS: usize = 200;

#[derive(Debug, Clone)]
pub struct KlingSettings {
    /// Steps (submit, poll) this node runs at once.
    pub concurrency: usize,
    /// Shortest poll interval.
    pub poll: Duration,
    /// First retry delay after 1302/5xx/network errors; also how long a task waits for a
    /// free slot before looking again, and the first probe back-off of an account.
    pub retry: Duration,
    /// Tasks with nothing at Kling fail (refunded) once no account has been in rotation
    /// this long.
    pub unhealthy_fail_after: Duration,
}

pub struct KlingProvider {
    pool: Pool,
    settings: KlingSettings,
    clock: SharedClock,
    health: ProviderHealth,
}

/// Where a task's create went, for the steps that follow it.
struct Sent<'a> {
    account: &'a Account,
    /// The create is the out-of-rotation account's probe.
    probe: bool,
}

impl KlingProvider {
    pub fn new(pool: Pool, settings: KlingSettings, clock: SharedClock) -> Self {
        Self {
            health: ProviderHealth::new(NAME, settings.unhealthy_fail_after, settings.retry),
            pool,
            settings,
            clock,
        }
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    fn now_ms(&self) -> i64 {
        self.clock.now().as_millis()
    }

    /// Exponential back-off with up to +25 % jitter, so tasks refused together do not come
    /// back together.
    fn retry_delay(&self, attempts: u32) -> Duration {
        let exp = attempts.clamp(1, 16) - 1;
        let base = self
            .settings
            .retry
            .saturating_mul(1u32 << exp)
            .min(MAX_RETRY);
        jitter(base, 4)
    }

    /// How long a task waits for a free slot: short, because a slot frees as soon as
    /// one of our tasks ends; jittered so the waiting tasks do not stampede.
    fn hold_delay(&self) -> Duration {
        jitter(self.settings.retry, 2)
    }

    /// Young tasks are polled at the base interval, older ones less often (a fifth of
    /// their age, up to 6x the base): callbacks carry the news, polling is the fallback.
    fn poll_delay(&self, submitted_at_ms: i64) -> Duration {
        let age =
            Duration::from_millis(u64::try_from(self.now_ms() - submitted_at_ms).unwrap_or(0));
        let base = self.settings.poll;
        jitter((age / 5).clamp(base, base * MAX_POLL_FACTOR), 10)
    }

    /// Sends the task's create to an account (`stay_at`: see `Pool::pick`).
    async fn submit(
        &self,
        ctx: &mut ProviderCtx<'_>,
        attempts: u32,
        stay_at: Option<&str>,
    ) -> Result<Progress, ProviderError> {
        let task_id = ctx.task.id.as_str().to_owned();
        let refs: Vec<RefImage<'_>> = ctx
            .task
            .references
            .iter()
            .zip(&ctx.reference_urls)
            .zip(&ctx.reference_bytes)
            .map(|((r, url), bytes)| RefImage {
                mime_type: &r.mime_type,
                url,
                bytes,
            })
            .collect();
        if refs.len() != ctx.task.references.len() {
            return Err(ProviderError::Transient(
                "reference files were not all loaded".into(),
            ));
        }
        let req = match request::build(
            &ctx.task.model,
            &task_id,
            ctx.task.prompt.as_str(),
            &ctx.task.params,
            &refs,
            ctx.callback_url.clone(),
        ) {
            Ok(r) => r,
            Err(e) => {
                // The API should have refused this task: a validation gap of ours.
                tracing::error!(task = %task_id, error = %e, "kling: task cannot be mapped to a create request");
                metrics::counter!("gengate_kling_task_failures_total", "reason" => "mapping")
                    .increment(1);
                self.pool.leave_line(&task_id);
                return Ok(failed(
                    TaskErrorCode::GenerationFailed,
                    format!("the request cannot be sent to the video provider: {e}"),
                ));
            }
        };
        let queued_at_ms = ctx.task.created_at.as_millis();
        let sent = match self
            .pool
            .pick(&task_id, queued_at_ms, self.now_ms(), stay_at)
        {
            Pick::Send { account, probe } => Sent { account, probe },
            Pick::Wait { reason } => {
                self.pool.wait_in_line(&task_id, queued_at_ms);
                return Ok(Progress::Deferred {
                    retry_after: self.hold_delay(),
                    reason,
                });
            }
            Pick::NoneInRotation => {
                self.pool.wait_in_line(&task_id, queued_at_ms);
                return Ok(Progress::Deferred {
                    retry_after: self.hold_delay(),
                    reason: "no kling account is in rotation".into(),
                });
            }
        };
        let account = sent.account;
        let family = req.family;
        let attempts = attempts.saturating_add(1);
        // Written before the create leaves: from here on, a crash or timeout means "look
        // it up at this account before creating again".
        let saved = ctx
            .save_upstream(
                Upstream::Submitting {
                    family: family.into(),
                    attempts,
                    account: Some(account.name.clone()),
                }
                .to_json(),
            )
            .await;
        if let Err(e) = saved {
            account.slots.release(&task_id);
            if sent.probe {
                account.health.cancel_probe();
            }
            return Err(e.into());
        }
        account.count_submit();
        tracing::info!(task = %task_id, account = %account.name, probe = sent.probe, %family, "kling: sending create");
        match account.client.create(&req).await {
            Ok(t) => {
                if sent.probe {
                    self.account_probed(account, true);
                }
                self.adopt(ctx, account, family, t).await
            }
            Err(e) => self.create_failed(ctx, &sent, family, attempts, e).await,
        }
    }

    /// Kling holds `t` for our task at `account` (a create answer, or a lost create found
    /// again): store its id before anything else, then act on its status.
    async fn adopt(
        &self,
        ctx: &mut ProviderCtx<'_>,
        account: &Account,
        family: Family,
        t: KlingTask,
    ) -> Result<Progress, ProviderError> {
        let submitted_at_ms = self.now_ms();
        ctx.save_upstream(
            Upstream::Submitted {
                account: Some(account.name.clone()),
                family: family.into(),
                task_id: t.task_id.clone(),
                submitted_at_ms,
                poll_failures: 0,
            }
            .to_json(),
        )
        .await?;
        account.slots.confirm(ctx.task.id.as_str());
        tracing::info!(task = %ctx.task.id, account = %account.name, kling_task = %t.task_id, %family, "kling task submitted");
        Ok(self.interpret(account, ctx.task.id.as_str(), &t, submitted_at_ms))
    }

    async fn create_failed(
        &self,
        ctx: &mut ProviderCtx<'_>,
        sent: &Sent<'_>,
        family: Family,
        attempts: u32,
        e: KlingError,
    ) -> Result<Progress, ProviderError> {
        let account = sent.account;
        let task_id = ctx.task.id.as_str().to_owned();
        let class = e.class();
        count_error("create", class);
        account.count_failure(&class.to_string());
        let account_wide = matches!(
            class,
            ErrorClass::Auth | ErrorClass::AccountFatal | ErrorClass::NoAccess
        );
        if sent.probe && !account_wide {
            // Neither a yes nor a no about the account's balance: the next task probes.
            account.health.cancel_probe();
        }
        if e.outcome_unknown() {
            // Kling may have made the task: stay `submitting` at this account (and keep
            // the slot) so the next attempt looks it up there before sending create again.
            tracing::warn!(task = %task_id, account = %account.name, attempts, error = %e, "kling create outcome unknown; will reconcile before retrying");
            return Ok(Progress::Deferred {
                retry_after: self.retry_delay(attempts),
                reason: format!("kling create outcome unknown: {e}"),
            });
        }
        // A clean refusal: nothing was created.
        if class == ErrorClass::InvalidParams && attempts > 1 {
            // After an earlier create that timed out, Kling refuses a second one with our
            // external_task_id as a duplicate — the first one exists after all.
            if let Ok(Some(t)) = account.client.find_by_external_id(family, &task_id).await {
                tracing::warn!(task = %task_id, account = %account.name, kling_task = %t.task_id, "kling refused a resubmit; the earlier create exists, adopting it");
                return self.adopt(ctx, account, family, t).await;
            }
        }
        let pending = Upstream::Pending {
            family: family.into(),
            attempts,
        }
        .to_json();
        match class {
            ErrorClass::ConcurrencyLimit => {
                let limit = account.slots.refused(&task_id);
                ctx.save_upstream(pending).await?;
                Ok(Progress::Deferred {
                    retry_after: self.hold_delay(),
                    reason: format!(
                        "kling account {} at its concurrency limit ({limit})",
                        account.name
                    ),
                })
            }
            ErrorClass::RateLimited | ErrorClass::UpstreamRetryable => {
                account.slots.release(&task_id);
                ctx.save_upstream(pending).await?;
                Ok(Progress::Deferred {
                    retry_after: self.retry_delay(attempts),
                    reason: format!("kling rate limit: {e}"),
                })
            }
            ErrorClass::Auth => {
                account.slots.release(&task_id);
                ctx.save_upstream(pending).await?;
                self.account_out(
                    account,
                    Cause::Credentials,
                    format!("kling refused our credentials: {e}"),
                    sent.probe,
                );
                // Another account may take it at once; alone, the operator must act.
                let retry_after = if self.pool.any_in_rotation() {
                    self.hold_delay()
                } else {
                    self.retry_delay(attempts).max(MIN_AUTH_RETRY)
                };
                Ok(Progress::Deferred {
                    retry_after,
                    reason: format!("kling auth failed at account {}: {e}", account.name),
                })
            }
            ErrorClass::ContentRejected => {
                account.slots.release(&task_id);
                metrics::counter!("gengate_kling_task_failures_total", "reason" => "content_rejected").increment(1);
                tracing::info!(task = %task_id, account = %account.name, error = %e, "kling refused the content");
                Ok(failed(
                    TaskErrorCode::ContentRejected,
                    "the video provider's content policy refused this request".into(),
                ))
            }
            ErrorClass::AccountFatal | ErrorClass::NoAccess if self.pool.count() > 1 => {
                // A fact about the account, not the task: it leaves rotation and the
                // task (nothing was created) goes to another one.
                account.slots.release(&task_id);
                ctx.save_upstream(pending).await?;
                let cause = if class == ErrorClass::NoAccess {
                    Cause::NoAccess
                } else {
                    Cause::Account
                };
                self.account_out(
                    account,
                    cause,
                    format!("kling refused creates for the account: {e}"),
                    sent.probe,
                );
                Ok(Progress::Deferred {
                    retry_after: Duration::from_millis(10),
                    reason: format!(
                        "kling account {} refused the task ({}); moving it to another account",
                        account.name,
                        e.code().unwrap_or_default()
                    ),
                })
            }
            ErrorClass::AccountFatal | ErrorClass::NoAccess => {
                // One account: nowhere to move the task, so it fails as it always did.
                account.slots.release(&task_id);
                metrics::counter!("gengate_kling_task_failures_total", "reason" => class.to_string()).increment(1);
                tracing::error!(task = %task_id, account = %account.name, code = e.code(), request_id = e.request_id(), error = %e, "ALERT kling account cannot take tasks (balance, access or whitelist); failing and refunding");
                Ok(failed(
                    TaskErrorCode::UpstreamUnavailable,
                    format!(
                        "the video provider is unavailable (code {})",
                        e.code().unwrap_or_default()
                    ),
                ))
            }
            ErrorClass::InvalidParams | ErrorClass::NotFound | ErrorClass::Unknown => {
                account.slots.release(&task_id);
                metrics::counter!("gengate_kling_task_failures_total", "reason" => class.to_string()).increment(1);
                tracing::error!(task = %task_id, account = %account.name, code = e.code(), request_id = e.request_id(), error = %e, "ALERT kling refused a create we validated (a validation gap of ours); failing and refunding");
                Ok(failed(
                    TaskErrorCode::GenerationFailed,
                    format!(
                        "the video provider refused the request (code {})",
                        e.code().unwrap_or_default()
                    ),
                ))
            }
        }
    }

    /// A create may have been sent to `account` without its answer stored: find it there
    /// before creating anywhere.
    async fn reconcile(
        &self,
        ctx: &mut ProviderCtx<'_>,
        account: &Account,
        family: Family,
        attempts: u32,
    ) -> Result<Progress, ProviderError> {
        let task_id = ctx.task.id.as_str().to_owned();
        match account.client.find_by_external_id(family, &task_id).await {
            Ok(Some(t)) => {
                metrics::counter!("gengate_kling_reconciled_total", "found" => "true").increment(1);
                tracing::info!(task = %task_id, account = %account.name, kling_task = %t.task_id, "kling: found the task of an unanswered create");
                self.adopt(ctx, account, family, t).await
            }
            Ok(None) => {
                metrics::counter!("gengate_kling_reconciled_total", "found" => "false")
                    .increment(1);
                tracing::info!(task = %task_id, account = %account.name, "kling: the unanswered create made nothing; submitting");
                if !account.health.accepts_creates() {
                    // It may go to another account now: free the slot it held here.
                    account.slots.release(&task_id);
                }
                self.submit(ctx, attempts, Some(&account.name)).await
            }
            Err(e) => {
                count_error("list", e.class());
                account.count_failure(&e.class().to_string());
                if e.class() == ErrorClass::Auth {
                    self.account_out(
                        account,
                        Cause::Credentials,
                        format!("kling refused our credentials: {e}"),
                        false,
                    );
                }
                // Never create without knowing: wait and look again.
                tracing::warn!(task = %task_id, account = %account.name, error = %e, "kling: reconciliation lookup failed; retrying");
                Ok(Progress::Deferred {
                    retry_after: self.retry_delay(attempts),
                    reason: format!("kling reconciliation failed: {e}"),
                })
            }
        }
    }

    async fn poll(
        &self,
        ctx: &mut ProviderCtx<'_>,
        account: &Account,
        family: Family,
        kling_task: &str,
        submitted_at_ms: i64,
        poll_failures: u32,
    ) -> Result<Progress, ProviderError> {
        let task_id = ctx.task.id.as_str().to_owned();
        // Counted again on every poll, so slots are known after a restart too.
        account.slots.confirm(&task_id);
        let saved = |poll_failures: u32| {
            Upstream::Submitted {
                account: Some(account.name.clone()),
                family: family.into(),
                task_id: kling_task.to_owned(),
                submitted_at_ms,
                poll_failures,
            }
            .to_json()
        };
        match account.client.get(family, kling_task).await {
            Ok(t) => {
                if poll_failures > 0 {
                    ctx.save_upstream(saved(0)).await?;
                }
                Ok(self.interpret(account, &task_id, &t, submitted_at_ms))
            }
            Err(e) if e.class() == ErrorClass::NotFound => {
                count_error("get", ErrorClass::NotFound);
                account.count_failure(&ErrorClass::NotFound.to_string());
                account.slots.release(&task_id);
                tracing::error!(task = %task_id, account = %account.name, kling_task, error = %e, "ALERT kling no longer knows a task it accepted; failing and refunding");
                Ok(failed(
                    TaskErrorCode::GenerationFailed,
                    "the video provider lost the task".into(),
                ))
            }
            Err(e) => {
                // The task exists and is billed: never give up on it for a query error.
                // The deadline ends it if Kling stays unreachable. The next query comes
                // after the retry back-off (`--kling-retry-ms`, doubling per failure in a
                // row), not a whole poll interval: after a "succeed" callback one
                // transient error must not cost seconds.
                count_error("get", e.class());
                account.count_failure(&e.class().to_string());
                if e.class() == ErrorClass::Auth {
                    self.account_out(
                        account,
                        Cause::Credentials,
                        format!("kling refused our credentials: {e}"),
                        false,
                    );
                }
                let failures = poll_failures.saturating_add(1);
                ctx.save_upstream(saved(failures)).await?;
                let retry_after = self.retry_delay(failures);
                tracing::warn!(task = %task_id, account = %account.name, kling_task, failures, retry_in_ms = retry_after.as_millis() as u64, error = %e, "kling status query failed; retrying");
                Ok(Progress::Running {
                    poll_after: retry_after,
                })
            }
        }
    }

    /// `account` refused something account-wide: it leaves rotation (one ALERT line), and
    /// the provider's health follows the pool's.
    fn account_out(&self, account: &Account, cause: Cause, reason: String, probe: bool) {
        let now = self.now_ms();
        if account.health.take_out(now, cause, &reason) {
            metrics::counter!("gengate_kling_account_out_total", "account" => account.name.clone(), "cause" => cause.as_str()).increment(1);
            tracing::error!(
                account = %account.name,
                cause = cause.as_str(),
                reason,
                "ALERT kling account out of rotation; its new tasks go to other accounts, one probe at a time checks its recovery"
            );
        } else if probe {
            account.health.end_probe(now, false);
            tracing::info!(account = %account.name, reason, "kling account probe refused; still out of rotation");
        }
        if probe && cause == Cause::Credentials {
            // The create probe turned into a credentials problem: list calls probe now.
            account.health.cancel_probe();
        }
        account.publish();
        self.sync_health();
    }

    /// A probe's answer for an out-of-rotation account.
    fn account_probed(&self, account: &Account, ok: bool) {
        if account.health.end_probe(self.now_ms(), ok) {
            tracing::info!(account = %account.name, "kling account back in rotation");
        }
        account.publish();
        self.sync_health();
    }

    /// The provider is unhealthy exactly while no account is in rotation: then new creates
    /// get 503 and queued tasks fail after the bound (`providers/health.rs`).
    fn sync_health(&self) {
        let accounts = self.pool.accounts();
        let credentials_ok = accounts
            .iter()
            .all(|a| a.health.out().is_none_or(|o| o.cause != Cause::Credentials));
        metrics::gauge!("gengate_kling_auth_ok").set(if credentials_ok { 1.0 } else { 0.0 });
        if self.pool.any_in_rotation() {
            self.health.call_succeeded();
            return;
        }
        let outs: Vec<_> = accounts
            .iter()
            .filter_map(|a| a.health.out().map(|o| (a.name.as_str(), o)))
            .collect();
        let reason = match outs.as_slice() {
            [(_, o)] => o.reason.clone(),
            _ => format!(
                "no kling account is in rotation: {}",
                outs.iter()
                    .map(|(n, o)| format!("{n}: {}", o.reason))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        };
        let now = self.now_ms();
        if outs.iter().all(|(_, o)| o.cause == Cause::Credentials) {
            self.health.credentials_refused(now, &reason);
        } else {
            self.health.unavailable(now, &reason);
        }
    }

    /// What a task does while no account is in rotation: nothing at Kling. A task with
    /// nothing there waits, then fails refunded once the provider has been unhealthy for
    /// `unhealthy_fail_after`.
    fn while_unhealthy(&self, task_id: &str, retry_after: Duration, fail_in: Duration) -> Progress {
        let look_again = jitter(retry_after, 4);
        if fail_in.is_zero() {
            self.pool.leave_line(task_id);
            metrics::counter!("gengate_kling_task_failures_total", "reason" => "provider_unhealthy").increment(1);
            tracing::info!(task = %task_id, "kling stayed unhealthy; failing the queued task and refunding it");
            let why = if self
                .pool
                .accounts()
                .iter()
                .all(|a| !a.health.accepts_queries())
            {
                "the video provider refused our credentials for too long; nothing was charged"
            } else {
                "the video provider could not take tasks for too long; nothing was charged"
            };
            return failed(TaskErrorCode::UpstreamUnavailable, why.into());
        }
        Progress::Deferred {
            retry_after: look_again.min(fail_in.max(Duration::from_millis(10))),
            reason: "kling is unhealthy (no account in rotation)".to_owned(),
        }
    }

    /// A task that may exist at `account` (`submitting`, `submitted`) while the account
    /// refuses our credentials: nothing can be asked; it waits for the recovery or its
    /// deadline, since failing it could refund a video Kling makes and bills.
    fn wait_for_account(&self, account: &Account) -> Duration {
        let until = account
            .health
            .until_probe(self.now_ms())
            .unwrap_or(self.settings.retry);
        jitter(until, 4)
    }

    fn interpret(
        &self,
        account: &Account,
        task_id: &str,
        t: &KlingTask,
        submitted_at_ms: i64,
    ) -> Progress {
        match &t.status {
            TaskStatus::Succeed => {
                account.slots.release(task_id);
                match t.videos.first() {
                    Some(v) => Progress::Finished(Output::Url {
                        url: v.url.clone(),
                        mime_type: "video/mp4".into(),
                    }),
                    None => {
                        tracing::error!(task = %task_id, account = %account.name, kling_task = %t.task_id, "kling reported success without a video");
                        failed(
                            TaskErrorCode::GenerationFailed,
                            "the video provider finished without a video".into(),
                        )
                    }
                }
            }
            TaskStatus::Failed => {
                account.slots.release(task_id);
                let msg = t.status_msg.as_deref().unwrap_or_default();
                if is_moderation(msg) {
                    metrics::counter!("gengate_kling_task_failures_total", "reason" => "moderation").increment(1);
                    failed(
                        TaskErrorCode::ContentRejected,
                        "the video provider's moderation rejected this request".into(),
                    )
                } else {
                    metrics::counter!("gengate_kling_task_failures_total", "reason" => "upstream_failed").increment(1);
                    tracing::warn!(task = %task_id, account = %account.name, kling_task = %t.task_id, reason = msg, "kling failed the task");
                    let reason: String = msg.chars().take(MAX_REASON_CHARS).collect();
                    failed(
                        TaskErrorCode::GenerationFailed,
                        if reason.is_empty() {
                            "the video provider failed the task".into()
                        } else {
                            format!("the video provider failed the task: {reason}")
                        },
                    )
                }
            }
            TaskStatus::Submitted | TaskStatus::Processing => Progress::Running {
                poll_after: self.poll_delay(submitted_at_ms),
            },
            TaskStatus::Unknown(s) => {
                // Logged by the client as well; counted here so a new status shows on a
                // dashboard before anyone reads logs.
                metrics::counter!("gengate_kling_unknown_status_total").increment(1);
                tracing::warn!(task = %task_id, account = %account.name, kling_task = %t.task_id, status = %s, "unknown kling status; the task keeps running");
                Progress::Running {
                    poll_after: self.poll_delay(submitted_at_ms),
                }
            }
        }
    }

    /// A saved state names an account this node does not have (removed from the file):
    /// nobody else may be asked, so the task waits (its deadline ends it) and says why.
    fn unknown_account(&self, task_id: &str, name: Option<&str>) -> String {
        tracing::error!(task = %task_id, account = name.unwrap_or(DEFAULT_ACCOUNT), "ALERT kling task is held by an account that is not configured; it cannot be followed until the account is back");
        format!(
            "the task's kling account {:?} is not configured",
            name.unwrap_or(DEFAULT_ACCOUNT)
        )
    }

    /// Per-account probes and gauges, every prober tick: one list call at a time for an
    /// account whose credentials were refused, once its back-off has passed.
    async fn probe_accounts(&self) {
        for account in self.pool.accounts() {
            account.publish();
            if !account.health.begin_probe(self.now_ms(), false) {
                continue;
            }
            let ok = match account.client.list(Family::Text2Video, 1, 1).await {
                Ok(_) => true,
                Err(e) => {
                    count_error("list", e.class());
                    account.count_failure(&e.class().to_string());
                    tracing::debug!(account = %account.name, error = %e, "kling account probe failed");
                    false
                }
            };
            self.account_probed(account, ok);
        }
    }

    /// The accounts for `/readyz` and `gengate providers status`.
    fn accounts_status(&self) -> Value {
        let accounts: Vec<Value> = self
            .pool
            .accounts()
            .iter()
            .map(|a| {
                let out = a.health.out();
                json!({
                    "name": a.name,
                    "state": out.as_ref().map_or("in_rotation", |o| o.cause.as_str()),
                    "healthy": out.is_none(),
                    "since": out.as_ref().map(|o| gengate_core::Timestamp::from_millis(o.since_ms).rfc3339()),
                    "reason": out.as_ref().map(|o| o.reason.clone()),
                    "in_flight": a.slots.held(),
                    "slots": a.slots.limit(),
                    "slots_configured": a.slots.configured(),
                    "weight": a.weight,
                    "submits": a.submits(),
                    "failures": a.failures(),
                })
            })
            .collect();
        let unhealthy: Vec<&str> = self
            .pool
            .accounts()
            .iter()
            .filter(|a| !a.health.accepts_creates())
            .map(|a| a.name.as_str())
            .collect();
        json!({"accounts": accounts, "unhealthy_accounts": unhealthy})
    }
}

#[async_trait]
impl Provider for KlingProvider {
    fn name(&self) -> &'static str {
        NAME
    }

    fn concurrency(&self) -> usize {
        self.settings.concurrency.max(1)
    }

    async fn advance(&self, ctx: &mut ProviderCtx<'_>) -> Result<Progress, ProviderError> {
        let state = match Upstream::load(ctx.upstream.as_ref()) {
            Ok(s) => s,
            Err(e) => {
                // Guessing could submit twice; failing refunds the caller and is loud.
                tracing::error!(task = %ctx.task.id, error = %e, "ALERT kling: task state unreadable; failing it");
                return Ok(failed(
                    TaskErrorCode::GenerationFailed,
                    "the task's provider state is unreadable".into(),
                ));
            }
        };
        let task_id = ctx.task.id.as_str().to_owned();
        match state {
            None | Some(Upstream::Pending { .. }) => {
                let attempts = match state {
                    Some(Upstream::Pending { attempts, .. }) => attempts,
                    _ => 0,
                };
                let now = self.now_ms();
                if let Availability::Unhealthy {
                    retry_after,
                    fail_in,
                    ..
                } = self.health.check(now)
                    && !self.pool.create_probe_due(now)
                {
                    return Ok(self.while_unhealthy(&task_id, retry_after, fail_in));
                }
                self.submit(ctx, attempts, None).await
            }
            Some(Upstream::Submitting {
                family,
                attempts,
                account,
            }) => {
                let Some(acc) = self.pool.get(account.as_deref()) else {
                    return Ok(Progress::Deferred {
                        retry_after: self.retry_delay(attempts.max(4)),
                        reason: self.unknown_account(&task_id, account.as_deref()),
                    });
                };
                if !acc.health.accepts_queries() {
                    return Ok(Progress::Deferred {
                        retry_after: self.wait_for_account(acc),
                        reason: format!("kling account {} refuses our credentials", acc.name),
                    });
                }
                self.reconcile(ctx, acc, family.into(), attempts).await
            }
            Some(Upstream::Submitted {
                account,
                family,
                task_id: kling_task,
                submitted_at_ms,
                poll_failures,
            }) => {
                let Some(acc) = self.pool.get(account.as_deref()) else {
                    self.unknown_account(&task_id, account.as_deref());
                    return Ok(Progress::Running {
                        poll_after: self.settings.poll * MAX_POLL_FACTOR,
                    });
                };
                if !acc.health.accepts_queries() {
                    return Ok(Progress::Running {
                        poll_after: self.wait_for_account(acc),
                    });
                }
                self.poll(
                    ctx,
                    acc,
                    family.into(),
                    &kling_task,
                    submitted_at_ms,
                    poll_failures,
                )
                .await
            }
        }
    }

    fn health(&self) -> Option<&ProviderHealth> {
        Some(&self.health)
    }

    /// Kling has no cancel call: a task is cancelable only while nothing may
    /// be at Kling (never sent, or refused cleanly and waiting to be sent again).
    fn cancelable(&self, upstream: Option<&Value>) -> bool {
        matches!(
            Upstream::load(upstream),
            Ok(None | Some(Upstream::Pending { .. }))
        )
    }

    /// Creates are taken while an account waits for its create probe, even with none in
    /// rotation: one of them is the probe.
    fn availability(&self, now_ms: i64) -> Availability {
        if self.pool.create_probe_due(now_ms) {
            return Availability::Healthy;
        }
        self.health.check(now_ms)
    }

    /// The provider recovers when an account does; the accounts are probed in
    /// `maintain`, so this only reports.
    async fn probe(&self) -> bool {
        self.probe_accounts().await;
        self.pool.any_in_rotation()
    }

    async fn maintain(&self) {
        self.probe_accounts().await;
    }

    fn status(&self) -> Option<Value> {
        Some(self.accounts_status())
    }

    /// The route has already checked the token. The body is a hint: it only decides
    /// whether to look now, and only a terminal status is worth it (submitted/processing
    /// change nothing on our side). A body about another task is ignored. The look
    /// itself (`advance`) asks the account stored with the task, whichever account's
    /// task the body claims to be.
    async fn callback(
        &self,
        task: &TaskId,
        upstream: Option<&Value>,
        _token: &str,
        body: &[u8],
    ) -> bool {
        let t = match gengate_kling::parse_callback(body) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(task = %task, error = %e, "kling callback body unreadable; ignored");
                return false;
            }
        };
        if t.external_task_id
            .as_deref()
            .is_some_and(|ext| ext != task.as_str())
        {
            tracing::warn!(task = %task, kling_task = %t.task_id, "kling callback names another task; ignored");
            return false;
        }
        if let Ok(Some(Upstream::Submitted {
            task_id, account, ..
        })) = Upstream::load(upstream)
            && task_id != t.task_id
        {
            tracing::warn!(task = %task, account = account.as_deref().unwrap_or(DEFAULT_ACCOUNT), kling_task = %t.task_id, "kling callback for a task id we do not hold; ignored");
            return false;
        }
        t.status.is_terminal()
    }
}

fn failed(code: TaskErrorCode, message: String) -> Progress {
    Progress::Failed(TaskError { code, message })
}

fn count_error(op: &'static str, class: ErrorClass) {
    metrics::counter!("gengate_kling_errors_total", "op" => op, "class" => class.to_string())
        .increment(1);
}

/// Kling reports a moderation failure only in `task_status_msg` (e.g. "Failure to pass
/// the risk control system"); these are the phrasings seen in its docs and clients.
pub fn is_moderation(msg: &str) -> bool {
    let m = msg.to_ascii_lowercase();
    [
        "risk control",
        "moderation",
        "content security",
        "content safety",
        "sensitive",
        "violat",
        "policy",
    ]
    .iter()
    .any(|k| m.contains(k))
}

/// `d` plus up to `d / divisor` at random.
fn jitter(d: Duration, divisor: u32) -> Duration {
    let spread = u64::try_from((d / divisor.max(1)).as_millis()).unwrap_or(u64::MAX);
    d + Duration::from_millis(rand::random_range(0..=spread))
}

#[cfg(test)]
mod tests {
    use super::*;
    use gengate_kling::KlingClient;

    #[test]
    fn moderation_is_read_from_the_status_message() {
        assert!(is_moderation(gengate_kling::fake::MODERATION_MESSAGE));
        assert!(is_moderation("Content Security check failed"));
        assert!(!is_moderation("internal error"));
        assert!(!is_moderation(""));
    }

    fn provider() -> KlingProvider {
        let client = KlingClient::new(
            url::Url::parse("http://127.0.0.1:1/").expect("url"),
            gengate_kling::KlingCredentials::new("a", "s"),
            std::sync::Arc::new(gengate_transport::Offline),
        );
        let pool = Pool::new(
            vec![Account::new(
                DEFAULT_ACCOUNT.into(),
                client,
                0,
                1,
                Duration::from_millis(100),
            )],
            Duration::from_secs(10),
        );
        KlingProvider::new(
            pool,
            KlingSettings {
                concurrency: 1,
                poll: Duration::from_millis(1000),
                retry: Duration::from_millis(100),
                unhealthy_fail_after: Duration::from_secs(300),
            },
            std::sync::Arc::new(gengate_core::clock::SystemClock),
        )
    }

    fn task(status: &str, msg: &str, videos: serde_json::Value) -> KlingTask {
        KlingTask::from_json(&serde_json::json!({
            "task_id": "k1", "task_status": status, "task_status_msg": msg,
            "task_result": {"videos": videos}
        }))
        .expect("task")
    }

    #[test]
    fn statuses_map_to_progress() {
        let p = provider();
        let a = &p.pool().accounts()[0];
        let now = p.now_ms();
        // Unknown statuses keep the task running (and are logged/counted).
        for s in ["submitted", "processing", "queueing", ""] {
            assert!(
                matches!(
                    p.interpret(a, "t", &task(s, "", serde_json::json!([])), now),
                    Progress::Running { .. }
                ),
                "{s:?}"
            );
        }
        let ok = task(
            "succeed",
            "",
            serde_json::json!([{"id": "v", "url": "https://cdn/v.mp4", "duration": "5.0"}]),
        );
        assert!(matches!(
            p.interpret(a, "t", &ok, now),
            Progress::Finished(Output::Url { ref url, .. }) if url == "https://cdn/v.mp4"
        ));
        let code = |pr: Progress| match pr {
            Progress::Failed(e) => e.code,
            _ => panic!("not failed"),
        };
        assert_eq!(
            code(p.interpret(a, "t", &task("succeed", "", serde_json::json!([])), now)),
            TaskErrorCode::GenerationFailed
        );
        assert_eq!(
            code(p.interpret(
                a,
                "t",
                &task(
                    "failed",
                    "Failure to pass the risk control system",
                    serde_json::json!([])
                ),
                now
            )),
            TaskErrorCode::ContentRejected
        );
        assert_eq!(
            code(p.interpret(
                a,
                "t",
                &task("failed", "server busy", serde_json::json!([])),
                now
            )),
            TaskErrorCode::GenerationFailed
        );
    }

    #[test]
    fn polls_slow_down_with_age_within_bounds() {
        let p = provider();
        let now = p.now_ms();
        let young = p.poll_delay(now);
        assert!(young >= Duration::from_millis(1000) && young <= Duration::from_millis(1100));
        let old = p.poll_delay(now - 3_600_000);
        assert!(old >= Duration::from_millis(6000) && old <= Duration::from_millis(6600));
        let r = p.retry_delay(20);
        assert!(r >= MAX_RETRY && r <= MAX_RETRY + MAX_RETRY / 4);
    }

    #[test]
    fn jitter_stays_within_its_spread() {
        for _ in 0..100 {
            let j = jitter(Duration::from_millis(1000), 4);
            assert!(j >= Duration::from_millis(1000) && j <= Duration::from_millis(1250));
        }
    }
}
