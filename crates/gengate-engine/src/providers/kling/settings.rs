//! The Kling flags (`GENGATE_KLING_*`), and building the provider from them: one account
//! from the key flags, or several from the accounts file (`--kling-accounts`).

use super::accounts::{self, AccountConfig};
use super::pool::{Account, DEFAULT_ACCOUNT, Pool};
use super::{KlingProvider, KlingSettings};
use crate::infra::connectors::Connectors;
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
    /// A TOML file of Kling accounts (`[[account]]` tables: name, access_key or
    /// access_key_env, secret_key or secret_key_env, base_url, max_in_flight, weight);
    /// replaces the key flags. See docs/KLING.md.
    #[arg(long, env = "GENGATE_KLING_ACCOUNTS")]
    pub kling_accounts: Option<std::path::PathBuf>,
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

/// The accounts this node uses: the file's, or one named `default` from the key flags.
/// None: Kling is not configured.
pub fn accounts(args: &KlingArgs) -> anyhow::Result<Option<Vec<AccountConfig>>> {
    if let Some(path) = &args.kling_accounts {
        if args.kling_access_key.is_some() || args.kling_secret_key.is_some() {
            anyhow::bail!(
                "GENGATE_KLING_ACCOUNTS and GENGATE_KLING_ACCESS_KEY/SECRET_KEY are both set: put every account in the file"
            );
        }
        return accounts::load(path).map(Some);
    }
    let Some((access, secret)) = args.credentials() else {
        if args.kling_access_key.is_some() || args.kling_secret_key.is_some() {
            tracing::warn!(
                "only one of GENGATE_KLING_ACCESS_KEY / GENGATE_KLING_SECRET_KEY is set; kling-3-0 runs on the sandbox"
            );
        }
        return Ok(None);
    };
    let base_url = url::Url::parse(&args.kling_base_url)
        .with_context(|| format!("GENGATE_KLING_BASE_URL {:?}", args.kling_base_url))?;
    Ok(Some(vec![AccountConfig {
        name: DEFAULT_ACCOUNT.into(),
        access_key: access,
        secret_key: secret,
        base_url,
        max_in_flight: args.kling_max_in_flight,
        weight: 1,
    }]))
}

/// The providers of this node (the sandbox plus Kling when configured) and where the
/// catalog's `kling` family goes.
pub fn wire(
    args: &KlingArgs,
    connectors: &dyn Connectors,
    sandbox: Arc<dyn Provider>,
    clock: SharedClock,
    unhealthy_fail_after: Duration,
) -> anyhow::Result<(Vec<Arc<dyn Provider>>, &'static str)> {
    let Some(configs) = accounts(args)? else {
        return Ok((vec![sandbox], "sandbox"));
    };
    let http = connectors
        .api_http()
        .context("building the Kling HTTP client")?;
    let retry = Duration::from_millis(args.kling_retry_ms.max(10));
    let poll = Duration::from_millis(args.kling_poll_ms.max(10));
    let mut pool = Vec::with_capacity(configs.len());
    for c in configs {
        // Names and base URLs only: the keys never reach a log line.
        tracing::info!(account = %c.name, base_url = %c.base_url, max_in_flight = c.max_in_flight, weight = c.weight, "kling account configured");
        let client = gengate_kling::KlingClient::new(
            c.base_url.clone(),
            gengate_kling::KlingCredentials::new(c.access_key, c.secret_key),
            http.clone(),
        )
        .with_account_name(&c.name);
        pool.push(Account::new(
            c.name,
            client,
            c.max_in_flight,
            c.weight,
            retry,
        ));
    }
    // A waiting task looks again every `retry` (+ jitter); one that has not for a while
    // has ended or moved to another node, and gives up its place in the line.
    let line_stale_after = (retry * 4).max(Duration::from_secs(2));
    let kling = KlingProvider::new(
        Pool::new(pool, line_stale_after),
        KlingSettings {
            concurrency: args.kling_concurrency,
            poll,
            retry,
            unhealthy_fail_after,
        },
        clock,
    );
    Ok((vec![sandbox, Arc::new(kling)], super::NAME))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(access: Option<&str>, secret: Option<&str>, file: Option<&str>) -> KlingArgs {
        KlingArgs {
            kling_access_key: access.map(str::to_owned),
            kling_secret_key: secret.map(str::to_owned),
            kling_base_url: "http://127.0.0.1:9400/".into(),
            kling_concurrency: 16,
            kling_max_in_flight: 3,
            kling_poll_ms: 5_000,
            kling_retry_ms: 1_000,
            kling_accounts: file.map(Into::into),
        }
    }

    #[test]
    fn the_key_flags_make_one_account_named_default() {
        let a = accounts(&args(Some("ak"), Some("sk"), None))
            .expect("valid")
            .expect("configured");
        assert_eq!(a.len(), 1);
        assert_eq!(
            (a[0].name.as_str(), a[0].max_in_flight, a[0].weight),
            (DEFAULT_ACCOUNT, 3, 1)
        );
        assert_eq!(a[0].base_url.as_str(), "http://127.0.0.1:9400/");
        assert!(
            accounts(&args(Some("ak"), None, None))
                .expect("ok")
                .is_none()
        );
        assert!(accounts(&args(None, None, None)).expect("ok").is_none());
    }

    #[test]
    fn a_file_and_key_flags_together_are_refused() {
        let e = accounts(&args(Some("ak"), Some("sk"), Some("/nonexistent.toml")))
            .expect_err("ambiguous");
        assert!(e.to_string().contains("both set"), "{e}");
        let e = accounts(&args(None, None, Some("/nonexistent.toml"))).expect_err("missing");
        assert!(e.to_string().contains("/nonexistent.toml"), "{e}");
    }
}
