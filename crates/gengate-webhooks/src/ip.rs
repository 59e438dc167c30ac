//! Which IP addresses a webhook may be delivered to.
//!
//! The ranges follow the IANA IPv4 and IPv6 Special-Purpose Address Registries. Where the
//! registry marks a block "globally reachable" but nobody could host a webhook receiver
//! there (192.0.0.0/24, the deprecated 6to4 relay anycast), we refuse it: false refusals
//! cost nothing, a false acceptance is an SSRF hole. IPv6 forms that carry an IPv4 address
//! (mapped, compatible, SIIT, NAT64, 6to4, Teredo) are judged by that IPv4 address, since
//! that is where the packets end up.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The special-purpose range an address belongs to, or [`IpScope::Public`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum IpScope {
    Public,
    Unspecified,
    /// 0.0.0.0/8 other than 0.0.0.0 itself.
    ThisNetwork,
    Loopback,
    /// 10/8, 172.16/12, 192.168/16.
    Private,
    /// 100.64/10, carrier-grade NAT.
    SharedAddressSpace,
    /// 169.254/16, fe80::/10.
    LinkLocal,
    Multicast,
    Broadcast,
    /// 192.0.2/24, 198.51.100/24, 203.0.113/24, 2001:db8::/32, 3fff::/20.
    Documentation,
    /// 198.18/15, 2001:2::/48.
    Benchmarking,
    /// 192.0.0/24 and the non-global parts of 2001::/23.
    ProtocolAssignment,
    /// fc00::/7.
    UniqueLocal,
    /// fec0::/10, deprecated but still routed internally by some networks.
    SiteLocal,
    /// 100::/64.
    DiscardOnly,
    /// 64:ff9b:1::/48, NAT64 prefixes for use inside one network.
    LocalNat64,
    /// 240/4, 192.88.99/24, and every IPv6 address outside 2000::/3 not covered above.
    Reserved,
}

impl IpScope {
    /// A phrase that completes "host … is": "a loopback address".
    pub fn description(self) -> &'static str {
        match self {
            IpScope::Public => "a public address",
            IpScope::Unspecified => "the unspecified address",
            IpScope::ThisNetwork => "a \"this network\" address",
            IpScope::Loopback => "a loopback address",
            IpScope::Private => "a private address",
            IpScope::SharedAddressSpace => "a shared (carrier-grade NAT) address",
            IpScope::LinkLocal => "a link-local address",
            IpScope::Multicast => "a multicast address",
            IpScope::Broadcast => "the broadcast address",
            IpScope::Documentation => "a documentation address",
            IpScope::Benchmarking => "a benchmarking address",
            IpScope::ProtocolAssignment => "an IETF protocol assignment address",
            IpScope::UniqueLocal => "a unique-local address",
            IpScope::SiteLocal => "a site-local address",
            IpScope::DiscardOnly => "a discard-only address",
            IpScope::LocalNat64 => "a local-use NAT64 address",
            IpScope::Reserved => "a reserved address",
        }
    }
}

impl fmt::Display for IpScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.description())
    }
}

/// An address's scope, and for IPv6 forms that embed an IPv4 address, the IPv4 address
/// that decided it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Classified {
    pub scope: IpScope,
    pub embedded_v4: Option<Ipv4Addr>,
}

/// Whether a webhook may be delivered to `ip`.
pub fn is_public_ip(ip: IpAddr) -> bool {
    ip_scope(ip) == IpScope::Public
}

/// The range `ip` belongs to; see [`IpScope`].
pub fn ip_scope(ip: IpAddr) -> IpScope {
    classify(ip).scope
}

pub(crate) fn classify(ip: IpAddr) -> Classified {
    match ip {
        IpAddr::V4(v4) => Classified {
            scope: v4_scope(v4),
            embedded_v4: None,
        },
        IpAddr::V6(v6) => v6_classify(v6),
    }
}

