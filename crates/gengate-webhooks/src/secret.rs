//! Endpoint signing secrets in the Standard Webhooks form `whsec_<base64 key>`.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use zeroize::Zeroizing;

const PREFIX: &str = "whsec_";

/// Key bytes we generate. 32 matches SHA-256's output size, more than HMAC needs.
const GENERATED_KEY_BYTES: usize = 32;

/// Key lengths we accept on parse: the Standard Webhooks reference libraries accept
/// 24..=64 bytes, and secrets may be imported from other providers.
const MIN_KEY_BYTES: usize = 24;
const MAX_KEY_BYTES: usize = 64;

/// How many base64 characters of the key [`SigningSecret::preview`] reveals:
/// enough to tell two secrets apart in a list, 24 bits of a 256-bit key.
const PREVIEW_CHARS: usize = 4;

/// An endpoint's signing secret, `whsec_` followed by the base64 of 24..=64 random bytes.
///
/// It has no `Display` and its `Debug` shows only the preview, so it cannot end up in
/// logs by accident; [`SigningSecret::expose`] is the one way to get the full text
/// (to store it, or to show it once in the create/rotate answer). The memory holding
/// it is zeroed on drop.
#[derive(Clone)]
pub struct SigningSecret {
    encoded: Zeroizing<String>,
    key: Zeroizing<Vec<u8>>,
}

/// Why a string is not a signing secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    #[error("signing secret must start with \"whsec_\"")]
    MissingPrefix,
    #[error("signing secret is not valid base64 after \"whsec_\"")]
    InvalidBase64,
    #[error("signing secret must decode to {MIN_KEY_BYTES} to {MAX_KEY_BYTES} bytes, got {len}")]
    InvalidLength { len: usize },
}

impl SigningSecret {
    /// A new secret from the operating system's CSPRNG (via `rand`'s thread RNG, a
    /// ChaCha generator seeded from the OS).
    pub fn generate() -> Self {
        let mut key = Zeroizing::new(vec![0u8; GENERATED_KEY_BYTES]);
        rand::fill(key.as_mut_slice());
        let encoded = Zeroizing::new(format!("{PREFIX}{}", STANDARD.encode(key.as_slice())));
        Self { encoded, key }
    }

    /// Parses `whsec_<base64>`, as stored or as imported by a user.
    pub fn parse(s: &str) -> Result<Self, SecretError> {
        let b64 = s.strip_prefix(PREFIX).ok_or(SecretError::MissingPrefix)?;
        let key = Zeroizing::new(
            STANDARD
                .decode(b64)
                .map_err(|_| SecretError::InvalidBase64)?,
        );
        if !(MIN_KEY_BYTES..=MAX_KEY_BYTES).contains(&key.len()) {
            return Err(SecretError::InvalidLength { len: key.len() });
        }
        Ok(Self {
            encoded: Zeroizing::new(s.to_owned()),
            key,
        })
    }

    /// A short, non-secret form for the endpoint object's `secret_preview`: `whsec_abcd…`.
    pub fn preview(&self) -> String {
        let b64 = &self.encoded[PREFIX.len()..];
        // base64 is ASCII, so any byte index is a char boundary.
        let shown = &b64[..PREVIEW_CHARS.min(b64.len())];
        format!("{PREFIX}{shown}…")
    }

    /// The full `whsec_…` text.
    pub fn expose(&self) -> &str {
        &self.encoded
    }

    /// The HMAC key: the decoded bytes after `whsec_`, not the text.
    pub(crate) fn key(&self) -> &[u8] {
        &self.key
    }
}

impl FromStr for SigningSecret {
    type Err = SecretError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SigningSecret")
            .field(&self.preview())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secret_round_trips_through_parse() {
        let secret = SigningSecret::generate();
        assert!(secret.expose().starts_with("whsec_"));
        assert_eq!(secret.key().len(), GENERATED_KEY_BYTES);
        let parsed = SigningSecret::parse(secret.expose()).expect("a generated secret parses");
        assert_eq!(parsed.key(), secret.key());
        assert_eq!(parsed.expose(), secret.expose());
    }

    #[test]
    fn generated_secrets_differ() {
        assert_ne!(
            SigningSecret::generate().expose(),
            SigningSecret::generate().expose()
        );
    }

    #[test]
    fn parse_rejects_malformed_secrets() {
        assert_eq!(
            SigningSecret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap_err(),
            SecretError::MissingPrefix
        );
        assert_eq!(
            SigningSecret::parse("whsec_not base64!").unwrap_err(),
            SecretError::InvalidBase64
        );
        // 16 bytes: too short to be a Standard Webhooks secret.
        assert_eq!(
            SigningSecret::parse("whsec_AAAAAAAAAAAAAAAAAAAAAA==").unwrap_err(),
            SecretError::InvalidLength { len: 16 }
        );
        assert_eq!(
            SigningSecret::parse("whsec_").unwrap_err(),
            SecretError::InvalidLength { len: 0 }
        );
    }

    #[test]
    fn preview_and_debug_do_not_reveal_the_secret() {
        let secret = SigningSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("valid");
        assert_eq!(secret.preview(), "whsec_MfKQ…");
        let debug = format!("{secret:?}");
        assert_eq!(debug, "SigningSecret(\"whsec_MfKQ…\")");
        assert!(!debug.contains("9r8GKYqr"));
    }
}
