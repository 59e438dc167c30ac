//! The Kling 3.0 provider: submits tasks to Kling, follows them to the end, and hands the
//! finished video's URL to the runner (which copies it into our storage).
//!
//! Every decision starts from the task's saved upstream state (`state.rs`), so any worker
//! on any node, after any crash, picks up where the last one stopped. The one dangerous
//! moment — between sending create and storing its answer — is covered by writing
//! `submitting` first and reconciling by `external_task_id` (= our task id) before any
//! second create: a blind retry would make, and bill, a second video.
//!
//! Errors are decided by Kling's body `code` (`gengate_kling::ErrorClass`): rate limits
//! and outages back off with the task still queued, a full account holds the task until
//! one of our slots frees (`slots.rs`), moderation fails it as `content_rejected`, and
//! account or parameter problems fail it (refunded by the runner's `fail`) with a loud log
//! and a metric.

mod request;
mod settings;
mod slots;
mod state;

use super::health::{Availability, ProviderHealth};
use super::{Output, Progress, Provider, ProviderCtx, ProviderError};
use async_trait::async_trait;
use gengate_core::clock::SharedClock;
use gengate_core::generation::{TaskError, TaskErrorCode};
use gengate_core::ids::TaskId;
use gengate_kling::{ErrorClass, Family, KlingClient, KlingError, KlingTask, TaskStatus};
use serde_json::Value;
use std::time::Duration;

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
    /// Upstream slot ceiling; 0 = learn from 1303.
    pub max_in_flight: usize,
    /// Shortest poll interval.
    pub poll: Duration,
    /// First retry delay after 1302/5xx/network errors; also how long a task waits for a
    /// free slot before looking again.
    pub retry: Duration,
    /// Tasks with nothing at Kling fail (refunded) once the provider has been unhealthy
    /// (credentials refused) this long.
    pub unhealthy_fail_after: Duration,
}

pub struct KlingProvider {
    client: KlingClient,
    settings: KlingSettings,
    slots: Slots,
    clock: SharedClock,
    health: ProviderHealth,
}

impl KlingProvider {
    pub fn new(client: KlingClient, settings: KlingSettings, clock: SharedClock) -> Self {
        Self {
            health: ProviderHealth::new(NAME, settings.unhealthy_fail_after, settings.retry),
            slots: Slots::new(settings.max_in_flight),
            client,
            settings,
            clock,
        }
    }

