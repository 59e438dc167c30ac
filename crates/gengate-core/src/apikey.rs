//! API key material. A key is shown once; the store keeps a SHA-256 hash and
//! a short visible prefix. Keys carry ~190 bits of randomness, so a fast hash
//! is the right tool (a password KDF protects low-entropy secrets; these are not).

use crate::ids::random_token;
use sha2::{Digest, Sha256};

pub const KEY_PREFIX: &str = "gg_live_";
/// Keys of sandbox accounts (their tasks never reach an upstream), told
/// apart at a glance like a payment sandbox's test keys.
pub const TEST_KEY_PREFIX: &str = "gg_test_";
/// Characters of the key kept in clear for lookup and display.
pub const VISIBLE_LEN: usize = KEY_PREFIX.len() + 8;
const SECRET_LEN: usize = 40;

#[derive(Debug, Clone)]
pub struct NewKeyMaterial {
    /// The full key; shown once, never stored.
    pub secret: String,
    pub visible_prefix: String,
    pub hash: String,
}

/// A key for a live account.
pub fn generate() -> NewKeyMaterial {
    generate_for(false)
}

/// A key for a sandbox (`gg_test_…`) or a live (`gg_live_…`) account. The
/// prefix is what the account was when the key was made; a key keeps working
/// when its account is switched later (the account decides where tasks run).
pub fn generate_for(sandbox: bool) -> NewKeyMaterial {
    let prefix = if sandbox { TEST_KEY_PREFIX } else { KEY_PREFIX };
    let secret = format!("{prefix}{}", random_token(SECRET_LEN));
    NewKeyMaterial {
        visible_prefix: secret[..VISIBLE_LEN].to_owned(),
        hash: hash(&secret),
        secret,
    }
}

pub fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// The lookup prefix of a presented key, or `None` if it is not shaped like
/// one of ours (answered as `api_key_invalid` without touching the store).
pub fn visible_prefix(presented: &str) -> Option<&str> {
    let ok = presented.len() == KEY_PREFIX.len() + SECRET_LEN
        && (presented.starts_with(KEY_PREFIX) || presented.starts_with(TEST_KEY_PREFIX))
        && presented[KEY_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase());
    ok.then(|| &presented[..VISIBLE_LEN])
}

/// Constant-time comparison of two hex digests, so response timing does not
/// reveal how much of a guessed key matched.
pub fn hashes_equal(a: &str, b: &str) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.bytes()
        .zip(b.bytes())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_verify_and_expose_only_a_prefix() {
        let k = generate();
        assert_eq!(visible_prefix(&k.secret), Some(k.visible_prefix.as_str()));
        assert!(hashes_equal(&hash(&k.secret), &k.hash));
        assert!(!k.hash.contains(&k.secret[VISIBLE_LEN..]));
        assert_eq!(visible_prefix("gg_live_short"), None);
        assert_eq!(visible_prefix(&k.secret.to_uppercase()), None);
    }

    #[test]
    fn sandbox_keys_say_test_and_verify_the_same_way() {
        let k = generate_for(true);
        assert!(k.secret.starts_with("gg_test_"));
        assert_eq!(visible_prefix(&k.secret), Some(k.visible_prefix.as_str()));
        assert!(generate_for(false).secret.starts_with("gg_live_"));
        assert_eq!(
            visible_prefix(&k.secret.replacen("gg_test_", "gg_fake_", 1)),
            None
        );
    }
}

/// An account's own keys, created through the API (`POST /api/v1/keys`) by a
/// key with `keys:manage`. The rule that matters: a key can never mint a key
/// more powerful than itself — no scope it lacks, no life beyond its own expiry.
pub mod request {
    use crate::error::{FieldIssue, ValidationErrors};
    use crate::scope::Scope;
    use crate::text;
    use crate::time::Timestamp;
    use serde_json::Value;

    /// Longest key name, in characters (the same bound as webhook endpoint names).
    pub const MAX_NAME_CHARS: usize = 100;
    const FIELDS: [&str; 3] = ["name", "scopes", "expires_at"];

