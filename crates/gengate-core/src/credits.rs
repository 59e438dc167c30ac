//! Money is a type. A `Credits` value is never negative; the only way a
//! balance changes is through a ledger entry (see the store).

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(try_from = "i64", into = "i64")]
pub struct Credits(i64);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("credits cannot be negative")]
pub struct NegativeCredits;

impl Credits {
    pub const ZERO: Credits = Credits(0);

    pub fn new(v: i64) -> Result<Self, NegativeCredits> {
        if v < 0 {
            Err(NegativeCredits)
        } else {
            Ok(Self(v))
        }
    }
    pub const fn get(self) -> i64 {
        self.0
    }
}

impl TryFrom<i64> for Credits {
    type Error = NegativeCredits;
    fn try_from(v: i64) -> Result<Self, Self::Error> {
        Self::new(v)
    }
}

impl From<Credits> for i64 {
    fn from(c: Credits) -> i64 {
        c.0
    }
}

impl fmt::Display for Credits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Credits {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::Integer)
            .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                utoipa::openapi::KnownFormat::Int64,
            )))
            .minimum(Some(0))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Credits {}

/// The kinds of ledger entry. Signs: grant and refund add, reserve removes,
/// adjust may do either.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LedgerKind {
    Grant,
    Reserve,
    Refund,
    Adjust,
}

impl LedgerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Grant => "grant",
            Self::Reserve => "reserve",
            Self::Refund => "refund",
            Self::Adjust => "adjust",
        }
    }
    /// The name the public API shows (`GET /api/v1/credits/transactions`):
    /// a reservation is what a caller sees as a debit, and "adjustment" reads
    /// better than the ledger's short name.
    pub fn public_name(self) -> &'static str {
        match self {
            Self::Grant => "grant",
            Self::Reserve => "debit",
            Self::Refund => "refund",
            Self::Adjust => "adjustment",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "grant" => Self::Grant,
            "reserve" => Self::Reserve,
            "refund" => Self::Refund,
            "adjust" => Self::Adjust,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credits_refuse_negative_values() {
        assert_eq!(Credits::new(-1), Err(NegativeCredits));
        assert_eq!(Credits::new(90).unwrap().get(), 90);
        assert!(serde_json::from_str::<Credits>("-5").is_err());
    }
}
