//! The client-IP layer over real loopback HTTP: axum serves with `ConnectInfo<SocketAddr>`, raw
//! HTTP/1.1 requests (so headers can repeat and carry any bytes), and the handler reports the
//! address it was given.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod props;

use std::net::SocketAddr;

use axum::Router;
use axum::routing::get;
use protothrive::client_ip::{ClientIp, ClientIpLayer, ForwardingHeader};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn whoami(ClientIp(ip): ClientIp) -> String {
    ip.to_string()
}

async fn maybe(client: Option<ClientIp>) -> String {
    client.map_or_else(|| "none".to_owned(), |c| c.to_string())
}

fn app(layer: Option<ClientIpLayer>) -> Router {
    let router = Router::new()
        .route("/whoami", get(whoami))
        .route("/maybe", get(maybe));
    match layer {
        Some(layer) => router.layer(layer),
        None => router,
    }
}

/// Serves `app` on `bind` (port 0) and returns the address to connect to.
async fn serve(app: Router, bind: &str) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(bind).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let make = app.into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(listener, make).await.expect("server");
    });
    Ok(addr)
}

struct Reply {
    status: u16,
    content_type: String,
    body: String,
}

/// One raw HTTP/1.1 request with the given extra header lines (bytes, so anything goes).
async fn get_raw(addr: SocketAddr, path: &str, headers: &[&[u8]]) -> Reply {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut req =
        format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n").into_bytes();
    for h in headers {
        req.extend_from_slice(h);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"\r\n");
    stream.write_all(&req).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head[9..12].parse().unwrap();
    let content_type = head
        .lines()
        .find_map(|l| l.strip_prefix("content-type: "))
        .unwrap_or_default()
        .to_owned();
    Reply {
        status,
        content_type,
        body: body.to_owned(),
    }
}

fn trusting(networks: &[&str], header: ForwardingHeader) -> ClientIpLayer {
    ClientIpLayer::builder()
        .trusted_proxies(networks)
        .header(header)
        .build()
        .unwrap()
}

/// (name, trusted networks, header, raw header lines, address the handler sees)
type Case = (
    &'static str,
    &'static [&'static str],
    ForwardingHeader,
    &'static [&'static [u8]],
    &'static str,
);

#[tokio::test]
async fn handler_sees_the_resolved_client() {
    use ForwardingHeader::{Forwarded, XForwardedFor};
    #[rustfmt::skip]
    let cases: &[Case] = &[
        ("no proxy trusted: the peer, header ignored", &[], XForwardedFor, &[b"X-Forwarded-For: 198.51.100.7"], "127.0.0.1"),
        ("loopback proxy: the entry it appended", &["127.0.0.0/8"], XForwardedFor, &[b"X-Forwarded-For: 203.0.113.66, 198.51.100.7"], "198.51.100.7"),
        ("through a trusted hop", &["127.0.0.0/8", "10.0.0.0/8"], XForwardedFor, &[b"X-Forwarded-For: 203.0.113.66, 198.51.100.7, 10.0.0.2"], "198.51.100.7"),
        ("repeated header lines", &["127.0.0.0/8", "10.0.0.0/8"], XForwardedFor, &[b"X-Forwarded-For: 203.0.113.66", b"X-Forwarded-For: 198.51.100.7", b"x-forwarded-for: 10.0.0.2"], "198.51.100.7"),
        ("malformed entry: the peer", &["127.0.0.0/8"], XForwardedFor, &[b"X-Forwarded-For: 198.51.100.7, unknown"], "127.0.0.1"),
        ("non-UTF-8 entry: the peer", &["127.0.0.0/8"], XForwardedFor, &[b"X-Forwarded-For: 198.51.100.7, \xff\xfe"], "127.0.0.1"),
        ("no header: the trusted peer", &["127.0.0.0/8"], XForwardedFor, &[], "127.0.0.1"),
        ("Forwarded with IPv6 and port", &["127.0.0.0/8"], Forwarded, &[b"Forwarded: for=\"[2001:db8::1]:443\";proto=https"], "2001:db8::1"),
        ("Forwarded configured: a forged X-Forwarded-For is ignored", &["127.0.0.0/8"], Forwarded, &[b"X-Forwarded-For: 6.6.6.6", b"Forwarded: for=198.51.100.7"], "198.51.100.7"),
        ("XFF configured: a forged Forwarded is ignored", &["127.0.0.0/8"], XForwardedFor, &[b"Forwarded: for=6.6.6.6", b"X-Forwarded-For: 198.51.100.7"], "198.51.100.7"),
    ];
    for (name, trusted, header, headers, want) in cases {
        let addr = serve(app(Some(trusting(trusted, *header))), "127.0.0.1:0")
            .await
            .unwrap();
        let reply = get_raw(addr, "/whoami", headers).await;
        assert_eq!((reply.status, reply.body.as_str()), (200, *want), "{name}");
    }
}

#[tokio::test]
async fn ipv4_mapped_peer_on_a_dual_stack_socket() {
    // A `[::]` listener reports IPv4 peers as `::ffff:127.0.0.1`: still trusted by 127.0.0.0/8,
    // and reported as IPv4.
    let Ok(addr) = serve(
        app(Some(trusting(
            &["127.0.0.0/8"],
            ForwardingHeader::XForwardedFor,
        ))),
        "[::]:0",
    )
    .await
    else {
        eprintln!("no IPv6 on this machine: dual-stack case not run");
        return;
    };
    let v4 = SocketAddr::from(([127, 0, 0, 1], addr.port()));
    let reply = get_raw(v4, "/whoami", &[b"X-Forwarded-For: 198.51.100.7"]).await;
    assert_eq!(reply.body, "198.51.100.7");
    let reply = get_raw(v4, "/maybe", &[]).await;
    assert_eq!(reply.body, "127.0.0.1");
}

#[tokio::test]
async fn missing_layer_is_a_problem_500_and_option_is_none() {
    let addr = serve(app(None), "127.0.0.1:0").await.unwrap();
    let reply = get_raw(addr, "/whoami", &[b"X-Forwarded-For: 198.51.100.7"]).await;
    assert_eq!(reply.status, 500);
    assert_eq!(reply.content_type, "application/problem+json");
    let body: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(body["code"], "SRV-500");
    assert!(body["detail"].as_str().unwrap().contains("ClientIpLayer"));

    let reply = get_raw(addr, "/maybe", &[]).await;
    assert_eq!((reply.status, reply.body.as_str()), (200, "none"));
}
