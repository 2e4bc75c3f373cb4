//! Run with: cargo run --example gateway -- --upstream http://127.0.0.1:8787 --listen 127.0.0.1:8080
//!
//! A reverse proxy with the crate's `Stack` in front of any HTTP/1.1 origin: every method and path
//! is forwarded (bodies streamed both ways), behind client IP, request ids (sent upstream too),
//! the body limit, the per-client rate limit and the cache, all from one builder; with `--redis`
//! one Redis connection serves the limit, the cache's L2 and its purges. Options:
//!
//! * `--upstream URL` (required): the origin, `http://host:port` (a path prefix is kept).
//! * `--listen ADDR`: where to listen (default `127.0.0.1:8080`).
//! * `--rate QUOTA`: the per-client limit (default `100/s burst 200`, `off` for none).
//! * `--trusted-proxy CIDR` (repeatable): peers whose `X-Forwarded-For` is believed.
//! * `--redis URL`: share the rate limit and the cache (L2, and purges between instances) through
//!   Redis.
//! * `--cache-mb N`: the in-process cache size (default 64; `0` for no cache). The cache is an
//!   RFC 9111 shared cache: it stores what the origin allows a shared cache to store (no
//!   partition: `private` and §3.5 `Authorization` responses pass through) and says what it did
//!   in `Cache-Status`.
//! * `--cache-target NAME` (repeatable): the targeted cache-control fields the cache obeys, most
//!   applicable first (RFC 9213; default `CDN-Cache-Control`); the first with a valid value governs
//!   storage and freshness in place of `Cache-Control`, which still goes to the client
//!   (`--cache-target ""` for none).
//! * `--max-body BYTES`: the largest request body forwarded (default 10 MiB).
//!
//! Each option may also come from a `GATEWAY_*` variable or the TOML file named by
//! `GATEWAY_CONFIG` (the library's `Settings`: `GATEWAY_RATE_LIMITS=ip=100/s`,
//! `GATEWAY_TRUSTED_PROXIES=10.0.0.0/8,fd00::/8`, ...); the command line wins.
//!
//! What the proxy itself does: takes an absolute-form target's authority as the request's host
//! (RFC 9112 §3.2.2: `Host` is replaced by it, so the cache key and `X-Forwarded-Host` name one
//! host; two `Host` fields are a `400`), drops hop-by-hop headers (RFC 9110 §7.6.1, including
//! those named by `Connection`) both ways, forwards the client chain the client-IP layer resolved
//! (`X-Forwarded-For` and `Forwarded`: the client, then the peer when it is a trusted proxy;
//! whatever the client sent in those, or in `X-Real-IP`, is dropped) and sets
//! `X-Forwarded-Proto`/`X-Forwarded-Host`, keeps the client's `Host` out of the upstream request
//! (the upstream's own authority is sent), and answers `502` problems (`SRV-502`-style `UPSTREAM-502`) when the origin
//! cannot be reached, `504` when it does not answer within `--timeout` seconds (default 30); a
//! response body with no frame for `--timeout` seconds is cut (a `502` `CACHE-502` problem from
//! the cache when it was buffering it).

