//! Public ids: a prefix and 24 random characters from [0-9a-z] (~124 bits),
//! so they are unguessable and never reveal internal or upstream ids.
//! Each kind is its own type, so a file id cannot be passed for a task id.

use rand::Rng;
use serde::{Deserialize, Serialize};
use std::fmt;

const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
const RANDOM_LEN: usize = 24;

pub fn random_token(len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

macro_rules! public_id {
    ($name:ident, $prefix:literal) => {
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            pub fn generate() -> Self {
                Self(format!("{}{}", $prefix, random_token(RANDOM_LEN)))
            }
            /// Accepts only well-formed ids of this kind; anything else is
            /// "not found" to callers, never a database error.
            pub fn parse(s: &str) -> Option<Self> {
                let rest = s.strip_prefix($prefix)?;
                let ok = (8..=64).contains(&rest.len())
                    && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
                ok.then(|| Self(s.to_owned()))
            }
            /// For values read back from our own store.
            pub fn from_trusted(s: String) -> Self {
                Self(s)
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .pattern(Some(concat!("^", $prefix, "[0-9a-z_]+$")))
                    .into()
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::ToSchema for $name {}
    };
}

public_id!(TaskId, "task_");
public_id!(FileId, "file_");
public_id!(WebhookEndpointId, "whend_");
public_id!(EventId, "evt_");
public_id!(DeliveryId, "whdlv_");
public_id!(RequestId, "req_");
public_id!(AccountId, "acct_");
public_id!(ApiKeyId, "key_");
public_id!(OperatorId, "op_");
public_id!(AuditId, "aud_");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_carry_their_prefix_and_parse_back() {
        let t = TaskId::generate();
        assert!(t.as_str().starts_with("task_"));
        assert_eq!(t.as_str().len(), 5 + 24);
        assert_eq!(TaskId::parse(t.as_str()), Some(t.clone()));
        assert_eq!(FileId::parse(t.as_str()), None);
        assert_eq!(TaskId::parse("task_"), None);
        assert_eq!(TaskId::parse("task_../../etc"), None);
    }

    #[test]
    fn ids_do_not_repeat() {
        let a: std::collections::HashSet<_> = (0..10_000).map(|_| TaskId::generate()).collect();
        assert_eq!(a.len(), 10_000);
    }
}
