//! API keys: a second scheme (`Authorization: ApiKey <key>` or `X-API-Key: <key>`).
//!
//! Keys are random 256-bit secrets; stores only ever see their SHA-256 ([`ApiKeyHash`]), so a
//! leaked table cannot be replayed. A fast hash is right here (unlike passwords): the secret has
//! full entropy, so there is nothing to brute-force. The hash a store returns is compared with the
//! presented one in constant time.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq;

use super::revocation::BoxFuture;
use super::{AuthError, Principal, Reason, Scheme};

/// The longest API key accepted, in bytes.
pub const MAX_API_KEY_BYTES: usize = 256;

/// The SHA-256 of an API key: what stores keep and look up by.
///
/// ```
/// use protothrive::auth::ApiKeyHash;
/// let h = ApiKeyHash::of("pt_secret");
/// assert_eq!(ApiKeyHash::from_hex(&h.to_hex()), Some(h));
/// assert!(h.ct_eq(&ApiKeyHash::of("pt_secret")));
/// assert!(!h.ct_eq(&ApiKeyHash::of("pt_other")));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ApiKeyHash([u8; 32]);

impl ApiKeyHash {
    /// Hashes a presented key.
    #[must_use]
    pub fn of(key: &str) -> Self {
        let d = digest::digest(&digest::SHA256, key.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        Self(out)
    }

    /// The hash as 64 lowercase hex digits (for storage).
    #[must_use]
    pub fn to_hex(&self) -> String {
        use fmt::Write;
        self.0.iter().fold(String::with_capacity(64), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
    }

    /// Parses 64 hex digits.
    #[must_use]
    pub fn from_hex(hex: &str) -> Option<Self> {
        if hex.len() != 64 || !hex.is_ascii() {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, chunk) in hex.as_bytes().chunks(2).enumerate() {
            let s = std::str::from_utf8(chunk).ok()?;
            out[i] = u8::from_str_radix(s, 16).ok()?;
        }
        Some(Self(out))
    }

    /// Compares two hashes in constant time.
    #[must_use]
    pub fn ct_eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for ApiKeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKeyHash({}…)", &self.to_hex()[..8])
    }
}

/// Creates a new API key: the plaintext (show it once) and the hash (store it).
///
/// ```
/// use protothrive::auth::{generate_api_key, ApiKeyHash};
/// let (key, hash) = generate_api_key("pt");
/// assert!(key.starts_with("pt_"));
/// assert_eq!(ApiKeyHash::of(&key), hash);
/// ```
#[must_use]
pub fn generate_api_key(prefix: &str) -> (String, ApiKeyHash) {
    let mut secret = [0u8; 32];
    // The system RNG failing is unrecoverable for key generation; aws-lc aborts rather than return
    // weak bytes, so this cannot yield a predictable key.
    let _ = aws_lc_rs::rand::fill(&mut secret);
    let key = format!("{prefix}_{}", URL_SAFE_NO_PAD.encode(secret));
    let hash = ApiKeyHash::of(&key);
    (key, hash)
}

/// What a store knows of one API key.
///
/// ```
/// use protothrive::auth::{ApiKeyHash, ApiKeyRecord};
/// let rec = ApiKeyRecord::new("key-1", "user-1", ApiKeyHash::of("pt_x"))
///     .scopes(["snippets:read"])
///     .expires_at(2_000_000_000);
/// assert_eq!(rec.id, "key-1");
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ApiKeyRecord {
    /// The key's id (reported as the principal's token id).
    pub id: String,
    /// The owner.
    pub subject: String,
    /// The key's hash.
    pub hash: ApiKeyHash,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// Granted roles.
    pub roles: Vec<String>,
    /// Tenant.
    pub tenant: Option<String>,
    /// Expiry, UNIX seconds.
    pub expires_at: Option<u64>,
    /// Whether the key was revoked.
    pub revoked: bool,
}

impl ApiKeyRecord {
    /// A record with no scopes, roles, tenant or expiry.
    pub fn new(id: impl Into<String>, subject: impl Into<String>, hash: ApiKeyHash) -> Self {
        Self {
            id: id.into(),
            subject: subject.into(),
            hash,
            scopes: Vec::new(),
            roles: Vec::new(),
            tenant: None,
            expires_at: None,
            revoked: false,
        }
    }

