//! The SSRF guard's address policy: which IP addresses a delivery may connect to.
//!
//! Pure functions over [`IpAddr`]; no sockets, no DNS. `HttpTransport` checks
//! literal hosts with it before sending, and every resolved address before
//! connecting, so the checked addresses are the ones connected to.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use crate::Error;

/// Why an address is refused by the default [`AddressPolicy`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BlockReason {
    /// `0.0.0.0/8` ("this network") or `::`.
    Unspecified,
    /// `127.0.0.0/8` or `::1`.
    Loopback,
    /// `10/8`, `172.16/12`, `192.168/16`, IPv6 unique local `fc00::/7`, local-use NAT64 `64:ff9b:1::/48`.
    Private,
    /// `169.254/16` (including the `169.254.169.254` metadata service) or `fe80::/10`.
    LinkLocal,
    /// Carrier-grade NAT, `100.64/10`.
    SharedAddressSpace,
    /// `224/4` or `ff00::/8`.
    Multicast,
    /// `255.255.255.255`.
    Broadcast,
    /// `192.0.2/24`, `198.51.100/24`, `203.0.113/24`, `2001:db8::/32`, `3fff::/20`.
    Documentation,
    /// `198.18/15` or `2001:2::/48`.
    Benchmarking,
    /// `240/4`, and IPv6 outside the global unicast range `2000::/3`.
    Reserved,
    /// IETF protocol assignments, `192.0.0/24`.
    ProtocolAssignment,
    /// The deprecated 6to4 relay anycast range, `192.88.99/24`.
    Relay6to4,
    /// Deprecated IPv6 site-local, `fec0::/10`.
    SiteLocal,
    /// The IPv6 discard-only prefix, `100::/64`.
    Discard,
    /// Teredo tunnelling, `2001::/32`.
    Teredo,
    /// ORCHID identifiers, `2001:10::/28` and `2001:20::/28`.
    Orchid,
    /// A cloud platform's own service address reachable from every VM:
    /// Azure's `168.63.129.16` (wire server, DNS, health probes).
    CloudPlatform,
}

impl fmt::Display for BlockReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BlockReason::Unspecified => "unspecified",
            BlockReason::Loopback => "loopback",
            BlockReason::Private => "private",
            BlockReason::LinkLocal => "link-local",
            BlockReason::SharedAddressSpace => "shared address space",
            BlockReason::Multicast => "multicast",
            BlockReason::Broadcast => "broadcast",
            BlockReason::Documentation => "documentation",
            BlockReason::Benchmarking => "benchmarking",
            BlockReason::Reserved => "reserved",
            BlockReason::ProtocolAssignment => "protocol assignment",
            BlockReason::Relay6to4 => "6to4 relay",
            BlockReason::SiteLocal => "site-local",
            BlockReason::Discard => "discard-only",
            BlockReason::Teredo => "teredo",
            BlockReason::Orchid => "orchid",
            BlockReason::CloudPlatform => "cloud platform",
        })
    }
}

/// IPv4 ranges refused by default; the first match wins, so the broadcast
/// address comes before the reserved block that contains it.
const BLOCKED_V4: &[(Ipv4Addr, u8, BlockReason)] = &[
    (Ipv4Addr::new(0, 0, 0, 0), 8, BlockReason::Unspecified),
    (Ipv4Addr::new(10, 0, 0, 0), 8, BlockReason::Private),
    (
        Ipv4Addr::new(100, 64, 0, 0),
        10,
        BlockReason::SharedAddressSpace,
    ),
    (Ipv4Addr::new(127, 0, 0, 0), 8, BlockReason::Loopback),
    (
        Ipv4Addr::new(168, 63, 129, 16),
        32,
        BlockReason::CloudPlatform,
    ),
    (Ipv4Addr::new(169, 254, 0, 0), 16, BlockReason::LinkLocal),
    (Ipv4Addr::new(172, 16, 0, 0), 12, BlockReason::Private),
    (
        Ipv4Addr::new(192, 0, 0, 0),
        24,
        BlockReason::ProtocolAssignment,
    ),
    (Ipv4Addr::new(192, 0, 2, 0), 24, BlockReason::Documentation),
    (Ipv4Addr::new(192, 88, 99, 0), 24, BlockReason::Relay6to4),
    (Ipv4Addr::new(192, 168, 0, 0), 16, BlockReason::Private),
    (Ipv4Addr::new(198, 18, 0, 0), 15, BlockReason::Benchmarking),
    (
        Ipv4Addr::new(198, 51, 100, 0),
        24,
        BlockReason::Documentation,
    ),
    (
        Ipv4Addr::new(203, 0, 113, 0),
        24,
        BlockReason::Documentation,
    ),
    (Ipv4Addr::new(224, 0, 0, 0), 4, BlockReason::Multicast),
    (Ipv4Addr::BROADCAST, 32, BlockReason::Broadcast),
    (Ipv4Addr::new(240, 0, 0, 0), 4, BlockReason::Reserved),
];

