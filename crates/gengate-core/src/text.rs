//! What control characters mean in text that reaches the store.
//!
//! PostgreSQL cannot store U+0000 in `TEXT` at all (`invalid byte sequence
//! for encoding "UTF8": 0x00`) while SQLite stores it, so without one rule
//! here the two engines answered the same request differently (500 vs 202).
//! The rule is decided once, in this module, and every parser of a
//! caller-supplied string that can reach the store applies it:
//!
//! - **Prose** (prompts, negative prompts and other free-text params): every
//!   Unicode control character (general category `Cc`: C0 U+0000–U+001F,
//!   DEL U+007F, C1 U+0080–U+009F) is refused except tab, line feed and
//!   carriage return, which people really type into multi-line prompts.
//! - **Line** (ids, names, URLs, file names, event types, cursors, filters,
//!   reasons): every control character is refused, tab and newlines too. Such
//!   a value is shown on one line in logs, lists and terminals; a newline in
//!   it is a forged log line or a mistake, never meaning.
//!
//! Refused means `400 validation_failed` naming the field, never silent
//! stripping: a caller who sent a NUL has a bug, and rewriting their text
//! would store something they did not send (and break idempotent replays,
//! which compare bodies). Text that third parties send us and we only keep
//! for display (a webhook receiver's answer) is not refusable; it is
//! [`scrub`]bed instead.

use crate::error::{FieldIssue, ValidationErrors};
use serde_json::Value;

/// Which control characters a value may contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextRule {
    /// Free text: tab, LF and CR allowed; every other control refused.
    Prose,
    /// Single-line values: every control character refused.
    Line,
}

impl TextRule {
    pub fn allows(self, c: char) -> bool {
        if !c.is_control() {
            return true;
        }
        self == TextRule::Prose && matches!(c, '\t' | '\n' | '\r')
    }
}

/// The first refused character and its position (in characters), if any.
pub fn first_refused(s: &str, rule: TextRule) -> Option<(usize, char)> {
    s.chars().enumerate().find(|(_, c)| !rule.allows(*c))
}

/// The problem to report for `field` if `s` breaks `rule`.
pub fn problem(field: &str, s: &str, rule: TextRule) -> Option<(FieldIssue, String)> {
    let (at, c) = first_refused(s, rule)?;
    let allowed = match rule {
        TextRule::Prose => "; only tab, line feed and carriage return are allowed",
        TextRule::Line => "",
    };
    Some((
        FieldIssue::InvalidFormat,
        format!(
            "{field} contains the control character U+{:04X} at character {}{allowed}",
            u32::from(c),
            at + 1
        ),
    ))
}

/// Pushes the problem onto `errs`; true when `s` is acceptable.
pub fn check(field: &str, s: &str, rule: TextRule, errs: &mut ValidationErrors) -> bool {
    match problem(field, s, rule) {
        Some((issue, msg)) => {
            errs.push(field, issue, msg);
            false
        }
        None => true,
    }
}

/// A name people give a thing (an API key, a webhook endpoint): a string,
/// trimmed, not blank, at most `max` characters, one line. Pushes the one
/// problem onto `errs`; the trimmed name when it is acceptable.
pub fn name(field: &str, value: &Value, max: usize, errs: &mut ValidationErrors) -> Option<String> {
    let Value::String(s) = value else {
        errs.push(
            field,
            FieldIssue::InvalidType,
            format!("{field} must be a string"),
        );
        return None;
    };
    let s = s.trim();
    if s.is_empty() {
        errs.push(
            field,
            FieldIssue::Blank,
            format!("{field} must not be blank"),
        );
        return None;
    }
    if s.chars().count() > max {
        errs.push(
            field,
            FieldIssue::TooLong,
            format!("{field} must be at most {max} characters"),
        );
        return None;
    }
    check(field, s, TextRule::Line, errs).then(|| s.to_owned())
}

