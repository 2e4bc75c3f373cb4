use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::error::ConfigError;

/// The networks of the proxies whose forwarding headers are believed.
///
/// IPv4-mapped IPv6 addresses (`::ffff:192.0.2.1`, what a dual-stack socket reports for an IPv4
/// peer) are compared as the IPv4 address they carry, and a mapped network such as
/// `::ffff:10.0.0.0/104` is stored as `10.0.0.0/8`, so one list covers both socket kinds.
///
/// ```
/// use protothrive::client_ip::TrustedProxies;
///
/// let trusted = TrustedProxies::parse(["10.0.0.0/8", "2001:db8::/32", "192.0.2.7"]).unwrap();
/// assert!(trusted.contains("10.1.2.3".parse().unwrap()));
/// assert!(trusted.contains("::ffff:10.1.2.3".parse().unwrap()));
/// assert!(trusted.contains("192.0.2.7".parse().unwrap()));
/// assert!(!trusted.contains("192.0.2.8".parse().unwrap()));
/// let err = TrustedProxies::parse(["not-a-network"]).unwrap_err();
/// assert!(err.message().starts_with(r#"trusted proxy "not-a-network" is not a network"#));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    v4: Vec<Ipv4Net>,
    v6: Vec<Ipv6Net>,
}

impl TrustedProxies {
    /// Trusts no proxy: the client is always the peer.
    #[must_use]
    pub fn none() -> Self {
        Self::default()
    }

    /// Parses CIDR networks (`10.0.0.0/8`, `2001:db8::/32`) and single addresses (`192.0.2.7`).
    ///
    /// # Errors
    ///
    /// An entry that is neither, or a network of every address (`/0`, or `::ffff:0:0/96`, all of
    /// IPv4 mapped): it would trust every client, so any client could choose its own address.
    pub fn parse<I>(networks: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let mut trusted = Self::none();
        trusted.extend_parsed(networks)?;
        Ok(trusted)
    }

    /// Builds the list from already-parsed networks.
    ///
    /// # Errors
    ///
    /// A network of every address (`/0`, or `::ffff:0:0/96`), as for [`parse`](Self::parse).
    pub fn from_nets(networks: impl IntoIterator<Item = IpNet>) -> Result<Self, ConfigError> {
        let mut trusted = Self::none();
        trusted.extend_nets(networks)?;
        Ok(trusted)
    }

    /// Whether `ip` is inside one of the trusted networks.
    #[must_use]
    pub fn contains(&self, ip: IpAddr) -> bool {
        match ip.to_canonical() {
            IpAddr::V4(ip) => self.v4.iter().any(|net| net.contains(&ip)),
            IpAddr::V6(ip) => self.v6.iter().any(|net| net.contains(&ip)),
        }
    }

    /// Whether no proxy is trusted.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    /// The trusted networks, IPv4 first.
    pub fn iter(&self) -> impl Iterator<Item = IpNet> + '_ {
        let v4 = self.v4.iter().copied().map(IpNet::V4);
        v4.chain(self.v6.iter().copied().map(IpNet::V6))
    }

    pub(crate) fn extend_parsed<I>(&mut self, networks: I) -> Result<(), ConfigError>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        for text in networks {
            let net = parse_net(text.as_ref())?;
            self.push(net)?;
        }
        Ok(())
    }

    pub(crate) fn extend_nets(
        &mut self,
        networks: impl IntoIterator<Item = IpNet>,
    ) -> Result<(), ConfigError> {
        networks.into_iter().try_for_each(|net| self.push(net))
    }

    fn push(&mut self, net: IpNet) -> Result<(), ConfigError> {
        // Canonicalise first: `::ffff:0:0/96` is `0.0.0.0/0`, every IPv4 client.
        let net = canonical_net(net.trunc());
        if net.prefix_len() == 0 {
            return Err(ConfigError::new(format!(
                "trusting {net} trusts every address, so any client could choose its own \
                 address; list your proxies' networks instead (for example \"10.0.0.0/8\")"
            )));
        }
        match net {
            IpNet::V4(net) => self.v4.push(net),
            IpNet::V6(net) => self.v6.push(net),
        }
        Ok(())
    }
}

fn parse_net(text: &str) -> Result<IpNet, ConfigError> {
    let trimmed = text.trim();
    let parsed = if trimmed.contains('/') {
        trimmed.parse::<IpNet>().ok()
    } else {
        trimmed.parse::<IpAddr>().ok().map(IpNet::from)
    };
    parsed.ok_or_else(|| {
        ConfigError::new(format!(
            "trusted proxy {text:?} is not a network or an address; write a CIDR such as \
             \"10.0.0.0/8\" or \"2001:db8::/32\", or a single address such as \"192.0.2.7\""
        ))
    })
}

/// `::ffff:a.b.c.d/n` (n >= 96) is the IPv4 network `a.b.c.d/(n-96)`.
fn canonical_net(net: IpNet) -> IpNet {
    if let IpNet::V6(v6) = net
        && v6.prefix_len() >= 96
        && let Some(v4) = v6.addr().to_ipv4_mapped()
        && let Ok(v4net) = Ipv4Net::new(v4, v6.prefix_len() - 96)
    {
        return IpNet::V4(v4net);
    }
    net
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn mapped_networks_become_ipv4() {
        let t = TrustedProxies::parse(["::ffff:10.0.0.0/104"]).unwrap();
        let expected = IpNet::from(Ipv4Net::new(Ipv4Addr::new(10, 0, 0, 0), 8).unwrap());
        assert_eq!(t.iter().collect::<Vec<_>>(), vec![expected]);
        assert!(t.contains(ip("10.200.0.1")));
        assert!(t.contains(ip("::ffff:10.200.0.1")));
        assert!(!t.contains(ip("11.0.0.1")));
    }

    #[test]
    fn wider_than_mapped_range_stays_ipv6() {
        let t = TrustedProxies::parse(["::ffff:0:0/95"]).unwrap();
        assert!(matches!(t.iter().next(), Some(IpNet::V6(_))));
    }

    #[test]
    fn errors_say_how_to_fix() {
        let err = TrustedProxies::parse(["10.0.0.0/8", "nope"]).unwrap_err();
        assert!(err.message().contains("\"nope\""), "{err}");
        assert!(err.message().contains("CIDR"), "{err}");
        for everything in ["0.0.0.0/0", "::/0", "::ffff:0:0/96", "::ffff:10.0.0.0/96"] {
            let err = TrustedProxies::parse([everything]).unwrap_err();
            assert!(err.message().contains("any client could choose"), "{err}");
        }
        for text in ["", "10.0.0.0/33"] {
            let err = TrustedProxies::parse([text]).unwrap_err();
            assert!(err.message().contains("is not a network"), "{err}");
        }
        for net in ["0.0.0.0/0", "::ffff:0:0/96"] {
            let err = TrustedProxies::from_nets([net.parse().unwrap()]).unwrap_err();
            assert!(err.message().contains("any client could choose"), "{err}");
        }
    }

    #[test]
    fn host_bits_are_dropped_and_single_addresses_are_hosts() {
        let t = TrustedProxies::parse([" 10.1.2.3/8 ", "2001:db8::1"]).unwrap();
        let nets: Vec<String> = t.iter().map(|n| n.to_string()).collect();
        assert_eq!(nets, ["10.0.0.0/8", "2001:db8::1/128"]);
        assert!(!t.is_empty());
        assert!(TrustedProxies::none().is_empty());
    }
}