// A binary, not a library: the public-item lints do not apply.
#![allow(unreachable_pub, missing_docs, missing_debug_implementations)]

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::response::{IntoResponse, Response};
use http::header::{self, HeaderName};
use http::{HeaderMap, HeaderValue, Request, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use protothrive::cache::{CacheHandle, CacheLayer};
use protothrive::error::Problem;
use protothrive::identity::ClientIp;
use protothrive::rate_limit::{Quota, QuotaList};
use protothrive::redis_handle::RedisHandle;
use protothrive::stack::{Settings, Stack, StackConfig};
use tower::util::BoxCloneSyncService;
use tower::{ServiceBuilder, ServiceExt as _};
use tower_http::timeout::TimeoutBody;

/// The configuration: `GATEWAY_*` variables (or the TOML file named by `GATEWAY_CONFIG`), with
/// the command line over them.
#[derive(Debug, Clone)]
pub struct Args {
    pub upstream: Uri,
    pub listen: SocketAddr,
    /// The stack's part: trusted proxies, the `ip` limit, the body limit.
    pub stack: StackConfig,
    pub redis: Option<String>,
    pub timeout: Duration,
    pub cache_mb: u64,
    /// The cache's target list (`None`: the library's default, `CDN-Cache-Control`).
    pub cache_targets: Option<Vec<String>>,
}

const USAGE: &str = "usage: gateway --upstream URL [--listen ADDR] [--rate QUOTA|off] \
    [--trusted-proxy CIDR]... [--redis URL] [--max-body BYTES] [--timeout SECONDS] [--cache-mb N] \
    [--cache-target NAME]...\n\
    (each also from GATEWAY_UPSTREAM, GATEWAY_LISTEN, GATEWAY_RATE_LIMITS=ip=QUOTA, \
    GATEWAY_TRUSTED_PROXIES, GATEWAY_REDIS_URL, GATEWAY_MAX_BODY_BYTES, GATEWAY_TIMEOUT, \
    GATEWAY_CACHE_MB, GATEWAY_CACHE_TARGETS or the TOML file named by GATEWAY_CONFIG)";

impl Args {
    /// Parses `args` (without the program name) with no settings from the environment.
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Self, String> {
        Self::parse_with(&Settings::default(), args)
    }

    /// Parses `args` over the `GATEWAY_*` settings of the process.
    pub fn from_env(args: impl IntoIterator<Item = String>) -> Result<Self, String> {
        let settings = Settings::from_env("GATEWAY_").map_err(|e| e.message().to_owned())?;
        Self::parse_with(&settings, args)
    }

    /// Parses `args` over `settings`.
    pub fn parse_with(
        settings: &Settings,
        args: impl IntoIterator<Item = String>,
    ) -> Result<Self, String> {
        let lib = |e: protothrive::error::ConfigError| e.message().to_owned();
        let mut stack = StackConfig::from_settings(settings).map_err(lib)?;
        if let Some(other) = stack.rate_limits.unknown(&["ip"]) {
            return Err(format!(
                "{}: the gateway has one limit, `ip`, not `{other}`",
                settings.variable("rate_limits")
            ));
        }
        if stack.rate_limits.get("ip").is_none() {
            stack.rate_limits = QuotaList::new().with("ip", quota("100/s burst 200")?);
        }
        stack.max_body_bytes.get_or_insert(10 << 20);
        let mut upstream = settings.get("upstream").map(str::to_owned);
        let mut parsed = Self {
            upstream: Uri::from_static("http://127.0.0.1"),
            listen: settings
                .parse("listen")
                .map_err(lib)?
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
            stack,
            redis: settings.get("redis_url").map(str::to_owned),
            timeout: Duration::from_secs(settings.parse("timeout").map_err(lib)?.unwrap_or(30)),
            cache_mb: settings.parse("cache_mb").map_err(lib)?.unwrap_or(64),
            cache_targets: settings
                .get("cache_targets")
                .map(|v| v.split(',').map(|t| t.trim().to_owned()).collect()),
        };
        let mut targets_flagged = false;
        let mut args = args.into_iter();
        while let Some(flag) = args.next() {
            let mut value = || {
                args.next()
                    .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))
            };
            match flag.as_str() {
                "--upstream" => upstream = Some(value()?),
                "--listen" => {
                    let v = value()?;
                    parsed.listen = v.parse().map_err(|e| format!("--listen {v}: {e}"))?;
                }
                "--rate" => {
                    let v = value()?;
                    let q = quota(&v).map_err(|e| format!("--rate {v}: {e}"))?;
                    parsed.stack.rate_limits = QuotaList::new().with("ip", q);
                }
                "--trusted-proxy" => parsed.stack.trusted_proxies.push(value()?),
                "--redis" => parsed.redis = Some(value()?),
                "--max-body" => {
                    let v = value()?;
                    parsed.stack.max_body_bytes =
                        Some(v.parse().map_err(|e| format!("--max-body {v}: {e}"))?);
                }
                "--timeout" => {
                    let v = value()?;
                    let secs: u64 = v.parse().map_err(|e| format!("--timeout {v}: {e}"))?;
                    parsed.timeout = Duration::from_secs(secs);
                }
                "--cache-mb" => {
                    let v = value()?;
                    parsed.cache_mb = v.parse().map_err(|e| format!("--cache-mb {v}: {e}"))?;
                }
                "--cache-target" => {
                    let v = value()?;
                    let list = parsed.cache_targets.get_or_insert_with(Vec::new);
                    if !std::mem::replace(&mut targets_flagged, true) {
                        list.clear();
                    }
                    list.push(v);
                }
                "-h" | "--help" => return Err(USAGE.to_owned()),
                other => return Err(format!("unknown option {other}\n{USAGE}")),
            }
        }
        parsed.timeout = parsed.timeout.max(Duration::from_secs(1));
        let v = upstream.ok_or_else(|| format!("--upstream is required\n{USAGE}"))?;
        let uri: Uri = v.parse().map_err(|e| format!("--upstream {v}: {e}"))?;
        if uri.scheme_str() != Some("http") || uri.authority().is_none() {
            return Err(format!("--upstream {v}: use http://host:port"));
        }
        parsed.upstream = uri;
        Ok(parsed)
    }

    /// Whether the per-client limit is on.
    pub fn rate_limited(&self) -> bool {
        self.stack
            .rate_limits
            .get("ip")
            .is_some_and(|q| !q.is_unlimited())
    }
}

