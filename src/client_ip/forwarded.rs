//! The pure core: from a peer address and forwarding headers to the client address.
//!
//! No tower, no tokio, no I/O: [`Resolver`] is a plain value with plain methods, so the layer, the
//! proptests, the fuzz target and the benchmark all exercise exactly the same code.

use std::net::IpAddr;

use http::HeaderMap;
use http::header::FORWARDED;

use super::syntax::{RevElements, Syntax, trim_ows};
use super::{ForwardingHeader, TrustedProxies};

/// `X-Forwarded-For`, which `http` does not name.
static X_FORWARDED_FOR: http::HeaderName = http::HeaderName::from_static("x-forwarded-for");

/// The default of [`ClientIpLayerBuilder::max_hops`](super::ClientIpLayerBuilder::max_hops).
pub const DEFAULT_MAX_HOPS: usize = 16;
/// The default of
/// [`ClientIpLayerBuilder::max_header_bytes`](super::ClientIpLayerBuilder::max_header_bytes).
pub const DEFAULT_MAX_HEADER_BYTES: usize = 4096;

/// The compiled configuration of the walk: trusted proxies, the header to read, and the limits.
///
/// Built by [`ClientIpLayer::builder`](super::ClientIpLayer::builder) and reached through
/// [`ClientIpLayer::resolver`](super::ClientIpLayer::resolver); the default trusts no proxy.
///
/// ```
/// use protothrive::client_ip::{ClientIpLayer, Stop};
///
/// let layer = ClientIpLayer::builder().trusted_proxies(["10.0.0.0/8"]).build().unwrap();
/// let peer = "10.0.0.2".parse().unwrap();
/// let got = layer.resolver().walk_x_forwarded_for(peer, ["198.51.100.7, 10.0.0.1"]);
/// assert_eq!(got.ip().to_string(), "198.51.100.7");
/// assert_eq!(got.hops(), 2);
/// assert_eq!(got.stop(), Stop::UntrustedHop);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolver {
    pub(crate) trusted: TrustedProxies,
    pub(crate) header: ForwardingHeader,
    pub(crate) max_hops: usize,
    pub(crate) max_header_bytes: usize,
}

impl Default for Resolver {
    fn default() -> Self {
        Self {
            trusted: TrustedProxies::none(),
            header: ForwardingHeader::default(),
            max_hops: DEFAULT_MAX_HOPS,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
        }
    }
}

/// Where the walk ended, and why.
///
/// ```
/// use protothrive::client_ip::{Resolver, Stop};
///
/// // The default resolver trusts no proxy, so forwarding headers are never read.
/// let peer = "203.0.113.9".parse().unwrap();
/// let got = Resolver::default().walk_x_forwarded_for(peer, ["198.51.100.7"]);
/// assert_eq!(got.ip(), peer);
/// assert_eq!(got.stop(), Stop::UntrustedPeer);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolution {
    ip: IpAddr,
    hops: usize,
    stop: Stop,
}

impl Resolution {
    /// The client address (IPv4-mapped IPv6 addresses are given as IPv4).
    #[must_use]
    pub fn ip(&self) -> IpAddr {
        self.ip
    }

    /// How many forwarding entries the client is behind the peer: 0 when the client is the peer.
    #[must_use]
    pub fn hops(&self) -> usize {
        self.hops
    }

    /// Why the walk ended there.
    #[must_use]
    pub fn stop(&self) -> Stop {
        self.stop
    }

    fn stopped(mut self, stop: Stop) -> Self {
        self.stop = stop;
        self
    }
}

/// Why the walk ended. Only the first two are the ordinary outcomes; the others mean the headers
/// were not fully walked, and the client is the last address a trusted proxy vouched for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Stop {
    /// The peer is not a trusted proxy: it is the client, and no header was read.
    UntrustedPeer,
    /// The walk reached an address that is not a trusted proxy: the client.
    UntrustedHop,
    /// Every address was a trusted proxy; the client is the leftmost entry (or the peer, when the
    /// request carries no forwarding entry).
    AllTrusted,
    /// An entry could not be read: garbage, `unknown`, an obfuscated identifier (`_hidden`),
    /// non-UTF-8 bytes, or a `Forwarded` element without exactly one `for=`.
    Malformed,
    /// [`max_hops`](super::ClientIpLayerBuilder::max_hops) entries were walked and the address
    /// reached is still a trusted proxy.
    TooManyHops,
    /// Walking on would read more than
    /// [`max_header_bytes`](super::ClientIpLayerBuilder::max_header_bytes).
    TooLarge,
}

