//! A request's hold on its `Idempotency-Key`: scope account + method +
//! path, fingerprint of the canonical body. The store decides Started /
//! Replay / Mismatch / InFlight atomically; a started request holds the key
//! under a lease that a heartbeat extends while it runs, and completes it
//! with its answer (in the create's own transaction, or here) or releases
//! it. The HTTP layer only reads the header and turns the outcome into a
//! response.

use crate::Engine;
use gengate_core::idempotency::{IdempotencyKey, fingerprint};
use gengate_core::ids::AccountId;
use gengate_store::{IdemBegin, IdemHolder, IdemScope, StoreError, StoredResponse};

/// A request's hold on its idempotency key. While it exists a heartbeat
/// extends the hold's lease; dropped (the request ended or was cancelled),
/// the heartbeat stops and the lease runs out on its own.
pub struct IdemHold {
    pub scope: IdemScope,
    /// This request's token: every write on the hold is a compare-and-set on it.
    pub token: String,
    _heartbeat: Heartbeat,
}

/// Aborts the heartbeat task when the hold goes away.
struct Heartbeat(tokio::task::JoinHandle<()>);

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Heartbeat {
    fn start(st: &Engine, scope: IdemScope, token: String) -> Self {
        let store = st.store.clone();
        let clock = st.clock.clone();
        let lease = st.config.idempotency_lease;
        Self(tokio::spawn(async move {
            loop {
                // Three beats per lease: one lost beat never lets the hold lapse.
                tokio::time::sleep(lease / 3).await;
                match store
                    .idempotency_extend(&scope, &token, clock.now().plus(lease))
                    .await
                {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(key = %scope.key, "idempotency hold lost while its request runs (lease ran out and was taken over)");
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(key = %scope.key, error = %e, "idempotency heartbeat failed; trying again");
                    }
                }
            }
        }))
    }
}

/// What a request with an idempotency key does.
pub enum IdemStart {
    /// Run it: the key is held (or none was sent).
    Proceed(Option<IdemHold>),
    /// The first request with this key ended: answer what it answered.
    Replay(StoredResponse),
    /// The key was used with a different request.
    Mismatch,
    /// A request with this key is still running.
    InFlight,
}

/// Takes the key for this request, or says why not.
pub async fn begin(
    st: &Engine,
    account: &AccountId,
    key: Option<IdempotencyKey>,
    method: &str,
    path: &str,
    canonical_body: &[u8],
) -> Result<IdemStart, StoreError> {
    let Some(key) = key else {
        return Ok(IdemStart::Proceed(None));
    };
    let scope = IdemScope {
        account_id: account.clone(),
        method: method.to_owned(),
        path: path.to_owned(),
        key: key.as_str().to_owned(),
    };
    let fp = fingerprint(method, path, canonical_body);
    let now = st.clock.now();
    let holder = IdemHolder {
        node: st.node.node.clone(),
        boot: st.node.boot.clone(),
        token: gengate_core::ids::random_token(20),
    };
    Ok(
        match st
            .store
            .idempotency_begin(
                &scope,
                &fp,
                &holder,
                now,
                st.config.idempotency_lease,
                st.config.idempotency_keep,
            )
            .await?
        {
            IdemBegin::Started => IdemStart::Proceed(Some(IdemHold {
                _heartbeat: Heartbeat::start(st, scope.clone(), holder.token.clone()),
                scope,
                token: holder.token,
            })),
            IdemBegin::Replay(stored) => IdemStart::Replay(stored),
            IdemBegin::Mismatch => IdemStart::Mismatch,
            IdemBegin::InFlight => IdemStart::InFlight,
        },
    )
}

impl IdemHold {
    /// Stores the answer for replays and lets go of the key.
    pub async fn complete(self, st: &Engine, response: &StoredResponse) -> Result<(), StoreError> {
        let expires = st.clock.now().plus(st.config.idempotency_keep);
        let stored = st
            .store
            .idempotency_complete(&self.scope, &self.token, response, expires)
            .await?;
        if !stored {
            // Our lease ran out (the heartbeat could not reach the database)
            // and another request took the key: the work is done and
            // answered here, but this answer is not the one kept for replays.
            tracing::warn!(key = %self.scope.key, "idempotency hold was taken over before the answer was stored");
        }
        Ok(())
    }

    /// Lets go of the key without an answer: the request failed before
    /// changing anything, so a retry runs it anew.
    pub async fn release(self, st: &Engine) {
        if let Err(e) = st.store.idempotency_release(&self.scope, &self.token).await {
            tracing::warn!(error = %e, "could not release idempotency key; it frees itself when its lock lapses");
        }
    }
}

/// Ends a request's hold on its key (if it took one) with the request's
/// outcome: an answer is stored for replays as `kept` makes it (the status
/// and body a retry gets); an error stores nothing and frees the key, so a
/// retry runs afresh. Callers that completed the hold in their own
/// transaction (a create) only need the error half: `release_on_error`.
pub async fn settle<T, E>(
    st: &Engine,
    hold: Option<IdemHold>,
    outcome: Result<T, E>,
    kept: impl FnOnce(&T) -> Result<StoredResponse, E>,
) -> Result<T, E>
where
    E: From<StoreError>,
{
    match (outcome, hold) {
        (Ok(v), Some(h)) => {
            let answer = kept(&v)?;
            h.complete(st, &answer).await?;
            Ok(v)
        }
        (Err(e), Some(h)) => {
            h.release(st).await;
            Err(e)
        }
        (outcome, None) => outcome,
    }
}

/// The error half of `settle`, for work that stored its answer with the
/// hold in its own transaction: on success the hold (and its heartbeat) is
/// let go; on error the key is freed for a retry.
pub async fn release_on_error<T, E>(
    st: &Engine,
    hold: Option<IdemHold>,
    outcome: Result<T, E>,
) -> Result<T, E> {
    if outcome.is_err()
        && let Some(h) = hold
    {
        h.release(st).await;
    }
    outcome
}