    /// What the calling key may hand on.
    #[derive(Debug, Clone)]
    pub struct Caller<'a> {
        pub scopes: &'a [Scope],
        pub expires_at: Option<Timestamp>,
    }

    /// A create request that passed every rule.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct CreateKey {
        pub name: String,
        /// Sorted, duplicate-free, never empty, a subset of the caller's.
        pub scopes: Vec<Scope>,
        /// Never later than the caller's own expiry.
        pub expires_at: Option<Timestamp>,
    }

    /// Checks the body of `POST /api/v1/keys`, naming every bad field.
    /// `scopes` left out means every scope the caller has; `expires_at`
    /// left out means the caller's own expiry (none for a key that never expires).
    pub fn parse_create(
        body: &Value,
        caller: &Caller<'_>,
        now: Timestamp,
    ) -> Result<CreateKey, ValidationErrors> {
        let mut errs = ValidationErrors::new();
        let Value::Object(obj) = body else {
            return Err(ValidationErrors::single(
                "body",
                FieldIssue::InvalidType,
                "the request body must be a JSON object",
            ));
        };
        for k in obj.keys() {
            if !FIELDS.contains(&k.as_str()) {
                let k = text::key_name(k);
                errs.push(
                    k.clone(),
                    FieldIssue::UnknownField,
                    format!("{k} is not a field of an API key"),
                );
            }
        }
        let name = name(obj.get("name"), &mut errs);
        let scopes = match obj.get("scopes") {
            None | Some(Value::Null) => Some(caller.scopes.to_vec()),
            Some(v) => scopes(v, caller.scopes, &mut errs),
        };
        let expires_at = match obj.get("expires_at") {
            None | Some(Value::Null) => Some(caller.expires_at),
            Some(v) => expiry(v, caller.expires_at, now, &mut errs),
        };
        match (name, scopes, expires_at) {
            (Some(name), Some(mut scopes), Some(expires_at)) if errs.is_empty() => {
                scopes.sort();
                scopes.dedup();
                Ok(CreateKey {
                    name,
                    scopes,
                    expires_at,
                })
            }
            _ => Err(errs),
        }
    }

    fn name(v: Option<&Value>, errs: &mut ValidationErrors) -> Option<String> {
        match v {
            None | Some(Value::Null) => {
                errs.push("name", FieldIssue::Required, "name is required");
                None
            }
            Some(v) => text::name("name", v, MAX_NAME_CHARS, errs),
        }
    }

    fn scopes(v: &Value, held: &[Scope], errs: &mut ValidationErrors) -> Option<Vec<Scope>> {
        let Value::Array(items) = v else {
            errs.push(
                "scopes",
                FieldIssue::InvalidType,
                "scopes must be an array of scope names",
            );
            return None;
        };
        if items.is_empty() {
            errs.push(
                "scopes",
                FieldIssue::TooShort,
                "scopes must name at least one scope (leave it out for every scope this key has)",
            );
            return None;
        }
        let mut out = Vec::new();
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let field = format!("scopes[{i}]");
            match item.as_str() {
                None => {
                    ok = false;
                    errs.push(field, FieldIssue::InvalidType, "scopes are strings");
                }
                Some(s) => match Scope::parse(s) {
                    None => {
                        ok = false;
                        errs.push(
                            field,
                            FieldIssue::NotAllowed,
                            format!(
                                "{:?} is not a scope (allowed: {})",
                                text::key_name(s),
                                Scope::ALL.map(Scope::as_str).join(", ")
                            ),
                        );
                    }
                    Some(sc) if !held.contains(&sc) => {
                        ok = false;
                        errs.push(
                            field,
                            FieldIssue::NotAllowed,
                            format!(
                                "this API key lacks the {} scope, so it cannot grant it",
                                sc.as_str()
                            ),
                        );
                    }
                    Some(sc) => out.push(sc),
                },
            }
        }
        ok.then_some(out)
    }

    fn expiry(
        v: &Value,
        own: Option<Timestamp>,
        now: Timestamp,
        errs: &mut ValidationErrors,
    ) -> Option<Option<Timestamp>> {
        let Some(at) = v.as_str().and_then(Timestamp::parse_rfc3339) else {
            errs.push(
                "expires_at",
                FieldIssue::InvalidFormat,
                "expires_at must be an RFC 3339 time such as 2026-12-31T00:00:00.000Z",
            );
            return None;
        };
        if at <= now {
            errs.push(
                "expires_at",
                FieldIssue::OutOfRange,
                "expires_at must be in the future",
            );
            return None;
        }
        if let Some(own) = own
            && at > own
        {
            errs.push(
                "expires_at",
                FieldIssue::OutOfRange,
                format!(
                    "expires_at must not be later than this API key's own expiry, {}",
                    own.rfc3339()
                ),
            );
            return None;
        }
        Some(Some(at))
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use crate::error::FieldIssue;
        use serde_json::json;

        const NOW: Timestamp = Timestamp::from_millis(1_780_000_000_000);

        fn fields(e: &ValidationErrors) -> Vec<(String, FieldIssue)> {
            e.problems()
                .iter()
                .map(|p| (p.field.clone(), p.issue))
                .collect()
        }

        #[test]
        fn omitted_scopes_and_expiry_inherit_the_callers() {
            let own = Some(NOW.plus(std::time::Duration::from_secs(3600)));
            let held = [Scope::CreditsRead, Scope::KeysManage];
            let c = Caller {
                scopes: &held,
                expires_at: own,
            };
            let k = parse_create(&json!({"name": " ci "}), &c, NOW).unwrap();
            assert_eq!(k.name, "ci");
            assert_eq!(k.scopes, held.to_vec());
            assert_eq!(k.expires_at, own);
        }

        #[test]
        fn a_key_cannot_grant_a_scope_it_lacks_or_outlive_itself() {
            let own = NOW.plus(std::time::Duration::from_secs(3600));
            let held = [Scope::CreditsRead, Scope::KeysManage];
            let c = Caller {
                scopes: &held,
                expires_at: Some(own),
            };
            let e = parse_create(
                &json!({"name": "x", "scopes": ["credits:read", "generations:create", "nope"],
                        "expires_at": "2099-01-01T00:00:00Z"}),
                &c,
                NOW,
            )
            .unwrap_err();
            assert_eq!(
                fields(&e),
                vec![
                    ("scopes[1]".into(), FieldIssue::NotAllowed),
                    ("scopes[2]".into(), FieldIssue::NotAllowed),
                    ("expires_at".into(), FieldIssue::OutOfRange),
                ]
            );
        }

        #[test]
        fn every_bad_field_is_named() {
            let c = Caller {
                scopes: &Scope::ALL,
                expires_at: None,
            };
            let e = parse_create(
                &json!({"name": "a\nb", "scopes": [], "expires_at": "2000-01-01T00:00:00Z", "admin": true}),
                &c,
                NOW,
            )
            .unwrap_err();
            assert_eq!(
                fields(&e),
                vec![
                    ("admin".into(), FieldIssue::UnknownField),
                    ("name".into(), FieldIssue::InvalidFormat),
                    ("scopes".into(), FieldIssue::TooShort),
                    ("expires_at".into(), FieldIssue::OutOfRange),
                ]
            );
            let e = parse_create(&json!({"scopes": "all", "expires_at": 5}), &c, NOW).unwrap_err();
            assert_eq!(
                fields(&e),
                vec![
                    ("name".into(), FieldIssue::Required),
                    ("scopes".into(), FieldIssue::InvalidType),
                    ("expires_at".into(), FieldIssue::InvalidFormat),
                ]
            );
        }

        #[test]
        fn scopes_are_sorted_and_deduplicated() {
            let c = Caller {
                scopes: &Scope::ALL,
                expires_at: None,
            };
            let k = parse_create(
                &json!({"name": "x", "scopes": ["keys:manage", "credits:read", "keys:manage"],
                        "expires_at": "2099-01-01T00:00:00Z"}),
                &c,
                NOW,
            )
            .unwrap();
            assert_eq!(k.scopes, vec![Scope::CreditsRead, Scope::KeysManage]);
            assert!(k.expires_at.is_some());
        }
    }
}
