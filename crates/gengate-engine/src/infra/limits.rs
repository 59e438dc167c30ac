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
        let n = NonZeroU32::new(per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
        let limiter = Arc::new(
            RateLimiter::direct(Quota::per_minute(n))
                .with_middleware::<StateInformationMiddleware>(),
        );
        self.buckets.insert(k, (per_minute, limiter.clone()));
        limiter
    }
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