/// IPv6 ranges refused by default, checked after `::`, `::1` and the forms
/// that embed an IPv4 address. The local-use NAT64 prefix is refused whole:
/// where it embeds the IPv4 address depends on the operator's prefix length.
const BLOCKED_V6: &[(Ipv6Addr, u8, BlockReason)] = &[
    (
        Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0),
        48,
        BlockReason::Private,
    ),
    (
        Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0),
        64,
        BlockReason::Discard,
    ),
    (
        Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0),
        32,
        BlockReason::Teredo,
    ),
    (
        Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0),
        48,
        BlockReason::Benchmarking,
    ),
    (
        Ipv6Addr::new(0x2001, 0x10, 0, 0, 0, 0, 0, 0),
        28,
        BlockReason::Orchid,
    ),
    (
        Ipv6Addr::new(0x2001, 0x20, 0, 0, 0, 0, 0, 0),
        28,
        BlockReason::Orchid,
    ),
    (
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0),
        32,
        BlockReason::Documentation,
    ),
    (
        Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0),
        20,
        BlockReason::Documentation,
    ),
    (
        Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0),
        7,
        BlockReason::Private,
    ),
    (
        Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0),
        10,
        BlockReason::LinkLocal,
    ),
    (
        Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0),
        10,
        BlockReason::SiteLocal,
    ),
    (
        Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0),
        8,
        BlockReason::Multicast,
    ),
];

/// IPv6 prefixes whose last 32 bits are an IPv4 address the packet really
/// goes to: IPv4-mapped, IPv4-translated (SIIT), NAT64 and IPv4-compatible.
const EMBEDS_V4_LOW: &[(Ipv6Addr, u8)] = &[
    (Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0), 96),
    (Ipv6Addr::new(0, 0, 0, 0, 0xffff, 0, 0, 0), 96),
    (Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0), 96),
    (Ipv6Addr::UNSPECIFIED, 96),
];

/// 6to4 embeds the IPv4 address right after its 16-bit prefix.
const SIX_TO_FOUR: Ipv6Addr = Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0);

/// Global unicast; everything outside it is unassigned or special-purpose.
const GLOBAL_UNICAST: Ipv6Addr = Ipv6Addr::new(0x2000, 0, 0, 0, 0, 0, 0, 0);

/// Why `ip` is not a public unicast address, or `None` when it is one.
fn classify(ip: IpAddr) -> Option<BlockReason> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<BlockReason> {
    let bits = u32::from(ip);
    BLOCKED_V4
        .iter()
        .find(|(net, len, _)| same_prefix_v4(bits, u32::from(*net), *len))
        .map(|(_, _, reason)| *reason)
}

fn classify_v6(ip: Ipv6Addr) -> Option<BlockReason> {
    if ip.is_unspecified() {
        return Some(BlockReason::Unspecified);
    }
    if ip.is_loopback() {
        return Some(BlockReason::Loopback);
    }
    if let Some(v4) = embedded_v4(ip) {
        return classify_v4(v4);
    }
    let bits = u128::from(ip);
    if let Some((_, _, reason)) = BLOCKED_V6
        .iter()
        .find(|(net, len, _)| same_prefix_v6(bits, u128::from(*net), *len))
    {
        return Some(*reason);
    }
    if !same_prefix_v6(bits, u128::from(GLOBAL_UNICAST), 3) {
        return Some(BlockReason::Reserved);
    }
    None
}

fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let bits = u128::from(ip);
    if EMBEDS_V4_LOW
        .iter()
        .any(|(net, len)| same_prefix_v6(bits, u128::from(*net), *len))
    {
        // Truncation keeps exactly the low 32 bits, the embedded address.
        return Some(Ipv4Addr::from(bits as u32));
    }
    if same_prefix_v6(bits, u128::from(SIX_TO_FOUR), 16) {
        return Some(Ipv4Addr::from((bits >> 80) as u32));
    }
    None
}

fn same_prefix_v4(a: u32, b: u32, prefix_len: u8) -> bool {
    prefix_len == 0 || (a ^ b) >> (32 - u32::from(prefix_len)) == 0
}

fn same_prefix_v6(a: u128, b: u128, prefix_len: u8) -> bool {
    prefix_len == 0 || (a ^ b) >> (128 - u32::from(prefix_len)) == 0
}

/// Which addresses a delivery may connect to (the SSRF guard).
///
/// The default refuses everything that is not a public unicast address:
/// loopback, private, link-local (including `169.254.169.254`), CGNAT,
/// multicast, broadcast, unspecified, documentation, benchmarking, reserved and
/// the IPv6 forms of these, and Azure's platform address `168.63.129.16`;
/// IPv6 addresses that embed an IPv4 address (IPv4-mapped, IPv4-compatible,
/// NAT64, 6to4) are judged by that address. Hosts on trusted networks can
/// allow chosen networks, and tests can switch the guard off with
/// [`AddressPolicy::allow_all`]. Any port is allowed unless
/// [`AddressPolicy::allowed_ports`] narrows them.
///
/// ```
/// use std::net::IpAddr;
/// use webhook_subscriptions::transport::{AddressPolicy, BlockReason};
///
/// # fn main() -> webhook_subscriptions::Result<()> {
/// let policy = AddressPolicy::default().allow_network("10.1.0.0/16".parse()?);
/// let internal: IpAddr = "10.1.2.3".parse().unwrap();
/// let other: IpAddr = "10.2.0.1".parse().unwrap();
/// assert_eq!(policy.check(internal), Ok(()));
/// assert_eq!(policy.check(other), Err(BlockReason::Private));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AddressPolicy {
    block_special: bool,
    allowed: Vec<IpNetwork>,
    /// `None` allows every port.
    ports: Option<Vec<u16>>,
}

