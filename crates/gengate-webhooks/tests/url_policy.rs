//! The SSRF battery: URLs an attacker might register as a webhook endpoint, and the
//! exact reason each one is refused.

use gengate_webhooks::{UrlPolicy, UrlRejection, check_url, check_url_resolving};

const PRODUCTION: UrlPolicy = UrlPolicy {
    allow_http: false,
    allow_private: false,
};
const HTTP_ONLY: UrlPolicy = UrlPolicy {
    allow_http: true,
    allow_private: false,
};
const DEVELOPMENT: UrlPolicy = UrlPolicy {
    allow_http: true,
    allow_private: true,
};

/// `Ok(normalised URL)` or `Err(Display of the rejection)`.
fn outcome(raw: &str, policy: &UrlPolicy) -> Result<String, String> {
    check_url(raw, policy)
        .map(|u| u.to_string())
        .map_err(|e| e.to_string())
}

#[test]
fn default_policy_is_production() {
    assert_eq!(UrlPolicy::default(), PRODUCTION);
}

#[test]
fn ssrf_battery_under_the_production_policy() {
    let loopback = |host: &str| Err(format!("host {host} is a loopback address"));
    let accepted = |url: &str| Ok(url.to_owned());
    let table: Vec<(&str, Result<String, String>)> = vec![
        // Accepted.
        ("https://example.com/hooks", accepted("https://example.com/hooks")),
        ("HTTPS://Example.COM:8443/a?b=c", accepted("https://example.com:8443/a?b=c")),
        ("https://hooks.example.com./x", accepted("https://hooks.example.com./x")),
        ("https://8.8.8.8/hook", accepted("https://8.8.8.8/hook")),
        ("https://[2606:4700:4700::1111]/", accepted("https://[2606:4700:4700::1111]/")),
        ("https://[::ffff:8.8.8.8]/", accepted("https://[::ffff:808:808]/")),
        ("https://[2002:0808:0808::1]/", accepted("https://[2002:808:808::1]/")),
        ("https://xn--bcher-kva.example/", accepted("https://xn--bcher-kva.example/")),
        ("https://bücher.example/", accepted("https://xn--bcher-kva.example/")),
        // No DNS in check_url: names are judged by check_url_resolving and the resolver.
        ("https://localhost/", accepted("https://localhost/")),
        // Scheme.
        ("http://example.com/", Err("scheme must be https".into())),
        ("ftp://example.com/", Err("scheme must be https".into())),
        ("file:///etc/passwd", Err("scheme must be https".into())),
        ("gopher://127.0.0.1:6379/_FLUSHALL", Err("scheme must be https".into())),
        ("javascript:alert(1)", Err("scheme must be https".into())),
        ("data:text/plain,hi", Err("scheme must be https".into())),
        // Credentials and fragments.
        ("https://user@example.com/", Err("credentials are not allowed".into())),
        ("https://user:pw@example.com/", Err("credentials are not allowed".into())),
        ("https://:pw@example.com/", Err("credentials are not allowed".into())),
        ("https://example.com/#frag", Err("fragment not allowed".into())),
        ("https://example.com/#", Err("fragment not allowed".into())),
        // Not URLs at all.
        ("", Err("not a valid URL: relative URL without a base".into())),
        ("example.com/hook", Err("not a valid URL: relative URL without a base".into())),
        ("//example.com/hook", Err("not a valid URL: relative URL without a base".into())),
        ("https://", Err("not a valid URL: empty host".into())),
        ("https://:443/", Err("not a valid URL: empty host".into())),
        ("https://ex ample.com/", Err("not a valid URL: invalid international domain name".into())),
        ("https://1.2.3.4.5/", Err("not a valid URL: invalid IPv4 address".into())),
        ("https://0x100000000/", Err("not a valid URL: invalid IPv4 address".into())),
        ("https://[fe80::1%25eth0]/", Err("not a valid URL: invalid IPv6 address".into())),
        // IPv4 loopback in every spelling the WHATWG parser normalises.
        ("https://127.0.0.1/", loopback("127.0.0.1")),
        ("https://127.0.0.1:8080/x", loopback("127.0.0.1")),
        ("https://127.0.0.1./", loopback("127.0.0.1")),
        ("https://127.255.255.254/", loopback("127.255.255.254")),
        ("https://0x7f.1/", loopback("127.0.0.1")),
        ("https://0x7f000001/", loopback("127.0.0.1")),
        ("https://2130706433/", loopback("127.0.0.1")),
        ("https://017700000001/", loopback("127.0.0.1")),
        ("https://0177.0.0.1/", loopback("127.0.0.1")),
        ("https://127.1/", loopback("127.0.0.1")),
        ("https://127.0.1/", loopback("127.0.0.1")),
        ("https://%31%32%37.0.0.1/", loopback("127.0.0.1")),
        ("https://１２７.０.０.１/", loopback("127.0.0.1")),
        // IPv6 loopback, and IPv6 forms that embed an IPv4 loopback.
        ("https://[::1]/", loopback("[::1]")),
        ("https://[0:0:0:0:0:0:0:1]/", loopback("[::1]")),
        (
            "https://[::ffff:127.0.0.1]/",
            Err("host [::ffff:7f00:1] is a loopback address (embeds IPv4 127.0.0.1)".into()),
        ),
        (
            "https://[::127.0.0.1]/",
            Err("host [::7f00:1] is a loopback address (embeds IPv4 127.0.0.1)".into()),
        ),
        (
            "https://[::ffff:0:127.0.0.1]/",
            Err("host [::ffff:0:7f00:1] is a loopback address (embeds IPv4 127.0.0.1)".into()),
        ),
        (
            "https://[64:ff9b::7f00:1]/",
            Err("host [64:ff9b::7f00:1] is a loopback address (embeds IPv4 127.0.0.1)".into()),
        ),
        (
            "https://[2002:7f00:1::]/",
            Err("host [2002:7f00:1::] is a loopback address (embeds IPv4 127.0.0.1)".into()),
        ),
        // Private, shared, link-local (cloud metadata), and their IPv6 disguises.
        ("https://10.0.0.1/", Err("host 10.0.0.1 is a private address".into())),
        ("https://10.1/", Err("host 10.0.0.1 is a private address".into())),
        ("https://172.16.0.1/", Err("host 172.16.0.1 is a private address".into())),
        ("https://172.31.255.255/", Err("host 172.31.255.255 is a private address".into())),
        ("https://192.168.0.1/", Err("host 192.168.0.1 is a private address".into())),
        ("https://0300.0250.0.1/", Err("host 192.168.0.1 is a private address".into())),
        ("https://0xc0a80001/", Err("host 192.168.0.1 is a private address".into())),
        ("https://3232235777/", Err("host 192.168.1.1 is a private address".into())),
        (
            "https://100.64.0.1/",
            Err("host 100.64.0.1 is a shared (carrier-grade NAT) address".into()),
        ),
        ("https://169.254.169.254/latest/meta-data/", Err("host 169.254.169.254 is a link-local address".into())),
        (
            "https://[::ffff:169.254.169.254]/",
            Err("host [::ffff:a9fe:a9fe] is a link-local address (embeds IPv4 169.254.169.254)".into()),
        ),
        (
            "https://[2002:c0a8:0101::1]/",
            Err("host [2002:c0a8:101::1] is a private address (embeds IPv4 192.168.1.1)".into()),
        ),
        (
            "https://[64:ff9b::10.0.0.1]/",
            Err("host [64:ff9b::a00:1] is a private address (embeds IPv4 10.0.0.1)".into()),
        ),
        (
            "https://[2001:0:4136:e378:8000:63bf:3f57:fefe]/",
            Err("host [2001:0:4136:e378:8000:63bf:3f57:fefe] is a private address (embeds IPv4 192.168.1.1)".into()),
        ),
        ("https://[64:ff9b:1::8.8.8.8]/", Err("host [64:ff9b:1::808:808] is a local-use NAT64 address".into())),
        ("https://[fe80::1]/", Err("host [fe80::1] is a link-local address".into())),
        ("https://[fc00::1]/", Err("host [fc00::1] is a unique-local address".into())),
        ("https://[fd00:ec2::254]/", Err("host [fd00:ec2::254] is a unique-local address".into())),
        ("https://[fec0::1]/", Err("host [fec0::1] is a site-local address".into())),
        // Unspecified, "this network", broadcast, multicast, reserved and special ranges.
        ("https://0.0.0.0/", Err("host 0.0.0.0 is the unspecified address".into())),
        ("https://0/", Err("host 0.0.0.0 is the unspecified address".into())),
        ("https://[::]/", Err("host [::] is the unspecified address".into())),
        ("https://0.1.2.3/", Err("host 0.1.2.3 is a \"this network\" address".into())),
        ("https://255.255.255.255/", Err("host 255.255.255.255 is the broadcast address".into())),
        ("https://224.0.0.1/", Err("host 224.0.0.1 is a multicast address".into())),
        ("https://[ff02::1]/", Err("host [ff02::1] is a multicast address".into())),
        ("https://240.0.0.1/", Err("host 240.0.0.1 is a reserved address".into())),
        ("https://192.0.0.1/", Err("host 192.0.0.1 is an IETF protocol assignment address".into())),
        ("https://192.0.2.10/", Err("host 192.0.2.10 is a documentation address".into())),
        ("https://198.51.100.1/", Err("host 198.51.100.1 is a documentation address".into())),
        ("https://203.0.113.1/", Err("host 203.0.113.1 is a documentation address".into())),
        ("https://[2001:db8::1]/", Err("host [2001:db8::1] is a documentation address".into())),
        ("https://198.18.0.1/", Err("host 198.18.0.1 is a benchmarking address".into())),
        ("https://[100::1]/", Err("host [100::1] is a discard-only address".into())),
        ("https://[5f00::1]/", Err("host [5f00::1] is a reserved address".into())),
    ];
    let mut failures = Vec::new();
    for (raw, expected) in &table {
        let got = outcome(raw, &PRODUCTION);
        if &got != expected {
            failures.push(format!(
                "{raw:?}\n   expected {expected:?}\n   got      {got:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn overlong_urls_are_refused() {
    let long = format!("https://example.com/{}", "a".repeat(3000));
    assert_eq!(check_url(&long, &PRODUCTION), Err(UrlRejection::TooLong));
}

#[test]
fn allow_http_admits_http_but_still_judges_the_host() {
    assert_eq!(
        outcome("http://example.com/", &HTTP_ONLY),
        Ok("http://example.com/".into())
    );
    assert_eq!(
        outcome("http://127.0.0.1:9000/", &HTTP_ONLY),
        Err("host 127.0.0.1 is a loopback address".into())
    );
    assert_eq!(
        outcome("ftp://example.com/", &HTTP_ONLY),
        Err("scheme must be http or https".into())
    );
}

#[test]
fn allow_private_admits_local_hosts_but_keeps_the_other_rules() {
    for raw in [
        "http://127.0.0.1:9000/hook",
        "http://[::1]/",
        "http://10.0.0.5/",
        "http://0x7f.1/",
    ] {
        assert!(check_url(raw, &DEVELOPMENT).is_ok(), "{raw}");
    }
    assert_eq!(
        outcome("http://u:p@127.0.0.1/", &DEVELOPMENT),
        Err("credentials are not allowed".into())
    );
    assert_eq!(
        outcome("http://127.0.0.1/#x", &DEVELOPMENT),
        Err("fragment not allowed".into())
    );
    assert_eq!(
        outcome(
            "https://[::1]/",
            &UrlPolicy {
                allow_http: false,
                allow_private: true
            }
        ),
        Ok("https://[::1]/".into())
    );
}

#[test]
fn rejections_carry_structured_details() {
    match check_url("https://[64:ff9b::7f00:1]/", &PRODUCTION) {
        Err(UrlRejection::NonPublicHost {
            host,
            scope,
            embedded_v4,
        }) => {
            assert_eq!(host, "[64:ff9b::7f00:1]");
            assert_eq!(scope, gengate_webhooks::IpScope::Loopback);
            assert_eq!(embedded_v4, Some(std::net::Ipv4Addr::LOCALHOST));
        }
        other => panic!("unexpected: {other:?}"),
    }
    match check_url("gopher://x/", &PRODUCTION) {
        Err(UrlRejection::SchemeNotHttps { scheme }) => assert_eq!(scheme, "gopher"),
        other => panic!("unexpected: {other:?}"),
    }
}

#[tokio::test]
async fn resolving_check_rejects_localhost() {
    let err = check_url_resolving("https://LocalHost/hook", &PRODUCTION)
        .await
        .expect_err("localhost resolves to loopback");
    let UrlRejection::ResolvesToNonPublic { ref host, addr, .. } = err else {
        panic!("unexpected rejection: {err:?}");
    };
    assert_eq!(host, "localhost");
    assert!(addr.is_loopback(), "{addr}");
    let text = err.to_string();
    assert!(
        text.starts_with("host must resolve to a public address (localhost resolved to "),
        "{text}"
    );
    assert!(text.contains("a loopback address"), "{text}");

    // Whether "localhost." resolves depends on the system resolver (glibc's hosts file
    // does not strip the dot, systemd-resolved does); refused either way.
    assert!(
        check_url_resolving("https://localhost./hook", &PRODUCTION)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn resolving_check_allows_localhost_in_development() {
    let url = check_url_resolving("http://localhost:8080/hook", &DEVELOPMENT)
        .await
        .expect("development policy admits loopback");
    assert_eq!(url.as_str(), "http://localhost:8080/hook");
}

#[tokio::test]
async fn resolving_check_applies_the_syntax_rules_first() {
    assert_eq!(
        check_url_resolving("http://localhost/", &PRODUCTION).await,
        Err(UrlRejection::SchemeNotHttps {
            scheme: "http".into()
        })
    );
    assert!(matches!(
        check_url_resolving("https://[::1]/", &PRODUCTION).await,
        Err(UrlRejection::NonPublicHost { .. })
    ));
}

#[tokio::test]
async fn resolving_check_takes_public_ip_literals_without_dns() {
    let url = check_url_resolving("https://1.1.1.1/hook", &PRODUCTION)
        .await
        .expect("a public literal needs no lookup");
    assert_eq!(url.as_str(), "https://1.1.1.1/hook");
}

#[tokio::test]
async fn unresolvable_names_are_refused() {
    // `.invalid` is reserved never to resolve (RFC 2606); with no network here the
    // lookup fails fast either way.
    let err = check_url_resolving("https://no-such-host.invalid/", &PRODUCTION)
        .await
        .expect_err("must not resolve");
    assert!(
        matches!(err, UrlRejection::Unresolvable { .. }),
        "unexpected rejection: {err:?}"
    );
    assert!(
        err.to_string()
            .starts_with("host no-such-host.invalid could not be resolved: "),
        "{err}"
    );
}
