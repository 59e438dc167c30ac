//! When to try a failed delivery again (API.md §8, "Delivery").

use std::time::{Duration, SystemTime};

const MINUTE: u64 = 60;
const HOUR: u64 = 60 * MINUTE;

/// Delay after the 1st, 2nd, … 7th failed attempt. Eight attempts in all (the first is
/// immediate) spread over about 28 hours, the same curve as Svix's.
pub const RETRY_SCHEDULE: [Duration; 7] = [
    Duration::from_secs(5),
    Duration::from_secs(5 * MINUTE),
    Duration::from_secs(30 * MINUTE),
    Duration::from_secs(2 * HOUR),
    Duration::from_secs(5 * HOUR),
    Duration::from_secs(10 * HOUR),
    Duration::from_secs(10 * HOUR),
];

/// A receiver's `Retry-After` may push a retry out this far, no further: a typo'd
/// `Retry-After: 99999999` must not park a message for years.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(10 * HOUR);

/// An endpoint that has failed for this long without a single success is disabled.
pub const DISABLE_AFTER: Duration = Duration::from_secs(5 * 24 * HOUR);

/// ±10 %: spreads the retries of many messages that failed together (a receiver outage)
/// so they do not return as one burst.
const JITTER: f64 = 0.10;

/// The delay before the next attempt, after `failed_attempts` failures (1-based), or
/// `None` when the schedule is exhausted and the message should be given up.
///
/// - `retry_after`: the receiver's `Retry-After`, honoured as a floor (capped at
///   [`MAX_RETRY_AFTER`]); it never shortens the schedule.
/// - `time_scale`: multiplies the result; 1.0 in production, tiny in tests so hours pass
///   in milliseconds. Non-finite or negative values count as 1.0.
/// - `jitter_unit`: a number in `0..=1` from the caller's random source (see
///   [`random_jitter_unit`]); 0.5 means no jitter. Out-of-range values are clamped.
///
/// `failed_attempts == 0` means nothing has failed yet, so the delay is zero.
pub fn next_retry_delay(
    failed_attempts: u32,
    retry_after: Option<Duration>,
    time_scale: f64,
    jitter_unit: f64,
) -> Option<Duration> {
    let base = match failed_attempts {
        0 => return Some(Duration::ZERO),
        n => *RETRY_SCHEDULE.get(usize::try_from(n - 1).ok()?)?,
    };
    let jitter_unit = if jitter_unit.is_nan() {
        0.5
    } else {
        jitter_unit.clamp(0.0, 1.0)
    };
    let jittered = base.as_secs_f64() * (1.0 + JITTER * (2.0 * jitter_unit - 1.0));
    let floor = retry_after
        .map(|d| d.min(MAX_RETRY_AFTER).as_secs_f64())
        .unwrap_or(0.0);
    let scale = if time_scale.is_finite() && time_scale >= 0.0 {
        time_scale
    } else {
        1.0
    };
    let secs = jittered.max(floor) * scale;
    // Whole microseconds: hides float noise (300 × 0.9 is not exactly 270) and keeps
    // heavily compressed test schedules non-zero. `as` saturates, so no overflow.
    Some(Duration::from_micros((secs * 1e6).round() as u64))
}

/// A fresh `jitter_unit` for [`next_retry_delay`] from the thread RNG.
pub fn random_jitter_unit() -> f64 {
    rand::random::<f64>()
}

