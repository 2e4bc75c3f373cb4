#![allow(clippy::unwrap_used)]

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};

use http::{HeaderMap, HeaderValue, Request};
use tower::{Layer, ServiceExt, service_fn};

use super::*;

const TRUSTED: [&str; 2] = ["10.0.0.0/8", "2001:db8:ffff::/48"];

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn resolver(header: ForwardingHeader) -> Resolver {
    let layer = ClientIpLayer::builder()
        .trusted_proxies(TRUSTED)
        .header(header);
    layer.build().unwrap().resolver().clone()
}

struct Case {
    name: &'static str,
    peer: &'static str,
    lines: &'static [&'static [u8]],
    ip: &'static str,
    hops: usize,
    stop: Stop,
}

const fn case(
    name: &'static str,
    peer: &'static str,
    lines: &'static [&'static [u8]],
    ip: &'static str,
    hops: usize,
    stop: Stop,
) -> Case {
    Case {
        name,
        peer,
        lines,
        ip,
        hops,
        stop,
    }
}

fn check(cases: &[Case], walk: impl Fn(IpAddr, &[&[u8]]) -> Resolution) {
    for c in cases {
        let got = walk(ip(c.peer), c.lines);
        assert_eq!(
            (got.ip(), got.hops(), got.stop()),
            (ip(c.ip), c.hops, c.stop),
            "case {:?}",
            c.name
        );
    }
}

use Stop::{AllTrusted, Malformed, UntrustedHop, UntrustedPeer};

#[test]
fn x_forwarded_for_table() {
    #[rustfmt::skip]
    let cases = [
        case("untrusted peer: header ignored", "203.0.113.9", &[b"198.51.100.7"], "203.0.113.9", 0, UntrustedPeer),
        case("one proxy", "10.0.0.1", &[b"198.51.100.7"], "198.51.100.7", 1, UntrustedHop),
        case("spoofed leftmost entry", "10.0.0.1", &[b"6.6.6.6, 198.51.100.7"], "198.51.100.7", 1, UntrustedHop),
        case("through trusted hops", "10.0.0.1", &[b"6.6.6.6, 198.51.100.7, 10.0.0.3, 10.0.0.2"], "198.51.100.7", 3, UntrustedHop),
        case("every entry trusted: leftmost", "10.0.0.1", &[b"10.0.0.9, 10.0.0.3"], "10.0.0.9", 2, AllTrusted),
        case("trusted peer, no header", "10.0.0.1", &[], "10.0.0.1", 0, AllTrusted),
        case("duplicated header lines", "10.0.0.1", &[b"6.6.6.6, 198.51.100.7", b"10.0.0.2"], "198.51.100.7", 2, UntrustedHop),
        case("spoof in an earlier line", "10.0.0.1", &[b"6.6.6.6", b"198.51.100.7"], "198.51.100.7", 1, UntrustedHop),
        case("garbage next to the peer", "10.0.0.1", &[b"198.51.100.7, garbage"], "10.0.0.1", 0, Malformed),
        case("`unknown` after a trusted hop", "10.0.0.1", &[b"198.51.100.7, unknown, 10.0.0.2"], "10.0.0.2", 1, Malformed),
        case("obfuscated identifier", "10.0.0.1", &[b"_hidden"], "10.0.0.1", 0, Malformed),
        case("non-UTF-8 bytes", "10.0.0.1", &[b"198.51.100.7, \xff\xfe"], "10.0.0.1", 0, Malformed),
        case("non-UTF-8 left of the client is never read", "10.0.0.1", &[b"\xff, 198.51.100.7"], "198.51.100.7", 1, UntrustedHop),
        case("empty elements and OWS", "10.0.0.1", &[b"\t198.51.100.7 ,, 10.0.0.2 ,", b""], "198.51.100.7", 2, UntrustedHop),
        case("quotes are not XFF syntax", "10.0.0.1", &[b"\"198.51.100.7\""], "10.0.0.1", 0, Malformed),
        case("IPv6", "2001:db8:ffff::1", &[b"2001:db8::7"], "2001:db8::7", 1, UntrustedHop),
        case("IPv6 in brackets with a port", "10.0.0.1", &[b"[2001:db8::7]:443"], "2001:db8::7", 1, UntrustedHop),
        case("IPv6 brackets, no port", "10.0.0.1", &[b"[2001:db8::7]"], "2001:db8::7", 1, UntrustedHop),
        case("IPv4 with a port", "10.0.0.1", &[b"198.51.100.7:5000"], "198.51.100.7", 1, UntrustedHop),
        case("IPv4 with a bad port", "10.0.0.1", &[b"198.51.100.7:123456"], "10.0.0.1", 0, Malformed),
        case("IPv4-mapped peer is trusted by an IPv4 network", "::ffff:10.0.0.1", &[b"198.51.100.7"], "198.51.100.7", 1, UntrustedHop),
        case("IPv4-mapped hop is trusted", "10.0.0.1", &[b"198.51.100.7, ::ffff:10.0.0.2"], "198.51.100.7", 2, UntrustedHop),
        case("IPv4-mapped client is reported as IPv4", "10.0.0.1", &[b"::ffff:198.51.100.7"], "198.51.100.7", 1, UntrustedHop),
        case("IPv4-mapped untrusted peer as IPv4", "::ffff:203.0.113.9", &[b"10.0.0.2"], "203.0.113.9", 0, UntrustedPeer),
        case("zone ids are not addresses", "10.0.0.1", &[b"fe80::1%eth0"], "10.0.0.1", 0, Malformed),
    ];
    let r = resolver(ForwardingHeader::XForwardedFor);
    check(&cases, |peer, lines| r.walk_x_forwarded_for(peer, lines));
}

