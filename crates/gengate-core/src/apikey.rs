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
