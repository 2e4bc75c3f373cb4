//! The real client address behind trusted proxies, resolved once per request.
//!
//! [`ClientIpLayer`] is the outermost layer of the stack. It reads the peer address of the
//! connection, walks the forwarding header your proxies write (`X-Forwarded-For` or RFC 7239
//! `Forwarded`) from the right, and stores the result as a [`ClientIp`] request extension. Every
//! later layer — rate limits, tracing, auth — reads that extension; none parses headers itself, so
//! the whole stack agrees on who the client is.
//!
//! # Example
//!
//! ```
//! use std::net::SocketAddr;
//! use protothrive::client_ip::{ClientIp, ClientIpLayer};
//! use tower::{Layer, ServiceExt, service_fn};
//!
//! // nginx at 10.0.0.1 appends the address it saw to X-Forwarded-For.
//! let layer = ClientIpLayer::builder().trusted_proxies(["10.0.0.0/8"]).build()?;
//! let app = layer.layer(service_fn(|req: http::Request<()>| async move {
//!     Ok::<_, std::convert::Infallible>(ClientIp::of(req.extensions()))
//! }));
//!
//! // The client forged the leftmost entry; 198.51.100.7 is what the trusted proxy 10.0.0.5 saw.
//! let mut req = http::Request::builder()
//!     .header("x-forwarded-for", "203.0.113.66, 198.51.100.7, 10.0.0.5")
//!     .body(())?;
//! req.extensions_mut().insert("10.0.0.1:40000".parse::<SocketAddr>()?);
//!
//! let rt = tokio::runtime::Builder::new_current_thread().build()?;
//! let client = rt.block_on(app.oneshot(req))?;
//! assert_eq!(client, Some(ClientIp("198.51.100.7".parse()?)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! With axum, serve with `into_make_service_with_connect_info::<SocketAddr>()` so the layer sees
//! the peer, and take the address as an extractor (feature `axum`):
//!
//! ```
//! # #[cfg(feature = "axum")] {
//! use axum::{Router, routing::get};
//! use protothrive::client_ip::{ClientIp, ClientIpLayer};
//!
//! async fn whoami(ClientIp(ip): ClientIp) -> String {
//!     ip.to_string()
//! }
//! let layer = ClientIpLayer::builder().trusted_proxies(["10.0.0.0/8"]).build().unwrap();
//! let app: Router = Router::new().route("/whoami", get(whoami)).layer(layer);
//! // axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>())
//! # }
//! ```
//!
//! # The walk
//!
//! Start at the peer. If it is not a trusted proxy, it is the client and no header is read. Else
//! read the entries of every instance of the header, right to left: each entry was written by the
//! hop to its right, so while that hop is trusted the entry is believed and the walk moves left.
//! The first address that is not trusted is the client; if every one is, the leftmost is.
//!
//! A malformed entry (garbage, `unknown`, an obfuscated `_identifier`, non-UTF-8 bytes), more than
//! [`max_hops`](ClientIpLayerBuilder::max_hops) entries or more than
//! [`max_header_bytes`](ClientIpLayerBuilder::max_header_bytes) bytes stop the walk: the client is
//! then the last address a trusted hop vouched for. [`Resolver`] exposes the walk as a pure
//! function, with the reason it stopped ([`Stop`]).
//!
//! # Guarantees
//!
//! * **The client never chooses its address.** An entry is believed only when a trusted proxy wrote
//!   it, so anything a client prepends to the header is ignored. This holds for the header your
//!   proxies actually write — see the security note on [`ForwardingHeader::Both`].
//! * **Bounded work on hostile input.** The walk reads from the right and stops after
//!   `max_header_bytes` (default 4 KiB) and `max_hops` (default 16), whatever the client sent; it
//!   never allocates and never panics. Padding on the left costs nothing.
//! * **Never rejects.** A request without a peer address (no `ConnectInfo<SocketAddr>` nor
//!   `SocketAddr` extension, see [`ClientIpLayerBuilder::peer_addr`]) passes through with no
//!   [`ClientIp`]; the axum extractor then answers 500 (`SRV-500`), which points at the setup.
//! * **Resolved once.** A request that already has a [`ClientIp`] keeps it.
//! * **One address per client.** IPv4-mapped IPv6 (`::ffff:192.0.2.1`) is compared with IPv4
//!   networks and reported as IPv4.
//!
//! # Cost
//!
//! Measured on 2 cores (`BENCHMARKS.md`): the walk takes about 60 ns for one proxy, 110 ns for a
//! 3-hop `X-Forwarded-For` chain and 260 ns for a 3-hop `Forwarded` chain, with no allocation.
//! Through the layer a request pays about 170 ns: the walk, the peer lookup and inserting the
//! [`ClientIp`] extension (one small allocation).

#[cfg(feature = "axum")]
mod axum;
mod forwarded;
mod header;
mod layer;
mod service;
mod syntax;
mod trusted;

#[cfg(test)]
mod tests;

pub use crate::error::ConfigError;
pub use crate::identity::ClientIp;
#[cfg(feature = "axum")]
pub use axum::ClientIpRejection;
pub use forwarded::{DEFAULT_MAX_HEADER_BYTES, DEFAULT_MAX_HOPS, Resolution, Resolver, Stop};
pub use header::ForwardingHeader;
pub use layer::{ClientIpLayer, ClientIpLayerBuilder, PeerAddrFn, peer_addr_from_extensions};
#[allow(deprecated)]
pub use service::{ClientIpService, ResolveClientIp};
pub use trusted::TrustedProxies;
