//! The `Prefer` request header (RFC 7240), of which gengate honours one
//! preference: `wait=N` on create (Replicate's convention), N in 1..=60.
//!
//! Preferences are comma-separated, may span several header lines, carry
//! optional `;`-parameters and quoted values; names are case-insensitive.
//! Preferences gengate does not know are ignored, as the RFC asks. A `wait`
//! that is there but not an integer in range is a caller's bug and is
//! answered `validation_failed` (field `Prefer`), changing nothing.

use axum::http::HeaderMap;
use gengate_core::error::{FieldIssue, ValidationErrors};
use std::time::Duration;

pub const MAX_WAIT_SECS: u64 = 60;

/// The `wait` preference, if any: `Ok(None)` when absent.
pub fn wait(headers: &HeaderMap) -> Result<Option<Duration>, ValidationErrors> {
    let mut found = None;
    for line in headers.get_all("prefer") {
        let Ok(line) = line.to_str() else {
            return Err(bad("the Prefer header must be ASCII"));
        };
        for pref in split_outside_quotes(line, ',') {
            // Parameters after `;` do not change `wait`'s meaning.
            let head = split_outside_quotes(pref, ';').next().unwrap_or("");
            let (name, value) = match head.split_once('=') {
                Some((n, v)) => (n.trim(), Some(v.trim())),
                None => (head.trim(), None),
            };
            if !name.eq_ignore_ascii_case("wait") {
                continue;
            }
            // The first occurrence wins (RFC 7240 §2).
            if found.is_some() {
                continue;
            }
            let value = value.map(|v| v.trim_matches('"'));
            match value.and_then(|v| v.parse::<u64>().ok()) {
                Some(n) if (1..=MAX_WAIT_SECS).contains(&n) => {
                    found = Some(Duration::from_secs(n));
                }
                _ => {
                    return Err(bad(
                        "Prefer: wait must be an integer number of seconds from 1 to 60",
                    ));
                }
            }
        }
    }
    Ok(found)
}

fn bad(msg: &str) -> ValidationErrors {
    ValidationErrors::single("Prefer", FieldIssue::OutOfRange, msg)
}

/// Splits on `sep` except inside double quotes (with `\` escapes).
fn split_outside_quotes(s: &str, sep: char) -> impl Iterator<Item = &str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == sep && !quoted => {
                parts.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts.into_iter().filter(|p| !p.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(lines: &[&str]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for l in lines {
            m.append("prefer", l.parse().unwrap());
        }
        m
    }

    #[test]
    fn wait_is_read_among_other_preferences() {
        assert_eq!(wait(&h(&[])), Ok(None));
        assert_eq!(wait(&h(&["wait=5"])), Ok(Some(Duration::from_secs(5))));
        assert_eq!(
            wait(&h(&["respond-async, WAIT = 10 ; foo=bar"])),
            Ok(Some(Duration::from_secs(10)))
        );
        assert_eq!(
            wait(&h(&["return=minimal", "wait=\"60\""])),
            Ok(Some(Duration::from_secs(60)))
        );
        // Unknown preferences, even with odd values, are ignored.
        assert_eq!(wait(&h(&["foo=\"a,wait=0\", handling=lenient"])), Ok(None));
        // The first wait wins.
        assert_eq!(
            wait(&h(&["wait=3", "wait=4"])),
            Ok(Some(Duration::from_secs(3)))
        );
    }

    #[test]
    fn a_wait_out_of_range_or_not_a_number_is_refused() {
        for v in [
            "wait=0", "wait=61", "wait=abc", "wait", "wait=-1", "wait=1.5",
        ] {
            let e = wait(&h(&[v])).expect_err(v);
            assert_eq!(e.into_problems()[0].field, "Prefer");
        }
    }
}