#[test]
fn forwarded_table() {
    #[rustfmt::skip]
    let cases = [
        case("untrusted peer: header ignored", "203.0.113.9", &[b"for=198.51.100.7"], "203.0.113.9", 0, UntrustedPeer),
        case("plain for", "10.0.0.1", &[b"for=198.51.100.7"], "198.51.100.7", 1, UntrustedHop),
        case("IPv6 quoted, bracketed, with port", "10.0.0.1", &[b"for=\"[2001:db8::1]:443\""], "2001:db8::1", 1, UntrustedHop),
        case("case-insensitive name, other pairs", "10.0.0.1", &[b"proto=https;For=198.51.100.7;by=10.0.0.1"], "198.51.100.7", 1, UntrustedHop),
        case("IPv4 with port, quoted", "10.0.0.1", &[b"for=\"198.51.100.7:8080\""], "198.51.100.7", 1, UntrustedHop),
        case("IPv4 with port, unquoted (lenient)", "10.0.0.1", &[b"for=198.51.100.7:8080"], "198.51.100.7", 1, UntrustedHop),
        case("obfuscated port", "10.0.0.1", &[b"for=\"198.51.100.7:_p1\""], "198.51.100.7", 1, UntrustedHop),
        case("unknown", "10.0.0.1", &[b"for=198.51.100.7, for=unknown"], "10.0.0.1", 0, Malformed),
        case("obfuscated identifier", "10.0.0.1", &[b"for=_hidden"], "10.0.0.1", 0, Malformed),
        case("obfuscated identifier with port", "10.0.0.1", &[b"for=\"_hidden:80\""], "10.0.0.1", 0, Malformed),
        case("element without for", "10.0.0.1", &[b"for=198.51.100.7, proto=https"], "10.0.0.1", 0, Malformed),
        case("two for in one element", "10.0.0.1", &[b"for=198.51.100.7;for=10.0.0.2"], "10.0.0.1", 0, Malformed),
        case("comma inside a quoted string", "10.0.0.1", &[b"for=198.51.100.7, for=10.0.0.2;host=\"a,b\""], "198.51.100.7", 2, UntrustedHop),
        case("escaped quote and comma", "10.0.0.1", &[b"for=198.51.100.7;ext=\"x\\\",y\", for=10.0.0.2"], "198.51.100.7", 2, UntrustedHop),
        case("escaped backslash before the closing quote", "10.0.0.1", &[b"for=198.51.100.7;ext=\"x\\\\\", for=10.0.0.2"], "198.51.100.7", 2, UntrustedHop),
        case("quoted-pairs in the node", "10.0.0.1", &[b"for=\"\\[2001:db8::1\\]\""], "2001:db8::1", 1, UntrustedHop),
        case("spoofed leftmost element", "10.0.0.1", &[b"for=6.6.6.6, for=198.51.100.7"], "198.51.100.7", 1, UntrustedHop),
        case("client's unbalanced quote cannot swallow the proxy's element", "10.0.0.1", &[b"for=\"6.6.6.6, for=198.51.100.7"], "198.51.100.7", 1, UntrustedHop),
        case("several lines", "10.0.0.1", &[b"for=6.6.6.6", b"for=198.51.100.7;proto=https", b"for=10.0.0.2"], "198.51.100.7", 2, UntrustedHop),
        case("IPv4-mapped in brackets", "10.0.0.1", &[b"for=\"[::ffff:198.51.100.7]\""], "198.51.100.7", 1, UntrustedHop),
        case("bare IPv6 (lenient)", "10.0.0.1", &[b"for=\"2001:db8::1\""], "2001:db8::1", 1, UntrustedHop),
        case("empty pairs", "10.0.0.1", &[b";for=198.51.100.7;"], "198.51.100.7", 1, UntrustedHop),
        case("unterminated quoted string", "10.0.0.1", &[b"for=\"198.51.100.7"], "10.0.0.1", 0, Malformed),
        case("pair without =", "10.0.0.1", &[b"for=198.51.100.7;secure"], "10.0.0.1", 0, Malformed),
        case("bad name", "10.0.0.1", &[b"f r=1;for=198.51.100.7"], "10.0.0.1", 0, Malformed),
        case("empty value", "10.0.0.1", &[b"for="], "10.0.0.1", 0, Malformed),
        case("control byte in a quoted string", "10.0.0.1", &[b"for=198.51.100.7;x=\"\x01\""], "10.0.0.1", 0, Malformed),
        case("quoted-pair at the end", "10.0.0.1", &[b"for=\"198.51.100.7\\\""], "10.0.0.1", 0, Malformed),
        case("overlong escaped node", "10.0.0.1", &[b"for=\"\\1111111111111111111111111111111111111111111111111111111111111111111111\""], "10.0.0.1", 0, Malformed),
        case("all trusted", "10.0.0.1", &[b"for=10.0.0.3, for=\"[2001:db8:ffff::9]\""], "10.0.0.3", 2, AllTrusted),
    ];
    let r = resolver(ForwardingHeader::Forwarded);
    check(&cases, |peer, lines| r.walk_forwarded(peer, lines));
}

