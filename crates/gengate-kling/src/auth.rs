//! Kling's JWT: minted from the access/secret key pair, cached, re-minted on demand.

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};

use crate::error::KlingError;

/// How long a minted token is valid, per the spec.
pub const TOKEN_LIFETIME_SECS: i64 = 1800;
/// How long a token is reused: five minutes short of its lifetime so a token is never sent
/// right before it expires, even with a little clock skew.
pub const TOKEN_REUSE_SECS: i64 = 25 * 60;
/// `nbf` is set this far in the past so a Kling clock slightly behind ours still accepts it.
pub const NOT_BEFORE_SLACK_SECS: i64 = 5;

/// One Kling account's key pair.
#[derive(Clone, PartialEq, Eq)]
pub struct KlingCredentials {
    pub access_key: String,
    pub secret_key: String,
}

impl KlingCredentials {
    pub fn new(access_key: impl Into<String>, secret_key: impl Into<String>) -> Self {
        Self {
            access_key: access_key.into(),
            secret_key: secret_key.into(),
        }
    }
}

// Written by hand so the secret never reaches a log line.
impl fmt::Debug for KlingCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KlingCredentials")
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .finish()
    }
}

/// Unix time in seconds, injectable so token expiry can be tested without waiting.
pub trait Clock: Send + Sync + 'static {
    fn now_unix_secs(&self) -> i64;
}

/// The machine's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_unix_secs(&self) -> i64 {
        system_now_secs()
    }
}

pub(crate) fn system_now_secs() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(_) => 0,
    }
}

/// A clock that moves only when told to. Starts at the real time unless set.
#[derive(Debug)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn new(now_unix_secs: i64) -> Self {
        Self(AtomicI64::new(now_unix_secs))
    }

    pub fn starting_now() -> Self {
        Self::new(system_now_secs())
    }

    pub fn set(&self, now_unix_secs: i64) {
        self.0.store(now_unix_secs, Ordering::SeqCst);
    }

    pub fn advance(&self, secs: i64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_unix_secs(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// The claims Kling expects. Public so the fake (and tests) decode exactly what is sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KlingClaims {
    pub iss: String,
    pub exp: i64,
    pub nbf: i64,
}

/// Signs one token for `now` (unix seconds).
pub fn mint_token(creds: &KlingCredentials, now_unix_secs: i64) -> Result<String, KlingError> {
    let claims = KlingClaims {
        iss: creds.access_key.clone(),
        exp: now_unix_secs + TOKEN_LIFETIME_SECS,
        nbf: now_unix_secs - NOT_BEFORE_SLACK_SECS,
    };
    let header = Header::new(Algorithm::HS256);
    jsonwebtoken::encode(
        &header,
        &claims,
        &EncodingKey::from_secret(creds.secret_key.as_bytes()),
    )
    .map_err(|e| KlingError::Config(format!("cannot sign the kling token: {e}")))
}

struct Cached {
    token: String,
    minted_at: i64,
}

/// The token cache shared by every clone of a client.
pub(crate) struct TokenSource {
    creds: KlingCredentials,
    clock: Arc<dyn Clock>,
    cached: Mutex<Option<Cached>>,
}

impl TokenSource {
    pub(crate) fn new(creds: KlingCredentials, clock: Arc<dyn Clock>) -> Self {
        Self {
            creds,
            clock,
            cached: Mutex::new(None),
        }
    }

    pub(crate) fn creds(&self) -> &KlingCredentials {
        &self.creds
    }

    /// The cached token, or a fresh one when the cache is empty or stale.
    pub(crate) fn current(&self) -> Result<String, KlingError> {
        let now = self.clock.now_unix_secs();
        // A poisoned lock only means another thread panicked mid-update of a plain value;
        // the worst case is one extra mint.
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = cached.as_ref() {
            // `now < minted_at` means the clock went backwards: the token's nbf may now be
            // in the future, so mint again rather than trust it.
            if now >= c.minted_at && now - c.minted_at < TOKEN_REUSE_SECS {
                return Ok(c.token.clone());
            }
        }
        let token = mint_token(&self.creds, now)?;
        tracing::debug!(access_key = %self.creds.access_key, "minted a new kling token");
        *cached = Some(Cached {
            token: token.clone(),
            minted_at: now,
        });
        Ok(token)
    }

    /// Drops `used` from the cache after Kling refused it. Comparing with the token that was
    /// refused keeps concurrent callers from throwing away a token someone just minted.
    pub(crate) fn invalidate(&self, used: &str) {
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        if cached.as_ref().is_some_and(|c| c.token == used) {
            *cached = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation};

    fn creds() -> KlingCredentials {
        KlingCredentials::new("ak-test", "sk-test")
    }

    #[test]
    fn token_has_the_documented_header_and_claims() {
        let token = mint_token(&creds(), 1_700_000_000).expect("mint");
        let header = jsonwebtoken::decode_header(&token).expect("header");
        assert_eq!(header.alg, Algorithm::HS256);
        assert_eq!(header.typ.as_deref(), Some("JWT"));
        let mut v = Validation::new(Algorithm::HS256);
        v.validate_exp = false;
        v.required_spec_claims.clear();
        let data =
            jsonwebtoken::decode::<KlingClaims>(&token, &DecodingKey::from_secret(b"sk-test"), &v)
                .expect("verifies with the secret");
        assert_eq!(
            data.claims,
            KlingClaims {
                iss: "ak-test".into(),
                exp: 1_700_001_800,
                nbf: 1_699_999_995,
            }
        );
    }

    #[test]
    fn token_is_reused_for_25_minutes_then_reminted() {
        let clock = Arc::new(ManualClock::new(1_700_000_000));
        let src = TokenSource::new(creds(), clock.clone());
        let first = src.current().expect("mint");
        clock.advance(TOKEN_REUSE_SECS - 1);
        assert_eq!(src.current().expect("cached"), first);
        clock.advance(1);
        assert_ne!(src.current().expect("fresh"), first);
    }

    #[test]
    fn invalidate_only_drops_the_refused_token() {
        let clock = Arc::new(ManualClock::new(1_700_000_000));
        let src = TokenSource::new(creds(), clock.clone());
        let first = src.current().expect("mint");
        src.invalidate("some-other-token");
        assert_eq!(src.current().expect("cached"), first);
        clock.advance(1);
        src.invalidate(&first);
        assert_ne!(src.current().expect("fresh"), first);
    }

    #[test]
    fn a_clock_going_backwards_forces_a_new_token() {
        let clock = Arc::new(ManualClock::new(1_700_000_000));
        let src = TokenSource::new(creds(), clock.clone());
        let first = src.current().expect("mint");
        clock.advance(-60);
        assert_ne!(src.current().expect("fresh"), first);
    }

    #[test]
    fn debug_output_hides_the_secret() {
        let shown = format!("{:?}", creds());
        assert!(shown.contains("ak-test"));
        assert!(!shown.contains("sk-test"));
    }
}
