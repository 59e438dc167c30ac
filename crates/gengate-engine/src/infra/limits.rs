//! Per-key request budgets: a token bucket per key and request class. The
//! `Limiter` trait hides where buckets live; `LocalLimiter` keeps them in
//! process (one node). A shared implementation (PostgreSQL or Redis) plugs in
//! behind the same trait so N nodes do not admit N times the budget.

use async_trait::async_trait;
use dashmap::DashMap;
use gengate_core::scope::RequestClass;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

type Bucket = RateLimiter<NotKeyed, InMemoryState, DefaultClock, StateInformationMiddleware>;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// Bucket size (requests per minute, all admitted at once when full).
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the bucket is full again.
    pub reset_secs: u64,
    /// Seconds until one more request is admitted (only when refused).
    pub retry_after_secs: Option<u64>,
}

#[async_trait]
pub trait Limiter: Send + Sync {
    async fn check(&self, key_id: &str, class: RequestClass, per_minute: u32) -> Decision;

    /// Where budgets are kept, for `/readyz` and the start log.
    fn describe(&self) -> serde_json::Value {
        serde_json::json!({"backend": "local"})
    }
}

#[derive(Default)]
pub struct LocalLimiter {
    buckets: DashMap<(String, RequestClass), (u32, Arc<Bucket>)>,
}

impl LocalLimiter {
    pub fn new() -> Self {
        Self::default()
    }

    fn bucket(&self, key_id: &str, class: RequestClass, per_minute: u32) -> Arc<Bucket> {
        let k = (key_id.to_owned(), class);
        if let Some(b) = self.buckets.get(&k)
            && b.0 == per_minute
        {
            return b.1.clone();
        }
        // Through the entry (one shard lock): concurrent first requests of a key must
        // share one bucket. Each inserting its own would admit a full burst apiece.
        let mut entry = self
            .buckets
            .entry(k)
            .or_insert_with(|| (per_minute, new_bucket(per_minute)));
        if entry.0 != per_minute {
            *entry = (per_minute, new_bucket(per_minute));
        }
        entry.1.clone()
    }
}

fn new_bucket(per_minute: u32) -> Arc<Bucket> {
    let n = NonZeroU32::new(per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
    Arc::new(
        RateLimiter::direct(Quota::per_minute(n)).with_middleware::<StateInformationMiddleware>(),
    )
}

#[async_trait]
impl Limiter for LocalLimiter {
    async fn check(&self, key_id: &str, class: RequestClass, per_minute: u32) -> Decision {
        let limit = per_minute.max(1);
        let bucket = self.bucket(key_id, class, limit);
        let per_token = Duration::from_secs(60) / limit;
        match bucket.check() {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                let reset = per_token * (limit - remaining.min(limit));
                Decision {
                    allowed: true,
                    limit,
                    remaining,
                    reset_secs: ceil_secs(reset),
                    retry_after_secs: None,
                }
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                Decision {
                    allowed: false,
                    limit,
                    remaining: 0,
                    reset_secs: ceil_secs(per_token * limit),
                    retry_after_secs: Some(ceil_secs(wait).max(1)),
                }
            }
        }
    }
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_first_requests_of_a_key_share_one_bucket() {
        // A fresh key per round: the race is in creating the bucket.
        let l = Arc::new(LocalLimiter::new());
        for round in 0..50 {
            let key = format!("k{round}");
            let gate = Arc::new(tokio::sync::Barrier::new(16));
            let tasks: Vec<_> = (0..16)
                .map(|_| {
                    let (l, key, gate) = (l.clone(), key.clone(), gate.clone());
                    tokio::spawn(async move {
                        gate.wait().await;
                        l.check(&key, RequestClass::Create, 5).await.allowed
                    })
                })
                .collect();
            let mut admitted = 0;
            for t in tasks {
                admitted += usize::from(t.await.expect("join"));
            }
            assert_eq!(
                admitted, 5,
                "round {round}: a budget of 5 admitted {admitted}"
            );
        }
    }

    #[tokio::test]
    async fn a_full_bucket_admits_its_size_then_refuses_with_retry_after() {
        let l = LocalLimiter::new();
        for i in 0..5 {
            let d = l.check("k", RequestClass::Create, 5).await;
            assert!(d.allowed);
            assert_eq!(d.remaining, 4 - i);
        }
        let d = l.check("k", RequestClass::Create, 5).await;
        assert!(!d.allowed);
        assert_eq!(d.remaining, 0);
        assert!(d.retry_after_secs.is_some_and(|s| (1..=12).contains(&s)));
        // Classes and keys have their own buckets.
        assert!(l.check("k", RequestClass::Read, 5).await.allowed);
        assert!(l.check("other", RequestClass::Create, 5).await.allowed);
    }
}
