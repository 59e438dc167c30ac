//! The runner: leases due jobs, drives their provider one step, and settles
//! the outcome through the store's compare-and-set transitions. Any number
//! of runners (threads or nodes) may run; a job whose worker died is taken
//! again when its lease lapses.
//!
//! Owns the job loop, vendor callbacks (their tokens and the nudges they
//! leave), fetching vendor outputs, and the node's background loops
//! (`background`: deadline sweeper, housekeeping, change feed, provider
//! prober, webhook dispatcher). The top floor of the engine: it may import
//! every other folder, and none imports it (except `engine`, which starts it).

pub mod background;
pub mod callbacks;
pub mod fetch;

use crate::Engine;
use crate::providers::{Output, Progress, ProviderCtx, ProviderError};
use gengate_core::generation::{
    StoredMedia, StoredResult, Task, TaskError, TaskErrorCode, TaskStatus,
};
use gengate_core::ids::TaskId;
use gengate_store::{LeasedJob, Transition};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, watch};

#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// How long a leased job is ours without a heartbeat.
    pub lease: Duration,
    /// How often an idle runner looks for due jobs (it is also woken on enqueue).
    pub idle_poll: Duration,
    /// Largest output accepted from a vendor URL.
    pub max_output_bytes: u64,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(30),
            idle_poll: Duration::from_millis(500),
            max_output_bytes: 512 << 20,
        }
    }
}

pub struct Runner {
    st: Engine,
    cfg: RunnerConfig,
    worker: String,
    slots: HashMap<String, Arc<Semaphore>>,
}

