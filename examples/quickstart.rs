//! Run with: cargo run --example quickstart
//!
//! The whole stack on a small axum app: client IP, request ids, CORS, security headers, body
//! limits, a per-IP limit, JWT auth, a per-user limit, a role check and a route cache, in the
//! right order from one builder. It prints a token to try it with:
//!
//! ```text
//! curl -i localhost:3000/hello                                   # cached, rate-limited
//! curl -i localhost:3000/me -H "authorization: Bearer <token>"   # 401 without the token
//! curl -i localhost:3000/admin -H "authorization: Bearer <token>" # 403: the token is a user's
//! ```

use std::net::SocketAddr;

use axum::Router;
use axum::http::header::CACHE_CONTROL;
use axum::routing::get;
use protothrive::auth::{
    Algorithm, Authenticator, SigningKey, TokenIssuer, TokenKind, VerifyingKey,
};
use protothrive::cache::CacheLayer;
use protothrive::clock::SharedClock;
use protothrive::cors::{AllowOrigin, CorsLayer};
use protothrive::identity::{Principal, RoleHierarchy};
use protothrive::rate_limit::{KeyBy, Limit};
use protothrive::security_headers::SecurityHeadersLayer;
use protothrive::stack::Stack;
use protothrive::trace::{MatchedRouteLayer, TraceLayer};

/// The app: three routes behind the stack (tests serve it with their own clock and limits).
pub fn app(
    secret: &[u8],
    clock: SharedClock,
    per_ip: &str,
) -> Result<Router, Box<dyn std::error::Error>> {
    let stack = Stack::builder()
        .clock(clock)
        .realm("quickstart")
        .trace(TraceLayer::new())
        .cors(CorsLayer::builder().allow_origin(AllowOrigin::exact("http://localhost:5173")))
        .security_headers(SecurityHeadersLayer::new())
        .limit_by_client(Limit::new("ip", per_ip.parse()?).by(KeyBy::ClientIp))
        .optional_auth(
            Authenticator::builder()
                .key(VerifyingKey::hmac(Algorithm::HS256, secret)?)
                .issuer("quickstart")
                .audience("quickstart"),
        )
        .limit_by_principal(Limit::new("user", "100/min burst 20".parse()?).by(KeyBy::Subject))
        .roles(RoleHierarchy::new(["user", "admin"])?)
        .cache(CacheLayer::builder())
        .build()?;
    let cache = stack.cache().cloned().ok_or("the stack has a cache")?;
    Ok(Router::new()
        .route("/hello", get(hello).route_layer(cache))
        .route("/me", get(me).route_layer(stack.authenticated()))
        .route("/admin", get(me).route_layer(stack.require_role("admin")?))
        .route_layer(MatchedRouteLayer)
        .layer(stack))
}

async fn hello() -> ([(axum::http::HeaderName, &'static str); 1], &'static str) {
    ([(CACHE_CONTROL, "public, max-age=60")], "hello\n")
}

async fn me(principal: Principal) -> String {
    format!("you are {}\n", principal.subject())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let secret = b"quickstart secret: replace me with 32+ random bytes";
    let issuer = TokenIssuer::new(
        SigningKey::hmac(Algorithm::HS256, secret)?,
        "quickstart",
        "quickstart",
    )
    .access_ttl(std::time::Duration::from_secs(3600));
    let roles = serde_json::json!({"roles": ["user"]});
    let token = issuer.issue(
        "demo-user",
        TokenKind::Access,
        roles.as_object().ok_or("an object")?,
    )?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("listening on http://{}", listener.local_addr()?);
    println!("token: {}", token.token);
    let app = app(secret, protothrive::clock::system(), "60/min burst 10")?;
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}
