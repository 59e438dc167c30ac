//! API key records kept in process for a short time, so an authenticated
//! request costs no store query for its key once the key has been seen.
//!
//! The price is staleness, bounded by the TTL: a key revoked, expired early or
//! re-scoped by the operator (from any node or the CLI) keeps its old record
//! here for at most that long. Only found keys are kept; a miss always asks
//! the store, so the cache cannot be filled by guessing prefixes. The secret
//! itself is still hashed and compared on every request by the caller: the
//! cache holds records, never a decision that a presented key is valid.

use gengate_core::ids::ApiKeyId;
use gengate_store::{ApiKeyRecord, StoreResult};
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct KeyCache {
    ttl: Duration,
    capacity: usize,
    entries: Mutex<HashMap<String, (Instant, Arc<ApiKeyRecord>)>>,
    /// Moved by every `clear`: a record read before a clear is not kept after it, or
    /// a revocation that raced the read would be forgotten until the TTL.
    generation: std::sync::atomic::AtomicU64,
    /// When this node last wrote each key's `last_used_at` (see [`KeyCache::due_for_touch`]).
    touched: Mutex<HashMap<ApiKeyId, Instant>>,
}

/// How often a key's `last_used_at` is written, per node: the console shows it
/// to the minute, and authentication must not become a write per request.
pub const TOUCH_EVERY: Duration = Duration::from_secs(60);

