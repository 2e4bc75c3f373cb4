//! Run with: cargo run --example gateway -- --upstream http://127.0.0.1:8787 --listen 127.0.0.1:8080
//!
//! A reverse proxy with the crate's `Stack` in front of any HTTP/1.1 origin — one instance or
//! several, balanced by the library's `resilience::Upstreams` (power of two choices on requests
//! in flight, ejection of a failing instance, active health checks, idempotent requests retried
//! on another instance within a retry budget): every method and path
//! is forwarded (bodies streamed both ways), behind client IP, request ids (sent upstream too),
//! the body limit, the per-client rate limit and the cache, all from one builder; with `--redis`
//! one Redis connection serves the limit, the cache's L2 and its purges. Options:
//!
//! * `--upstream URL` (required, repeatable): an instance of the origin, `http://host:port` (a
//!   path prefix is kept). With several, each request goes to the less loaded of two drawn at
//!   random; a GET, HEAD, PUT, DELETE, OPTIONS (or a request with an `Idempotency-Key`) answered
//!   502/503/504 or not answered is retried once on another instance, within a budget of 20% of
//!   the requests (plus 1 a second); a POST without a key only when its connection was refused
//!   (it never left, so another instance takes it, outside the budget).
//! * `--eject-after N`, `--eject-for SECONDS`: an instance whose last N answers (default 5) were
//!   all 5xx, refused, reset or timed out gets no traffic for SECONDS (default 30; doubled after
//!   each failed probe, up to 300), then one probe.
//! * `--health-path PATH`, `--health-interval SECONDS`, `--health-timeout SECONDS`: active
//!   checks, a `GET PATH` of every instance each interval (default 5 s); two failed in a row
//!   (no 2xx within the timeout, default 2 s) take it out of the rotation, one pass brings it
//!   back (and is the probe of an ejected instance whose wait is over).
//! * `--listen ADDR`: where to listen (default `127.0.0.1:8080`).
//! * `--rate QUOTA`: the per-client limit (default `100/s burst 200`, `off` for none).
//! * `--trusted-proxy CIDR` (repeatable): peers whose `X-Forwarded-For` is believed.
//! * `--redis URL`: share the rate limit and the cache (L2, and purges between instances) through
//!   Redis; a comma-separated list of `redis://` node addresses is a Redis Cluster.
//! * `--cache-mb N`: the in-process cache size (default 64; `0` for no cache). The cache is an
//!   RFC 9111 shared cache: it stores what the origin allows a shared cache to store (no
//!   partition: `private` and §3.5 `Authorization` responses pass through) and says what it did
//!   in `Cache-Status`, as `protothrive-gateway` (the library's cache, which the API behind it
//!   runs too, calls itself `protothrive`), after the members of the caches behind it.
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
//! (the upstream's own authority is sent), and answers `502` problems (`UPSTREAM-502`) when the
//! origin cannot be reached, `503` (`UPSTREAM-503`) when every instance is ejected, `504` when it does not answer within `--timeout` seconds (default 30); a
//! response body with no frame for `--timeout` seconds is cut (a `502` `CACHE-502` problem from
//! the cache when it was buffering it).

// A binary, not a library: the public-item lints do not apply.
#![allow(unreachable_pub, missing_docs, missing_debug_implementations)]

mod args;
mod forward;

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{Either, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use protothrive::cache::{CacheHandle, CacheLayer};
use protothrive::redis_handle::RedisHandle;
use protothrive::resilience::{HealthCheck, HealthChecks, Upstreams};
use protothrive::stack::Stack;
use tower::util::BoxCloneSyncService;
use tower::{ServiceBuilder, ServiceExt as _};

pub use args::Args;
pub use forward::{Proxy, one_authority, problem};

/// One instance of the origin, as a member of the upstream set: the request comes with its body
/// buffered (to be replayed) or as it streams in.
type Member =
    BoxCloneSyncService<Request<Either<Full<Bytes>, Body>>, Response, std::convert::Infallible>;

/// The gateway: the stack around the proxy.
pub type Gateway = BoxCloneSyncService<Request<Body>, Response, std::convert::Infallible>;

/// The gateway and what must live as long as it (the stack holds the subscription to other
/// instances' purges).
pub struct Built {
    pub service: Gateway,
    pub cache: Option<CacheHandle>,
    pub stack: Stack,
    /// The upstream set (its members' status), and its health checks, stopped when dropped.
    pub upstreams: Upstreams<Member, Body>,
    pub health: Option<HealthChecks>,
}

/// The set of upstream instances, each behind its own [`Proxy`] (one connection pool for all).
fn upstreams(args: &Args) -> Result<Upstreams<Member, Body>, Box<dyn std::error::Error>> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_secs(5)));
    let client = Client::builder(TokioExecutor::new()).build(connector);
    let mut set = Upstreams::builder().eject_after(args.eject_after, args.eject_for);
    if let Some(path) = &args.health_path {
        set = set.health_check(
            HealthCheck::new(path.as_str())
                .interval(args.health_interval)
                .timeout(args.health_timeout),
        );
    }
    for upstream in &args.upstreams {
        let proxy = Proxy {
            client: client.clone(),
            upstream: upstream.clone(),
            timeout: args.timeout,
        };
        let member = tower::service_fn(move |req: Request<Either<Full<Bytes>, Body>>| {
            let proxy = proxy.clone();
            async move { Ok(proxy.forward(req.map(Body::new)).await) }
        });
        set = set.member(upstream.to_string(), Member::new(member));
    }
    Ok(set.build()?)
}

/// The gateway's cache in `Cache-Status`.
pub const CACHE_NAME: &str = "protothrive-gateway";

/// Builds the gateway for `args` (inside a Tokio runtime: Redis connects there, and the health
/// checks run there).
pub fn gateway(args: &Args) -> Result<Built, Box<dyn std::error::Error>> {
    let upstreams = upstreams(args)?;
    let health = upstreams.spawn_health_checks();
    // Trusted proxies, the `ip` limit and the body limit from the configuration.
    let mut stack = Stack::from_config(&args.stack)?;
    if args.cache_mb > 0 {
        let mut cache = CacheLayer::builder()
            .max_bytes(args.cache_mb << 20)
            .name(CACHE_NAME);
        if let Some(targets) = &args.cache_targets {
            cache = cache.targets(targets.iter().filter(|t| !t.is_empty()).cloned());
        }
        stack = stack.cache(cache);
    }
    if let Some(url) = &args.redis {
        stack = stack.redis(RedisHandle::builder(url).build()?);
    }
    let stack = stack.build()?;
    let origin = ServiceBuilder::new()
        .map_response(|res: Response<_>| res.map(Body::new))
        .service(upstreams.clone());
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
        upstreams,
        health,
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
        args.upstreams
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    let app = axum::Router::new().fallback_service(gateway);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}
