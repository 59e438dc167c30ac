use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use gengate_webhooks::{SigningSecret, sign, signature_header, verify};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SPEC_MSG_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
const SPEC_TIMESTAMP: i64 = 1_614_265_330;
const SPEC_BODY: &[u8] = br#"{"test": 2432232314}"#;

fn spec_secret() -> SigningSecret {
    SigningSecret::parse(SPEC_SECRET).expect("the spec's secret is valid")
}

#[test]
fn matches_the_standard_webhooks_published_example() {
    assert_eq!(
        sign(&spec_secret(), SPEC_MSG_ID, SPEC_TIMESTAMP, SPEC_BODY),
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    );
}

/// Recomputes the signature from the spec's definition with the primitives directly,
/// so a mistake in how `sign` builds the signed text cannot hide.
#[test]
fn matches_an_independent_hmac_computation() {
    let secret = SigningSecret::generate();
    let key = STANDARD
        .decode(secret.expose().strip_prefix("whsec_").expect("prefixed"))
        .expect("base64");
    let body = br#"{"id":"evt_1","type":"generation.succeeded","data":{"x":"\u00e9"}}"#;
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key).expect("any key length");
    mac.update(b"msg_2Lq8.1700000000.");
    mac.update(body);
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    assert_eq!(sign(&secret, "msg_2Lq8", 1_700_000_000, body), expected);
}

#[test]
fn signature_verifies_and_any_change_breaks_it() {
    let secret = spec_secret();
    let header = signature_header(&[&secret], SPEC_MSG_ID, SPEC_TIMESTAMP, SPEC_BODY);
    assert!(verify(
        &secret,
        SPEC_MSG_ID,
        SPEC_TIMESTAMP,
        SPEC_BODY,
        &header
    ));
    assert!(!verify(
        &secret,
        "msg_other",
        SPEC_TIMESTAMP,
        SPEC_BODY,
        &header
    ));
    assert!(!verify(
        &secret,
        SPEC_MSG_ID,
        SPEC_TIMESTAMP + 1,
        SPEC_BODY,
        &header
    ));
    assert!(!verify(
        &secret,
        SPEC_MSG_ID,
        SPEC_TIMESTAMP,
        br#"{"test": 2432232315}"#,
        &header
    ));
    assert!(!verify(
        &SigningSecret::generate(),
        SPEC_MSG_ID,
        SPEC_TIMESTAMP,
        SPEC_BODY,
        &header
    ));
}

#[test]
fn rotation_header_carries_one_verifying_entry_per_secret() {
    let new = SigningSecret::generate();
    let old = spec_secret();
    let header = signature_header(&[&new, &old], SPEC_MSG_ID, SPEC_TIMESTAMP, SPEC_BODY);

    let entries: Vec<&str> = header.split(' ').collect();
    assert_eq!(entries.len(), 2, "{header}");
    assert!(entries.iter().all(|e| e.starts_with("v1,")), "{header}");
    assert_eq!(
        entries[0],
        sign(&new, SPEC_MSG_ID, SPEC_TIMESTAMP, SPEC_BODY)
    );
    assert_eq!(
        entries[1],
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    );

    // A receiver holding either secret accepts the message…
    assert!(verify(
        &new,
        SPEC_MSG_ID,
        SPEC_TIMESTAMP,
        SPEC_BODY,
        &header
    ));
    assert!(verify(
        &old,
        SPEC_MSG_ID,
        SPEC_TIMESTAMP,
        SPEC_BODY,
        &header
    ));
    // …and each entry stands on its own.
    for entry in entries {
        let verifying = [&new, &old]
            .iter()
            .filter(|s| verify(s, SPEC_MSG_ID, SPEC_TIMESTAMP, SPEC_BODY, entry))
            .count();
        assert_eq!(verifying, 1, "{entry}");
    }
}

#[test]
fn empty_secret_list_gives_an_empty_header() {
    assert_eq!(signature_header(&[], "m", 1, b"{}"), "");
}