fn v4_scope(ip: Ipv4Addr) -> IpScope {
    match ip.octets() {
        [0, 0, 0, 0] => IpScope::Unspecified,
        [0, ..] => IpScope::ThisNetwork,
        [10, ..] => IpScope::Private,
        [100, b, ..] if b & 0xc0 == 64 => IpScope::SharedAddressSpace,
        [127, ..] => IpScope::Loopback,
        [169, 254, ..] => IpScope::LinkLocal,
        [172, b, ..] if b & 0xf0 == 16 => IpScope::Private,
        [192, 0, 0, _] => IpScope::ProtocolAssignment,
        [192, 0, 2, _] | [198, 51, 100, _] | [203, 0, 113, _] => IpScope::Documentation,
        [192, 88, 99, _] => IpScope::Reserved,
        [192, 168, ..] => IpScope::Private,
        [198, b, ..] if b & 0xfe == 18 => IpScope::Benchmarking,
        [255, 255, 255, 255] => IpScope::Broadcast,
        [a, ..] if a & 0xf0 == 224 => IpScope::Multicast,
        [a, ..] if a >= 240 => IpScope::Reserved,
        _ => IpScope::Public,
    }
}

fn embedded(v4: Ipv4Addr) -> Classified {
    Classified {
        scope: v4_scope(v4),
        embedded_v4: Some(v4),
    }
}

fn plain(scope: IpScope) -> Classified {
    Classified {
        scope,
        embedded_v4: None,
    }
}

fn v4_from(hi: u16, lo: u16) -> Ipv4Addr {
    Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo))
}

fn v6_classify(ip: Ipv6Addr) -> Classified {
    let s = ip.segments();
    if ip.is_unspecified() {
        return plain(IpScope::Unspecified);
    }
    if ip.is_loopback() {
        return plain(IpScope::Loopback);
    }
    // ::ffff:a.b.c.d, IPv4-mapped: the kernel sends these over IPv4.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return embedded(v4);
    }
    // ::a.b.c.d, IPv4-compatible (deprecated, RFC 4291 §2.5.5.1).
    if s[..6] == [0; 6] {
        return embedded(v4_from(s[6], s[7]));
    }
    // ::ffff:0:a.b.c.d, SIIT IPv4-translated (RFC 2765).
    if s[..4] == [0; 4] && s[4] == 0xffff && s[5] == 0 {
        return embedded(v4_from(s[6], s[7]));
    }
    if s[0] == 0x64 && s[1] == 0xff9b {
        // 64:ff9b::/96, the well-known NAT64 prefix: a NAT64 gateway would forward to
        // the embedded IPv4 address (RFC 6052), even a private one.
        if s[2..6] == [0; 4] {
            return embedded(v4_from(s[6], s[7]));
        }
        // 64:ff9b:1::/48 (RFC 8215) translates into the operator's own networks.
        if s[2] == 1 {
            return plain(IpScope::LocalNat64);
        }
    }
    if s[0] == 0x100 && s[1..4] == [0; 3] {
        return plain(IpScope::DiscardOnly);
    }
    if s[0] & 0xff00 == 0xff00 {
        return plain(IpScope::Multicast);
    }
    if s[0] & 0xffc0 == 0xfe80 {
        return plain(IpScope::LinkLocal);
    }
    if s[0] & 0xffc0 == 0xfec0 {
        return plain(IpScope::SiteLocal);
    }
    if s[0] & 0xfe00 == 0xfc00 {
        return plain(IpScope::UniqueLocal);
    }
    if (s[0] == 0x2001 && s[1] == 0x0db8) || (s[0] == 0x3fff && s[1] & 0xf000 == 0) {
        return plain(IpScope::Documentation);
    }
    // 2002::/16, 6to4: bits 16..48 are the IPv4 address of the tunnel end point.
    if s[0] == 0x2002 {
        return embedded(v4_from(s[1], s[2]));
    }
    if s[0] == 0x2001 && s[1] == 0 {
        return teredo(s);
    }
    if s[0] == 0x2001 && s[1] < 0x0200 {
        return plain(ietf_2001_23(s));
    }
    // Only 2000::/3 is allocated as global unicast; everything else is IETF-reserved
    // (5f00::/16 SRv6 SIDs and the like), so nothing there can be a receiver.
    if s[0] & 0xe000 != 0x2000 {
        return plain(IpScope::Reserved);
    }
    plain(IpScope::Public)
}