    /// Sets the scopes.
    #[must_use]
    pub fn scopes<I: IntoIterator<Item = S>, S: Into<String>>(mut self, scopes: I) -> Self {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the roles.
    #[must_use]
    pub fn roles<I: IntoIterator<Item = S>, S: Into<String>>(mut self, roles: I) -> Self {
        self.roles = roles.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the tenant.
    #[must_use]
    pub fn tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = Some(tenant.into());
        self
    }

    /// Sets the expiry.
    #[must_use]
    pub fn expires_at(mut self, unix_seconds: u64) -> Self {
        self.expires_at = Some(unix_seconds);
        self
    }

    /// Marks the key revoked.
    #[must_use]
    pub fn revoked(mut self, revoked: bool) -> Self {
        self.revoked = revoked;
        self
    }
}

/// Where API keys live. It is asked by hash only.
pub trait ApiKeyStore: Send + Sync + fmt::Debug + 'static {
    /// The record whose hash is `hash`, if any. An `Err` answers 503-like "unavailable", never
    /// lets the request through.
    fn find<'a>(
        &'a self,
        hash: &'a ApiKeyHash,
    ) -> BoxFuture<'a, Result<Option<ApiKeyRecord>, AuthError>>;
}

/// An in-process [`ApiKeyStore`].
///
/// ```
/// use protothrive::auth::{generate_api_key, ApiKeyRecord, InMemoryApiKeys};
/// let store = InMemoryApiKeys::default();
/// let (key, hash) = generate_api_key("pt");
/// store.insert(ApiKeyRecord::new("k1", "user-1", hash));
/// assert_eq!(store.len(), 1);
/// store.revoke("k1");
/// # let _ = key;
/// ```
#[derive(Clone, Default)]
pub struct InMemoryApiKeys {
    keys: Arc<RwLock<HashMap<ApiKeyHash, ApiKeyRecord>>>,
}

impl InMemoryApiKeys {
    /// Adds or replaces a key.
    pub fn insert(&self, record: ApiKeyRecord) {
        self.keys
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(record.hash, record);
    }

    /// Marks the key with this id revoked; returns whether it existed.
    pub fn revoke(&self, id: &str) -> bool {
        let mut keys = self.keys.write().unwrap_or_else(PoisonError::into_inner);
        keys.values_mut()
            .find(|r| r.id == id)
            .map(|r| r.revoked = true)
            .is_some()
    }

    /// Number of keys.
    #[must_use]
    pub fn len(&self) -> usize {
        self.keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether there are no keys.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Debug for InMemoryApiKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryApiKeys")
            .field("keys", &self.len())
            .finish()
    }
}

impl ApiKeyStore for InMemoryApiKeys {
    fn find<'a>(
        &'a self,
        hash: &'a ApiKeyHash,
    ) -> BoxFuture<'a, Result<Option<ApiKeyRecord>, AuthError>> {
        let found = self
            .keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(hash)
            .cloned();
        Box::pin(std::future::ready(Ok(found)))
    }
}

/// Checks a presented key against the store.
pub(crate) async fn authenticate(
    store: &dyn ApiKeyStore,
    presented: &str,
    now: u64,
) -> Result<Principal, AuthError> {
    if presented.is_empty()
        || presented.len() > MAX_API_KEY_BYTES
        || !presented.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(Reason::Malformed.into());
    }
    let hash = ApiKeyHash::of(presented);
    let record = store
        .find(&hash)
        .await?
        .ok_or(AuthError::new(Reason::UnknownApiKey))?;
    if !record.hash.ct_eq(&hash) {
        return Err(Reason::UnknownApiKey.into());
    }
    if record.revoked {
        return Err(Reason::ApiKeyRevoked.into());
    }
    if record.expires_at.is_some_and(|exp| now >= exp) {
        return Err(Reason::ApiKeyExpired.into());
    }
    let mut builder = Principal::builder(record.subject)
        .scheme(Scheme::ApiKey)
        .roles(record.roles)
        .scopes(record.scopes)
        .token_id(record.id);
    if let Some(t) = record.tenant {
        builder = builder.tenant(t);
    }
    if let Some(exp) = record.expires_at {
        builder = builder.expires_at(exp);
    }
    Ok(builder.build())
}
