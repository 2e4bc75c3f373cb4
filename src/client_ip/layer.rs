use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;
use tower_layer::Layer;

use super::forwarded::Resolver;
use super::header::ForwardingHeader;
use super::service::ResolveClientIp;
use crate::error::ConfigError;

/// Finds the peer address of a request in its extensions.
pub type PeerAddrFn = fn(&http::Extensions) -> Option<IpAddr>;

/// The default [`PeerAddrFn`]: axum's `ConnectInfo<SocketAddr>` (with the `axum` feature), else a
/// plain [`SocketAddr`] extension.
///
/// ```
/// use std::net::SocketAddr;
/// use protothrive::client_ip::peer_addr_from_extensions;
///
/// let mut ext = http::Extensions::new();
/// assert_eq!(peer_addr_from_extensions(&ext), None);
/// ext.insert("192.0.2.1:5000".parse::<SocketAddr>().unwrap());
/// assert_eq!(peer_addr_from_extensions(&ext), Some("192.0.2.1".parse().unwrap()));
/// ```
#[must_use]
pub fn peer_addr_from_extensions(extensions: &http::Extensions) -> Option<IpAddr> {
    #[cfg(feature = "axum")]
    if let Some(info) = extensions.get::<axum::extract::ConnectInfo<SocketAddr>>() {
        return Some(info.0.ip());
    }
    extensions.get::<SocketAddr>().map(SocketAddr::ip)
}

/// Resolves the client address of every request once and stores it as the
/// [`ClientIp`](super::ClientIp) of the request's
/// [`RequestContext`](crate::identity::RequestContext) (read it with `ClientIp::of`). See the
/// [module docs](super).
///
/// Cloning is one reference-count increment.
///
/// ```
/// use protothrive::client_ip::{ClientIpLayer, ForwardingHeader};
///
/// let layer = ClientIpLayer::builder()
///     .trusted_proxies(["10.0.0.0/8", "fd00::/8"])
///     .header(ForwardingHeader::Forwarded)
///     .build()
///     .unwrap();
/// assert_eq!(layer.resolver().header(), ForwardingHeader::Forwarded);
/// ```
#[derive(Clone)]
#[must_use]
pub struct ClientIpLayer {
    pub(crate) shared: Arc<Shared>,
}

pub(crate) struct Shared {
    pub(crate) resolver: Resolver,
    pub(crate) peer_addr: PeerAddrFn,
}

impl ClientIpLayer {
    /// A layer that trusts no proxy: the client is always the peer.
    pub fn new() -> Self {
        Self::from_parts(Resolver::default(), peer_addr_from_extensions)
    }

    /// Starts a configuration.
    pub fn builder() -> ClientIpLayerBuilder {
        ClientIpLayerBuilder::default()
    }

    /// The pure resolver this layer runs.
    #[must_use]
    pub fn resolver(&self) -> &Resolver {
        &self.shared.resolver
    }

    fn from_parts(resolver: Resolver, peer_addr: PeerAddrFn) -> Self {
        Self {
            shared: Arc::new(Shared {
                resolver,
                peer_addr,
            }),
        }
    }
}

impl Default for ClientIpLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for ClientIpLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientIpLayer")
            .field("resolver", &self.shared.resolver)
            .finish_non_exhaustive()
    }
}

impl<S> Layer<S> for ClientIpLayer {
    type Service = ResolveClientIp<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ResolveClientIp::new(inner, self.clone())
    }
}

/// The configuration of a [`ClientIpLayer`]. Mistakes are reported by [`build`](Self::build).
#[derive(Debug, Clone)]
#[must_use]
pub struct ClientIpLayerBuilder {
    resolver: Resolver,
    peer_addr: PeerAddrFn,
    error: Option<ConfigError>,
}

impl Default for ClientIpLayerBuilder {
    fn default() -> Self {
        Self {
            resolver: Resolver::default(),
            peer_addr: peer_addr_from_extensions,
            error: None,
        }
    }
}

impl ClientIpLayerBuilder {
    /// Adds proxies whose forwarding headers are believed: CIDR networks (`10.0.0.0/8`,
    /// `2001:db8::/32`) or single addresses. Calls add up.
    ///
    /// List only proxies you run (or your CDN's published ranges): a trusted address can claim to
    /// forward for anyone. An unparsable entry or a `/0` network makes [`build`](Self::build) fail.
    pub fn trusted_proxies<I>(mut self, networks: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        if let Err(e) = self.resolver.trusted.extend_parsed(networks) {
            self.error.get_or_insert(e);
        }
        self
    }

    /// Adds already-parsed trusted networks. Calls add up.
    pub fn trusted_nets(mut self, networks: impl IntoIterator<Item = IpNet>) -> Self {
        if let Err(e) = self.resolver.trusted.extend_nets(networks) {
            self.error.get_or_insert(e);
        }
        self
    }

    /// The header the trusted proxies write: `X-Forwarded-For` (the default), `Forwarded`
    /// ([RFC 7239 §4](https://www.rfc-editor.org/rfc/rfc7239#section-4)), or
    /// [`ForwardingHeader::Both`] — read its security note first.
    pub fn header(mut self, header: ForwardingHeader) -> Self {
        self.resolver.header = header;
        self
    }

    /// The most forwarding entries walked per request (default
    /// [`DEFAULT_MAX_HOPS`](super::DEFAULT_MAX_HOPS)). Past it, the client is the last trusted
    /// address reached. Must be at least 1.
    pub fn max_hops(mut self, hops: usize) -> Self {
        self.resolver.max_hops = hops;
        self
    }

    /// The most header bytes examined per request, counted from the right (default
    /// [`DEFAULT_MAX_HEADER_BYTES`](super::DEFAULT_MAX_HEADER_BYTES)). Past it, the client is the
    /// last trusted address reached. Must be at least 1.
    pub fn max_header_bytes(mut self, bytes: usize) -> Self {
        self.resolver.max_header_bytes = bytes;
        self
    }

    /// Where the peer address comes from (default [`peer_addr_from_extensions`]): for example a
    /// PROXY-protocol or tonic connection-info extension. A request with no peer address gets no
    /// [`ClientIp`](super::ClientIp).
    pub fn peer_addr(mut self, peer_addr: PeerAddrFn) -> Self {
        self.peer_addr = peer_addr;
        self
    }

    /// The layer.
    ///
    /// ```
    /// use protothrive::client_ip::ClientIpLayer;
    ///
    /// let err = ClientIpLayer::builder().trusted_proxies(["10.0.0.0/33"]).build().unwrap_err();
    /// assert!(err.to_string().starts_with("configuration: client_ip: "));
    /// assert!(err.message().contains("\"10.0.0.0/33\""));
    /// assert!(err.message().contains("CIDR such as"));
    /// ```
    ///
    /// # Errors
    ///
    /// An unparsable or `/0` trusted network, or a zero limit.
    pub fn build(self) -> Result<ClientIpLayer, ConfigError> {
        if let Some(e) = self.error {
            return Err(ConfigError::new(format!("client_ip: {}", e.message())));
        }
        if self.resolver.max_hops == 0 {
            return Err(ConfigError::new(
                "client_ip: max_hops must be at least 1; to ignore forwarding headers, trust no proxy",
            ));
        }
        if self.resolver.max_header_bytes == 0 {
            return Err(ConfigError::new(
                "client_ip: max_header_bytes must be at least 1; to ignore forwarding headers, trust no proxy",
            ));
        }
        Ok(ClientIpLayer::from_parts(self.resolver, self.peer_addr))
    }
}
