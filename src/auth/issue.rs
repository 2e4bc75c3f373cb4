use std::fmt;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

use super::{SigningKey, TokenKind};
use crate::clock::{self, SharedClock};

/// Claims the issuer sets itself; extra claims cannot override them.
const REGISTERED: [&str; 8] = ["iss", "aud", "sub", "iat", "nbf", "exp", "jti", "type"];

/// One issued token.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct IssuedToken {
    /// The compact JWT.
    pub token: String,
    /// Its `jti` (for revocation and refresh-token families).
    pub jti: String,
    /// Its `exp`, UNIX seconds.
    pub expires_at: u64,
}

impl fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the token itself.
        f.debug_struct("IssuedToken")
            .field("jti", &self.jti)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// An access token and a refresh token issued together.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenPair {
    /// The access token (`type: "access"`).
    pub access: IssuedToken,
    /// The refresh token (`type: "refresh"`).
    pub refresh: IssuedToken,
    /// Seconds until the access token expires (OAuth 2.0 `expires_in`).
    pub expires_in: u64,
}

/// Signing a token failed (a key that cannot sign; nothing a request can cause).
#[derive(Debug)]
pub struct IssueError(jsonwebtoken::errors::Error);

impl fmt::Display for IssueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot sign the token: {}", self.0)
    }
}

impl std::error::Error for IssueError {}

/// Issues access/refresh token pairs with `iss`, `aud`, `sub`, `iat`, `nbf`, `exp`, a random `jti`
/// and a `type` claim, so that [`Authenticator`](super::Authenticator) tells them apart.
///
/// ```
/// use std::time::Duration;
/// use jsonwebtoken::Algorithm;
/// use protothrive::auth::{SigningKey, TokenIssuer};
///
/// let issuer = TokenIssuer::new(SigningKey::hmac(Algorithm::HS256, [9u8; 32])?, "me", "my-api")
///     .access_ttl(Duration::from_secs(900));
/// let pair = issuer.issue_pair("user-1", &serde_json::Map::new()).unwrap();
/// assert_eq!(pair.expires_in, 900);
/// assert_ne!(pair.access.jti, pair.refresh.jti);
/// # Ok::<(), protothrive::auth::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct TokenIssuer {
    key: SigningKey,
    issuer: String,
    audience: String,
    access_ttl: Duration,
    refresh_ttl: Duration,
    clock: SharedClock,
}

impl fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("key", &self.key)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("access_ttl", &self.access_ttl)
            .field("refresh_ttl", &self.refresh_ttl)
            .finish_non_exhaustive()
    }
}

/// A random 128-bit identifier, base64url.
fn random_id() -> String {
    let mut bytes = [0u8; 16];
    let _ = aws_lc_rs::rand::fill(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

impl TokenIssuer {
    /// An issuer signing with `key`; access tokens live 15 minutes, refresh tokens 30 days.
    #[must_use]
    pub fn new(key: SigningKey, issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            key,
            issuer: issuer.into(),
            audience: audience.into(),
            access_ttl: Duration::from_secs(900),
            refresh_ttl: Duration::from_secs(30 * 24 * 3600),
            clock: clock::system(),
        }
    }

    /// Access-token lifetime.
    #[must_use]
    pub fn access_ttl(mut self, ttl: Duration) -> Self {
        self.access_ttl = ttl;
        self
    }

    /// Refresh-token lifetime.
    #[must_use]
    pub fn refresh_ttl(mut self, ttl: Duration) -> Self {
        self.refresh_ttl = ttl;
        self
    }

    /// The clock.
    #[must_use]
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Issues one token of `kind` for `subject`, with `extra` claims (registered claims in `extra`
    /// are ignored).
    ///
    /// # Errors
    /// When the key cannot sign.
    pub fn issue(
        &self,
        subject: &str,
        kind: TokenKind,
        extra: &Map<String, Value>,
    ) -> Result<IssuedToken, IssueError> {
        let now = self.clock.unix_seconds();
        let ttl = match kind {
            TokenKind::Access => self.access_ttl,
            TokenKind::Refresh => self.refresh_ttl,
        };
        let exp = now + ttl.as_secs();
        let jti = random_id();
        let mut claims: Map<String, Value> = extra
            .iter()
            .filter(|(k, _)| !REGISTERED.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        claims.insert("iss".into(), self.issuer.clone().into());
        claims.insert("aud".into(), self.audience.clone().into());
        claims.insert("sub".into(), subject.into());
        claims.insert("iat".into(), now.into());
        claims.insert("nbf".into(), now.into());
        claims.insert("exp".into(), exp.into());
        claims.insert("jti".into(), jti.clone().into());
        let kind_name = match kind {
            TokenKind::Access => "access",
            TokenKind::Refresh => "refresh",
        };
        claims.insert("type".into(), kind_name.into());
        let mut header = jsonwebtoken::Header::new(self.key.alg);
        header.kid.clone_from(&self.key.kid);
        let token = jsonwebtoken::encode(&header, &claims, &self.key.key).map_err(IssueError)?;
        Ok(IssuedToken {
            token,
            jti,
            expires_at: exp,
        })
    }

    /// Issues an access token and a refresh token for `subject`.
    ///
    /// # Errors
    /// When the key cannot sign.
    pub fn issue_pair(
        &self,
        subject: &str,
        extra: &Map<String, Value>,
    ) -> Result<TokenPair, IssueError> {
        Ok(TokenPair {
            access: self.issue(subject, TokenKind::Access, extra)?,
            refresh: self.issue(subject, TokenKind::Refresh, extra)?,
            expires_in: self.access_ttl.as_secs(),
        })
    }
}