    pub fn slots(&self) -> &Slots {
        &self.slots
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

    async fn submit(
        &self,
        ctx: &mut ProviderCtx<'_>,
        attempts: u32,
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
                return Ok(failed(
                    TaskErrorCode::GenerationFailed,
                    format!("the request cannot be sent to the video provider: {e}"),
                ));
            }
        };
        if let Err(full) = self.slots.try_acquire(&task_id) {
            return Ok(Progress::Deferred {
                retry_after: self.hold_delay(),
                reason: format!(
                    "kling account slots full ({} in flight, limit {})",
                    full.held, full.limit
                ),
            });
        }
        let family = req.family;
        let attempts = attempts.saturating_add(1);
        // Written before the create leaves: from here on, a crash or timeout means "look
        // it up before creating again".
        let saved = ctx
            .save_upstream(
                Upstream::Submitting {
                    family: family.into(),
                    attempts,
                }
                .to_json(),
            )
            .await;
        if let Err(e) = saved {
            self.slots.release(&task_id);
            return Err(e.into());
        }
        match self.client.create(&req).await {
            Ok(t) => {
                self.credentials_work();
                self.adopt(ctx, family, t).await
            }
            Err(e) => self.create_failed(ctx, family, attempts, e).await,
        }
    }

    /// Kling holds `t` for our task (a create answer, or a lost create found again):
    /// store its id before anything else, then act on its status.
    async fn adopt(
        &self,
        ctx: &mut ProviderCtx<'_>,
        family: Family,
        t: KlingTask,
    ) -> Result<Progress, ProviderError> {
        let submitted_at_ms = self.now_ms();
        ctx.save_upstream(
            Upstream::Submitted {
                family: family.into(),
                task_id: t.task_id.clone(),
                submitted_at_ms,
                poll_failures: 0,
            }
            .to_json(),
        )
        .await?;
        self.slots.confirm(ctx.task.id.as_str());
        tracing::info!(task = %ctx.task.id, kling_task = %t.task_id, %family, "kling task submitted");
        Ok(self.interpret(ctx.task.id.as_str(), &t, submitted_at_ms))
    }

    async fn create_failed(
        &self,
        ctx: &mut ProviderCtx<'_>,
        family: Family,
        attempts: u32,
        e: KlingError,
    ) -> Result<Progress, ProviderError> {
        let task_id = ctx.task.id.as_str().to_owned();
        let class = e.class();
        count_error("create", class);
        if e.outcome_unknown() {
            // Kling may have made the task: stay `submitting` (and keep the slot) so the
            // next attempt looks it up before sending create again.
            tracing::warn!(task = %task_id, attempts, error = %e, "kling create outcome unknown; will reconcile before retrying");
            return Ok(Progress::Deferred {
                retry_after: self.retry_delay(attempts),
                reason: format!("kling create outcome unknown: {e}"),
            });
        }
        // A clean refusal: nothing was created.
        if class == ErrorClass::InvalidParams && attempts > 1 {
            // After an earlier create that timed out, Kling refuses a second one with our
            // external_task_id as a duplicate — the first one exists after all.
            if let Ok(Some(t)) = self.client.find_by_external_id(family, &task_id).await {
                tracing::warn!(task = %task_id, kling_task = %t.task_id, "kling refused a resubmit; the earlier create exists, adopting it");
                return self.adopt(ctx, family, t).await;
            }
        }
        let pending = Upstream::Pending {
            family: family.into(),
            attempts,
        }
        .to_json();
        match class {
            ErrorClass::ConcurrencyLimit => {
                let limit = self.slots.refused(&task_id);
                ctx.save_upstream(pending).await?;
                Ok(Progress::Deferred {
                    retry_after: self.hold_delay(),
                    reason: format!("kling account at its concurrency limit ({limit})"),
                })
            }
            ErrorClass::RateLimited | ErrorClass::UpstreamRetryable => {
                self.slots.release(&task_id);
                ctx.save_upstream(pending).await?;
                Ok(Progress::Deferred {
                    retry_after: self.retry_delay(attempts),
                    reason: format!("kling rate limit: {e}"),
                })
            }
            ErrorClass::Auth => {
                self.slots.release(&task_id);
                ctx.save_upstream(pending).await?;
                self.credentials_refused(&e);
                Ok(Progress::Deferred {
                    retry_after: self.retry_delay(attempts).max(MIN_AUTH_RETRY),
                    reason: format!("kling auth failed: {e}"),
                })
            }
            ErrorClass::ContentRejected => {
                self.slots.release(&task_id);
                metrics::counter!("gengate_kling_task_failures_total", "reason" => "content_rejected").increment(1);
                tracing::info!(task = %task_id, error = %e, "kling refused the content");
                Ok(failed(
                    TaskErrorCode::ContentRejected,
                    "the video provider's content policy refused this request".into(),
                ))
            }
            ErrorClass::AccountFatal | ErrorClass::NoAccess => {
                self.slots.release(&task_id);
                metrics::counter!("gengate_kling_task_failures_total", "reason" => class.to_string()).increment(1);
                tracing::error!(task = %task_id, code = e.code(), request_id = e.request_id(), error = %e, "ALERT kling account cannot take tasks (balance, access or whitelist); failing and refunding");
                Ok(failed(
                    TaskErrorCode::UpstreamUnavailable,
                    format!(
                        "the video provider is unavailable (code {})",
                        e.code().unwrap_or_default()
                    ),
                ))
            }
            ErrorClass::InvalidParams | ErrorClass::NotFound | ErrorClass::Unknown => {
                self.slots.release(&task_id);
                metrics::counter!("gengate_kling_task_failures_total", "reason" => class.to_string()).increment(1);
                tracing::error!(task = %task_id, code = e.code(), request_id = e.request_id(), error = %e, "ALERT kling refused a create we validated (a validation gap of ours); failing and refunding");
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

    /// A create may have been sent without its answer stored: find it before creating.
    async fn reconcile(
        &self,
        ctx: &mut ProviderCtx<'_>,
        family: Family,
        attempts: u32,
    ) -> Result<Progress, ProviderError> {
        let task_id = ctx.task.id.as_str().to_owned();
        match self.client.find_by_external_id(family, &task_id).await {
            Ok(Some(t)) => {
                self.credentials_work();
                metrics::counter!("gengate_kling_reconciled_total", "found" => "true").increment(1);
                tracing::info!(task = %task_id, kling_task = %t.task_id, "kling: found the task of an unanswered create");
                self.adopt(ctx, family, t).await
            }
            Ok(None) => {
                metrics::counter!("gengate_kling_reconciled_total", "found" => "false")
                    .increment(1);
                tracing::info!(task = %task_id, "kling: the unanswered create made nothing; submitting");
                self.submit(ctx, attempts).await
            }
            Err(e) => {
                count_error("list", e.class());
                if e.class() == ErrorClass::Auth {
                    self.credentials_refused(&e);
                }
                // Never create without knowing: wait and look again.
                tracing::warn!(task = %task_id, error = %e, "kling: reconciliation lookup failed; retrying");
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
        family: Family,
        kling_task: &str,
        submitted_at_ms: i64,
        poll_failures: u32,
    ) -> Result<Progress, ProviderError> {
        let task_id = ctx.task.id.as_str().to_owned();
        // Counted again on every poll, so slots are known after a restart too.
        self.slots.confirm(&task_id);
        let saved = |poll_failures: u32| {
            Upstream::Submitted {
                family: family.into(),
                task_id: kling_task.to_owned(),
                submitted_at_ms,
                poll_failures,
            }
            .to_json()
        };
        match self.client.get(family, kling_task).await {
            Ok(t) => {
                self.credentials_work();
                if poll_failures > 0 {
                    ctx.save_upstream(saved(0)).await?;
                }
                Ok(self.interpret(&task_id, &t, submitted_at_ms))
            }
            Err(e) if e.class() == ErrorClass::NotFound => {
                count_error("get", ErrorClass::NotFound);
                self.slots.release(&task_id);
                tracing::error!(task = %task_id, kling_task, error = %e, "ALERT kling no longer knows a task it accepted; failing and refunding");
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
                if e.class() == ErrorClass::Auth {
                    self.credentials_refused(&e);
                }
                let failures = poll_failures.saturating_add(1);
                ctx.save_upstream(saved(failures)).await?;
                let retry_after = self.retry_delay(failures);
                tracing::warn!(task = %task_id, kling_task, failures, retry_in_ms = retry_after.as_millis() as u64, error = %e, "kling status query failed; retrying");
                Ok(Progress::Running {
                    poll_after: retry_after,
                })
            }
        }
    }

    /// Our credentials worked: the provider is healthy.
    fn credentials_work(&self) {
        metrics::gauge!("gengate_kling_auth_ok").set(1.0);
        self.health.call_succeeded();
    }

    /// Kling refused our credentials (after the client's own re-mint and retry): the
    /// provider is unhealthy for every task, logged once by the health tracker.
    fn credentials_refused(&self, e: &KlingError) {
        metrics::gauge!("gengate_kling_auth_ok").set(0.0);
        self.health.credentials_refused(
            self.now_ms(),
            &format!("kling refused our credentials: {e}"),
        );
    }

    /// What a task does while the provider is unhealthy: nothing at Kling (every call
    /// would be refused; the prober finds out when it recovers). A task with nothing at
    /// Kling waits, then fails refunded once the provider has been unhealthy for
    /// `unhealthy_fail_after`; one that may exist there (`submitting`, `submitted`) waits
    /// for the recovery or its deadline, since failing it could refund a video Kling
    /// makes and bills.
    fn while_unhealthy(
        &self,
        task_id: &str,
        state: Option<&Upstream>,
        retry_after: Duration,
        fail_in: Duration,
    ) -> Progress {
        let look_again = jitter(retry_after, 4);
        let reason = "kling is unhealthy (our credentials are refused)".to_owned();
        match state {
            None | Some(Upstream::Pending { .. }) if fail_in.is_zero() => {
                metrics::counter!("gengate_kling_task_failures_total", "reason" => "provider_unhealthy").increment(1);
                tracing::info!(task = %task_id, "kling stayed unhealthy; failing the queued task and refunding it");
                failed(
                    TaskErrorCode::UpstreamUnavailable,
                    "the video provider refused our credentials for too long; nothing was charged"
                        .into(),
                )
            }
            None | Some(Upstream::Pending { .. }) => Progress::Deferred {
                retry_after: look_again.min(fail_in.max(Duration::from_millis(10))),
                reason,
            },
            Some(Upstream::Submitting { .. }) => Progress::Deferred {
                retry_after: look_again,
                reason,
            },
            Some(Upstream::Submitted { .. }) => Progress::Running {
                poll_after: look_again,
            },
        }
    }

    fn interpret(&self, task_id: &str, t: &KlingTask, submitted_at_ms: i64) -> Progress {
        match &t.status {
            TaskStatus::Succeed => {
                self.slots.release(task_id);
                match t.videos.first() {
                    Some(v) => Progress::Finished(Output::Url {
                        url: v.url.clone(),
                        mime_type: "video/mp4".into(),
                    }),
                    None => {
                        tracing::error!(task = %task_id, kling_task = %t.task_id, "kling reported success without a video");
                        failed(
                            TaskErrorCode::GenerationFailed,
                            "the video provider finished without a video".into(),
                        )
                    }
                }
            }
            TaskStatus::Failed => {
                self.slots.release(task_id);
                let msg = t.status_msg.as_deref().unwrap_or_default();
                if is_moderation(msg) {
                    metrics::counter!("gengate_kling_task_failures_total", "reason" => "moderation").increment(1);
                    failed(
                        TaskErrorCode::ContentRejected,
                        "the video provider's moderation rejected this request".into(),
                    )
                } else {
                    metrics::counter!("gengate_kling_task_failures_total", "reason" => "upstream_failed").increment(1);
                    tracing::warn!(task = %task_id, kling_task = %t.task_id, reason = msg, "kling failed the task");
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
                tracing::warn!(task = %task_id, kling_task = %t.task_id, status = %s, "unknown kling status; the task keeps running");
                Progress::Running {
                    poll_after: self.poll_delay(submitted_at_ms),
                }
            }
        }
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
        if let Availability::Unhealthy {
            retry_after,
            fail_in,
            ..
        } = self.health.check(self.now_ms())
        {
            return Ok(self.while_unhealthy(
                ctx.task.id.as_str(),
                state.as_ref(),
                retry_after,
                fail_in,
            ));
        }
        match state {
            None => self.submit(ctx, 0).await,
            Some(Upstream::Pending { attempts, .. }) => self.submit(ctx, attempts).await,
            Some(Upstream::Submitting { family, attempts }) => {
                self.reconcile(ctx, family.into(), attempts).await
            }
            Some(Upstream::Submitted {
                family,
                task_id,
                submitted_at_ms,
                poll_failures,
            }) => {
                self.poll(ctx, family.into(), &task_id, submitted_at_ms, poll_failures)
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

    /// The cheapest authenticated call: one item of the task list.
    async fn probe(&self) -> bool {
        match self.client.list(Family::Text2Video, 1, 1).await {
            Ok(_) => true,
            Err(e) => {
                count_error("list", e.class());
                tracing::debug!(error = %e, "kling health probe failed");
                false
            }
        }
    }

    /// The route has already checked the token. The body is a hint: it only decides
    /// whether to look now, and only a terminal status is worth it (submitted/processing
    /// change nothing on our side). A body about another task is ignored.
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
        if let Ok(Some(Upstream::Submitted { task_id, .. })) = Upstream::load(upstream)
            && task_id != t.task_id
        {
            tracing::warn!(task = %task, kling_task = %t.task_id, "kling callback for a task id we do not hold; ignored");
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
            reqwest::Client::new(),
        );
        KlingProvider::new(
            client,
            KlingSettings {
                concurrency: 1,
                max_in_flight: 0,
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
        let now = p.now_ms();
        // Unknown statuses keep the task running (and are logged/counted).
        for s in ["submitted", "processing", "queueing", ""] {
            assert!(
                matches!(
                    p.interpret("t", &task(s, "", serde_json::json!([])), now),
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
            p.interpret("t", &ok, now),
            Progress::Finished(Output::Url { ref url, .. }) if url == "https://cdn/v.mp4"
        ));
        let code = |pr: Progress| match pr {
            Progress::Failed(e) => e.code,
            _ => panic!("not failed"),
        };
        assert_eq!(
            code(p.interpret("t", &task("succeed", "", serde_json::json!([])), now)),
            TaskErrorCode::GenerationFailed
        );
        assert_eq!(
            code(p.interpret(
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