impl Default for AddressPolicy {
    /// Refuses every special-purpose address (see [`BlockReason`]).
    fn default() -> Self {
        Self {
            block_special: true,
            allowed: Vec::new(),
            ports: None,
        }
    }
}

impl AddressPolicy {
    /// Allows every address: the guard is off. For tests against local
    /// receivers and for hosts whose network already confines egress.
    pub fn allow_all() -> Self {
        Self {
            block_special: false,
            allowed: Vec::new(),
            ports: None,
        }
    }

    /// Also allows every address in `network`, even a special-purpose one.
    ///
    /// An IPv4 network also matches the IPv4-mapped IPv6 form of its addresses.
    #[must_use]
    pub fn allow_network(mut self, network: IpNetwork) -> Self {
        self.allowed.push(network);
        self
    }

    /// Allows deliveries only to these ports (the URL's port, or 80/443 when
    /// it has none), e.g. `[443]`; replaces an earlier list. Without it any
    /// port is allowed.
    #[must_use]
    pub fn allowed_ports(mut self, ports: impl IntoIterator<Item = u16>) -> Self {
        self.ports = Some(ports.into_iter().collect());
        self
    }

    /// Whether a delivery may connect to `port`.
    pub fn port_allowed(&self, port: u16) -> bool {
        self.ports
            .as_ref()
            .is_none_or(|ports| ports.contains(&port))
    }

    /// `Ok(())` when a delivery may connect to `ip`, otherwise why not.
    pub fn check(&self, ip: IpAddr) -> Result<(), BlockReason> {
        if !self.block_special {
            return Ok(());
        }
        let Some(reason) = classify(ip) else {
            return Ok(());
        };
        let canonical = ip.to_canonical();
        if self
            .allowed
            .iter()
            .any(|network| network.contains(ip) || network.contains(canonical))
        {
            Ok(())
        } else {
            Err(reason)
        }
    }
}

/// An IP network in CIDR form, such as `10.1.0.0/16` or `fd00::/8`.
///
/// Parsed with [`str::parse`]; a bare address is a single-address network.
/// Host bits must be zero (`10.1.2.3/16` is refused), so a typo cannot
/// silently widen an allow-list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpNetwork {
    addr: IpAddr,
    prefix_len: u8,
}

impl IpNetwork {
    /// The network of `prefix_len` leading bits starting at `addr`.
    ///
    /// Fails with [`Error::InvalidConfiguration`] when the prefix is longer
    /// than the address or `addr` has bits set beyond the prefix.
    pub fn new(addr: IpAddr, prefix_len: u8) -> Result<Self, Error> {
        // Shifting the network bits out leaves the host bits, which must be zero.
        let valid = match addr {
            IpAddr::V4(v4) => {
                prefix_len <= 32
                    && u32::from(v4)
                        .checked_shl(u32::from(prefix_len))
                        .unwrap_or(0)
                        == 0
            }
            IpAddr::V6(v6) => {
                prefix_len <= 128
                    && u128::from(v6)
                        .checked_shl(u32::from(prefix_len))
                        .unwrap_or(0)
                        == 0
            }
        };
        if valid {
            Ok(Self { addr, prefix_len })
        } else {
            Err(Error::InvalidConfiguration(format!(
                "invalid network {addr}/{prefix_len}: prefix too long or host bits set"
            )))
        }
    }

    /// The first address of the network.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The number of leading bits that identify the network.
    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    /// Whether `ip` is in this network (an IPv4 network holds no IPv6 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                same_prefix_v4(u32::from(net), u32::from(ip), self.prefix_len)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                same_prefix_v6(u128::from(net), u128::from(ip), self.prefix_len)
            }
            _ => false,
        }
    }
}

impl FromStr for IpNetwork {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || Error::InvalidConfiguration(format!("invalid network {s:?}"));
        let (addr, prefix_len) = match s.split_once('/') {
            Some((addr, len)) => (addr, Some(len)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| invalid())?;
        let prefix_len = match prefix_len {
            // `u8::from_str` would also take a sign; a prefix length is digits only.
            Some(len) if len.bytes().all(|b| b.is_ascii_digit()) => {
                len.parse().map_err(|_| invalid())?
            }
            Some(_) => return Err(invalid()),
            None if addr.is_ipv4() => 32,
            None => 128,
        };
        Self::new(addr, prefix_len)
    }
}

impl fmt::Display for IpNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}
