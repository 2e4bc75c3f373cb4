use std::fmt;
use std::net::IpAddr;

/// The resolved client address of a request, set by `ClientIpLayer` (feature `client-ip`) in the
/// request's [`RequestContext`](super::RequestContext); read it with [`ClientIp::of`], which also
/// finds one inserted as a standalone extension (as below, or by a PROXY-protocol acceptor).
///
/// IPv4-mapped IPv6 addresses are given as IPv4, so one client has one key for rate limits. With
/// the `axum` feature it is also an extractor (see `ClientIpRejection` for when it fails);
/// `Option<ClientIp>` never fails.
///
/// ```
/// use std::net::IpAddr;
/// use protothrive::identity::ClientIp;
///
/// let mut req = http::Request::new(());
/// req.extensions_mut().insert(ClientIp("192.0.2.1".parse().unwrap()));
/// let ClientIp(ip) = ClientIp::of(req.extensions()).unwrap();
/// assert_eq!(ip, "192.0.2.1".parse::<IpAddr>().unwrap());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientIp(pub IpAddr);

impl ClientIp {
    /// The address.
    #[must_use]
    pub fn ip(self) -> IpAddr {
        self.0
    }
}

impl From<ClientIp> for IpAddr {
    fn from(client: ClientIp) -> Self {
        client.0
    }
}

impl fmt::Display for ClientIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
