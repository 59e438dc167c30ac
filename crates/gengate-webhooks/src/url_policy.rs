//! Which URLs may receive webhooks (API.md §8, "URL rules").
//!
//! Two layers: [`check_url`] is pure (syntax plus IP literals) and runs on every
//! delivery; [`check_url_resolving`] adds DNS and runs when an endpoint is created or
//! changed. The deliverer's resolver repeats the DNS check on every connection, because
//! a name that resolved to a public address at creation may later resolve to
//! 169.254.169.254 (DNS rebinding).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use url::{Host, Url};

use crate::ip::{IpScope, classify};

/// Longer URLs are refused: they are stored with every endpoint and echoed in
/// delivery logs, and no legitimate receiver needs more.
pub const MAX_URL_LEN: usize = 2048;

/// How long a resolution may take before the host counts as unresolvable.
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Relaxations for local development. The default (both `false`) is production.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UrlPolicy {
    /// Accept `http://` as well as `https://`.
    pub allow_http: bool,
    /// Accept hosts that are, or resolve to, non-public addresses (loopback, private…).
    pub allow_private: bool,
}

/// Why a webhook URL is refused. `Display` is meant for the API's error message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UrlRejection {
    #[error("URL must be at most {max} characters", max = MAX_URL_LEN)]
    TooLong,
    #[error("not a valid URL: {0}")]
    Invalid(String),
    #[error("scheme must be https")]
    SchemeNotHttps { scheme: String },
    #[error("scheme must be http or https")]
    SchemeNotHttpOrHttps { scheme: String },
    #[error("credentials are not allowed")]
    Credentials,
    #[error("fragment not allowed")]
    Fragment,
    #[error("a host is required")]
    MissingHost,
    /// The host is an IP literal (in any spelling the URL parser accepts) that is not public.
    #[error("host {host} is {scope}{}", embedded_note(.embedded_v4))]
    NonPublicHost {
        host: String,
        scope: IpScope,
        embedded_v4: Option<Ipv4Addr>,
    },
    /// The host name resolved to at least one non-public address.
    #[error("host must resolve to a public address ({host} resolved to {addr}, {scope}{})", embedded_note(.embedded_v4))]
    ResolvesToNonPublic {
        host: String,
        addr: IpAddr,
        scope: IpScope,
        embedded_v4: Option<Ipv4Addr>,
    },
    #[error("host {host} could not be resolved: {reason}")]
    Unresolvable { host: String, reason: String },
}

/// " (embeds IPv4 127.0.0.1)" for IPv6 forms judged by an embedded IPv4 address, so
/// the message explains why e.g. `[64:ff9b::7f00:1]` counts as loopback.
fn embedded_note(embedded_v4: &Option<Ipv4Addr>) -> String {
    embedded_v4
        .map(|v4| format!(" (embeds IPv4 {v4})"))
        .unwrap_or_default()
}

/// Syntax and literal-address checks, without DNS.
///
/// The URL is parsed the WHATWG way (the `url` crate), which is also how reqwest and
/// browsers read it, so odd IPv4 spellings such as `0x7f.1`, `2130706433`,
/// `017700000001` or `127.1` are normalised to `127.0.0.1` before they are judged.
/// Returns the parsed URL; deliver to that value, not to the raw string.
pub fn check_url(raw: &str, policy: &UrlPolicy) -> Result<Url, UrlRejection> {
    if raw.len() > MAX_URL_LEN {
        return Err(UrlRejection::TooLong);
    }
    let url = Url::parse(raw).map_err(|e| UrlRejection::Invalid(e.to_string()))?;
    match (url.scheme(), policy.allow_http) {
        ("https", _) | ("http", true) => {}
        (scheme, false) => {
            return Err(UrlRejection::SchemeNotHttps {
                scheme: scheme.to_owned(),
            });
        }
        (scheme, true) => {
            return Err(UrlRejection::SchemeNotHttpOrHttps {
                scheme: scheme.to_owned(),
            });
        }
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(UrlRejection::Credentials);
    }
    if url.fragment().is_some() {
        return Err(UrlRejection::Fragment);
    }
    let ip = match url.host() {
        None => return Err(UrlRejection::MissingHost),
        Some(Host::Domain("")) => return Err(UrlRejection::MissingHost),
        Some(Host::Domain(_)) => None,
        Some(Host::Ipv4(v4)) => Some(IpAddr::V4(v4)),
        Some(Host::Ipv6(v6)) => Some(IpAddr::V6(v6)),
    };
    if let Some(ip) = ip
        && !policy.allow_private
    {
        let c = classify(ip);
        if c.scope != IpScope::Public {
            return Err(UrlRejection::NonPublicHost {
                host: url.host_str().unwrap_or_default().to_owned(),
                scope: c.scope,
                embedded_v4: c.embedded_v4,
            });
        }
    }
    Ok(url)
}

/// [`check_url`], then resolve a host name (`tokio::net::lookup_host`) and require every
/// address it resolves to be public, unless `policy.allow_private`.
///
/// Every address, not just one: the connector may try any of them.
pub async fn check_url_resolving(raw: &str, policy: &UrlPolicy) -> Result<Url, UrlRejection> {
    let url = check_url(raw, policy)?;
    if let Some(Host::Domain(name)) = url.host() {
        let port = url.port_or_known_default().unwrap_or(0);
        resolve_checked(name, port, policy).await?;
    }
    Ok(url)
}

/// Resolves `host` and refuses the whole answer if any address is not public (unless
/// `policy.allow_private`). Used both at creation time and by the deliverer's resolver,
/// so the two cannot disagree.
pub(crate) async fn resolve_checked(
    host: &str,
    port: u16,
    policy: &UrlPolicy,
) -> Result<Vec<SocketAddr>, UrlRejection> {
    let unresolvable = |reason: String| UrlRejection::Unresolvable {
        host: host.to_owned(),
        reason,
    };
    let addrs: Vec<SocketAddr> =
        match tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((host, port))).await {
            Err(_) => return Err(unresolvable(format!("timed out after {RESOLVE_TIMEOUT:?}"))),
            Ok(Err(e)) => return Err(unresolvable(e.to_string())),
            Ok(Ok(addrs)) => addrs.collect(),
        };
    if addrs.is_empty() {
        return Err(unresolvable("no addresses".to_owned()));
    }
    if !policy.allow_private {
        for addr in &addrs {
            let c = classify(addr.ip());
            if c.scope != IpScope::Public {
                return Err(UrlRejection::ResolvesToNonPublic {
                    host: host.to_owned(),
                    addr: addr.ip(),
                    scope: c.scope,
                    embedded_v4: c.embedded_v4,
                });
            }
        }
    }
    Ok(addrs)
}