impl Runner {
    pub fn new(st: Engine, cfg: RunnerConfig) -> Self {
        let slots = st
            .providers
            .names()
            .into_iter()
            .filter_map(|n| {
                st.providers
                    .get(&n)
                    .map(|p| (n, Arc::new(Semaphore::new(p.concurrency()))))
            })
            .collect();
        let worker = format!("w-{}", gengate_core::ids::random_token(10));
        Self {
            st,
            cfg,
            worker,
            slots,
        }
    }

    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let this = Arc::new(self);
        let slots: Vec<_> = this
            .slots
            .iter()
            .map(|(name, sem)| {
                let total = this.st.providers.get(name).map_or(0, |p| p.concurrency());
                (name.clone(), total, sem.clone())
            })
            .collect();
        tracing::info!(worker = %this.worker, slots = ?slots.iter().map(|(n, t, _)| format!("{n}={t}")).collect::<Vec<_>>(), "runner started");
        this.st.status.runner_started(slots);
        loop {
            if *stop.borrow() {
                break;
            }
            let leased = this.lease_round().await;
            if leased == 0 {
                tokio::select! {
                    _ = this.st.runner_wakeup.notified() => {}
                    _ = tokio::time::sleep(this.cfg.idle_poll) => {}
                    _ = stop.changed() => {}
                }
            }
        }
    }

    /// Leases as many due jobs as there are free slots, per provider.
    async fn lease_round(self: &Arc<Self>) -> usize {
        let mut total = 0;
        for (provider, sem) in &self.slots {
            let free = sem.available_permits();
            if free == 0 {
                continue;
            }
            let now = self.st.clock.now();
            let jobs = match self
                .st
                .store
                .lease_jobs(
                    &self.worker,
                    std::slice::from_ref(provider),
                    now,
                    self.cfg.lease,
                    free as u32,
                )
                .await
            {
                Ok(j) => j,
                Err(e) => {
                    tracing::warn!(error = %e, "leasing jobs failed; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            total += jobs.len();
            for job in jobs {
                let Ok(permit) = sem.clone().try_acquire_owned() else {
                    break;
                };
                let this = self.clone();
                tokio::spawn(async move {
                    let id = job.task_id.clone();
                    if let Err(e) = this.process(job).await {
                        // A task canceled while its step ran refuses the
                        // step's writes (its upstream state is saved only
                        // while it is open): the step is simply abandoned.
                        let ended = matches!(
                            this.st.store.task_updated_at(&id).await,
                            Ok(Some((status, _))) if status.is_terminal()
                        );
                        if ended {
                            tracing::info!(task = %id, error = %e, "the task ended while its step ran (e.g. canceled); step abandoned");
                        } else {
                            tracing::warn!(task = %id, error = %e, "job step failed; it will be retried");
                        }
                    }
                    drop(permit);
                    this.st.runner_wakeup.notify_one();
                });
            }
        }
        total
    }

    async fn process(&self, job: LeasedJob) -> Result<(), ProviderError> {
        let st = &self.st;
        let Some(task) = st.store.get_task_unscoped(&job.task_id).await? else {
            return Ok(());
        };
        if task.status.is_terminal() {
            return Ok(());
        }
        if st.clock.now() >= task.deadline_at {
            fail(st, &task.id, timeout_error(&task)).await?;
            return Ok(());
        }
        let Some(provider) = st.providers.get(&job.provider) else {
            tracing::error!(task = %task.id, provider = %job.provider, "no such provider on this node");
            return Ok(());
        };
        let catalog = st.catalog.current();
        let Some(model) = catalog.get(&task.model) else {
            fail(
                st,
                &task.id,
                TaskError {
                    code: TaskErrorCode::GenerationFailed,
                    message: "the model left the catalog".into(),
                },
            )
            .await?;
            return Ok(());
        };

        let heartbeat = self.heartbeat(&task.id);
        let outcome = async {
            let mut reference_bytes = Vec::new();
            for r in &task.references {
                reference_bytes.push(
                    st.blobs
                        .get(&r.blob_key)
                        .await
                        .map_err(|e| ProviderError::Transient(e.to_string()))?,
                );
            }
            let mut ctx = ProviderCtx {
                task: &task,
                model,
                upstream: st.store.load_upstream(&task.id).await?,
                reference_urls: task
                    .references
                    .iter()
                    .map(|r| st.links.sign_ref(&r.blob_key))
                    .collect(),
                reference_bytes,
                callback_url: Some(self::callbacks::url(
                    &st.config.public_base_url,
                    &st.links.key,
                    &job.provider,
                    &task.id,
                )),
                decode_budget: st.files.decode_budget(),
                store: &st.store,
            };
            // A callback from before this step is answered by this step's own query.
            st.nudges.take(&task.id);
            provider.advance(&mut ctx).await
        }
        .await;
        heartbeat.abort();

        let now = st.clock.now();
        match outcome {
            Ok(Progress::Running { poll_after }) => {
                self.to_processing(&task).await?;
                st.store
                    .release_job(&task.id, &self.worker, now.plus(poll_after))
                    .await?;
                // A callback that came while we held the lease could not move the job
                // (our release just set its time): honour it now.
                if st.nudges.take(&task.id) {
                    st.store.wake_job(&task.id, st.clock.now()).await?;
                    st.runner_wakeup.notify_one();
                }
            }
            Ok(Progress::Deferred {
                retry_after,
                reason,
            }) => {
                tracing::info!(task = %task.id, %reason, "provider deferred the task; it stays queued");
                st.store
                    .release_job(&task.id, &self.worker, now.plus(retry_after))
                    .await?;
            }
            Ok(Progress::Failed(error)) => {
                fail(st, &task.id, error).await?;
            }
            Ok(Progress::Finished(output)) => {
                self.to_processing(&task).await?;
                match self.finish(&task, output).await {
                    Ok(()) => {}
                    Err(ProviderError::Transient(msg)) => {
                        // The provider is asked again (and may hand out a fresh URL).
                        let backoff = backoff(job.attempts);
                        tracing::warn!(task = %task.id, error = %msg, retry_in_ms = backoff.as_millis() as u64, "storing the output failed; retrying");
                        st.store
                            .release_job(&task.id, &self.worker, st.clock.now().plus(backoff))
                            .await?;
                    }
                    Err(e) => return Err(e),
                }
            }
            Err(ProviderError::Transient(msg)) => {
                let backoff = backoff(job.attempts);
                tracing::warn!(task = %task.id, attempts = job.attempts, error = %msg, retry_in_ms = backoff.as_millis() as u64, "transient provider error");
                st.store
                    .release_job(&task.id, &self.worker, now.plus(backoff))
                    .await?;
            }
            Err(e) => return Err(e),
        }
        Ok(())
    }

    async fn to_processing(&self, task: &Task) -> Result<(), ProviderError> {
        if task.status == TaskStatus::Queued
            && self
                .st
                .store
                .mark_processing(&task.id, self.st.clock.now())
                .await?
                == Transition::Won
        {
            self.st.events.changed(&task.id);
        }
        Ok(())
    }

    /// Copies the output into our storage, reads it back for its metadata,
    /// and only then marks the task succeeded.
    async fn finish(&self, task: &Task, output: Output) -> Result<(), ProviderError> {
        let st = &self.st;
        let (bytes, mime) = match output {
            Output::Bytes { bytes, mime_type } => (bytes, mime_type),
            Output::Url { url, mime_type } => {
                match self::fetch::download(
                    self.st.downloads.as_ref(),
                    &url,
                    self.cfg.max_output_bytes,
                )
                .await
                {
                    Ok(bytes) => (bytes, mime_type),
                    Err(self::fetch::FetchError::Transient(msg)) => {
                        return Err(ProviderError::Transient(msg));
                    }
                    Err(e) => {
                        // Final: the same URL gives the same file. The vendor's URL is
                        // not put in the caller-visible message.
                        tracing::error!(task = %task.id, error = %e, "the output cannot be stored");
                        fail(
                            st,
                            &task.id,
                            TaskError {
                                code: TaskErrorCode::GenerationFailed,
                                message: format!("the generated video cannot be stored: {e}"),
                            },
                        )
                        .await?;
                        return Ok(());
                    }
                }
            }
        };
        let ext = if mime == "video/mp4" { "mp4" } else { "bin" };
        let key = format!("results/{}/0.{ext}", task.id);
        let info = if mime == "video/mp4" {
            gengate_media::inspect_mp4(&bytes).ok()
        } else {
            None
        };
        let media = StoredMedia {
            blob_key: key.clone(),
            mime_type: mime,
            width: info.as_ref().map(|i| i.width),
            height: info.as_ref().map(|i| i.height),
            duration_seconds: info
                .as_ref()
                .map(|i| (i.video_duration_seconds * 1000.0).round() / 1000.0),
            size_bytes: bytes.len() as u64,
            has_audio: info.as_ref().is_some_and(|i| i.has_audio),
        };
        st.blobs
            .put(&key, bytes)
            .await
            .map_err(|e| ProviderError::Transient(format!("storing the output: {e}")))?;
        match st
            .store
            .succeed_task(
                &task.id,
                &StoredResult { media: vec![media] },
                st.clock.now(),
            )
            .await?
        {
            Transition::Won => {
                metrics::counter!("gengate_tasks_finished_total", "status" => "succeeded")
                    .increment(1);
                st.events.changed(&task.id);
            }
            Transition::Lost => {
                // Someone else ended it (deadline, another worker): our copy is garbage.
                let _ = st.blobs.delete(&key).await;
            }
        }
        Ok(())
    }

    /// Renews the lease while a step runs, so a long render is not taken over.
    fn heartbeat(&self, id: &TaskId) -> tokio::task::JoinHandle<()> {
        let st = self.st.clone();
        let id = id.clone();
        let worker = self.worker.clone();
        let lease = self.cfg.lease;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(lease / 3).await;
                match st
                    .store
                    .renew_lease(&id, &worker, st.clock.now().plus(lease))
                    .await
                {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(e) => tracing::warn!(task = %id, error = %e, "lease renewal failed"),
                }
            }
        })
    }
}

pub fn timeout_error(task: &Task) -> TaskError {
    TaskError {
        code: TaskErrorCode::GenerationTimeout,
        message: format!(
            "the task did not finish by its deadline ({})",
            task.deadline_at.rfc3339()
        ),
    }
}

/// Fails a task (refunding it exactly once) and wakes its long polls.
pub async fn fail(
    st: &Engine,
    id: &TaskId,
    error: TaskError,
) -> Result<Transition, gengate_store::StoreError> {
    let code = format!("{:?}", error.code);
    let t = st.store.fail_task(id, &error, st.clock.now()).await?;
    if t == Transition::Won {
        metrics::counter!("gengate_tasks_finished_total", "status" => "failed", "code" => code)
            .increment(1);
        st.events.changed(id);
    }
    Ok(t)
}

fn backoff(attempts: i64) -> Duration {
    let exp = attempts.clamp(1, 8) as u32;
    let base = Duration::from_millis(500) * 2u32.pow(exp - 1);
    let jitter = rand::random_range(0..=base.as_millis() as u64 / 4);
    (base + Duration::from_millis(jitter)).min(Duration::from_secs(120))
}
