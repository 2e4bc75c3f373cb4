//! Forwarding one request to one upstream: hop-by-hop headers, the client chain, the host, the
//! upstream's URI, and the problems for an unreachable or silent upstream.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::response::Response;
use http::header::{self, HeaderName};
use http::{HeaderMap, HeaderValue, Request, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use protothrive::error::Problem;
use protothrive::identity::ClientIp;
use protothrive::resilience::NotSent;
use tower_http::timeout::TimeoutBody;

/// Hop-by-hop headers (RFC 9110 §7.6.1): never forwarded.
static HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Removes the hop-by-hop headers, and those the `Connection` header names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::try_from(name.trim()).ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
    headers.remove("proxy-connection");
}

/// One host per request (RFC 9112 §3.2.2): an absolute-form target's authority replaces `Host`,
/// so the cache (which keys on the target's authority) and `X-Forwarded-Host` (which the upstream
/// gets from `Host`) cannot name two hosts; more than one `Host` field is refused (`Err`: why, for
/// a 400).
pub fn one_authority<B>(req: &mut Request<B>) -> Result<(), &'static str> {
    if req.headers().get_all(header::HOST).iter().count() > 1 {
        return Err("A request names one host.");
    }
    if let Some(authority) = req.uri().authority() {
        // Without user info, which is no part of a host.
        let host = match authority.port() {
            Some(port) => format!("{}:{port}", authority.host()),
            None => authority.host().to_owned(),
        };
        let host =
            HeaderValue::try_from(host).map_err(|_| "The request target's host is not valid.")?;
        req.headers_mut().insert(header::HOST, host);
    }
    Ok(())
}

/// Replaces the forwarding headers with the chain the client-IP layer resolved: the client, then
/// the peer that handed the request over when that is not the client (a trusted proxy). What the
/// client sent itself in `X-Forwarded-For`, `Forwarded` or `X-Real-IP` is never passed on: a
/// direct client would otherwise choose the address the upstream sees.
pub fn forward_client_chain(headers: &mut HeaderMap, client: Option<IpAddr>, peer: Option<IpAddr>) {
    headers.remove(&X_FORWARDED_FOR);
    headers.remove(header::FORWARDED);
    headers.remove(&X_REAL_IP);
    let mut chain: Vec<IpAddr> = client.into_iter().map(|ip| ip.to_canonical()).collect();
    if let Some(peer) = peer.map(|ip| ip.to_canonical())
        && !chain.contains(&peer)
    {
        chain.push(peer);
    }
    if chain.is_empty() {
        return;
    }
    let xff: Vec<String> = chain.iter().map(ToString::to_string).collect();
    // RFC 7239 §6: an IPv6 node is quoted and bracketed.
    let forwarded: Vec<String> = chain
        .iter()
        .map(|ip| match ip {
            IpAddr::V4(v4) => format!("for={v4}"),
            IpAddr::V6(v6) => format!("for=\"[{v6}]\""),
        })
        .collect();
    for (name, value) in [
        (X_FORWARDED_FOR.clone(), xff.join(", ")),
        (header::FORWARDED, forwarded.join(", ")),
    ] {
        if let Ok(v) = HeaderValue::try_from(value) {
            headers.insert(name, v);
        }
    }
}

/// The upstream URI for a request path: the upstream's scheme and authority, its path prefix,
/// then the request's path and query.
pub fn upstream_uri(upstream: &Uri, incoming: &Uri) -> Result<Uri, http::Error> {
    let prefix = upstream.path().trim_end_matches('/');
    let pq = incoming
        .path_and_query()
        .map_or("/", http::uri::PathAndQuery::as_str);
    Uri::builder()
        .scheme(upstream.scheme_str().unwrap_or("http"))
        .authority(upstream.authority().map_or("", |a| a.as_str()))
        .path_and_query(format!("{prefix}{pq}"))
        .build()
}

/// Forwards requests to one upstream.
#[derive(Clone)]
pub struct Proxy {
    pub client: Client<HttpConnector, Body>,
    pub upstream: Uri,
    pub timeout: Duration,
}

pub fn problem(status: StatusCode, code: &'static str, detail: &'static str) -> Response {
    Problem::new(status, code)
        .with_detail(detail)
        .render_for(&http::Extensions::new())
        .map(Body::from)
}

impl Proxy {
    pub async fn forward(self, mut req: Request<Body>) -> Response {
        let peer = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        let client = ClientIp::of(req.extensions()).map(ClientIp::ip);
        let Ok(uri) = upstream_uri(&self.upstream, req.uri()) else {
            return problem(
                StatusCode::BAD_REQUEST,
                protothrive::error::code::BAD_REQUEST,
                "The request target cannot be forwarded.",
            );
        };
        let host = req.headers().get(header::HOST).cloned();
        let headers = req.headers_mut();
        strip_hop_by_hop(headers);
        headers.remove(header::HOST);
        forward_client_chain(headers, client, peer);
        headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static("http"));
        if let Some(host) = host {
            headers.insert(X_FORWARDED_HOST.clone(), host);
        }
        *req.uri_mut() = uri;
        *req.version_mut() = http::Version::HTTP_11;
        match tokio::time::timeout(self.timeout, self.client.request(req)).await {
            Ok(Ok(res)) => {
                let (mut parts, body) = res.into_parts();
                strip_hop_by_hop(&mut parts.headers);
                // A body that stalls (no frame within the timeout) ends in an error rather than
                // holding the cache's buffering, and every request coalesced behind it, forever.
                Response::from_parts(parts, Body::new(TimeoutBody::new(self.timeout, body)))
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "upstream unreachable");
                let mut res = problem(
                    StatusCode::BAD_GATEWAY,
                    "UPSTREAM-502",
                    "The upstream server could not be reached.",
                );
                // No connection, so nothing was sent: another instance may take it, POST or not.
                if e.is_connect() {
                    res.extensions_mut().insert(NotSent);
                }
                res
            }
            Err(_) => problem(
                StatusCode::GATEWAY_TIMEOUT,
                "UPSTREAM-504",
                "The upstream server did not answer in time.",
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_uri_keeps_the_prefix_path_and_query() {
        let up: Uri = "http://10.0.0.1:9000/base/".parse().unwrap();
        let got = upstream_uri(&up, &"/a/b?x=1&y".parse().unwrap()).unwrap();
        assert_eq!(got, "http://10.0.0.1:9000/base/a/b?x=1&y");
        let bare: Uri = "http://h:1".parse().unwrap();
        assert_eq!(
            upstream_uri(&bare, &"/".parse().unwrap()).unwrap(),
            "http://h:1/"
        );
    }

    #[test]
    fn hop_by_hop_headers_and_those_named_by_connection_go() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("close, x-secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));
    }
}
