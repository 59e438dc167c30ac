//! The Kling flags (`GENGATE_KLING_*`), and building the provider from them.

use super::{KlingProvider, KlingSettings};
use crate::providers::Provider;
use anyhow::Context;
use clap::Args;
use gengate_core::clock::SharedClock;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, Args)]
pub struct KlingArgs {
    /// Kling access key. With the secret key set too, `kling-3-0` runs on Kling; without
    /// them it runs on the sandbox.
    #[arg(long, env = "GENGATE_KLING_ACCESS_KEY")]
    pub kling_access_key: Option<String>,
    /// Kling secret key (signs the API tokens; never logged).
    #[arg(long, env = "GENGATE_KLING_SECRET_KEY", hide_env_values = true)]
    pub kling_secret_key: Option<String>,
    /// Kling API base URL (api-singapore for the global service, api-beijing for mainland
    /// China, or `gengate dev fake-kling`).
    #[arg(
        long,
        env = "GENGATE_KLING_BASE_URL",
        default_value = "https://api-singapore.klingai.com"
    )]
    pub kling_base_url: String,
    /// Kling steps (submit, poll) this node runs at once.
    #[arg(long, env = "GENGATE_KLING_CONCURRENCY", default_value_t = 16)]
    pub kling_concurrency: usize,
    /// Most Kling tasks in flight upstream at once (the account's slots); 0 = learn it from
    /// Kling's 1303 answers.
    #[arg(long, env = "GENGATE_KLING_MAX_IN_FLIGHT", default_value_t = 0)]
    pub kling_max_in_flight: usize,
    /// Shortest interval between two status queries of one Kling task; it grows with the
    /// task's age (up to 6x). Callbacks make polling a fallback.
    #[arg(long, env = "GENGATE_KLING_POLL_MS", default_value_t = 5_000)]
    pub kling_poll_ms: u64,
    /// First retry delay after a Kling rate limit (1302) or outage (5xx, network); doubles
    /// per attempt, with jitter, up to 2 minutes.
    #[arg(long, env = "GENGATE_KLING_RETRY_MS", default_value_t = 1_000)]
    pub kling_retry_ms: u64,
}

impl KlingArgs {
    /// Both keys, when both are set and non-empty.
    pub fn credentials(&self) -> Option<(String, String)> {
        match (&self.kling_access_key, &self.kling_secret_key) {
            (Some(a), Some(s)) if !a.trim().is_empty() && !s.trim().is_empty() => {
                Some((a.trim().to_owned(), s.trim().to_owned()))
            }
            _ => None,
        }
    }
}

/// The providers of this node (the sandbox plus Kling when configured) and where the
/// catalog's `kling` family goes.
pub fn wire(
    args: &KlingArgs,
    sandbox: Arc<dyn Provider>,
    clock: SharedClock,
    unhealthy_fail_after: Duration,
) -> anyhow::Result<(Vec<Arc<dyn Provider>>, &'static str)> {
    let Some((access, secret)) = args.credentials() else {
        if args.kling_access_key.is_some() || args.kling_secret_key.is_some() {
            tracing::warn!(
                "only one of GENGATE_KLING_ACCESS_KEY / GENGATE_KLING_SECRET_KEY is set; kling-3-0 runs on the sandbox"
            );
        }
        return Ok((vec![sandbox], "sandbox"));
    };
    let base = url::Url::parse(&args.kling_base_url)
        .with_context(|| format!("GENGATE_KLING_BASE_URL {:?}", args.kling_base_url))?;
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .build()
        .context("building the Kling HTTP client")?;
    let client = gengate_kling::KlingClient::new(
        base.clone(),
        gengate_kling::KlingCredentials::new(access, secret),
        http,
    );
    tracing::info!(base_url = %base, "kling provider configured");
    let kling = KlingProvider::new(
        client,
        KlingSettings {
            concurrency: args.kling_concurrency,
            max_in_flight: args.kling_max_in_flight,
            poll: Duration::from_millis(args.kling_poll_ms.max(10)),
            retry: Duration::from_millis(args.kling_retry_ms.max(10)),
            unhealthy_fail_after,
        },
        clock,
    );
    Ok((vec![sandbox, Arc::new(kling)], super::NAME))
}
