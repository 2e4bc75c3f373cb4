use std::fmt;

/// Why a credential was refused.
///
/// Every reason produces the same 401 body for the client (so a probe learns nothing); the reason
/// goes to the trace span and the logs, and is available to code through [`AuthError::reason`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// No credentials were sent where they are required.
    Missing,
    /// More than one credential was sent (two `Authorization` headers, a bearer token and an API key,
    /// ...), so which one counts would be ambiguous.
    Ambiguous,
    /// The credential is not a well-formed token or header value.
    Malformed,
    /// The token is longer than the configured maximum; it was not decoded.
    TooLarge,
    /// The token's `alg` is `none`, unknown, or not the algorithm of any configured key.
    UnsupportedAlgorithm,
    /// No configured key matches the token's `kid` and `alg`.
    UnknownKey,
    /// The signature does not verify.
    BadSignature,
    /// The header lists a `crit` extension this implementation does not understand (RFC 7515 §4.1.11).
    CriticalExtension,
    /// The header `typ` or the `type` claim says this is not the kind of token expected here.
    WrongTokenType,
    /// A claim that is required is absent.
    MissingClaim,
    /// A claim has the wrong JSON type (a string `exp`, an object `aud`, ...), or an `exp`
    /// further ahead than the authenticator's maximum token lifetime.
    InvalidClaim,
    /// `exp` (plus leeway) has passed.
    Expired,
    /// `nbf` (minus leeway) has not been reached.
    NotYetValid,
    /// `iss` is not an accepted issuer.
    WrongIssuer,
    /// `aud` does not name an accepted audience.
    WrongAudience,
    /// The token id (`jti`) was revoked.
    Revoked,
    /// The API key is unknown.
    UnknownApiKey,
    /// The API key has expired.
    ApiKeyExpired,
    /// The API key was revoked.
    ApiKeyRevoked,
    /// The application's principal resolver refused the principal (deleted user, ...).
    Rejected,
    /// Keys or the API-key store could not be reached and no stale copy exists.
    Unavailable,
}

impl Reason {
    /// A short, stable, log-friendly name (`expired`, `bad_signature`, ...).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Ambiguous => "ambiguous",
            Self::Malformed => "malformed",
            Self::TooLarge => "too_large",
            Self::UnsupportedAlgorithm => "unsupported_algorithm",
            Self::UnknownKey => "unknown_key",
            Self::BadSignature => "bad_signature",
            Self::CriticalExtension => "critical_extension",
            Self::WrongTokenType => "wrong_token_type",
            Self::MissingClaim => "missing_claim",
            Self::InvalidClaim => "invalid_claim",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::WrongIssuer => "wrong_issuer",
            Self::WrongAudience => "wrong_audience",
            Self::Revoked => "revoked",
            Self::UnknownApiKey => "unknown_api_key",
            Self::ApiKeyExpired => "api_key_expired",
            Self::ApiKeyRevoked => "api_key_revoked",
            Self::Rejected => "rejected",
            Self::Unavailable => "unavailable",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused credential: opaque, with [`reason`](Self::reason) and `is_*` predicates.
///
/// ```
/// use protothrive::auth::{AuthError, Reason};
/// let err = AuthError::new(Reason::Expired);
/// assert!(err.is_expired());
/// assert_eq!(err.to_string(), "credential refused: expired");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthError {
    reason: Reason,
}

impl AuthError {
    /// An error for `reason`.
    #[must_use]
    pub fn new(reason: Reason) -> Self {
        Self { reason }
    }

    /// Why the credential was refused.
    #[must_use]
    pub fn reason(&self) -> Reason {
        self.reason
    }

    /// No credential was presented.
    #[must_use]
    pub fn is_missing(&self) -> bool {
        self.reason == Reason::Missing
    }

    /// The token has expired.
    #[must_use]
    pub fn is_expired(&self) -> bool {
        self.reason == Reason::Expired
    }

    /// The token or key was revoked.
    #[must_use]
    pub fn is_revoked(&self) -> bool {
        matches!(self.reason, Reason::Revoked | Reason::ApiKeyRevoked)
    }

    /// A dependency (JWKS, API-key store) was unavailable; not the client's fault.
    #[must_use]
    pub fn is_unavailable(&self) -> bool {
        self.reason == Reason::Unavailable
    }
}

impl From<Reason> for AuthError {
    fn from(reason: Reason) -> Self {
        Self::new(reason)
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "credential refused: {}", self.reason)
    }
}

impl std::error::Error for AuthError {}
