//! Properties of the pure walk, over arbitrary header bytes and generated proxy chains.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use http::{HeaderMap, HeaderValue};
use proptest::prelude::*;
use protothrive::client_ip::{ClientIpLayer, ForwardingHeader, Resolution, Resolver, Stop};

const TRUSTED: [&str; 3] = ["10.0.0.0/8", "2001:db8::/32", "172.16.0.0/12"];

fn resolver(header: ForwardingHeader) -> Resolver {
    let builder = ClientIpLayer::builder().trusted_proxies(TRUSTED);
    builder.header(header).build().unwrap().resolver().clone()
}

fn walk(r: &Resolver, forwarded: bool, peer: IpAddr, lines: &[Vec<u8>]) -> Resolution {
    if forwarded {
        r.walk_forwarded(peer, lines)
    } else {
        r.walk_x_forwarded_for(peer, lines)
    }
}

fn trusted_ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<[u8; 3]>().prop_map(|[b, c, d]| IpAddr::V4(Ipv4Addr::new(10, b, c, d))),
        any::<[u16; 6]>().prop_map(|s| IpAddr::V6(Ipv6Addr::new(
            0x2001, 0xdb8, s[0], s[1], s[2], s[3], s[4], s[5]
        ))),
        // A dual-stack socket's view of an IPv4 proxy.
        any::<[u8; 3]>()
            .prop_map(|[b, c, d]| IpAddr::V6(Ipv4Addr::new(10, b, c, d).to_ipv6_mapped())),
    ]
}

fn untrusted_ip() -> impl Strategy<Value = IpAddr> {
    let trusted = resolver(ForwardingHeader::XForwardedFor)
        .trusted_proxies()
        .clone();
    any::<IpAddr>().prop_filter("untrusted", move |ip| !trusted.contains(*ip))
}

/// Bytes with a good share of the characters the parsers care about.
fn header_bytes() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        3 => any::<u8>(),
        3 => prop::sample::select(b",;=\"\\[]:_ \t.0123456789abcdefforFOR".to_vec()),
    ];
    prop::collection::vec(byte, 0..80)
}

/// How a trusted proxy writes one address.
fn entry(ip: IpAddr, forwarded: bool, port: Option<u16>, extra: bool) -> String {
    let node = match (ip, port) {
        (IpAddr::V4(v4), None) => v4.to_string(),
        (IpAddr::V4(v4), Some(p)) => format!("{v4}:{p}"),
        (IpAddr::V6(v6), None) if !forwarded => v6.to_string(),
        (IpAddr::V6(v6), None) => format!("[{v6}]"),
        (IpAddr::V6(v6), Some(p)) => format!("[{v6}]:{p}"),
    };
    if !forwarded {
        return node;
    }
    let quoted = if node.contains(':') {
        format!("\"{node}\"")
    } else {
        node
    };
    if extra {
        format!("proto=https;for={quoted};host=\"a,b;c\"")
    } else {
        format!("for={quoted}")
    }
}

proptest! {
    /// Whatever the headers say, an untrusted peer is the client.
    #[test]
    fn untrusted_peer_is_always_the_client(
        peer in untrusted_ip(),
        lines in prop::collection::vec(header_bytes(), 0..4),
        forwarded in any::<bool>(),
    ) {
        let got = walk(&resolver(ForwardingHeader::Both), forwarded, peer, &lines);
        prop_assert_eq!(got.ip(), peer.to_canonical());
        prop_assert_eq!((got.hops(), got.stop()), (0, Stop::UntrustedPeer));
    }

    /// Arbitrary bytes behind a trusted peer: the walk ends on an untrusted address only when it
    /// says it found the client, never panics, and the `HeaderMap` entry point agrees.
    #[test]
    fn arbitrary_bytes_end_consistently(
        peer in trusted_ip(),
        lines in prop::collection::vec(header_bytes(), 0..4),
        forwarded in any::<bool>(),
    ) {
        let header = if forwarded { ForwardingHeader::Forwarded } else { ForwardingHeader::XForwardedFor };
        let r = resolver(header);
        let got = walk(&r, forwarded, peer, &lines);
        let trusted = r.trusted_proxies();
        match got.stop() {
            Stop::UntrustedHop => prop_assert!(!trusted.contains(got.ip()) && got.hops() > 0),
            Stop::UntrustedPeer => prop_assert!(false, "trusted peer reported untrusted"),
            _ => prop_assert!(trusted.contains(got.ip())),
        }
        if let Ok(values) = lines.iter().map(|l| HeaderValue::from_bytes(l)).collect::<Result<Vec<_>, _>>() {
            let mut headers = HeaderMap::new();
            let name = if forwarded { "forwarded" } else { "x-forwarded-for" };
            for v in values {
                headers.append(name, v);
            }
            prop_assert_eq!(r.resolve(peer, &headers), got);
        }
    }

    /// A chain ending in a real client behind trusted proxies resolves to that client, whatever the
    /// client wrote to the left of its own entry — in the same line or in earlier header lines.
    #[test]
    fn attacker_entries_left_of_the_client_change_nothing(
        client in untrusted_ip(),
        proxies in prop::collection::vec((trusted_ip(), any::<Option<u16>>(), any::<bool>()), 0..6),
        client_port in any::<Option<u16>>(),
        attacker in header_bytes(),
        earlier_lines in prop::collection::vec(header_bytes(), 0..3),
        forwarded in any::<bool>(),
        peer in trusted_ip(),
    ) {
        let header = if forwarded { ForwardingHeader::Forwarded } else { ForwardingHeader::XForwardedFor };
        let r = resolver(header);
        let mut chain = vec![entry(client, forwarded, client_port, false)];
        chain.extend(proxies.iter().map(|&(ip, port, extra)| entry(ip, forwarded, port, extra)));
        let honest = vec![chain.join(", ").into_bytes()];
        let want = walk(&r, forwarded, peer, &honest);
        prop_assert_eq!(want.ip(), client.to_canonical());
        prop_assert_eq!((want.hops(), want.stop()), (proxies.len() + 1, Stop::UntrustedHop));

        let mut line = attacker;
        line.extend_from_slice(b",");
        line.extend_from_slice(&honest[0]);
        let mut lines = earlier_lines;
        lines.push(line);
        prop_assert_eq!(walk(&r, forwarded, peer, &lines), want);
    }
}