fn quota(text: &str) -> Result<Quota, String> {
    text.parse()
        .map_err(|e: protothrive::error::ConfigError| e.message().to_owned())
}

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

#[derive(Clone)]
struct Proxy {
    client: Client<HttpConnector, Body>,
    upstream: Uri,
    timeout: Duration,
}

fn problem(status: StatusCode, code: &'static str, detail: &'static str) -> Response {
    Problem::new(status, code)
        .with_detail(detail)
        .render_for(&http::Extensions::new())
        .map(Body::from)
}

impl Proxy {
    async fn forward(self, mut req: Request<Body>) -> Response {
        let peer = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        let client = req.extensions().get::<ClientIp>().map(|c| c.ip());
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
                problem(
                    StatusCode::BAD_GATEWAY,
                    "UPSTREAM-502",
                    "The upstream server could not be reached.",
                )
            }
            Err(_) => problem(
                StatusCode::GATEWAY_TIMEOUT,
                "UPSTREAM-504",
                "The upstream server did not answer in time.",
            ),
        }
    }
}

/// The gateway: the stack around the proxy.
pub type Gateway = BoxCloneSyncService<Request<Body>, Response, std::convert::Infallible>;

/// The gateway and what must live as long as it (the stack holds the subscription to other
/// instances' purges).
pub struct Built {
    pub service: Gateway,
    pub cache: Option<CacheHandle>,
    pub stack: Stack,
}

