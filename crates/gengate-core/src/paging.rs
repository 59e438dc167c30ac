//! The page size every list of the public API takes (`?limit=`).

use crate::error::{FieldIssue, ValidationErrors};

pub const DEFAULT_LIMIT: u32 = 20;
pub const MAX_LIMIT: u32 = 100;

/// `limit`: absent → 20; an integer 1..=100 → itself; anything else is
/// named in `errs` (and 20 is returned so the other fields are still checked).
pub fn limit(raw: Option<&str>, errs: &mut ValidationErrors) -> u32 {
    match raw.map(str::parse::<u32>) {
        None => DEFAULT_LIMIT,
        Some(Ok(n)) if (1..=MAX_LIMIT).contains(&n) => n,
        Some(_) => {
            errs.push(
                "limit",
                FieldIssue::OutOfRange,
                format!("limit must be an integer from 1 to {MAX_LIMIT}"),
            );
            DEFAULT_LIMIT
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_outside_one_to_a_hundred_are_named() {
        let mut errs = ValidationErrors::new();
        assert_eq!(limit(None, &mut errs), 20);
        assert_eq!(limit(Some("1"), &mut errs), 1);
        assert_eq!(limit(Some("100"), &mut errs), 100);
        assert!(errs.into_result().is_ok());
        for bad in ["0", "101", "-1", "ten", "", "1.5"] {
            let mut errs = ValidationErrors::new();
            assert_eq!(limit(Some(bad), &mut errs), 20);
            let e = errs.into_result().unwrap_err();
            assert_eq!(e.problems().len(), 1, "{bad}");
        }
    }
}
