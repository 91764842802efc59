//! The SSRF address policy as pure calls: no sockets, no DNS.

use std::net::IpAddr;

use webhook_subscriptions::transport::{AddressPolicy, BlockReason, IpNetwork};
use webhook_subscriptions::Error;

fn ip(s: &str) -> IpAddr {
    s.parse()
        .unwrap_or_else(|e| panic!("test address {s}: {e}"))
}

fn assert_blocked(policy: &AddressPolicy, reason: BlockReason, addrs: &[&str]) {
    for addr in addrs {
        assert_eq!(policy.check(ip(addr)), Err(reason), "{addr}");
    }
}

fn assert_allowed(policy: &AddressPolicy, addrs: &[&str]) {
    for addr in addrs {
        assert_eq!(policy.check(ip(addr)), Ok(()), "{addr}");
    }
}

fn default_blocks(reason: BlockReason, addrs: &[&str]) {
    assert_blocked(&AddressPolicy::default(), reason, addrs);
}

#[test]
fn public_ipv4_addresses_pass() {
    assert_allowed(
        &AddressPolicy::default(),
        &[
            "8.8.8.8",
            "1.1.1.1",
            "1.0.0.0",
            "9.255.255.255",
            "11.0.0.0",
            "100.63.255.255",
            "100.128.0.0",
            "126.255.255.255",
            "128.0.0.0",
            "169.253.255.255",
            "169.255.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.0.1.255",
            "192.0.3.0",
            "192.88.98.255",
            "192.88.100.0",
            "192.167.255.255",
            "192.169.0.0",
            "198.17.255.255",
            "198.20.0.0",
            "198.51.99.255",
            "198.51.101.0",
            "203.0.112.255",
            "203.0.114.0",
            "223.255.255.255",
        ],
    );
}

#[test]
fn public_ipv6_addresses_pass() {
    assert_allowed(
        &AddressPolicy::default(),
        &[
            "2606:4700::1111",
            "2001:4860:4860::8888",
            "2a00:1450:4001::1",
            "2000::",
            "3fff:1000::",
            "3fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "2001:1::1",
            "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff",
            "2001:db9::",
            "2001:30::",
            "2001:2:1::",
        ],
    );
}

#[test]
fn this_network_and_unspecified_are_blocked() {
    default_blocks(
        BlockReason::Unspecified,
        &["0.0.0.0", "0.0.0.1", "0.1.2.3", "0.255.255.255", "::"],
    );
}

#[test]
fn loopback_is_blocked() {
    default_blocks(
        BlockReason::Loopback,
        &[
            "127.0.0.1",
            "127.0.0.0",
            "127.1.2.3",
            "127.255.255.255",
            "::1",
        ],
    );
}

#[test]
fn private_ipv4_ranges_are_blocked() {
    default_blocks(
        BlockReason::Private,
        &[
            "10.0.0.0",
            "10.1.2.3",
            "10.255.255.255",
            "172.16.0.0",
            "172.20.1.1",
            "172.31.255.255",
            "192.168.0.0",
            "192.168.1.1",
            "192.168.255.255",
        ],
    );
}