#[test]
fn hop_limit_stops_at_the_last_trusted_address() {
    let build = |hops| {
        let b = ClientIpLayer::builder()
            .trusted_proxies(TRUSTED)
            .max_hops(hops);
        b.build().unwrap().resolver().clone()
    };
    let chain = ["198.51.100.7, 10.0.0.3, 10.0.0.2"];
    let got = build(3).walk_x_forwarded_for(ip("10.0.0.1"), chain);
    assert_eq!((got.ip(), got.stop()), (ip("198.51.100.7"), UntrustedHop));
    let got = build(2).walk_x_forwarded_for(ip("10.0.0.1"), chain);
    assert_eq!(
        (got.ip(), got.hops(), got.stop()),
        (ip("10.0.0.3"), 2, Stop::TooManyHops)
    );

    let long = vec!["10.0.0.9"; 1000];
    let got = build(DEFAULT_MAX_HOPS).walk_x_forwarded_for(ip("10.0.0.1"), &long);
    assert_eq!(got.hops(), DEFAULT_MAX_HOPS);
    assert_eq!(got.stop(), Stop::TooManyHops);
}

#[test]
fn byte_limit_reads_from_the_right_only() {
    let r = resolver(ForwardingHeader::XForwardedFor);
    // Megabytes of padding left of the client are never looked at.
    let padded = format!("{}, 198.51.100.7, 10.0.0.2", "x".repeat(1 << 20));
    let got = r.walk_x_forwarded_for(ip("10.0.0.1"), [padded.as_bytes()]);
    assert_eq!((got.ip(), got.stop()), (ip("198.51.100.7"), UntrustedHop));

    // A trusted chain longer than the budget stops at a trusted address.
    let b = ClientIpLayer::builder()
        .trusted_proxies(TRUSTED)
        .max_hops(10_000);
    let r = b.build().unwrap().resolver().clone();
    let chain = "10.0.0.9, ".repeat(1000) + "10.0.0.8";
    let got = r.walk_x_forwarded_for(ip("10.0.0.1"), [chain.as_bytes()]);
    assert_eq!(got.stop(), Stop::TooLarge);
    assert!(r.trusted_proxies().contains(got.ip()));
    assert!(got.hops() <= DEFAULT_MAX_HEADER_BYTES / 9);

    // An entry larger than the budget is not read.
    let b = ClientIpLayer::builder()
        .trusted_proxies(TRUSTED)
        .max_header_bytes(8);
    let r = b.build().unwrap().resolver().clone();
    let got = r.walk_x_forwarded_for(ip("10.0.0.1"), ["198.51.100.7"]);
    assert_eq!((got.ip(), got.stop()), (ip("10.0.0.1"), Stop::TooLarge));
    let got = r.walk_forwarded(ip("10.0.0.1"), ["for=\"[2001:db8::1]\""]);
    assert_eq!((got.ip(), got.stop()), (ip("10.0.0.1"), Stop::TooLarge));

    // Many empty header lines cost a byte each.
    let empty = vec![""; 100_000];
    let got = resolver(ForwardingHeader::Forwarded).walk_forwarded(ip("10.0.0.1"), &empty);
    assert_eq!(got.stop(), Stop::TooLarge);
}

