//! Run with: cargo run --example bench_server --release -- --mode bare|stack|peer [--port N]
//!
//! One trivial route, `GET /hello` (`Cache-Control: public, max-age=60`, a 6-byte body), served
//! on 127.0.0.1 three ways so a load generator can compare them (`scripts/throughput`):
//!
//! * `bare`: the axum router alone;
//! * `bare-layered`: the router with an identity layer under `Router::layer`: what axum's
//!   per-route layering costs whatever the layer (the base to read the `trace` modes against);
//! * `bare-headers`: the router alone, its handler answering with the headers the stack adds to
//!   a hit (same names, values of the same length): what those headers cost hyper and the kernel
//!   before any layer does any work;
//! * `stack`: protothrive's [`Stack`] — client IP, request id, trace context (its `TraceLayer`,
//!   no subscriber), CORS, a per-IP limit too high to
//!   refuse, HS256 auth (verified-token cache on), and the route cache;
//! * `peer`: the same jobs done the usual way with public crates — tower-http's request id,
//!   `TraceLayer` and `CorsLayer`, tower_governor keyed by peer IP, a `jsonwebtoken` HS256 decode
//!   per request in `axum::middleware::from_fn`, and http-cache-tower's moka cache.
//!
//! * `stack-rs256`: `stack` with RS256 tokens (a 2048-bit RSA key) instead of HS256: what the
//!   verified-token cache leaves of the difference;
//! * `parts-N`: the stack with the first N parts of `STACK_PARTS` (`parts-7` is `stack`), to see
//!   what each part adds in its place, as the criterion rows do.
//!
//! `--print-token` prints a bearer token every mode accepts (one day long) and exits; with
//! `--rsa-key FILE`, an RS256 token for `stack-rs256`, whose key is read from `FILE` (written
//! there first, PKCS#8 PEM, when `FILE` is empty or missing; give the server the same file). No
//! log subscriber is installed in any mode. The criterion bench `stack/*` drives the same apps
//! without a socket.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL, HOST};
use axum::http::{HeaderName, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use protothrive::auth::{
    Algorithm, Authenticator, SigningKey, TokenIssuer, TokenKind, VerifyingKey,
};
use protothrive::cache::CacheLayer;
use protothrive::clock::SharedClock;
use protothrive::cors::{AllowOrigin, CorsLayer};
use protothrive::rate_limit::{KeyBy, Limit};
use protothrive::stack::{Stack, StackBuilder};
use tower::ServiceBuilder;

/// The HS256 secret every mode verifies with.
pub const SECRET: &[u8] = b"bench secret: 32 bytes or more, fixed for the runs";
/// The one origin CORS allows.
pub const ORIGIN: &str = "https://app.example.com";
const ISSUER: &str = "bench";
/// One check per nanosecond with a burst of 4·10⁹: checked on every request, never refused.
const LIMIT: &str = "4000000000/4s burst 4000000000";
const BURST: u32 = 4_000_000_000;

/// The handler of every mode.
async fn hello() -> ([(HeaderName, &'static str); 1], &'static str) {
    ([(CACHE_CONTROL, "public, max-age=60")], "hello\n")
}

fn routes() -> axum::routing::MethodRouter {
    get(hello)
}

/// Bare axum.
pub fn bare() -> Router {
    Router::new().route("/hello", routes())
}

/// The headers the full stack puts on a cache hit, with values of the same length.
const STACK_HEADERS: [(&str, &str); 9] = [
    ("age", "0"),
    ("cache-status", "protothrive; hit; ttl=59"),
    ("ratelimit", "\"ip\";r=3999999999;t=1"),
    ("ratelimit-policy", "\"ip\";q=4000000000;w=4"),
    ("vary", "Origin"),
    ("access-control-allow-origin", ORIGIN),
    (
        "access-control-expose-headers",
        "age, cache-status, etag, ratelimit, ratelimit-policy, retry-after, traceparent, \
         www-authenticate, x-request-id",
    ),
    (
        "traceparent",
        "00-1f83cf7edcae94a3c4c2812d106f4529-c54894c467fc6a77-03",
    ),
    ("x-request-id", "1ad104c9d277b4db784624b2ae6e498d"),
];

/// Bare axum answering with the stack's headers: the `bare-headers` mode.
pub fn bare_headers() -> Router {
    async fn hello_with_headers() -> ([(HeaderName, &'static str); 10], &'static str) {
        let headers = std::array::from_fn(|i| match i.checked_sub(1) {
            None => (CACHE_CONTROL, "public, max-age=60"),
            Some(j) => (
                HeaderName::from_static(STACK_HEADERS[j].0),
                STACK_HEADERS[j].1,
            ),
        });
        (headers, "hello\n")
    }
    Router::new().route("/hello", get(hello_with_headers))
}

/// The parts of the stack in the order [`stack`] adds them, outer to inner; the stack with none
/// of them configured still has its always-on body limit.
pub const STACK_PARTS: [&str; 7] = [
    "client ip",
    "request id",
    "trace",
    "cors",
    "per-ip limit",
    "auth hs256",
    "route cache",
];

/// The stack's builder with the first `parts` of [`STACK_PARTS`].
///
/// # Errors
/// A bad configuration (none here).
pub fn stack_builder(
    clock: SharedClock,
    parts: usize,
) -> Result<StackBuilder, Box<dyn std::error::Error>> {
    stack_builder_with(clock, parts, VerifyingKey::hmac(Algorithm::HS256, SECRET)?)
}

/// [`stack_builder`] with `key` verifying tokens instead of the HS256 secret.
///
/// # Errors
/// A bad configuration (none here).
pub fn stack_builder_with(
    clock: SharedClock,
    parts: usize,
    key: VerifyingKey,
) -> Result<StackBuilder, Box<dyn std::error::Error>> {
    let mut b = Stack::builder().clock(clock.clone()).realm(ISSUER);
    if parts < 1 {
        b = b.without_client_ip();
    }
    if parts < 2 {
        b = b.without_request_id();
    }
    if parts >= 3 {
        b = b.trace(protothrive::trace::TraceLayer::new());
    }
    if parts >= 4 {
        b = b.cors(CorsLayer::builder().allow_origin(AllowOrigin::exact(ORIGIN)));
    }
    if parts >= 5 {
        b = b.limit_by_client(Limit::new("ip", LIMIT.parse()?).by(KeyBy::ClientIp));
    }
    if parts >= 6 {
        b = b.auth(
            Authenticator::builder()
                .key(key)
                .issuer(ISSUER)
                .audience(ISSUER),
        );
    }
    if parts >= 7 {
        b = b.cache(CacheLayer::builder().clock(clock));
    }
    Ok(b)
}

/// The router behind a built stack (the route cache on `/hello` when the stack has one).
pub fn stack_router(stack: &Stack) -> Router {
    let route = match stack.cache() {
        Some(cache) => routes().route_layer(cache.clone()),
        None => routes(),
    };
    Router::new().route("/hello", route).layer(stack.clone())
}

/// protothrive's stack with the first `parts` of [`STACK_PARTS`] (all of them: the `stack` mode).
///
/// # Errors
/// A bad configuration (none here).
pub fn stack(clock: SharedClock, parts: usize) -> Result<Router, Box<dyn std::error::Error>> {
    Ok(stack_router(&stack_builder(clock, parts)?.build()?))
}

/// The full stack with tower-http's `TraceLayer` at its trace position ([`Stack::with_trace`]).
///
/// # Errors
/// A bad configuration (none here).
pub fn stack_with_trace(clock: SharedClock) -> Result<Router, Box<dyn std::error::Error>> {
    let stack = stack_builder(clock, STACK_PARTS.len())?.build()?;
    let cache = stack.cache().cloned().ok_or("the stack has a cache")?;
    Ok(Router::new()
        .route("/hello", routes().route_layer(cache))
        .layer(stack.with_trace(tower_http::trace::TraceLayer::new_for_http())))
}

/// The claims the peer's JWT check reads (what a hand-written check usually decodes).
#[derive(Clone, Debug, serde::Deserialize)]
struct Claims {
    // Handlers behind the check would read the caller from here.
    #[allow(dead_code)]
    sub: String,
}

struct Jwt {
    key: jsonwebtoken::DecodingKey,
    validation: jsonwebtoken::Validation,
}

async fn check_jwt(State(jwt): State<Arc<Jwt>>, mut req: Request, next: Next) -> Response {
    let token = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let Some(token) = token else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    match jsonwebtoken::decode::<Claims>(token, &jwt.key, &jwt.validation) {
        Ok(data) => {
            req.extensions_mut().insert(data.claims);
            next.run(req).await
        }
        Err(_) => StatusCode::UNAUTHORIZED.into_response(),
    }
}

/// http-cache keys by the absolute URL, which a server's request does not carry: rebuilt from
/// `Host`, as an application putting http-cache-tower behind axum has to.
fn absolute_uri(mut req: Request) -> Request {
    if req.uri().scheme().is_none() {
        let host = req
            .headers()
            .get(HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost");
        let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
        if let Ok(uri) = format!("http://{host}{path}").parse::<Uri>() {
            *req.uri_mut() = uri;
        }
    }
    req
}

/// The peer stack: the same jobs assembled from public crates the usual way.
///
/// # Errors
/// A bad configuration (none here).
pub fn peer() -> Result<Router, Box<dyn std::error::Error>> {
    use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};

    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.set_issuer(&[ISSUER]);
    validation.set_audience(&[ISSUER]);
    let jwt = Arc::new(Jwt {
        key: jsonwebtoken::DecodingKey::from_secret(SECRET),
        validation,
    });
    let governor = tower_governor::governor::GovernorConfigBuilder::default()
        .per_nanosecond(1)
        .burst_size(BURST)
        .finish()
        .ok_or("governor config")?;
    let cors = tower_http::cors::CorsLayer::new()
        .allow_origin(axum::http::HeaderValue::from_static(ORIGIN))
        .allow_headers([AUTHORIZATION])
        .expose_headers([HeaderName::from_static("x-request-id")]);
    let cache = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(
            |e: http_cache_tower::HttpCacheError| async move {
                (StatusCode::BAD_GATEWAY, e.to_string())
            },
        ))
        .map_request(absolute_uri)
        .layer(http_cache_tower::HttpCacheLayer::with_cache(
            http_cache::HttpCache {
                mode: http_cache::CacheMode::Default,
                manager: http_cache::MokaManager::new(http_cache::MokaCache::new(10_000)),
                options: http_cache::HttpCacheOptions::default(),
            },
        ));
    Ok(Router::new()
        .route("/hello", routes().route_layer(cache))
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
                .layer(tower_http::trace::TraceLayer::new_for_http())
                .layer(PropagateRequestIdLayer::x_request_id())
                .layer(cors)
                .layer(tower_governor::GovernorLayer::<_, _, Body>::new(governor))
                .layer(middleware::from_fn_with_state(jwt, check_jwt)),
        ))
}

/// A token every mode accepts for a day from `clock`'s now.
///
/// # Errors
/// When signing fails.
pub fn token(clock: SharedClock) -> Result<String, Box<dyn std::error::Error>> {
    token_signed(clock, SigningKey::hmac(Algorithm::HS256, SECRET)?)
}

/// A 2048-bit RSA key for RS256: the PKCS#8 PEM of the private key, and the key that verifies.
///
/// # Errors
/// When the key cannot be generated or read.
pub fn rsa_key() -> Result<(String, VerifyingKey), Box<dyn std::error::Error>> {
    use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
    let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
        .map_err(|e| e.to_string())?;
    let der: Pkcs8V1Der<'_> = pair.as_der().map_err(|e| e.to_string())?;
    rsa_from_der(der.as_ref())
}

/// The PEM and verifying key of a PKCS#8 RSA private key.
fn rsa_from_der(der: &[u8]) -> Result<(String, VerifyingKey), Box<dyn std::error::Error>> {
    use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
    use aws_lc_rs::signature::KeyPair as _;
    use base64::Engine as _;

    let pair = aws_lc_rs::rsa::KeyPair::from_pkcs8(der).map_err(|e| e.to_string())?;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line)?);
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    let public: PublicKeyX509Der<'_> = pair.public_key().as_der().map_err(|e| e.to_string())?;
    Ok((
        pem,
        VerifyingKey::from_der(Algorithm::RS256, public.as_ref())?,
    ))
}

/// The RSA key in `path` (PKCS#8 PEM), generated and written there first when the file is
/// missing or empty; with its verifying key.
fn rsa_key_file(path: &str) -> Result<(String, VerifyingKey), Box<dyn std::error::Error>> {
    use base64::Engine as _;
    let pem = std::fs::read_to_string(path).unwrap_or_default();
    if pem.trim().is_empty() {
        let (pem, key) = rsa_key()?;
        std::fs::write(path, &pem)?;
        return Ok((pem, key));
    }
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    rsa_from_der(&base64::engine::general_purpose::STANDARD.decode(b64)?)
}

/// A token signed with `key`, valid for a day from `clock`'s now.
///
/// # Errors
/// When signing fails.
pub fn token_signed(
    clock: SharedClock,
    key: SigningKey,
) -> Result<String, Box<dyn std::error::Error>> {
    let issuer = TokenIssuer::new(key, ISSUER, ISSUER)
        .access_ttl(std::time::Duration::from_secs(24 * 3600))
        .clock(clock);
    let extra = serde_json::json!({"roles": ["user"]});
    let extra = extra.as_object().ok_or("an object")?;
    Ok(issuer.issue("bench-user", TokenKind::Access, extra)?.token)
}

/// tower-http's request id (UUIDs), propagation and `TraceLayer` around the bare app: what
/// `trace` mode's `TraceLayer` is compared with.
fn trace_peer() -> Router {
    let header = axum::http::HeaderName::from_static("x-request-id");
    bare().layer(
        tower::ServiceBuilder::new()
            .layer(tower_http::request_id::SetRequestIdLayer::new(
                header.clone(),
                tower_http::request_id::MakeRequestUuid,
            ))
            .layer(tower_http::trace::TraceLayer::new_for_http())
            .layer(tower_http::request_id::PropagateRequestIdLayer::new(header)),
    )
}

/// The app of `mode` (`bare`, `bare-layered`, `stack`, `stack-rs256` with the RSA key in
/// `rsa_key`, `parts-N`, `peer`, `trace`, `trace-route-layer` or `trace-peer`) on the system
/// clock.
///
/// # Errors
/// An unknown mode.
pub fn app(mode: &str, rsa_key: Option<&str>) -> Result<Router, Box<dyn std::error::Error>> {
    match mode {
        "bare" => Ok(bare()),
        // What axum's `Router::layer` costs whatever the layer: each route boxed again, cloned
        // and its future boxed per request.
        "bare-layered" => Ok(bare().layer(tower::layer::util::Identity::new())),
        "bare-headers" => Ok(bare_headers()),
        "stack" => stack(protothrive::clock::system(), STACK_PARTS.len()),
        "stack-rs256" => {
            let (_, key) = rsa_key_file(rsa_key.ok_or("--mode stack-rs256 needs --rsa-key FILE")?)?;
            let b = stack_builder_with(protothrive::clock::system(), STACK_PARTS.len(), key)?;
            Ok(stack_router(&b.build()?))
        }
        "peer" => peer(),
        parts if parts.starts_with("parts-") => {
            let n = parts["parts-".len()..].parse::<usize>()?;
            stack(protothrive::clock::system(), n.min(STACK_PARTS.len()))
        }
        // `Router::layer` wraps each route after routing: the trace layer reads the route itself.
        "trace" => Ok(bare().layer(protothrive::trace::TraceLayer::new())),
        // As `trace` was first written: the route handed out by `MatchedRouteLayer` too.
        "trace-route-layer" => Ok(bare()
            .route_layer(protothrive::trace::MatchedRouteLayer)
            .layer(protothrive::trace::TraceLayer::new())),
        "trace-peer" => Ok(trace_peer()),
        other => Err(format!(
            "--mode {other}: expected bare, bare-layered, bare-headers, stack, stack-rs256, parts-N, peer, trace, \
             trace-route-layer or trace-peer"
        )
        .into()),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (mut mode, mut port) = (String::from("bare"), 3000_u16);
    let (mut rsa_key, mut print_token) = (None, false);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--mode" => mode = args.next().ok_or("--mode needs a value")?,
            "--port" => port = args.next().ok_or("--port needs a value")?.parse()?,
            "--rsa-key" => rsa_key = Some(args.next().ok_or("--rsa-key needs a file")?),
            "--print-token" => print_token = true,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    if print_token {
        let clock = protothrive::clock::system();
        let token = match &rsa_key {
            Some(file) => token_signed(
                clock,
                SigningKey::from_pem(Algorithm::RS256, rsa_key_file(file)?.0)?,
            )?,
            None => token(clock)?,
        };
        println!("{token}");
        return Ok(());
    }
    let app = app(&mode, rsa_key.as_deref())?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("{mode} listening on http://{}", listener.local_addr()?);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}
