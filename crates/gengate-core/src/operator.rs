//! Operators: the people who run a gengate (issue 22). Their keys are not API keys:
//! `gg_op_…`, valid only under `/api/admin/v1/`, owning no account. Stored like API keys
//! (a SHA-256 hash and a visible prefix, the secret shown once).

use crate::apikey::{NewKeyMaterial, hash};
use crate::ids::random_token;

pub const OPERATOR_KEY_PREFIX: &str = "gg_op_";
/// Characters of the key kept in clear for lookup and display.
pub const OPERATOR_VISIBLE_LEN: usize = OPERATOR_KEY_PREFIX.len() + 8;
const SECRET_LEN: usize = 40;

/// What an operator may do. `Viewer` reads everything and writes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OperatorRole {
    Admin,
    Viewer,
}

impl OperatorRole {
    pub fn as_str(self) -> &'static str {
        match self {
            OperatorRole::Admin => "admin",
            OperatorRole::Viewer => "viewer",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "admin" => Some(OperatorRole::Admin),
            "viewer" => Some(OperatorRole::Viewer),
            _ => None,
        }
    }

    pub fn can_write(self) -> bool {
        self == OperatorRole::Admin
    }
}

impl std::fmt::Display for OperatorRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A new operator key.
pub fn generate_key() -> NewKeyMaterial {
    let secret = format!("{OPERATOR_KEY_PREFIX}{}", random_token(SECRET_LEN));
    NewKeyMaterial {
        visible_prefix: secret[..OPERATOR_VISIBLE_LEN].to_owned(),
        hash: hash(&secret),
        secret,
    }
}

/// The lookup prefix of a presented operator key, or `None` if it is not shaped like one.
pub fn visible_prefix(presented: &str) -> Option<&str> {
    let ok = presented.len() == OPERATOR_KEY_PREFIX.len() + SECRET_LEN
        && presented.starts_with(OPERATOR_KEY_PREFIX)
        && presented[OPERATOR_KEY_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase());
    ok.then(|| &presented[..OPERATOR_VISIBLE_LEN])
}

/// Whether a bearer token is shaped like an operator key (told apart from API keys
/// before any lookup, so each face can say "wrong kind of key").
pub fn looks_like_operator_key(presented: &str) -> bool {
    presented.starts_with(OPERATOR_KEY_PREFIX)
}

/// An operator's name: 1–64 characters of `[a-z0-9._-]`, starting with a letter or digit.
/// `cli` is reserved: it names the actor of changes made on the command line.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name != "cli"
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apikey;

    #[test]
    fn operator_keys_are_their_own_kind() {
        let k = generate_key();
        assert!(k.secret.starts_with("gg_op_"));
        assert_eq!(visible_prefix(&k.secret), Some(k.visible_prefix.as_str()));
        assert_eq!(apikey::visible_prefix(&k.secret), None, "not an API key");
        let api = apikey::generate();
        assert_eq!(
            visible_prefix(&api.secret),
            None,
            "an API key is not an operator key"
        );
        assert_eq!(visible_prefix("gg_op_short"), None);
        assert_eq!(visible_prefix(&k.secret.to_uppercase()), None);
    }

    #[test]
    fn roles_and_names_parse() {
        assert_eq!(OperatorRole::parse("admin"), Some(OperatorRole::Admin));
        assert_eq!(OperatorRole::parse("viewer"), Some(OperatorRole::Viewer));
        assert_eq!(OperatorRole::parse("root"), None);
        assert!(OperatorRole::Admin.can_write() && !OperatorRole::Viewer.can_write());
        assert!(valid_name("admin") && valid_name("ops.team-1"));
        assert!(!valid_name("") && !valid_name("cli") && !valid_name("Admin") && !valid_name("-x"));
        assert!(!valid_name(&"a".repeat(65)));
    }
}
