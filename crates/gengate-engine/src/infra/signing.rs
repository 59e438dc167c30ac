//! Signed, expiring links to gengate's blob storage. A link carries its
//! expiry and an HMAC over (blob key, expiry) with the server's secret, so
//! media can be fetched without an API key (browsers, upstream vendors) and
//! nobody can mint or extend one.

use gengate_core::Timestamp;
use gengate_core::clock::SharedClock;
use gengate_core::generation::UrlSigner;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::path::Path;
use std::time::Duration;

type HmacSha256 = Hmac<Sha256>;

#[derive(Clone)]
pub struct SigningKey(Vec<u8>);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(***)")
    }
}

impl SigningKey {
    pub fn from_secret(s: &str) -> Self {
        Self(s.as_bytes().to_vec())
    }

    /// The key from `GENGATE_SIGNING_KEY`, else the one kept in the data
    /// directory (made on first start), so links survive restarts.
    pub fn load_or_create(configured: Option<&str>, data_dir: &Path) -> std::io::Result<Self> {
        if let Some(s) = configured.filter(|s| !s.is_empty()) {
            return Ok(Self::from_secret(s));
        }
        let path = data_dir.join("signing.key");
        match std::fs::read_to_string(&path) {
            Ok(s) if !s.trim().is_empty() => Ok(Self::from_secret(s.trim())),
            _ => {
                std::fs::create_dir_all(data_dir)?;
                let secret = gengate_core::ids::random_token(48);
                std::fs::write(&path, &secret)?;
                Ok(Self::from_secret(&secret))
            }
        }
    }

    pub fn mac(&self, parts: &[&[u8]]) -> String {
        let mut m = HmacSha256::new_from_slice(&self.0).unwrap_or_else(|_| unreachable_hmac());
        for p in parts {
            m.update(&(p.len() as u64).to_be_bytes());
            m.update(p);
        }
        hex::encode(m.finalize().into_bytes())
    }

    pub fn verify(&self, parts: &[&[u8]], sig: &str) -> bool {
        gengate_core::apikey::hashes_equal(&self.mac(parts), sig)
    }
}

// HMAC accepts keys of any length; this cannot happen.
fn unreachable_hmac() -> HmacSha256 {
    match HmacSha256::new_from_slice(b"k") {
        Ok(m) => m,
        Err(_) => panic!("HMAC-SHA256 refused a key"),
    }
}

/// Makes and checks `/media/{key}?expires=…&sig=…` links.
#[derive(Clone, Debug)]
pub struct MediaLinks {
    pub key: SigningKey,
    pub base_url: String,
    pub ttl: Duration,
    pub clock: SharedClock,
}

impl MediaLinks {
    pub fn link(&self, blob_key: &str, expires: Timestamp) -> String {
        let exp = expires.unix_seconds().to_string();
        let sig = self
            .key
            .mac(&[b"media", blob_key.as_bytes(), exp.as_bytes()]);
        format!(
            "{}/media/{}?expires={}&sig={}",
            self.base_url, blob_key, exp, sig
        )
    }

    pub fn check(&self, blob_key: &str, expires: &str, sig: &str) -> Result<(), &'static str> {
        if !self
            .key
            .verify(&[b"media", blob_key.as_bytes(), expires.as_bytes()], sig)
        {
            return Err("the link's signature is not valid");
        }
        let exp: i64 = expires
            .parse()
            .map_err(|_| "the link's expiry is not valid")?;
        if exp < self.clock.now().unix_seconds() {
            return Err("the link has expired; fetch the resource again for a fresh one");
        }
        Ok(())
    }
}

impl MediaLinks {
    /// A fresh link for a reference file handed to a provider.
    pub fn sign_ref(&self, blob_key: &str) -> String {
        UrlSigner::sign(self, blob_key).0
    }
}

impl UrlSigner for MediaLinks {
    fn sign(&self, blob_key: &str) -> (String, Timestamp) {
        // Round expiry to the hour so repeated reads within the hour give the
        // same URL (cache-friendly) and never less than `ttl - 1h`.
        let now = self.clock.now();
        let exp_secs = (now.plus(self.ttl).unix_seconds() / 3600 + 1) * 3600;
        let expires = Timestamp::from_millis(exp_secs * 1000);
        (self.link(blob_key, expires), expires)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gengate_core::clock::SystemClock;
    use std::sync::Arc;

    fn links() -> MediaLinks {
        MediaLinks {
            key: SigningKey::from_secret("s3cret"),
            base_url: "http://x".into(),
            ttl: Duration::from_secs(3600),
            clock: Arc::new(SystemClock),
        }
    }

    #[test]
    fn links_verify_and_refuse_tampering_and_expiry() {
        let l = links();
        let (url, _) = l.sign("results/task_a/0.mp4");
        let q = url.split_once('?').unwrap().1;
        let exp = q.split('&').next().unwrap().trim_start_matches("expires=");
        let sig = q.split('&').nth(1).unwrap().trim_start_matches("sig=");
        assert!(l.check("results/task_a/0.mp4", exp, sig).is_ok());
        assert!(l.check("results/task_b/0.mp4", exp, sig).is_err());
        let later = (exp.parse::<i64>().unwrap() + 1).to_string();
        assert!(l.check("results/task_a/0.mp4", &later, sig).is_err());
        let old = "1000";
        let old_sig = l
            .key
            .mac(&[b"media", b"results/task_a/0.mp4", old.as_bytes()]);
        assert_eq!(
            l.check("results/task_a/0.mp4", old, &old_sig),
            Err("the link has expired; fetch the resource again for a fresh one")
        );
    }
}