/// `Ok` when `s` is acceptable, else the one problem (for single-field parsers).
pub fn require(field: &str, s: &str, rule: TextRule) -> Result<(), ValidationErrors> {
    let mut errs = ValidationErrors::new();
    check(field, s, rule, &mut errs);
    errs.into_result()
}

/// How a caller's JSON object key is written inside a field path
/// (`details[].field`): as it is when it reads as a name, JSON-quoted when
/// it is empty or holds control characters or quotes, so no refusal names
/// an empty or invisible field.
pub fn key_name(key: &str) -> String {
    if !key.is_empty() && first_refused(key, TextRule::Line).is_none() && !key.contains('"') {
        key.to_owned()
    } else {
        serde_json::Value::String(key.to_owned()).to_string()
    }
}

/// Third-party text we keep but cannot refuse: every character `Prose`
/// refuses becomes U+FFFD, so it is visible that something was there.
pub fn scrub(s: &str) -> String {
    if first_refused(s, TextRule::Prose).is_none() {
        return s.to_owned();
    }
    s.chars()
        .map(|c| {
            if TextRule::Prose.allows(c) {
                c
            } else {
                char::REPLACEMENT_CHARACTER
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prose_keeps_tab_and_newlines_and_refuses_every_other_control() {
        assert!(first_refused("a\tb\nc\r\nd", TextRule::Prose).is_none());
        for c in (0u32..0x20).chain(0x7f..0xa0).filter_map(char::from_u32) {
            let s = format!("x{c}y");
            let expected = !matches!(c, '\t' | '\n' | '\r');
            assert_eq!(
                first_refused(&s, TextRule::Prose).is_some(),
                expected,
                "U+{:04X}",
                u32::from(c)
            );
        }
    }

    #[test]
    fn line_refuses_every_control_including_tab_and_newlines() {
        for c in (0u32..0x20).chain(0x7f..0xa0).filter_map(char::from_u32) {
            assert_eq!(
                first_refused(&format!("id{c}"), TextRule::Line),
                Some((2, c))
            );
        }
    }

    #[test]
    fn ordinary_unicode_is_text() {
        for s in ["Grüße 👋", "日本語", "a\u{200b}b", "\u{fffd}", "😀\u{2028}"] {
            assert!(first_refused(s, TextRule::Line).is_none(), "{s:?}");
        }
    }

    #[test]
    fn problems_name_the_field_character_and_position() {
        let (issue, msg) = problem("prompt", "ab\u{0}c", TextRule::Prose).expect("refused");
        assert_eq!(issue, FieldIssue::InvalidFormat);
        assert!(msg.starts_with("prompt contains the control character U+0000 at character 3"));
        let mut errs = ValidationErrors::new();
        assert!(!check("name", "a\u{1b}[31m", TextRule::Line, &mut errs));
        assert!(check("other", "fine", TextRule::Line, &mut errs));
        assert_eq!(errs.problems().len(), 1);
        assert_eq!(errs.problems()[0].field, "name");
        assert!(require("x", "ok", TextRule::Line).is_ok());
        assert!(require("x", "o\nk", TextRule::Line).is_err());
    }

    #[test]
    fn odd_keys_are_quoted_in_field_paths() {
        assert_eq!(key_name("seed"), "seed");
        assert_eq!(key_name(""), "\"\"");
        assert_eq!(key_name("a\u{0}"), "\"a\\u0000\"");
        assert_eq!(key_name("say \"hi\""), "\"say \\\"hi\\\"\"");
    }

    #[test]
    fn scrub_replaces_only_what_prose_refuses() {
        assert_eq!(scrub("ok\n\tfine"), "ok\n\tfine");
        assert_eq!(scrub("a\u{0}b\u{7f}c"), "a\u{fffd}b\u{fffd}c");
        assert!(first_refused(&scrub("\u{0}\u{1}\u{85}"), TextRule::Prose).is_none());
    }
}