impl Stop {
    /// Whether the walk ended early (malformed input or a limit) rather than at its natural end.
    #[must_use]
    pub fn is_early(self) -> bool {
        matches!(self, Self::Malformed | Self::TooManyHops | Self::TooLarge)
    }
}

impl Resolver {
    /// The trusted proxies.
    #[must_use]
    pub fn trusted_proxies(&self) -> &TrustedProxies {
        &self.trusted
    }

    /// The header the walk reads.
    #[must_use]
    pub fn header(&self) -> ForwardingHeader {
        self.header
    }

    /// Resolves the client of a request that came from `peer` with `headers`.
    ///
    /// Reads the header chosen by [`ForwardingHeader`]; with [`ForwardingHeader::Both`],
    /// `Forwarded` when the request has one and `X-Forwarded-For` otherwise.
    #[must_use]
    pub fn resolve(&self, peer: IpAddr, headers: &HeaderMap) -> Resolution {
        let forwarded = match self.header {
            ForwardingHeader::XForwardedFor => false,
            ForwardingHeader::Forwarded => true,
            ForwardingHeader::Both => headers.contains_key(FORWARDED),
        };
        if forwarded {
            self.walk(peer, Syntax::Forwarded, headers.get_all(FORWARDED))
        } else {
            self.walk(
                peer,
                Syntax::XForwardedFor,
                headers.get_all(&X_FORWARDED_FOR),
            )
        }
    }

    /// Walks `X-Forwarded-For` lines (every instance of the header, in the order received).
    #[must_use]
    pub fn walk_x_forwarded_for<I>(&self, peer: IpAddr, lines: I) -> Resolution
    where
        I: IntoIterator<IntoIter: DoubleEndedIterator>,
        I::Item: AsRef<[u8]>,
    {
        self.walk(peer, Syntax::XForwardedFor, lines)
    }

    /// Walks `Forwarded` lines (every instance of the header, in the order received).
    #[must_use]
    pub fn walk_forwarded<I>(&self, peer: IpAddr, lines: I) -> Resolution
    where
        I: IntoIterator<IntoIter: DoubleEndedIterator>,
        I::Item: AsRef<[u8]>,
    {
        self.walk(peer, Syntax::Forwarded, lines)
    }

    /// The walk. Each entry was written by the hop to its right; once that hop is trusted, the
    /// entry is believed, and the walk moves left until an address that is not trusted.
    fn walk<I>(&self, peer: IpAddr, syntax: Syntax, lines: I) -> Resolution
    where
        I: IntoIterator<IntoIter: DoubleEndedIterator>,
        I::Item: AsRef<[u8]>,
    {
        let mut at = Resolution {
            ip: peer.to_canonical(),
            hops: 0,
            stop: Stop::UntrustedPeer,
        };
        if !self.trusted.contains(at.ip) {
            return at;
        }
        let mut budget = self.max_header_bytes;
        for line in lines.into_iter().rev() {
            let mut elements = RevElements::new(line.as_ref(), syntax);
            loop {
                if budget == 0 {
                    return at.stopped(Stop::TooLarge);
                }
                let Some(element) = elements.next(budget) else {
                    break;
                };
                let Ok(element) = element else {
                    return at.stopped(Stop::TooLarge);
                };
                // The element and its separator (a comma, or the line break between instances).
                budget = budget.saturating_sub(element.len() + 1);
                let element = trim_ows(element);
                if element.is_empty() {
                    // RFC 9110 §5.6.1: empty list elements are ignored.
                    continue;
                }
                if at.hops == self.max_hops {
                    return at.stopped(Stop::TooManyHops);
                }
                let Ok(ip) = syntax.address(element) else {
                    return at.stopped(Stop::Malformed);
                };
                at.ip = ip.to_canonical();
                at.hops += 1;
                if !self.trusted.contains(at.ip) {
                    return at.stopped(Stop::UntrustedHop);
                }
            }
        }
        at.stopped(Stop::AllTrusted)
    }
}