#[test]
fn both_prefers_forwarded_when_present() {
    let r = resolver(ForwardingHeader::Both);
    let mut headers = HeaderMap::new();
    headers.append("x-forwarded-for", HeaderValue::from_static("198.51.100.1"));
    assert_eq!(r.resolve(ip("10.0.0.1"), &headers).ip(), ip("198.51.100.1"));
    headers.append("forwarded", HeaderValue::from_static("for=198.51.100.2"));
    assert_eq!(r.resolve(ip("10.0.0.1"), &headers).ip(), ip("198.51.100.2"));

    let xff_only = resolver(ForwardingHeader::XForwardedFor);
    assert_eq!(
        xff_only.resolve(ip("10.0.0.1"), &headers).ip(),
        ip("198.51.100.1")
    );
    let fwd_only = resolver(ForwardingHeader::Forwarded);
    headers.remove("forwarded");
    let got = fwd_only.resolve(ip("10.0.0.1"), &headers);
    assert_eq!((got.ip(), got.stop()), (ip("10.0.0.1"), AllTrusted));
}

#[test]
fn build_errors_say_how_to_fix() {
    let err = ClientIpLayer::builder().max_hops(0).build().unwrap_err();
    assert!(err.message().contains("max_hops"), "{err}");
    let err = ClientIpLayer::builder()
        .max_header_bytes(0)
        .build()
        .unwrap_err();
    assert!(err.message().contains("max_header_bytes"), "{err}");
    let err = ClientIpLayer::builder()
        .trusted_proxies(["10.0.0.0/8", "10.0.0.0/99", "junk"])
        .build()
        .unwrap_err();
    assert!(
        err.message().contains("10.0.0.0/99"),
        "first error wins: {err}"
    );
    let err = ClientIpLayer::builder()
        .trusted_nets(["::/0".parse().unwrap()])
        .build()
        .unwrap_err();
    assert!(err.message().contains("any client could choose"), "{err}");
}

