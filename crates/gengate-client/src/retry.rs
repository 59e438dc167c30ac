//! When to try a request again, and how long to wait first.
//!
//! Only failures that a later attempt can cure are retried: the connection
//! could not be made or broke, the server answered 5xx, or it asked us to
//! slow down (429, 503). A request is retried only when repeating it is safe:
//! reads, and POSTs that carry an `Idempotency-Key` (the server then answers a
//! repeat with the first answer instead of doing the work twice).

use reqwest::header::HeaderMap;
use std::time::{Duration, SystemTime};

/// How many times, and how patiently, failed requests are retried.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0 = never retry).
    pub max_retries: u32,
    /// The first back-off; it doubles with every retry.
    pub base_delay: Duration,
    /// No back-off is longer than this.
    pub max_delay: Duration,
    /// A server's `Retry-After` / `RateLimit-Reset` is honoured up to this long;
    /// longer requests fail at once rather than hang the caller.
    pub max_server_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 3,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(8),
            max_server_delay: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// Never retry.
    pub fn none() -> Self {
        Self {
            max_retries: 0,
            ..Self::default()
        }
    }

    /// The wait before retry number `retry` (0-based): exponential back-off
    /// with "equal jitter" (half fixed, half random) so that many clients
    /// failing together do not come back together. `unit` is a random number
    /// in `[0, 1)`; a server's hint, when given, wins if it is longer.
    pub fn delay(&self, retry: u32, server_hint: Option<Duration>, unit: f64) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(2u32.saturating_pow(retry.min(16)))
            .min(self.max_delay);
        let jittered = exp.mul_f64(0.5 + 0.5 * unit.clamp(0.0, 1.0));
        match server_hint {
            Some(h) => h.min(self.max_server_delay).max(jittered),
            None => jittered,
        }
    }

    /// Whether an HTTP status is worth another attempt.
    pub fn retryable_status(status: u16) -> bool {
        status == 429 || status == 408 || (500..=599).contains(&status) && status != 501
    }
}

/// A random number in `[0, 1)` for jitter.
pub(crate) fn jitter_unit() -> f64 {
    rand::random::<f64>()
}

/// How long the server asked us to wait: `Retry-After` (seconds or an HTTP
/// date), else `RateLimit-Reset` (seconds until the budget refills).
pub fn server_delay(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    if let Some(v) = headers.get(reqwest::header::RETRY_AFTER)
        && let Ok(s) = v.to_str()
        && let Some(d) = parse_retry_after(s, now)
    {
        return Some(d);
    }
    headers
        .get("ratelimit-reset")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_ratelimit_reset)
}

/// `Retry-After`: delay-seconds or an HTTP date (RFC 9110 §10.2.3). A date in
/// the past means "now".
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// `RateLimit-Reset`: seconds until the window resets (the IETF draft's
/// delta-seconds form; a structured-field dictionary's first number is taken
/// too, e.g. `r=5`).
pub fn parse_ratelimit_reset(value: &str) -> Option<Duration> {
    let v = value.trim();
    let number = v
        .split([',', ';'])
        .next()
        .map(|first| first.rsplit('=').next().unwrap_or(first).trim())?;
    let secs: f64 = number.parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(86_400.0)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn backoff_doubles_is_capped_and_jittered() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay(0, None, 1.0), Duration::from_millis(500));
        assert_eq!(p.delay(0, None, 0.0), Duration::from_millis(250));
        assert_eq!(p.delay(2, None, 1.0), Duration::from_secs(2));
        assert_eq!(p.delay(30, None, 1.0), Duration::from_secs(8));
        let a = p.delay(1, None, 0.1);
        let b = p.delay(1, None, 0.9);
        assert!(a < b, "jitter spreads retries: {a:?} {b:?}");
    }

    #[test]
    fn server_hint_wins_when_longer_but_is_capped() {
        let p = RetryPolicy::default();
        assert_eq!(
            p.delay(0, Some(Duration::from_secs(3)), 1.0),
            Duration::from_secs(3)
        );
        assert_eq!(
            p.delay(5, Some(Duration::from_millis(10)), 1.0),
            Duration::from_secs(8)
        );
        assert_eq!(
            p.delay(0, Some(Duration::from_secs(3600)), 1.0),
            Duration::from_secs(60)
        );
    }

    #[test]
    fn which_statuses_are_retried() {
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(RetryPolicy::retryable_status(s), "{s}");
        }
        for s in [200, 400, 401, 402, 403, 404, 409, 413, 501] {
            assert!(!RetryPolicy::retryable_status(s), "{s}");
        }
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(30))
        );
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(parse_retry_after(&earlier, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-1", now), None);
    }

    #[test]
    fn ratelimit_reset_forms() {
        assert_eq!(parse_ratelimit_reset("5"), Some(Duration::from_secs(5)));
        assert_eq!(parse_ratelimit_reset("r=2"), Some(Duration::from_secs(2)));
        assert_eq!(
            parse_ratelimit_reset("0.5"),
            Some(Duration::from_millis(500))
        );
        assert_eq!(parse_ratelimit_reset("x"), None);
        assert_eq!(parse_ratelimit_reset("-3"), None);
    }

    #[test]
    fn retry_after_is_preferred_over_ratelimit_reset() {
        let now = SystemTime::now();
        let mut h = HeaderMap::new();
        h.insert("ratelimit-reset", HeaderValue::from_static("9"));
        assert_eq!(server_delay(&h, now), Some(Duration::from_secs(9)));
        h.insert("retry-after", HeaderValue::from_static("2"));
        assert_eq!(server_delay(&h, now), Some(Duration::from_secs(2)));
        assert_eq!(server_delay(&HeaderMap::new(), now), None);
    }
}
