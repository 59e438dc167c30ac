//! Standard Webhooks signatures (<https://www.standardwebhooks.com/>, "Signature scheme").
//!
//! The signed content is `{webhook-id}.{webhook-timestamp}.{body}` and the signature is
//! `v1,` + base64(HMAC-SHA256(key, content)), where the key is the base64-decoded part of
//! the `whsec_` secret. A `webhook-signature` header carries one or more such entries
//! separated by spaces; a receiver accepts the message if any entry verifies, which is
//! how a secret rotation works without downtime.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::SigningSecret;

type HmacSha256 = Hmac<Sha256>;

const VERSION: &str = "v1";

fn mac_over(secret: &SigningSecret, msg_id: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
    // HMAC is defined for keys of every length (long keys are hashed first), so this
    // cannot fail; the `Result` exists only because `KeyInit` also serves fixed-key MACs.
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(secret.key())
        .expect("HMAC-SHA256 accepts keys of any length");
    // Fed piecewise so a large body is not copied into a concatenated buffer.
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// One signature entry, `v1,<base64>`, for the given message.
pub fn sign(secret: &SigningSecret, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    let tag = mac_over(secret, msg_id, timestamp, body)
        .finalize()
        .into_bytes();
    format!("{VERSION},{}", STANDARD.encode(tag))
}

/// The `webhook-signature` header value: one `v1,` entry per secret, space-separated.
///
/// After a rotation pass `[&new, &old]` for as long as the old secret is still honoured
/// (24 hours in gengate), so receivers that have not switched yet keep verifying.
pub fn signature_header(
    secrets: &[&SigningSecret],
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    secrets
        .iter()
        .map(|secret| sign(secret, msg_id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether any `v1` entry of a `webhook-signature` header is a valid signature of the
/// message under `secret`. Comparison is constant-time; unknown versions and malformed
/// entries are skipped, as the spec asks.
///
/// This checks the signature only. A receiver should also reject timestamps too far from
/// its clock (the spec suggests 5 minutes) to limit replays.
///
/// ```
/// use gengate_webhooks::{SigningSecret, signature_header, verify};
///
/// let secret = SigningSecret::generate();
/// let body = br#"{"id":"evt_123","type":"webhook.test"}"#;
/// let header = signature_header(&[&secret], "msg_123", 1_614_265_330, body);
/// assert!(verify(&secret, "msg_123", 1_614_265_330, body, &header));
/// assert!(!verify(&secret, "msg_123", 1_614_265_331, body, &header));
/// ```
pub fn verify(
    secret: &SigningSecret,
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
    header: &str,
) -> bool {
    let expected = mac_over(secret, msg_id, timestamp, body);
    header.split_whitespace().any(|entry| {
        let Some((VERSION, b64)) = entry.split_once(',') else {
            return false;
        };
        let Ok(tag) = STANDARD.decode(b64) else {
            return false;
        };
        expected.clone().verify_slice(&tag).is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> SigningSecret {
        SigningSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("valid secret")
    }

    #[test]
    fn verify_skips_malformed_and_foreign_entries() {
        let s = secret();
        let good = sign(&s, "msg_1", 10, b"{}");
        let b64 = good.trim_start_matches("v1,");
        for header in [
            String::new(),
            "v1".to_owned(),
            "v1,".to_owned(),
            "v1,!!!not-base64".to_owned(),
            format!("v2,{b64}"),
            format!("v1a,{b64}"),
            b64.to_owned(),
            format!("v1,{}", &b64[..b64.len() - 4]),
        ] {
            assert!(!verify(&s, "msg_1", 10, b"{}", &header), "{header:?}");
        }
        assert!(verify(
            &s,
            "msg_1",
            10,
            b"{}",
            &format!("v2,{b64} garbage {good}")
        ));
    }

    #[test]
    fn negative_timestamps_are_signed_as_written() {
        // Not a real case, but the signed text must be exactly what goes in the header.
        let s = secret();
        assert!(verify(&s, "m", -5, b"", &sign(&s, "m", -5, b"")));
        assert!(!verify(&s, "m", 5, b"", &sign(&s, "m", -5, b"")));
    }
}
