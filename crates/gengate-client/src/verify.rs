//! Checking the signature of a webhook delivery you receive (Standard
//! Webhooks): `v1,` + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")),
//! where the key is the base64 part of the `whsec_` secret.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use reqwest::header::HeaderMap;
use sha2::Sha256;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How far a delivery's timestamp may be from the receiver's clock (the
/// spec's suggestion): older messages are refused as possible replays.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(5 * 60);

/// Why a delivery was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookVerifyError {
    /// A required header is absent or not text.
    #[error("the {0} header is missing")]
    MissingHeader(&'static str),
    /// The secret is not `whsec_<base64>`.
    #[error("the signing secret is not a whsec_… secret")]
    InvalidSecret,
    /// `webhook-timestamp` is not a number of seconds.
    #[error("the webhook-timestamp header is not a Unix time")]
    InvalidTimestamp,
    /// The timestamp is too far from now (a replay, or a skewed clock).
    #[error("the message timestamp is outside the tolerance")]
    TimestampOutOfTolerance,
    /// No `v1` signature matches.
    #[error("no signature matches")]
    NoMatchingSignature,
}

/// Verifies a delivery: `secret` is the endpoint's `whsec_…` secret,
/// `headers` the request's headers, `body` its raw bytes (before any JSON
/// parsing). Uses the current time and [`DEFAULT_TOLERANCE`].
///
/// ```
/// # use reqwest::header::HeaderMap;
/// # fn handle(headers: &HeaderMap, body: &[u8]) {
/// match gengate_client::verify_webhook("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", headers, body) {
///     Ok(()) => { /* parse body and act on it */ }
///     Err(e) => eprintln!("refused: {e}"),
/// }
/// # }
/// ```
pub fn verify_webhook(
    secret: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), WebhookVerifyError> {
    verify_webhook_at(secret, headers, body, SystemTime::now(), DEFAULT_TOLERANCE)
}

/// [`verify_webhook`] with an explicit clock and tolerance.
pub fn verify_webhook_at(
    secret: &str,
    headers: &HeaderMap,
    body: &[u8],
    now: SystemTime,
    tolerance: Duration,
) -> Result<(), WebhookVerifyError> {
    let header = |name: &'static str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .ok_or(WebhookVerifyError::MissingHeader(name))
    };
    let id = header("webhook-id")?;
    let ts_text = header("webhook-timestamp")?;
    let signatures = header("webhook-signature")?;
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
        .map_err(|_| WebhookVerifyError::InvalidSecret)?;
    if key.is_empty() {
        return Err(WebhookVerifyError::InvalidSecret);
    }
    let ts: i64 = ts_text
        .trim()
        .parse()
        .map_err(|_| WebhookVerifyError::InvalidTimestamp)?;
    let now_secs = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    if ts.abs_diff(now_secs) > tolerance.as_secs() {
        return Err(WebhookVerifyError::TimestampOutOfTolerance);
    }
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key)
        .map_err(|_| WebhookVerifyError::InvalidSecret)?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(ts_text.trim().as_bytes());
    mac.update(b".");
    mac.update(body);
    // Several space-separated entries during a secret rotation; any match
    // will do. `verify_slice` compares in constant time.
    let ok = signatures.split_whitespace().any(|entry| {
        let Some(("v1", b64)) = entry.split_once(',') else {
            return false;
        };
        let Ok(tag) = STANDARD.decode(b64) else {
            return false;
        };
        mac.clone().verify_slice(&tag).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(WebhookVerifyError::NoMatchingSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    // The Standard Webhooks specification's own example.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: u64 = 1_614_265_330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn headers(sig: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("webhook-id", HeaderValue::from_static(ID));
        h.insert(
            "webhook-timestamp",
            HeaderValue::from_str(&TS.to_string()).unwrap(),
        );
        h.insert("webhook-signature", HeaderValue::from_str(sig).unwrap());
        h
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn the_spec_vector_verifies() {
        assert_eq!(
            verify_webhook_at(SECRET, &headers(SIG), BODY, at(TS), DEFAULT_TOLERANCE),
            Ok(())
        );
        // Among several entries (a rotation), with unknown versions skipped.
        let multi = format!("v2,xyz v1,bm90IGl0 {SIG}");
        assert_eq!(
            verify_webhook_at(
                SECRET,
                &headers(&multi),
                BODY,
                at(TS + 60),
                DEFAULT_TOLERANCE
            ),
            Ok(())
        );
    }

    #[test]
    fn tampering_is_refused() {
        let v = |h: &HeaderMap, body: &[u8], secret: &str, now| {
            verify_webhook_at(secret, h, body, at(now), DEFAULT_TOLERANCE)
        };
        assert_eq!(
            v(&headers(SIG), br#"{"test": 2432232315}"#, SECRET, TS),
            Err(WebhookVerifyError::NoMatchingSignature)
        );
        assert_eq!(
            v(&headers(SIG), BODY, "whsec_c2VjcmV0", TS),
            Err(WebhookVerifyError::NoMatchingSignature)
        );
        assert_eq!(
            v(&headers("v1,"), BODY, SECRET, TS),
            Err(WebhookVerifyError::NoMatchingSignature)
        );
        assert_eq!(
            v(
                &headers("v1a,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="),
                BODY,
                SECRET,
                TS
            ),
            Err(WebhookVerifyError::NoMatchingSignature)
        );
        assert_eq!(
            v(&headers(SIG), BODY, "whsec_!!!", TS),
            Err(WebhookVerifyError::InvalidSecret)
        );
        let mut h = headers(SIG);
        h.insert("webhook-id", HeaderValue::from_static("msg_other"));
        assert_eq!(
            v(&h, BODY, SECRET, TS),
            Err(WebhookVerifyError::NoMatchingSignature)
        );
        h.remove("webhook-id");
        assert_eq!(
            v(&h, BODY, SECRET, TS),
            Err(WebhookVerifyError::MissingHeader("webhook-id"))
        );
        let mut h = headers(SIG);
        h.insert("webhook-timestamp", HeaderValue::from_static("soon"));
        assert_eq!(
            v(&h, BODY, SECRET, TS),
            Err(WebhookVerifyError::InvalidTimestamp)
        );
    }

    #[test]
    fn timestamps_outside_the_tolerance_are_refused() {
        let v = |now| verify_webhook_at(SECRET, &headers(SIG), BODY, at(now), DEFAULT_TOLERANCE);
        assert_eq!(v(TS + 300), Ok(()));
        assert_eq!(v(TS - 300), Ok(()));
        assert_eq!(
            v(TS + 301),
            Err(WebhookVerifyError::TimestampOutOfTolerance)
        );
        assert_eq!(
            v(TS - 301),
            Err(WebhookVerifyError::TimestampOutOfTolerance)
        );
    }
}
