//! The built-in sandbox provider: renders a real H.264 MP4 offline with the
//! requested shape, so everything runs with no vendor account. Test controls
//! in the prompt, like a payment sandbox's test cards:
//! `[sandbox:fail]`, `[sandbox:moderate]`, `[sandbox:slow=N]`.

use super::{Output, Progress, Provider, ProviderCtx, ProviderError};
use async_trait::async_trait;
use bytes::Bytes;
use gengate_core::generation::{TaskError, TaskErrorCode};
use gengate_core::kling::KlingParams;
use serde_json::json;
use std::time::Duration;

/// The sandbox's provider name (tasks' `provider` column, routes).
pub const NAME: &str = "sandbox";

pub struct SandboxProvider {
    concurrency: usize,
    clock: gengate_core::clock::SharedClock,
}

impl SandboxProvider {
    pub fn new(concurrency: usize, clock: gengate_core::clock::SharedClock) -> Self {
        Self {
            concurrency: concurrency.max(1),
            clock,
        }
    }
}

/// The controls found in a prompt.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Controls {
    pub fail: bool,
    pub moderate: bool,
    pub slow_secs: u64,
}

pub fn controls(prompt: &str) -> Controls {
    let mut c = Controls::default();
    let mut rest = prompt;
    while let Some(i) = rest.find("[sandbox:") {
        let after = &rest[i + "[sandbox:".len()..];
        let Some(end) = after.find(']') else { break };
        let tag = &after[..end];
        match tag {
            "fail" => c.fail = true,
            "moderate" => c.moderate = true,
            t => {
                if let Some(n) = t
                    .strip_prefix("slow=")
                    .and_then(|n| n.trim().parse::<u64>().ok())
                {
                    c.slow_secs = n.min(3600);
                }
            }
        }
        rest = &after[end..];
    }
    c
}

#[async_trait]
impl Provider for SandboxProvider {
    fn name(&self) -> &'static str {
        NAME
    }

    /// Nothing leaves the process: a queued or rendering task can always be
    /// stopped (a render already running finishes and is thrown away, since
    /// the task's success is a compare-and-set it then loses).
    fn cancelable(&self, _upstream: Option<&serde_json::Value>) -> bool {
        true
    }

    fn concurrency(&self) -> usize {
        self.concurrency
    }

    async fn advance(&self, ctx: &mut ProviderCtx<'_>) -> Result<Progress, ProviderError> {
        let c = controls(ctx.task.prompt.as_str());
        let now = self.clock.now();
        // The start time is saved once, so `slow=N` counts from the first
        // attempt even across restarts.
        let ready_at = match ctx
            .upstream
            .as_ref()
            .and_then(|u| u.get("ready_at_ms"))
            .and_then(|v| v.as_i64())
        {
            Some(ms) => ms,
            None => {
                let ready = now.as_millis() + i64::try_from(c.slow_secs * 1000).unwrap_or(0);
                ctx.save_upstream(json!({"state": "rendering", "ready_at_ms": ready}))
                    .await?;
                ready
            }
        };
        if now.as_millis() < ready_at {
            let wait =
                Duration::from_millis(u64::try_from(ready_at - now.as_millis()).unwrap_or(0));
            return Ok(Progress::Running {
                poll_after: wait.min(Duration::from_secs(1)),
            });
        }
        if c.moderate {
            return Ok(Progress::Failed(TaskError {
                code: TaskErrorCode::ContentRejected,
                message: "the sandbox rejected this prompt ([sandbox:moderate])".into(),
            }));
        }
        if c.fail {
            return Ok(Progress::Failed(TaskError {
                code: TaskErrorCode::GenerationFailed,
                message: "the sandbox failed this task on request ([sandbox:fail])".into(),
            }));
        }
        let params = KlingParams::from_params(&ctx.task.params)
            .map_err(|e| ProviderError::Transient(e.to_string()))?;
        let (width, height) = params.resolution();
        let mut references = Vec::new();
        for bytes in &ctx.reference_bytes {
            // Under the node's decode budget, like uploads: a busy budget is
            // a transient error and the job is retried after its back-off.
            let limits = gengate_media::ImageLimits::default();
            let cost = gengate_media::sniff(bytes)
                .ok_or_else(|| ProviderError::Transient("reference image: unknown type".into()))
                .and_then(|s| {
                    gengate_media::image_decode_cost(bytes, s.mime, &limits)
                        .map_err(|e| ProviderError::Transient(format!("reference image: {e}")))
                })?;
            let reservation = ctx
                .decode_budget
                .reserve(cost)
                .await
                .map_err(|e| ProviderError::Transient(format!("reference image: {e}")))?;
            let owned = bytes.clone();
            let (w, h, pixels) = tokio::task::spawn_blocking(move || {
                let _held = reservation;
                gengate_media::decode_rgb8(&owned, &limits)
            })
            .await
            .map_err(|e| ProviderError::Transient(format!("reference decode task failed: {e}")))?
            .map_err(|e| ProviderError::Transient(format!("reference image: {e}")))?;
            references.push(gengate_sandbox::RgbImage {
                width: w,
                height: h,
                pixels,
            });
        }
        let spec = gengate_sandbox::RenderSpec {
            width,
            height,
            fps: 24,
            duration_seconds: params.duration.seconds(),
            sound: params.sound,
            multi_shots: params.multi_shots,
            prompt: ctx.task.prompt.as_str().to_owned(),
            references,
        };
        let rendered = tokio::task::spawn_blocking(move || gengate_sandbox::render(&spec))
            .await
            .map_err(|e| ProviderError::Transient(format!("render task failed: {e}")))?;
        match rendered {
            Ok(r) => {
                // Counted and logged per task: the multi-node test checks
                // from these lines that no task is rendered twice.
                metrics::counter!("gengate_sandbox_renders_total").increment(1);
                tracing::info!(task = %ctx.task.id, bytes = r.mp4.len(), "sandbox render finished");
                Ok(Progress::Finished(Output::Bytes {
                    bytes: Bytes::from(r.mp4),
                    mime_type: "video/mp4".into(),
                }))
            }
            Err(e) => Ok(Progress::Failed(TaskError {
                code: TaskErrorCode::GenerationFailed,
                message: format!("sandbox render failed: {e}"),
            })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_read_from_the_prompt() {
        assert_eq!(controls("a cat"), Controls::default());
        assert_eq!(
            controls("x [sandbox:fail] y"),
            Controls {
                fail: true,
                ..Default::default()
            }
        );
        assert_eq!(
            controls("[sandbox:slow=3][sandbox:moderate]"),
            Controls {
                moderate: true,
                slow_secs: 3,
                fail: false
            }
        );
        assert_eq!(
            controls("[sandbox:slow=abc] [sandbox:"),
            Controls::default()
        );
    }
}