#[test]
fn link_local_and_metadata_addresses_are_blocked() {
    default_blocks(
        BlockReason::LinkLocal,
        &[
            "169.254.0.0",
            "169.254.169.254",
            "169.254.255.255",
            "fe80::",
            "fe80::1",
            "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        ],
    );
}

#[test]
fn carrier_grade_nat_is_blocked() {
    default_blocks(
        BlockReason::SharedAddressSpace,
        &["100.64.0.0", "100.100.100.100", "100.127.255.255"],
    );
}

#[test]
fn multicast_is_blocked() {
    default_blocks(
        BlockReason::Multicast,
        &[
            "224.0.0.0",
            "224.0.0.251",
            "239.255.255.255",
            "ff00::",
            "ff02::1",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        ],
    );
}

#[test]
fn broadcast_is_blocked() {
    default_blocks(BlockReason::Broadcast, &["255.255.255.255"]);
}

#[test]
fn reserved_ipv4_is_blocked() {
    default_blocks(
        BlockReason::Reserved,
        &["240.0.0.0", "250.1.2.3", "255.255.255.254"],
    );
}

#[test]
fn documentation_ranges_are_blocked() {
    default_blocks(
        BlockReason::Documentation,
        &[
            "192.0.2.0",
            "192.0.2.255",
            "198.51.100.0",
            "198.51.100.7",
            "203.0.113.0",
            "203.0.113.255",
            "2001:db8::",
            "2001:db8::1",
            "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff",
            "3fff::1",
            "3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff",
        ],
    );
}

#[test]
fn benchmarking_ranges_are_blocked() {
    default_blocks(
        BlockReason::Benchmarking,
        &[
            "198.18.0.0",
            "198.18.5.5",
            "198.19.255.255",
            "2001:2::1",
            "2001:2:0:ffff::1",
        ],
    );
}

#[test]
fn ietf_protocol_assignments_are_blocked() {
    default_blocks(
        BlockReason::ProtocolAssignment,
        &["192.0.0.0", "192.0.0.8", "192.0.0.255"],
    );
}

#[test]
fn six_to_four_relay_anycast_is_blocked() {
    default_blocks(
        BlockReason::Relay6to4,
        &["192.88.99.0", "192.88.99.1", "192.88.99.255"],
    );
}

#[test]
fn unique_local_ipv6_and_local_use_nat64_are_private() {
    default_blocks(
        BlockReason::Private,
        &[
            "fc00::",
            "fd00::1",
            "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "64:ff9b:1::1",
            "64:ff9b:1:ffff::808:808",
        ],
    );
}

#[test]
fn site_local_ipv6_is_blocked() {
    default_blocks(
        BlockReason::SiteLocal,
        &[
            "fec0::",
            "fec0::1",
            "feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        ],
    );
}

#[test]
fn discard_only_prefix_is_blocked() {
    default_blocks(
        BlockReason::Discard,
        &["100::", "100::1", "100::ffff:ffff:ffff:ffff"],
    );
    // Just past the /64 it is merely unassigned space.
    default_blocks(BlockReason::Reserved, &["100:0:0:1::"]);
}

#[test]
fn teredo_and_orchid_are_blocked() {
    default_blocks(
        BlockReason::Teredo,
        &["2001::", "2001::1", "2001:0:ffff:ffff:ffff:ffff:ffff:ffff"],
    );
    default_blocks(
        BlockReason::Orchid,
        &[
            "2001:10::",
            "2001:1f:ffff::1",
            "2001:20::1",
            "2001:2f:ffff::",
        ],
    );
}

#[test]
fn ipv6_outside_global_unicast_is_reserved() {
    default_blocks(
        BlockReason::Reserved,
        &[
            "1::1",
            "1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "4000::",
            "5f00::1",
            "e000::1",
            "fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "64:ff9b:0:0:1::",
        ],
    );
}

#[test]
fn ipv4_mapped_addresses_are_judged_by_their_ipv4_address() {
    let policy = AddressPolicy::default();
    assert_blocked(&policy, BlockReason::Loopback, &["::ffff:127.0.0.1"]);
    assert_blocked(&policy, BlockReason::Private, &["::ffff:10.0.0.1"]);
    assert_blocked(&policy, BlockReason::LinkLocal, &["::ffff:169.254.169.254"]);
    assert_blocked(&policy, BlockReason::Unspecified, &["::ffff:0.0.0.0"]);
    assert_allowed(&policy, &["::ffff:8.8.8.8"]);
    // SIIT's IPv4-translated form, ::ffff:0:a.b.c.d.
    assert_blocked(&policy, BlockReason::Private, &["::ffff:0:192.168.1.1"]);
    assert_allowed(&policy, &["::ffff:0:1.1.1.1"]);
}

#[test]
fn ipv4_compatible_addresses_are_judged_by_their_ipv4_address() {
    let policy = AddressPolicy::default();
    assert_blocked(&policy, BlockReason::Loopback, &["::127.0.0.1"]);
    assert_blocked(&policy, BlockReason::Private, &["::10.1.1.1"]);
    assert_blocked(&policy, BlockReason::Unspecified, &["::2"]);
    assert_allowed(&policy, &["::8.8.8.8"]);
}

#[test]
fn nat64_addresses_are_judged_by_their_ipv4_address() {
    let policy = AddressPolicy::default();
    assert_blocked(&policy, BlockReason::Loopback, &["64:ff9b::127.0.0.1"]);
    assert_blocked(&policy, BlockReason::LinkLocal, &["64:ff9b::a9fe:a9fe"]);
    assert_blocked(
        &policy,
        BlockReason::SharedAddressSpace,
        &["64:ff9b::100.64.0.1"],
    );
    assert_allowed(&policy, &["64:ff9b::8.8.8.8"]);
}

#[test]
fn six_to_four_addresses_are_judged_by_their_ipv4_address() {
    let policy = AddressPolicy::default();
    // 2002:AABB:CCDD:: carries AA.BB.CC.DD.
    assert_blocked(&policy, BlockReason::Loopback, &["2002:7f00:1::"]);
    assert_blocked(&policy, BlockReason::LinkLocal, &["2002:a9fe:a9fe::1"]);
    assert_blocked(&policy, BlockReason::Private, &["2002:c0a8:101:5::1"]);
    assert_allowed(&policy, &["2002:808:808::1"]);
}

#[test]
fn allow_all_lets_every_address_through() {
    assert_allowed(
        &AddressPolicy::allow_all(),
        &[
            "127.0.0.1",
            "::1",
            "0.0.0.0",
            "169.254.169.254",
            "10.0.0.1",
            "::ffff:127.0.0.1",
            "ff02::1",
            "8.8.8.8",
        ],
    );
}

#[test]
fn allow_network_admits_exactly_that_network() -> Result<(), Error> {
    let policy = AddressPolicy::default().allow_network("10.1.0.0/16".parse()?);
    assert_allowed(
        &policy,
        &[
            "10.1.0.0",
            "10.1.2.3",
            "10.1.255.255",
            "::ffff:10.1.2.3",
            "8.8.8.8",
        ],
    );
    assert_blocked(&policy, BlockReason::Private, &["10.0.255.255", "10.2.0.0"]);
    assert_blocked(&policy, BlockReason::Loopback, &["127.0.0.1"]);
    Ok(())
}

#[test]
fn allow_network_works_for_ipv6_and_single_addresses() -> Result<(), Error> {
    let policy = AddressPolicy::default()
        .allow_network("fd12:3456::/32".parse()?)
        .allow_network("127.0.0.1".parse()?);
    assert_allowed(&policy, &["fd12:3456::1", "fd12:3456:ffff::", "127.0.0.1"]);
    assert_blocked(&policy, BlockReason::Private, &["fd12:3457::1"]);
    assert_blocked(&policy, BlockReason::Loopback, &["127.0.0.2", "::1"]);
    Ok(())
}

#[test]
fn networks_parse_from_cidr_and_bare_addresses() -> Result<(), Error> {
    let net: IpNetwork = "192.168.0.0/16".parse()?;
    assert_eq!(net.addr(), ip("192.168.0.0"));
    assert_eq!(net.prefix_len(), 16);
    assert_eq!(net.to_string(), "192.168.0.0/16");

    let single: IpNetwork = "2001:db8::1".parse()?;
    assert_eq!(single.prefix_len(), 128);
    assert!(single.contains(ip("2001:db8::1")));
    assert!(!single.contains(ip("2001:db8::2")));

    let everything: IpNetwork = "0.0.0.0/0".parse()?;
    assert!(everything.contains(ip("255.255.255.255")));
    assert!(
        !everything.contains(ip("::")),
        "an IPv4 network holds no IPv6 address"
    );
    Ok(())
}

#[test]
fn networks_with_host_bits_or_bad_syntax_are_refused() {
    for bad in [
        "10.1.2.3/16",
        "10.0.0.0/33",
        "::/129",
        "fd00::1/8",
        "10.0.0.0/",
        "10.0.0.0/+8",
        "10.0.0.0/8/8",
        "10.0.0/8",
        "example.com/8",
        "",
    ] {
        assert!(
            matches!(
                bad.parse::<IpNetwork>(),
                Err(Error::InvalidConfiguration(_))
            ),
            "{bad:?} should be refused"
        );
    }
}

#[test]
fn azure_platform_address_is_blocked() {
    default_blocks(
        BlockReason::CloudPlatform,
        &["168.63.129.16", "::ffff:168.63.129.16"],
    );
    assert_allowed(
        &AddressPolicy::default(),
        &["168.63.129.15", "168.63.129.17"],
    );
}

#[test]
fn any_port_is_allowed_unless_ports_are_listed() {
    let any = AddressPolicy::default();
    assert!([0, 22, 80, 443, 8080, u16::MAX]
        .iter()
        .all(|port| any.port_allowed(*port)));
    let listed = AddressPolicy::default().allowed_ports([443, 8443]);
    assert!(listed.port_allowed(443) && listed.port_allowed(8443));
    assert!(!listed.port_allowed(80) && !listed.port_allowed(22));
    // Turning the address guard off keeps a port list.
    let open = AddressPolicy::allow_all().allowed_ports([443]);
    assert!(!open.port_allowed(22));
}