/// Parses a `Retry-After` value: delay-seconds (`120`) or an HTTP-date
/// (`Wed, 21 Oct 2015 07:28:00 GMT`), relative to `now`. A date in the past is zero;
/// anything unparseable is `None`.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // More digits than u64 holds is still "a very long time"; the cap applies later.
        return Some(Duration::from_secs(
            value.parse::<u64>().unwrap_or(u64::MAX),
        ));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NO_JITTER: f64 = 0.5;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn schedule_without_jitter_is_the_documented_one() {
        let expected = [5, 300, 1800, 7200, 18000, 36000, 36000];
        for (i, want) in expected.into_iter().enumerate() {
            let n = u32::try_from(i + 1).expect("small");
            assert_eq!(
                next_retry_delay(n, None, 1.0, NO_JITTER),
                Some(secs(want)),
                "after failure {n}"
            );
        }
    }

    #[test]
    fn gives_up_after_the_seventh_retry() {
        assert_eq!(next_retry_delay(8, None, 1.0, NO_JITTER), None);
        assert_eq!(next_retry_delay(9, Some(secs(1)), 1.0, NO_JITTER), None);
        assert_eq!(next_retry_delay(u32::MAX, None, 1.0, NO_JITTER), None);
    }

    #[test]
    fn zero_failures_means_no_wait() {
        assert_eq!(next_retry_delay(0, None, 1.0, 0.9), Some(Duration::ZERO));
    }

    #[test]
    fn jitter_stays_within_ten_percent() {
        assert_eq!(next_retry_delay(2, None, 1.0, 0.0), Some(secs(270)));
        assert_eq!(next_retry_delay(2, None, 1.0, 1.0), Some(secs(330)));
        assert_eq!(next_retry_delay(2, None, 1.0, 0.75), Some(secs(315)));
        // Out-of-range jitter is clamped, NaN is "no jitter".
        assert_eq!(next_retry_delay(2, None, 1.0, 7.0), Some(secs(330)));
        assert_eq!(next_retry_delay(2, None, 1.0, -3.0), Some(secs(270)));
        assert_eq!(next_retry_delay(2, None, 1.0, f64::NAN), Some(secs(300)));
        for i in 0..=100 {
            let unit = f64::from(i) / 100.0;
            let d = next_retry_delay(4, None, 1.0, unit).expect("scheduled");
            assert!(d >= secs(6480) && d <= secs(7920), "{unit}: {d:?}");
        }
    }

    #[test]
    fn random_jitter_unit_is_a_unit_interval_sample() {
        for _ in 0..1000 {
            let u = random_jitter_unit();
            assert!((0.0..1.0).contains(&u));
        }
    }

    #[test]
    fn time_scale_compresses_hours_into_milliseconds() {
        // 1/3600: an hour becomes a second; 10 h becomes 10 s.
        let scale = 1.0 / 3600.0;
        assert_eq!(next_retry_delay(6, None, scale, NO_JITTER), Some(secs(10)));
        let ms = next_retry_delay(7, None, 1e-6, NO_JITTER).expect("scheduled");
        assert_eq!(ms, Duration::from_millis(36));
        assert_eq!(next_retry_delay(3, None, 0.0, 1.0), Some(Duration::ZERO));
        // Nonsense scales fall back to real time instead of panicking.
        assert_eq!(
            next_retry_delay(1, None, f64::NAN, NO_JITTER),
            Some(secs(5))
        );
        assert_eq!(next_retry_delay(1, None, -1.0, NO_JITTER), Some(secs(5)));
        assert_eq!(
            next_retry_delay(1, None, f64::INFINITY, NO_JITTER),
            Some(secs(5))
        );
        assert_eq!(
            next_retry_delay(7, None, 1e300, NO_JITTER),
            Some(Duration::from_micros(u64::MAX))
        );
    }

    #[test]
    fn retry_after_is_a_floor_capped_at_ten_hours() {
        // Longer than the schedule: honoured.
        assert_eq!(
            next_retry_delay(1, Some(secs(120)), 1.0, 0.0),
            Some(secs(120))
        );
        // Shorter than the schedule: the schedule wins.
        assert_eq!(
            next_retry_delay(2, Some(secs(10)), 1.0, NO_JITTER),
            Some(secs(300))
        );
        // Absurd: capped.
        assert_eq!(
            next_retry_delay(1, Some(secs(10_000_000)), 1.0, NO_JITTER),
            Some(MAX_RETRY_AFTER)
        );
        // Scaled like everything else, so a compressed test run stays compressed.
        assert_eq!(
            next_retry_delay(1, Some(secs(3600)), 0.001, NO_JITTER),
            Some(Duration::from_millis(3600))
        );
        // The cap does not clip the schedule's own jitter.
        assert_eq!(
            next_retry_delay(7, Some(secs(100_000)), 1.0, 1.0),
            Some(secs(39600))
        );
    }

    #[test]
    fn disable_after_is_five_days() {
        assert_eq!(DISABLE_AFTER, secs(5 * 24 * 3600));
    }

    #[test]
    fn retry_after_parses_seconds_and_http_dates() {
        let now = httpdate::parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT").expect("date");
        assert_eq!(parse_retry_after("120", now), Some(secs(120)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("99999999999999999999999", now),
            Some(Duration::from_secs(u64::MAX))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:30:30 GMT", now),
            Some(secs(150))
        );
        // RFC 850 and asctime forms are HTTP-dates too.
        assert_eq!(
            parse_retry_after("Wednesday, 21-Oct-15 07:29:00 GMT", now),
            Some(secs(60))
        );
        assert_eq!(
            parse_retry_after("Wed Oct 21 07:29:00 2015", now),
            Some(secs(60))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        for bad in [
            "",
            "-5",
            "1.5",
            "soon",
            "120s",
            "Wed, 32 Oct 2015 07:28:00 GMT",
        ] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad:?}");
        }
    }
}
