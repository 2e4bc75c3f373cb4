//! The client-IP walk over hostile `X-Forwarded-For` / `Forwarded` headers.
//!
//! Invariants: no panic; an untrusted peer is the client; the walk ends on an untrusted address
//! only when it says so, and otherwise on a trusted one; it never walks more than `max_hops`; a
//! header line an attacker adds on the left changes nothing unless every address was trusted; and
//! the `HeaderMap` entry point agrees with the raw walk.
#![no_main]

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use arbitrary::Arbitrary;
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use protothrive::client_ip::{ClientIpLayer, ForwardingHeader, Resolution, Resolver, Stop};

#[derive(Arbitrary)]
struct Input {
    /// Move the peer into a trusted network, so that the headers are walked.
    trusted_peer: bool,
    peer: IpAddr,
    forwarded: bool,
    max_hops: u8,
    max_header_bytes: u16,
    lines: Vec<Vec<Piece>>,
    attacker_line: Vec<u8>,
}

/// Header text, in pieces the walk cares about, so the fuzzer reaches deep chains quickly.
#[derive(Arbitrary, Debug)]
enum Piece {
    Raw(Vec<u8>),
    Ip(IpAddr),
    Trusted(u16),
    Mapped(u16),
    Port(u16),
    Comma,
    Semicolon,
    Quote,
    Backslash,
    Brackets(Ipv6Addr),
    For,
    Unknown,
}

impl Piece {
    fn render(&self, out: &mut Vec<u8>) {
        let text = match self {
            Self::Raw(bytes) => return out.extend_from_slice(bytes),
            Self::Ip(ip) => ip.to_string(),
            Self::Trusted(n) => format!("10.0.{}.{}", n >> 8, n & 0xff),
            Self::Mapped(n) => format!("::ffff:10.1.{}.{}", n >> 8, n & 0xff),
            Self::Port(p) => format!(":{p}"),
            Self::Comma => ", ".into(),
            Self::Semicolon => ";".into(),
            Self::Quote => "\"".into(),
            Self::Backslash => "\\".into(),
            Self::Brackets(ip) => format!("[{ip}]"),
            Self::For => "for=".into(),
            Self::Unknown => "unknown".into(),
        };
        out.extend_from_slice(text.as_bytes());
    }
}

impl Input {
    fn lines(&self) -> Vec<Vec<u8>> {
        let render = |line: &Vec<Piece>| {
            let mut out = Vec::new();
            line.iter().for_each(|p| p.render(&mut out));
            out
        };
        self.lines.iter().map(render).collect()
    }

    fn peer(&self) -> IpAddr {
        match (self.trusted_peer, self.peer) {
            (false, peer) => peer,
            (true, IpAddr::V4(v4)) => {
                let [_, b, c, d] = v4.octets();
                IpAddr::V4(Ipv4Addr::new(10, b, c, d))
            }
            (true, IpAddr::V6(v6)) => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(
                    0x2001, 0xdb8, s[2], s[3], s[4], s[5], s[6], s[7],
                ))
            }
        }
    }
}

/// Prints a reproducer: the peer, the configuration and the header lines as byte strings.
impl fmt::Debug for Input {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self
            .lines()
            .iter()
            .map(|l| format!("b\"{}\"", l.escape_ascii()))
            .collect();
        f.debug_struct("Input")
            .field("peer", &self.peer())
            .field("forwarded", &self.forwarded)
            .field("max_hops", &self.max_hops.max(1))
            .field("max_header_bytes", &self.max_header_bytes.max(1))
            .field("lines", &lines)
            .field(
                "attacker_line",
                &format!("b\"{}\"", self.attacker_line.escape_ascii()),
            )
            .finish()
    }
}

fn walk(resolver: &Resolver, forwarded: bool, peer: IpAddr, lines: &[Vec<u8>]) -> Resolution {
    if forwarded {
        resolver.walk_forwarded(peer, lines)
    } else {
        resolver.walk_x_forwarded_for(peer, lines)
    }
}

fuzz_target!(|input: Input| {
    let header = if input.forwarded {
        ForwardingHeader::Forwarded
    } else {
        ForwardingHeader::XForwardedFor
    };
    let max_hops = usize::from(input.max_hops.max(1));
    let Ok(layer) = ClientIpLayer::builder()
        .trusted_proxies(["10.0.0.0/8", "2001:db8::/32"])
        .header(header)
        .max_hops(max_hops)
        .max_header_bytes(usize::from(input.max_header_bytes.max(1)))
        .build()
    else {
        panic!("valid configuration rejected");
    };
    let resolver = layer.resolver();
    let trusted = resolver.trusted_proxies();
    let peer = input.peer();
    let lines = input.lines();

    let got = walk(resolver, input.forwarded, peer, &lines);

    if !trusted.contains(peer) {
        assert_eq!(got.ip(), peer.to_canonical());
        assert_eq!((got.hops(), got.stop()), (0, Stop::UntrustedPeer));
    }
    match got.stop() {
        Stop::UntrustedPeer => assert!(!trusted.contains(got.ip())),
        Stop::UntrustedHop => assert!(!trusted.contains(got.ip()) && got.hops() >= 1),
        _ => assert!(trusted.contains(got.ip()), "{got:?}"),
    }
    assert!(got.hops() <= max_hops);
    if got.hops() == 0 {
        assert_eq!(got.ip(), peer.to_canonical());
    }

    if got.stop() != Stop::AllTrusted {
        let mut with_attacker = vec![input.attacker_line.clone()];
        with_attacker.extend(lines.iter().cloned());
        assert_eq!(walk(resolver, input.forwarded, peer, &with_attacker), got);
    }

    let values: Result<Vec<HeaderValue>, _> =
        lines.iter().map(|l| HeaderValue::from_bytes(l)).collect();
    if let Ok(values) = values {
        let name = if input.forwarded {
            "forwarded"
        } else {
            "x-forwarded-for"
        };
        let mut headers = HeaderMap::new();
        values.into_iter().for_each(|v| {
            headers.append(name, v);
        });
        assert_eq!(resolver.resolve(peer, &headers), got);
    }
});