impl KeyCache {
    /// `ttl` zero turns the cache off. `capacity` bounds the number of keys
    /// held; past it, expired entries are dropped, and if none are, all are.
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            ttl,
            capacity: capacity.max(1),
            entries: Mutex::new(HashMap::new()),
            generation: std::sync::atomic::AtomicU64::new(0),
            touched: Mutex::new(HashMap::new()),
        }
    }

    /// True (and remembered) when `id`'s last-used time was not written by
    /// this node in the last [`TOUCH_EVERY`]. Bounded like the cache itself.
    pub fn due_for_touch(&self, id: &ApiKeyId, now: Instant) -> bool {
        let mut touched = self
            .touched
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if touched
            .get(id)
            .is_some_and(|at| now.saturating_duration_since(*at) < TOUCH_EVERY)
        {
            return false;
        }
        if touched.len() >= self.capacity {
            touched.retain(|_, at| now.saturating_duration_since(*at) < TOUCH_EVERY);
            if touched.len() >= self.capacity {
                touched.clear();
            }
        }
        touched.insert(id.clone(), now);
        true
    }

    /// Drops the cached record of `prefix` (its key was just revoked through
    /// this node, which then refuses it at once; other nodes within the TTL).
    pub fn forget(&self, prefix: &str) {
        self.lock().remove(prefix);
    }

    /// Drops every cached record: some key or account changed somewhere (the
    /// auth epoch moved, or this node made the change).
    pub fn clear(&self) {
        let mut entries = self.lock();
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        entries.clear();
    }

    /// The record for `prefix`: from the cache when fetched less than the TTL
    /// before `now`, else from `load` (and kept when found).
    pub async fn get_or_load<F, Fut>(
        &self,
        prefix: &str,
        now: Instant,
        load: F,
    ) -> StoreResult<Option<Arc<ApiKeyRecord>>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = StoreResult<Option<ApiKeyRecord>>>,
    {
        if self.ttl.is_zero() {
            return Ok(load().await?.map(Arc::new));
        }
        if let Some(hit) = self.fresh(prefix, now) {
            return Ok(Some(hit));
        }
        let generation = self.generation.load(std::sync::atomic::Ordering::SeqCst);
        let Some(record) = load().await? else {
            // Drop a stale entry so a deleted key does not linger.
            self.lock().remove(prefix);
            return Ok(None);
        };
        let record = Arc::new(record);
        let mut entries = self.lock();
        // Cleared while we read: the record may predate the change that cleared the
        // cache. Answer this request with it (it was read after the request arrived) but
        // keep nothing.
        if self.generation.load(std::sync::atomic::Ordering::SeqCst) != generation {
            return Ok(Some(record));
        }
        if entries.len() >= self.capacity && !entries.contains_key(prefix) {
            let ttl = self.ttl;
            entries.retain(|_, (at, _)| now.saturating_duration_since(*at) < ttl);
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        entries.insert(prefix.to_owned(), (now, record.clone()));
        Ok(Some(record))
    }

    fn fresh(&self, prefix: &str, now: Instant) -> Option<Arc<ApiKeyRecord>> {
        let entries = self.lock();
        let (at, record) = entries.get(prefix)?;
        (now.saturating_duration_since(*at) < self.ttl).then(|| record.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, Arc<ApiKeyRecord>)>> {
        // A panic while holding the lock cannot leave the map half-written
        // (every mutation is one call), so a poisoned lock is still usable.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_record_read_across_a_clear_is_not_kept() {
        let cache = KeyCache::new(Duration::from_secs(60), 10);
        let t0 = Instant::now();
        // The clear lands while the store read is in flight.
        let got = cache
            .get_or_load("gg_live_aaaa", t0, || async {
                cache.clear();
                Ok(Some(record("gg_live_aaaa")))
            })
            .await
            .expect("load");
        assert!(got.is_some(), "the request that read it is answered");
        assert_eq!(cache.len(), 0, "but the record is not kept");
        cache
            .get_or_load("gg_live_aaaa", t0, || async {
                Ok(Some(record("gg_live_aaaa")))
            })
            .await
            .expect("load");
        assert_eq!(cache.len(), 1, "a read with no clear in between is kept");
    }
    use gengate_core::Timestamp;
    use gengate_core::ids::AccountId;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn record(prefix: &str) -> ApiKeyRecord {
        ApiKeyRecord {
            id: ApiKeyId::generate(),
            account_id: AccountId::generate(),
            name: "k".into(),
            visible_prefix: prefix.into(),
            key_hash: "h".into(),
            scopes: vec![],
            rates: Default::default(),
            created_at: Timestamp::from_millis(0),
            expires_at: None,
            revoked_at: None,
            spend_limit: None,
            last_used_at: None,
            account_suspended: false,
        }
    }

    struct Counting(AtomicUsize);

    impl Counting {
        async fn load(&self, prefix: &str, found: bool) -> StoreResult<Option<ApiKeyRecord>> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(found.then(|| record(prefix)))
        }
        fn calls(&self) -> usize {
            self.0.load(Ordering::SeqCst)
        }
    }

    #[tokio::test]
    async fn a_key_seen_within_the_ttl_is_not_loaded_again() {
        let cache = KeyCache::new(Duration::from_secs(2), 100);
        let store = Counting(AtomicUsize::new(0));
        let t0 = Instant::now();
        let a = cache
            .get_or_load("gg_live_aaaa", t0, || store.load("gg_live_aaaa", true))
            .await
            .unwrap()
            .unwrap();
        let b = cache
            .get_or_load("gg_live_aaaa", t0 + Duration::from_millis(1999), || {
                store.load("gg_live_aaaa", true)
            })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(store.calls(), 1);
        assert_eq!(a.id, b.id);
    }

    #[tokio::test]
    async fn an_entry_older_than_the_ttl_is_loaded_again() {
        let cache = KeyCache::new(Duration::from_secs(2), 100);
        let store = Counting(AtomicUsize::new(0));
        let t0 = Instant::now();
        for at in [t0, t0 + Duration::from_secs(2)] {
            cache
                .get_or_load("p", at, || store.load("p", true))
                .await
                .unwrap();
        }
        assert_eq!(store.calls(), 2);
    }

    #[tokio::test]
    async fn misses_are_never_kept_and_remove_a_stale_entry() {
        let cache = KeyCache::new(Duration::from_secs(2), 100);
        let store = Counting(AtomicUsize::new(0));
        let t0 = Instant::now();
        for _ in 0..3 {
            let r = cache
                .get_or_load("nope", t0, || store.load("nope", false))
                .await
                .unwrap();
            assert!(r.is_none());
        }
        assert_eq!(store.calls(), 3);
        assert_eq!(cache.len(), 0);
        cache
            .get_or_load("gone", t0, || store.load("gone", true))
            .await
            .unwrap();
        let later = t0 + Duration::from_secs(3);
        let r = cache
            .get_or_load("gone", later, || store.load("gone", false))
            .await
            .unwrap();
        assert!(r.is_none());
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn last_used_is_written_at_most_once_a_minute_per_key() {
        let cache = KeyCache::new(Duration::from_secs(2), 100);
        let (a, b) = (ApiKeyId::generate(), ApiKeyId::generate());
        let t0 = Instant::now();
        assert!(cache.due_for_touch(&a, t0));
        assert!(!cache.due_for_touch(&a, t0 + Duration::from_secs(59)));
        assert!(cache.due_for_touch(&b, t0 + Duration::from_secs(1)));
        assert!(cache.due_for_touch(&a, t0 + TOUCH_EVERY));
    }

    #[tokio::test]
    async fn a_zero_ttl_always_asks_the_store() {
        let cache = KeyCache::new(Duration::ZERO, 100);
        let store = Counting(AtomicUsize::new(0));
        let t0 = Instant::now();
        for _ in 0..3 {
            cache
                .get_or_load("p", t0, || store.load("p", true))
                .await
                .unwrap();
        }
        assert_eq!(store.calls(), 3);
        assert_eq!(cache.len(), 0);
    }

    #[tokio::test]
    async fn the_cache_never_holds_more_than_its_capacity() {
        let cache = KeyCache::new(Duration::from_secs(60), 3);
        let store = Counting(AtomicUsize::new(0));
        let t0 = Instant::now();
        for i in 0..10 {
            let p = format!("p{i}");
            cache
                .get_or_load(&p, t0, || store.load(&p, true))
                .await
                .unwrap();
            assert!(cache.len() <= 3, "holds {}", cache.len());
        }
        // The newest key is always kept.
        cache
            .get_or_load("p9", t0, || store.load("p9", true))
            .await
            .unwrap();
        assert_eq!(store.calls(), 10);
    }
}