/// 2001::/32 (RFC 4380): bits 32..64 are the Teredo server's IPv4 address and the last 32
/// bits the client's public IPv4 address, bit-inverted. Either one being non-public
/// makes the address unusable for us.
fn teredo(s: [u16; 8]) -> Classified {
    let server = v4_from(s[2], s[3]);
    let client = v4_from(!s[6], !s[7]);
    for v4 in [client, server] {
        let c = embedded(v4);
        if c.scope != IpScope::Public {
            return c;
        }
    }
    embedded(client)
}

/// 2001::/23 is IETF protocol assignments; the registry marks only these blocks in it
/// as globally reachable.
fn ietf_2001_23(s: [u16; 8]) -> IpScope {
    let pcp_or_turn_anycast = s[1] == 1 && s[2..7] == [0; 5] && (s[7] == 1 || s[7] == 2);
    let amt = s[1] == 3;
    let as112 = s[1] == 4 && s[2] == 0x0112;
    let orchid_v2_or_drip = s[1] & 0xfff0 == 0x20 || s[1] & 0xfff0 == 0x30;
    if pcp_or_turn_anycast || amt || as112 || orchid_v2_or_drip {
        IpScope::Public
    } else if s[1] == 2 && s[2] == 0 {
        IpScope::Benchmarking
    } else {
        IpScope::ProtocolAssignment
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(s: &str) -> IpScope {
        ip_scope(s.parse().expect("test address parses"))
    }

    #[test]
    fn ipv4_ranges() {
        let table = [
            ("0.0.0.0", IpScope::Unspecified),
            ("0.1.2.3", IpScope::ThisNetwork),
            ("10.0.0.1", IpScope::Private),
            ("10.255.255.255", IpScope::Private),
            ("100.63.255.255", IpScope::Public),
            ("100.64.0.1", IpScope::SharedAddressSpace),
            ("100.127.255.255", IpScope::SharedAddressSpace),
            ("100.128.0.0", IpScope::Public),
            ("126.255.255.255", IpScope::Public),
            ("127.0.0.1", IpScope::Loopback),
            ("127.255.255.254", IpScope::Loopback),
            ("169.254.169.254", IpScope::LinkLocal),
            ("172.15.255.255", IpScope::Public),
            ("172.16.0.1", IpScope::Private),
            ("172.31.255.255", IpScope::Private),
            ("172.32.0.0", IpScope::Public),
            ("192.0.0.8", IpScope::ProtocolAssignment),
            ("192.0.0.170", IpScope::ProtocolAssignment),
            ("192.0.1.1", IpScope::Public),
            ("192.0.2.1", IpScope::Documentation),
            ("192.88.99.1", IpScope::Reserved),
            ("192.167.255.255", IpScope::Public),
            ("192.168.1.1", IpScope::Private),
            ("198.17.255.255", IpScope::Public),
            ("198.18.0.1", IpScope::Benchmarking),
            ("198.19.255.255", IpScope::Benchmarking),
            ("198.20.0.0", IpScope::Public),
            ("198.51.100.7", IpScope::Documentation),
            ("203.0.113.9", IpScope::Documentation),
            ("223.255.255.255", IpScope::Public),
            ("224.0.0.1", IpScope::Multicast),
            ("239.255.255.250", IpScope::Multicast),
            ("240.0.0.1", IpScope::Reserved),
            ("255.255.255.254", IpScope::Reserved),
            ("255.255.255.255", IpScope::Broadcast),
            ("1.1.1.1", IpScope::Public),
            ("8.8.8.8", IpScope::Public),
            ("93.184.215.14", IpScope::Public),
        ];
        for (addr, expected) in table {
            assert_eq!(scope(addr), expected, "{addr}");
        }
    }

    #[test]
    fn ipv6_ranges() {
        let table = [
            ("::", IpScope::Unspecified),
            ("::1", IpScope::Loopback),
            ("::ffff:127.0.0.1", IpScope::Loopback),
            ("::ffff:10.1.2.3", IpScope::Private),
            ("::ffff:8.8.8.8", IpScope::Public),
            ("::127.0.0.1", IpScope::Loopback),
            ("::0.0.0.2", IpScope::ThisNetwork),
            ("::8.8.8.8", IpScope::Public),
            ("::ffff:0:169.254.169.254", IpScope::LinkLocal),
            ("64:ff9b::7f00:1", IpScope::Loopback),
            ("64:ff9b::192.168.0.1", IpScope::Private),
            ("64:ff9b::8.8.8.8", IpScope::Public),
            ("64:ff9b:1::8.8.8.8", IpScope::LocalNat64),
            ("100::1", IpScope::DiscardOnly),
            ("100:0:0:1::1", IpScope::Reserved),
            ("ff02::1", IpScope::Multicast),
            ("ff0e::1", IpScope::Multicast),
            ("fe80::1", IpScope::LinkLocal),
            ("febf::1", IpScope::LinkLocal),
            ("fec0::1", IpScope::SiteLocal),
            ("fc00::1", IpScope::UniqueLocal),
            ("fd12:3456::1", IpScope::UniqueLocal),
            ("2001:db8::1", IpScope::Documentation),
            ("3fff::1", IpScope::Documentation),
            ("3fff:0fff::1", IpScope::Documentation),
            ("3fff:1000::1", IpScope::Public),
            ("2002:c0a8:0101::1", IpScope::Private),
            ("2002:7f00:1::1", IpScope::Loopback),
            ("2002:0808:0808::1", IpScope::Public),
            // Teredo: server 65.54.227.120, client 192.168.1.1 (inverted: 3f57:fefe).
            ("2001:0:4136:e378:8000:63bf:3f57:fefe", IpScope::Private),
            // Teredo: server 65.54.227.120, client 8.8.8.8 (inverted: f7f7:f7f7).
            ("2001:0:4136:e378:8000:63bf:f7f7:f7f7", IpScope::Public),
            // Teredo: server 10.0.0.1, client 8.8.8.8.
            ("2001:0:a00:1:8000:63bf:f7f7:f7f7", IpScope::Private),
            ("2001:1::1", IpScope::Public),
            ("2001:1::3", IpScope::ProtocolAssignment),
            ("2001:2::1", IpScope::Benchmarking),
            ("2001:3::1", IpScope::Public),
            ("2001:4:112::1", IpScope::Public),
            ("2001:10::1", IpScope::ProtocolAssignment),
            ("2001:20::1", IpScope::Public),
            ("2001:1ff::1", IpScope::ProtocolAssignment),
            ("2001:200::1", IpScope::Public),
            ("5f00::1", IpScope::Reserved),
            ("4000::1", IpScope::Reserved),
            ("1234::1", IpScope::Reserved),
            ("2606:4700:4700::1111", IpScope::Public),
            ("2a00:1450:4001::1", IpScope::Public),
        ];
        for (addr, expected) in table {
            assert_eq!(scope(addr), expected, "{addr}");
        }
    }

    #[test]
    fn is_public_ip_agrees_with_scope() {
        assert!(is_public_ip("8.8.8.8".parse().expect("ip")));
        assert!(!is_public_ip("127.0.0.1".parse().expect("ip")));
        assert!(!is_public_ip("::ffff:169.254.169.254".parse().expect("ip")));
    }

    #[test]
    fn embedded_address_is_reported() {
        let c = classify("64:ff9b::7f00:1".parse().expect("ip"));
        assert_eq!(c.embedded_v4, Some(Ipv4Addr::LOCALHOST));
    }
}
