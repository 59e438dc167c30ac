//! Request budgets shared by every node through Redis (`--redis-url`).
//!
//! One round trip per request: a GCRA script (`EVALSHA`, loaded on first
//! use) decides and returns what the `RateLimit-*` and `Retry-After`
//! headers need, on Redis's own clock, so the nodes' clocks do not matter.
//! Its key expires when the bucket would be full again, so idle keys leave
//! nothing behind.
//!
//! When Redis cannot answer within `--redis-timeout-ms` the request is
//! decided by this node alone, on a bucket of `budget ÷ --expected-nodes`
//! (never unlimited, never an error to the caller). Redis is then left alone
//! for `RETRY_EVERY` so an unreachable server does not add its timeout to
//! every request; the first answer after that switches sharing back on.
//! Each switch is logged once; every failed call counts in
//! `gengate_ratelimit_backend_errors_total`.

use crate::infra::limits::{Decision, Limiter, LocalLimiter};
use async_trait::async_trait;
use gengate_core::scope::RequestClass;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::OnceCell;

/// GCRA over a "theoretical arrival time" (TAT, ms on Redis's clock, kept
/// with µs precision). A bucket of `limit` refilled at `limit` per minute:
/// one request costs `T = 60000 / limit` ms of the 60000 ms the bucket
/// holds. Returns {allowed, remaining, ms until full, ms until the next
/// request is admitted}.
const GCRA: &str = r"
local limit = tonumber(ARGV[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local T = 60000 / limit
local cap = 60000
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local new_tat = tat + T
if new_tat - now > cap + 0.001 then
  return {0, 0, math.ceil(tat - now), math.ceil(new_tat - cap - now)}
end
redis.call('SET', KEYS[1], string.format('%.3f', new_tat), 'PX', math.ceil(new_tat - now) + 1)
local remaining = math.floor((cap - (new_tat - now)) / T + 0.000001)
return {1, remaining, math.ceil(new_tat - now), 0}
";

/// How long Redis is left alone after a failed call.
const RETRY_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct RedisLimiterConfig {
    pub url: String,
    /// Longest wait for Redis on one request (connecting included).
    pub timeout: Duration,
    /// API nodes sharing the budget: each takes this share while Redis is away.
    pub expected_nodes: u32,
}

pub struct RedisLimiter {
    client: redis::Client,
    conn: OnceCell<ConnectionManager>,
    script: redis::Script,
    fallback: LocalLimiter,
    cfg: RedisLimiterConfig,
    epoch: Instant,
    /// Redis is not asked before this many ms after `epoch`.
    retry_at_ms: AtomicU64,
    degraded: AtomicBool,
}

impl RedisLimiter {
    /// Checks the URL only; the connection is made on first use (and again
    /// after any failure), so a node starts even while Redis is down.
    pub fn new(cfg: RedisLimiterConfig) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(cfg.url.as_str())?;
        metrics::gauge!("gengate_ratelimit_backend_up").set(1.0);
        Ok(Self {
            client,
            conn: OnceCell::new(),
            script: redis::Script::new(GCRA),
            fallback: LocalLimiter::new(),
            cfg,
            epoch: Instant::now(),
            retry_at_ms: AtomicU64::new(0),
            degraded: AtomicBool::new(false),
        })
    }

    /// True while requests are decided per node (Redis unreachable).
    pub fn degraded(&self) -> bool {
        self.degraded.load(Ordering::Relaxed)
    }

    pub fn expected_nodes(&self) -> u32 {
        self.cfg.expected_nodes
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    async fn connection(&self) -> Result<ConnectionManager, redis::RedisError> {
        let conn = self
            .conn
            .get_or_try_init(|| {
                let cfg = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(self.cfg.timeout))
                    .set_response_timeout(Some(self.cfg.timeout))
                    .set_number_of_retries(1);
                ConnectionManager::new_with_config(self.client.clone(), cfg)
            })
            .await?;
        Ok(conn.clone())
    }

    async fn ask_redis(
        &self,
        key_id: &str,
        class: RequestClass,
        limit: u32,
    ) -> Result<Decision, String> {
        let key = format!("gengate:rl:{}:{key_id}", class.as_str());
        let call = async {
            let mut conn = self.connection().await?;
            self.script
                .key(key)
                .arg(limit)
                .invoke_async::<(i64, i64, i64, i64)>(&mut conn)
                .await
        };
        let (allowed, remaining, reset_ms, retry_ms) = tokio::time::timeout(self.cfg.timeout, call)
            .await
            .map_err(|_| format!("no answer within {} ms", self.cfg.timeout.as_millis()))?
            .map_err(|e| e.to_string())?;
        Ok(decision_from_script(
            limit, allowed, remaining, reset_ms, retry_ms,
        ))
    }

    fn on_error(&self, error: &str) {
        metrics::counter!("gengate_ratelimit_backend_errors_total").increment(1);
        self.retry_at_ms.store(
            self.now_ms() + RETRY_EVERY.as_millis() as u64,
            Ordering::Relaxed,
        );
        if !self.degraded.swap(true, Ordering::Relaxed) {
            metrics::gauge!("gengate_ratelimit_backend_up").set(0.0);
            tracing::warn!(
                error = %error,
                expected_nodes = self.cfg.expected_nodes,
                "Redis rate limiter unreachable: each node now admits budget / expected nodes on its own until it answers again"
            );
        }
    }

    fn on_success(&self) {
        if self.degraded.swap(false, Ordering::Relaxed) {
            metrics::gauge!("gengate_ratelimit_backend_up").set(1.0);
            tracing::info!("Redis rate limiter answers again: budgets are shared across nodes");
        }
    }
}

/// The node's share of a budget while Redis is away: never more than the
/// budget divided among the nodes, never nothing.
pub fn node_share(per_minute: u32, expected_nodes: u32) -> u32 {
    (per_minute / expected_nodes.max(1)).max(1)
}

fn decision_from_script(
    limit: u32,
    allowed: i64,
    remaining: i64,
    reset_ms: i64,
    retry_ms: i64,
) -> Decision {
    let secs = |ms: i64| (u64::try_from(ms).unwrap_or(0)).div_ceil(1000);
    let allowed = allowed == 1;
    Decision {
        allowed,
        limit,
        remaining: u32::try_from(remaining.clamp(0, i64::from(limit))).unwrap_or(0),
        reset_secs: secs(reset_ms),
        retry_after_secs: (!allowed).then(|| secs(retry_ms).max(1)),
    }
}

#[async_trait]
impl Limiter for RedisLimiter {
    async fn check(&self, key_id: &str, class: RequestClass, per_minute: u32) -> Decision {
        let limit = per_minute.max(1);
        if self.now_ms() >= self.retry_at_ms.load(Ordering::Relaxed) {
            match self.ask_redis(key_id, class, limit).await {
                Ok(d) => {
                    self.on_success();
                    return d;
                }
                Err(e) => self.on_error(&e),
            }
        }
        self.fallback
            .check(key_id, class, node_share(limit, self.cfg.expected_nodes))
            .await
    }

    fn describe(&self) -> serde_json::Value {
        serde_json::json!({
            "backend": "redis",
            "shared": !self.degraded(),
            "expected_nodes": self.cfg.expected_nodes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_takes_its_share_and_never_nothing() {
        assert_eq!(node_share(600, 2), 300);
        assert_eq!(node_share(600, 1), 600);
        assert_eq!(node_share(600, 0), 600);
        assert_eq!(node_share(5, 3), 1);
        assert_eq!(node_share(1, 4), 1);
    }

    #[test]
    fn the_scripts_answer_becomes_the_headers() {
        let ok = decision_from_script(60, 1, 59, 1000, 0);
        assert_eq!(
            ok,
            Decision {
                allowed: true,
                limit: 60,
                remaining: 59,
                reset_secs: 1,
                retry_after_secs: None
            }
        );
        let refused = decision_from_script(60, 0, 0, 60_000, 1);
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after_secs, Some(1));
        assert_eq!(refused.reset_secs, 60);
        // Out-of-range numbers are clamped, not trusted.
        let odd = decision_from_script(10, 1, 99, -5, 0);
        assert_eq!((odd.remaining, odd.reset_secs), (10, 0));
    }
}