async fn client_of(layer: &ClientIpLayer, req: Request<()>) -> Option<ClientIp> {
    let svc = layer.layer(service_fn(|req: Request<()>| async move {
        Ok::<_, Infallible>(ClientIp::of(req.extensions()))
    }));
    svc.oneshot(req).await.unwrap()
}

fn request(xff: &str, peer: Option<&str>) -> Request<()> {
    let mut req = Request::builder()
        .header("x-forwarded-for", xff)
        .body(())
        .unwrap();
    if let Some(peer) = peer {
        req.extensions_mut()
            .insert(peer.parse::<SocketAddr>().unwrap());
    }
    req
}

#[tokio::test]
async fn service_inserts_the_client_once() {
    let layer = ClientIpLayer::builder()
        .trusted_proxies(TRUSTED)
        .build()
        .unwrap();
    let got = client_of(&layer, request("198.51.100.7", Some("10.0.0.1:9"))).await;
    assert_eq!(got, Some(ClientIp(ip("198.51.100.7"))));

    // No peer address: no extension, and the request still goes through.
    assert_eq!(client_of(&layer, request("198.51.100.7", None)).await, None);

    // Already resolved (an outer layer, a PROXY-protocol acceptor): kept.
    let mut req = request("198.51.100.7", Some("10.0.0.1:9"));
    req.extensions_mut().insert(ClientIp(ip("192.0.2.55")));
    assert_eq!(
        client_of(&layer, req).await,
        Some(ClientIp(ip("192.0.2.55")))
    );

    // The default layer trusts nobody.
    let got = client_of(
        &ClientIpLayer::new(),
        request("198.51.100.7", Some("10.0.0.1:9")),
    )
    .await;
    assert_eq!(got, Some(ClientIp(ip("10.0.0.1"))));
}

#[tokio::test]
async fn custom_peer_source() {
    #[derive(Clone)]
    struct ProxyProtocolPeer(IpAddr);
    let layer = ClientIpLayer::builder()
        .trusted_proxies(TRUSTED)
        .peer_addr(|ext| ext.get::<ProxyProtocolPeer>().map(|p| p.0))
        .build()
        .unwrap();
    let mut req = request("198.51.100.7", Some("203.0.113.1:9"));
    req.extensions_mut()
        .insert(ProxyProtocolPeer(ip("10.9.9.9")));
    assert_eq!(
        client_of(&layer, req).await,
        Some(ClientIp(ip("198.51.100.7")))
    );
}

#[cfg(feature = "axum")]
#[tokio::test]
async fn axum_connect_info_is_the_peer() {
    let layer = ClientIpLayer::builder()
        .trusted_proxies(TRUSTED)
        .build()
        .unwrap();
    let mut req = request("198.51.100.7", None);
    let peer: SocketAddr = "10.0.0.1:9".parse().unwrap();
    req.extensions_mut()
        .insert(::axum::extract::ConnectInfo(peer));
    assert_eq!(
        client_of(&layer, req).await,
        Some(ClientIp(ip("198.51.100.7")))
    );
}

#[test]
fn layer_and_service_are_cheap_to_clone_and_debug() {
    let layer = ClientIpLayer::builder()
        .trusted_proxies(TRUSTED)
        .build()
        .unwrap();
    let clone = layer.clone();
    assert!(std::sync::Arc::ptr_eq(&layer.shared, &clone.shared));
    assert!(format!("{layer:?}").contains("10.0.0.0/8"));
    let mut svc = layer.layer(42_u8);
    assert_eq!(*svc.get_ref(), 42);
    *svc.get_mut() = 7;
    assert_eq!(svc.into_inner(), 7);
}