/// Builds the gateway for `args` (inside a Tokio runtime: Redis connects there).
pub fn gateway(args: &Args) -> Result<Built, Box<dyn std::error::Error>> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_secs(5)));
    let proxy = Proxy {
        client: Client::builder(TokioExecutor::new()).build(connector),
        upstream: args.upstream.clone(),
        timeout: args.timeout,
    };
    // Trusted proxies, the `ip` limit and the body limit from the configuration.
    let mut stack = Stack::from_config(&args.stack)?;
    if args.cache_mb > 0 {
        let mut cache = CacheLayer::builder().max_bytes(args.cache_mb << 20);
        if let Some(targets) = &args.cache_targets {
            cache = cache.targets(targets.iter().filter(|t| !t.is_empty()).cloned());
        }
        stack = stack.cache(cache);
    }
    if let Some(url) = &args.redis {
        stack = stack.redis(RedisHandle::builder(url).build()?);
    }
    let stack = stack.build()?;
    let origin = tower::service_fn(move |req: Request<Body>| {
        let proxy = proxy.clone();
        async move { Ok::<_, std::convert::Infallible>(proxy.forward(req).await) }
    });
    // Inside the stack the body is `Limited`: it stays bounded while it streams upstream.
    let unlimit = |req: Request<http_body_util::Limited<Body>>| req.map(Body::new);
    let inner: Gateway = match stack.cache() {
        Some(cache) => BoxCloneSyncService::new(
            ServiceBuilder::new()
                .map_response(IntoResponse::into_response)
                .layer(cache.clone())
                .service(origin),
        ),
        None => BoxCloneSyncService::new(origin),
    };
    let service = ServiceBuilder::new()
        .layer(stack.clone())
        .map_request(unlimit)
        .service(inner)
        .map_response(IntoResponse::into_response);
    // Outermost: every layer below (the cache's key above all) sees the one host.
    let service = BoxCloneSyncService::new(tower::service_fn(move |mut req: Request<Body>| {
        let inner = service.clone();
        async move {
            match one_authority(&mut req) {
                Ok(()) => inner.oneshot(req).await,
                Err(why) => Ok(problem(
                    StatusCode::BAD_REQUEST,
                    protothrive::error::code::BAD_REQUEST,
                    why,
                )),
            }
        }
    }));
    Ok(Built {
        service,
        cache: stack.cache().map(CacheLayer::handle),
        stack,
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = match Args::from_env(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    let built = gateway(&args)?;
    let gateway = built.service;
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    println!(
        "gateway listening on http://{} → {}",
        listener.local_addr()?,
        args.upstream
    );
    let app = axum::Router::new().fallback_service(gateway);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Result<Args, String> {
        Args::parse(s.split_whitespace().map(str::to_owned))
    }

    #[test]
    fn arguments_parse_and_mistakes_are_explained() {
        let a =
            args("--upstream http://127.0.0.1:9000/base --listen 127.0.0.1:0 --rate off").unwrap();
        assert_eq!(a.upstream, "http://127.0.0.1:9000/base");
        assert!(!a.rate_limited());
        let a = args("--upstream http://x").unwrap();
        assert!(a.rate_limited(), "a per-client limit by default");
        assert!(
            args("--listen 127.0.0.1:1")
                .unwrap_err()
                .contains("--upstream")
        );
        assert!(args("--upstream ftp://x").unwrap_err().contains("http://"));
        assert!(args("--upstream http://x --rate lots").is_err());
        assert!(
            args("--upstream http://x --bogus")
                .unwrap_err()
                .contains("unknown option")
        );
    }

    #[test]
    fn settings_configure_it_and_flags_win() {
        let settings = Settings::from_vars(
            "GATEWAY_",
            [
                ("GATEWAY_UPSTREAM", "http://127.0.0.1:9000"),
                ("GATEWAY_RATE_LIMITS", "ip=off"),
                ("GATEWAY_TRUSTED_PROXIES", "10.0.0.0/8"),
                ("GATEWAY_CACHE_MB", "0"),
            ],
        )
        .unwrap();
        let a = Args::parse_with(
            &settings,
            ["--trusted-proxy".to_owned(), "fd00::/8".to_owned()],
        )
        .unwrap();
        assert_eq!(a.upstream, "http://127.0.0.1:9000/");
        assert!(!a.rate_limited());
        assert_eq!(a.stack.trusted_proxies, ["10.0.0.0/8", "fd00::/8"]);
        assert_eq!(a.cache_mb, 0);
        let flags = [
            "--cache-target",
            "Protothrive-Cache-Control",
            "--cache-target",
            "CDN-Cache-Control",
        ];
        let a = Args::parse_with(&settings, flags.map(str::to_owned)).unwrap();
        assert_eq!(
            a.cache_targets.as_deref(),
            Some(
                &[
                    "Protothrive-Cache-Control".to_owned(),
                    "CDN-Cache-Control".to_owned()
                ][..]
            )
        );
        let a = Args::parse_with(&settings, ["--rate".to_owned(), "5/s".to_owned()]).unwrap();
        assert!(a.rate_limited(), "the flag wins over the variable");
        for (k, v) in [
            ("GATEWAY_RATE_LIMITS", "user=1/s"),
            ("GATEWAY_TIMEOUT", "soon"),
        ] {
            let s = Settings::from_vars("GATEWAY_", [("GATEWAY_UPSTREAM", "http://x:1"), (k, v)])
                .unwrap();
            let err = Args::parse_with(&s, []).unwrap_err();
            assert!(err.contains(k), "{k}={v}: {err}");
        }
    }

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
