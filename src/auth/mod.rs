//! Authentication: JWTs and API keys → a [`Principal`] in request extensions.
//!
//! # What it guarantees
//!
//! * **Keys choose algorithms, never tokens.** Each [`VerifyingKey`] is bound to one `alg`; a token
//!   is only tried against keys of its own `alg` (and `kid`), so `alg: none`, HS256 signed with an
//!   RSA public key, or a key embedded in the token (`jwk`, `jku`, `x5u`, `x5c` are never read) get
//!   nowhere. Weak keys are build errors (HMAC under the hash size, RSA under 2048 bits).
//! * **Strict parsing.** Tokens over 8 KiB are refused before decoding; segments must be canonical
//!   base64url; JSON with duplicate member names, claims of the wrong type, and unknown `crit`
//!   extensions are refused; the payload is parsed only after the signature verifies.
//! * **Claims.** `exp` is required, `nbf` checked, both with a leeway; `iss` and `aud` are required
//!   once configured (`aud` arrays match on overlap); access and refresh tokens are not
//!   interchangeable ([`TokenKind`]).
//! * **Keys that rotate.** [`Jwks`] refreshes in the background, refetches for an unknown `kid`
//!   single-flight and at most once per interval, keeps stale keys when a fetch fails, and skips
//!   keys it cannot use.
//! * **One answer for every failure.** 401 with `WWW-Authenticate: Bearer` (`error="invalid_token"`
//!   when a credential was sent) and the same problem body whatever the reason; the reason goes to
//!   the logs ([`Reason`]), never the token. [`RequireLayer`] answers 403 `insufficient_scope`
//!   naming the missing scope.
//! * **API keys** ([`ApiKeyStore`]) are looked up by SHA-256 and compared in constant time.
//! * **Revocation** ([`Revocation`], [`RevocationList`]) is consulted on every request, cached or
//!   not; the verified-token cache is bounded in bytes. With several instances,
//!   `RedisRevocations` (feature `redis`) makes a revocation on one
//!   instance refused by all of them from the next request on.
//!
//! # What it costs
//!
//! A cached token costs one hash of the token and a sharded-map lookup (measured in
//! `BENCHMARKS.md`); a cold HS256 token one HMAC plus two small JSON parses; RS256 one RSA
//! verification with the key parsed in advance. Hooks (custom revocation, resolver, API-key store)
//! cost one boxed future each.
//!
//! # Example
//!
//! ```
//! use std::convert::Infallible;
//! use http::{Request, Response, StatusCode};
//! use jsonwebtoken::Algorithm;
//! use protothrive::auth::{AuthLayer, Authenticator, Principal, SigningKey, TokenIssuer, VerifyingKey};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let secret = [7u8; 32]; // in real life: 32+ random bytes from a secret store
//! let auth = Authenticator::builder()
//!     .key(VerifyingKey::hmac(Algorithm::HS256, secret)?)
//!     .issuer("me")
//!     .audience("my-api")
//!     .build()?;
//! let svc = ServiceBuilder::new()
//!     .layer(AuthLayer::new(auth))
//!     .service(service_fn(|req: Request<String>| async move {
//!         let who = Principal::of(req.extensions()).unwrap().subject().to_owned();
//!         Ok::<_, Infallible>(Response::new(http_body_util::Full::new(bytes::Bytes::from(who))))
//!     }));
//!
//! let res = svc.clone().oneshot(Request::new(String::new())).await?;
//! assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
//! assert_eq!(res.headers()["www-authenticate"], "Bearer realm=\"api\"");
//!
//! let issuer = TokenIssuer::new(SigningKey::hmac(Algorithm::HS256, secret)?, "me", "my-api");
//! let token = issuer.issue_pair("alice", &Default::default())?.access.token;
//! let req = Request::builder()
//!     .header("authorization", format!("Bearer {token}"))
//!     .body(String::new())?;
//! let res = svc.oneshot(req).await?;
//! assert_eq!(res.status(), StatusCode::OK);
//! # Ok(())
//! # }
//! ```

mod apikey;
mod authenticator;
#[cfg(feature = "axum")]
mod axum;
mod cache;
mod challenge;
mod claims;
mod credential;
mod issue;
mod json;
mod jwks;
mod key;
mod layer;
mod reason;
mod require;
mod revocation;
#[cfg(feature = "redis")]
mod shared_revocation;
mod token;
mod verify;

pub use crate::error::ConfigError;
pub use crate::identity::{Principal, PrincipalBuilder, RoleHierarchy, Scheme};
pub use crate::response::ResponseFuture;
pub use apikey::{
    ApiKeyHash, ApiKeyRecord, ApiKeyStore, InMemoryApiKeys, MAX_API_KEY_BYTES, generate_api_key,
};
pub use authenticator::{
    Authenticator, AuthenticatorBuilder, DEFAULT_MAX_LIFETIME, MAX_LEEWAY, ResolvePrincipal,
};
#[cfg(feature = "axum")]
pub use axum::{AuthRejection, Claims};
pub use claims::TokenKind;
pub use credential::CredentialSource;
pub use issue::{IssueError, IssuedToken, TokenIssuer, TokenPair};
pub use jsonwebtoken::Algorithm;
pub use jwks::{FetchJwks, Jwks, JwksBuilder, JwksError, MAX_KEYS, parse_jwks};
#[cfg(feature = "jwks")]
pub use jwks::{HttpJwksFetcher, MAX_DOCUMENT_BYTES};
pub use key::{MIN_RSA_BITS, SigningKey, VerifyingKey};
pub(crate) use layer::AuthCheck;
pub use layer::{Auth, AuthLayer};
pub use reason::{AuthError, Reason};
pub use require::{Require, RequireLayer};
pub use revocation::{BoxFuture, Revocation, RevocationList};
#[cfg(feature = "redis")]
pub use shared_revocation::{
    DEFAULT_REVOCATION_TIMEOUT, RedisRevocations, RedisRevocationsBuilder, RevocationStoreError,
};
pub use token::DEFAULT_MAX_TOKEN_BYTES;

/// Verifies a compact token against `keys` with no cache, hooks or I/O: the pure core that fuzzing
/// and property tests aim at. Returns the principal or the reason it was refused.
///
/// ```
/// use protothrive::auth::{verify_token, Algorithm, Reason, TokenKind, VerifyingKey};
/// let key = VerifyingKey::hmac(Algorithm::HS256, [3u8; 32]).unwrap();
/// assert_eq!(
///     verify_token("not-a-token", &[key], TokenKind::Access, 0).err(),
///     Some(Reason::Malformed)
/// );
/// ```
///
/// # Errors
/// The [`Reason`] the token is refused.
pub fn verify_token(
    token: &str,
    keys: &[VerifyingKey],
    kind: TokenKind,
    now: u64,
) -> Result<Principal, Reason> {
    let compact = token::split(token, DEFAULT_MAX_TOKEN_BYTES)?;
    let header = token::parse_header(compact.header)?;
    verify::verify_signature(&compact, &header, keys)?;
    let claims = verify::parse_claims(&compact)?;
    claims::validate(
        claims,
        header.typ.as_deref(),
        &claims::ClaimsPolicy::default(),
        kind,
        now,
    )
}
