//! Spend limits per API key: at most `limit` credits in any rolling window
//! (`window: Some(d)`), or in all of the key's life (`window: None`).
//!
//! What counts is what the key's tasks hold: every task created with the key
//! in the window, except failed ones (their refund gives the room back).
//! The store applies the rule inside the debit's transaction; this module
//! owns the rule itself, the parsing of operator input, and the answer to
//! "when will there be room again".

use crate::{Credits, Timestamp};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpendLimit {
    pub limit: Credits,
    /// `None`: a fixed total for the key's whole life.
    pub window: Option<Duration>,
}

/// The longest window accepted (a year); beyond it, use a fixed total.
pub const MAX_WINDOW: Duration = Duration::from_secs(366 * 24 * 3600);

impl SpendLimit {
    /// From operator or API input: a limit (credits, ≥ 1) and a window such
    /// as `24h`, `30m`, `7d`, `90s`, or `total` / none for a fixed total.
    pub fn parse(limit: i64, window: Option<&str>) -> Result<Self, String> {
        if limit < 1 {
            return Err("a spend limit must be at least 1 credit".into());
        }
        let window = match window.map(str::trim) {
            None | Some("") | Some("total") => None,
            Some(w) => Some(parse_window(w)?),
        };
        Ok(Self {
            limit: Credits::new(limit).map_err(|e| e.to_string())?,
            window,
        })
    }

    /// From the store's columns (milliseconds; absent = fixed total).
    pub fn from_stored(limit: i64, window_ms: Option<i64>) -> Option<Self> {
        Some(Self {
            limit: Credits::new(limit).ok()?,
            window: match window_ms {
                None => None,
                Some(ms) => Some(Duration::from_millis(u64::try_from(ms).ok()?)),
            },
        })
    }

    pub fn window_ms(&self) -> Option<i64> {
        self.window
            .map(|w| i64::try_from(w.as_millis()).unwrap_or(i64::MAX))
    }

    /// The oldest creation time that still counts at `now`: tasks created
    /// after it are in the window.
    pub fn counts_after(&self, now: Timestamp) -> Timestamp {
        match self.window {
            Some(w) => now.minus(w),
            None => Timestamp::from_millis(i64::MIN),
        }
    }

    /// Whether a task of `price` fits next to `spent`.
    pub fn admits(&self, spent: Credits, price: Credits) -> bool {
        spent.get().saturating_add(price.get()) <= self.limit.get()
    }

    /// When a task of `price` would fit, given what the key's counted tasks
    /// hold (`(created_at, credits)`, oldest first): the moment enough of
    /// them leave the window. `None` when that never happens by time alone
    /// (a fixed total, or a price above the limit itself).
    pub fn room_frees_at(
        &self,
        held: &[(Timestamp, Credits)],
        price: Credits,
    ) -> Option<Timestamp> {
        let window = self.window?;
        if price.get() > self.limit.get() {
            return None;
        }
        let mut spent: i64 = held.iter().map(|(_, c)| c.get()).sum();
        if spent + price.get() <= self.limit.get() {
            // It fits now: nothing to wait for.
            return None;
        }
        for (at, c) in held {
            spent -= c.get();
            if spent + price.get() <= self.limit.get() {
                return Some(at.plus(window));
            }
        }
        None
    }

    /// `900 credits per 24h`, `1000 credits in total`.
    pub fn describe(&self) -> String {
        match self.window {
            None => format!("{} credits in total", self.limit),
            Some(w) => format!("{} credits per {}", self.limit, format_window(w)),
        }
    }

    /// `24h` style, for display and the API.
    pub fn window_text(&self) -> String {
        match self.window {
            None => "total".into(),
            Some(w) => format_window(w),
        }
    }
}

/// `90s`, `30m`, `24h`, `7d` (a whole number and one unit).
pub fn parse_window(s: &str) -> Result<Duration, String> {
    let bad = || {
        format!(
            "{s:?} is not a window: use a whole number with s, m, h or d (e.g. 24h), or \"total\""
        )
    };
    let unit_at = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (n, unit) = s.split_at(unit_at);
    let n: u64 = n.parse().map_err(|_| bad())?;
    let secs = match unit {
        "s" => n,
        "m" => n.checked_mul(60).ok_or_else(bad)?,
        "h" => n.checked_mul(3600).ok_or_else(bad)?,
        "d" => n.checked_mul(86_400).ok_or_else(bad)?,
        _ => return Err(bad()),
    };
    if secs == 0 {
        return Err("a spend window must be at least 1s".into());
    }
    let d = Duration::from_secs(secs);
    if d > MAX_WINDOW {
        return Err("a spend window can be at most 366d; use a fixed total instead".into());
    }
    Ok(d)
}

/// An exact spelling, in hours up to two days (`24h`, as operators write
/// it), days beyond: `86400s` → `24h`, `7d`, `90s` stays.
pub fn format_window(d: Duration) -> String {
    let s = d.as_secs();
    if s.is_multiple_of(86_400) && s > 2 * 86_400 {
        format!("{}d", s / 86_400)
    } else if s.is_multiple_of(3600) {
        format!("{}h", s / 3600)
    } else if s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(v: i64) -> Credits {
        Credits::new(v).unwrap()
    }

    #[test]
    fn windows_parse_and_print_back() {
        assert_eq!(parse_window("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_window("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(format_window(Duration::from_secs(86_400)), "24h");
        assert_eq!(format_window(Duration::from_secs(7 * 86_400)), "7d");
        assert_eq!(format_window(Duration::from_secs(7200)), "2h");
        assert_eq!(format_window(Duration::from_secs(90)), "90s");
        for bad in ["", "h", "24", "24x", "-1h", "0s", "400d", "1.5h"] {
            assert!(parse_window(bad).is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn limits_parse_with_or_without_a_window() {
        let l = SpendLimit::parse(900, Some("24h")).unwrap();
        assert_eq!(l.window, Some(Duration::from_secs(86_400)));
        assert_eq!(SpendLimit::parse(900, Some("total")).unwrap().window, None);
        assert_eq!(SpendLimit::parse(900, None).unwrap().window, None);
        assert!(SpendLimit::parse(0, None).is_err());
        assert_eq!(
            SpendLimit::from_stored(900, l.window_ms()),
            Some(l),
            "stored form round-trips"
        );
    }

    #[test]
    fn admits_exactly_up_to_the_limit() {
        let l = SpendLimit::parse(900, Some("1h")).unwrap();
        assert!(l.admits(c(810), c(90)));
        assert!(!l.admits(c(811), c(90)));
        assert!(!l.admits(c(900), c(1)));
    }

    #[test]
    fn room_frees_when_enough_old_tasks_leave_the_window() {
        let l = SpendLimit::parse(200, Some("1h")).unwrap();
        let t = |ms| Timestamp::from_millis(ms);
        let held = [(t(1_000), c(90)), (t(2_000), c(90))];
        // 180 held + 90 > 200: the first task must leave (at 1_000 + 1h).
        assert_eq!(l.room_frees_at(&held, c(90)), Some(t(1_000 + 3_600_000)));
        // 180 held + 20 fits already: no wait.
        assert_eq!(l.room_frees_at(&held, c(20)), None);
        // Bigger than the limit itself: never.
        assert_eq!(l.room_frees_at(&held, c(201)), None);
        // A fixed total never frees by time.
        let total = SpendLimit::parse(200, None).unwrap();
        assert_eq!(total.room_frees_at(&held, c(90)), None);
    }
}
