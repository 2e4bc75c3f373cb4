use std::fmt;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::ConfigError;

/// How a principal authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Scheme {
    /// A JWT (from `Authorization: Bearer`, a cookie, or a query parameter).
    Jwt,
    /// An API key (`Authorization: ApiKey` or `X-API-Key`).
    ApiKey,
}

/// Who is calling: put in the request's [`RequestContext`](super::RequestContext) by the auth
/// layer; read it with [`Principal::of`] (or, with axum, take it as an extractor).
///
/// Cheap to clone (one `Arc`). Standard claims are read once; the rest of the token's claims are
/// kept for [`claims`](Self::claims) and [`custom`](Self::custom).
///
/// ```
/// use protothrive::identity::Principal;
/// let p = Principal::builder("user-1")
///     .roles(["engineer"])
///     .scopes(["roadmaps:read", "roadmaps:write"])
///     .tenant("acme")
///     .build();
/// assert_eq!(p.subject(), "user-1");
/// assert!(p.has_role("engineer"));
/// assert!(p.has_scope("roadmaps:write"));
/// assert!(!p.has_scope("admin"));
/// assert_eq!(p.tenant(), Some("acme"));
/// ```
#[derive(Clone)]
pub struct Principal(Arc<Inner>);

#[derive(Clone)]
struct Inner {
    subject: String,
    roles: Vec<String>,
    scopes: Vec<String>,
    tenant: Option<String>,
    token_id: Option<String>,
    expires_at: Option<u64>,
    scheme: Scheme,
    claims: ClaimSet,
}

/// A token's claims: the JSON text as verified, turned into a map only when asked for; or a map
/// built by hand.
#[derive(Clone)]
enum ClaimSet {
    #[cfg_attr(not(feature = "auth"), allow(dead_code))]
    Raw {
        json: String,
        map: std::sync::OnceLock<Map<String, Value>>,
    },
    Map(Map<String, Value>),
}

impl ClaimSet {
    fn map(&self) -> &Map<String, Value> {
        match self {
            Self::Map(m) => m,
            Self::Raw { json, map } => {
                map.get_or_init(|| serde_json::from_str(json).unwrap_or_default())
            }
        }
    }
}

impl Principal {
    /// Starts a principal for `subject` (for API keys, resolvers and tests).
    pub fn builder(subject: impl Into<String>) -> PrincipalBuilder {
        PrincipalBuilder(Inner {
            subject: subject.into(),
            roles: Vec::new(),
            scopes: Vec::new(),
            tenant: None,
            token_id: None,
            expires_at: None,
            scheme: Scheme::Jwt,
            claims: ClaimSet::Map(Map::new()),
        })
    }

    /// The subject (`sub`, or the API key's owner).
    #[must_use]
    pub fn subject(&self) -> &str {
        &self.0.subject
    }

    /// Roles (`roles` array or `role` string claim, or as set by a resolver).
    #[must_use]
    pub fn roles(&self) -> &[String] {
        &self.0.roles
    }

    /// Scopes (`scope` space-separated string, or `scp` array or string).
    #[must_use]
    pub fn scopes(&self) -> &[String] {
        &self.0.scopes
    }

    /// Tenant (`tenant` or `tid` claim).
    #[must_use]
    pub fn tenant(&self) -> Option<&str> {
        self.0.tenant.as_deref()
    }

    /// Token id (`jti`), or the API key's id.
    #[must_use]
    pub fn token_id(&self) -> Option<&str> {
        self.0.token_id.as_deref()
    }

    /// Expiry as UNIX seconds (`exp`, or the API key's expiry).
    #[must_use]
    pub fn expires_at(&self) -> Option<u64> {
        self.0.expires_at
    }

    /// How the principal authenticated.
    #[must_use]
    pub fn scheme(&self) -> Scheme {
        self.0.scheme
    }

    /// Whether the principal has `role` exactly (see [`RoleHierarchy`] for ordered roles).
    #[must_use]
    pub fn has_role(&self, role: &str) -> bool {
        self.0.roles.iter().any(|r| r == role)
    }

    /// Whether the principal has `scope`.
    #[must_use]
    pub fn has_scope(&self, scope: &str) -> bool {
        self.0.scopes.iter().any(|s| s == scope)
    }

    /// All claims of the token, as JSON.
    #[must_use]
    pub fn claims(&self) -> &Map<String, Value> {
        self.0.claims.map()
    }

    /// The claims as an application type.
    ///
    /// ```
    /// use protothrive::identity::Principal;
    /// #[derive(serde::Deserialize)]
    /// struct Mine { plan: String }
    /// let p = Principal::builder("u").claim("plan", "pro").build();
    /// assert_eq!(p.custom::<Mine>().unwrap().plan, "pro");
    /// ```
    ///
    /// # Errors
    /// When the claims do not deserialize into `C`.
    pub fn custom<C: DeserializeOwned>(&self) -> Result<C, serde_json::Error> {
        match &self.0.claims {
            ClaimSet::Raw { json, .. } => serde_json::from_str(json),
            ClaimSet::Map(m) => C::deserialize(&Value::Object(m.clone())),
        }
    }

    /// A copy with the roles replaced (a resolver that takes roles from the user record).
    #[must_use]
    pub fn with_roles<I, R>(&self, roles: I) -> Self
    where
        I: IntoIterator<Item = R>,
        R: Into<String>,
    {
        let mut inner = (*self.0).clone();
        inner.roles = roles.into_iter().map(Into::into).collect();
        Self(Arc::new(inner))
    }
}

impl fmt::Debug for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Claims may be personal data: only the identifiers are printed.
        f.debug_struct("Principal")
            .field("subject", &self.0.subject)
            .field("scheme", &self.0.scheme)
            .field("roles", &self.0.roles)
            .field("scopes", &self.0.scopes)
            .field("tenant", &self.0.tenant)
            .finish_non_exhaustive()
    }
}

/// Builds a [`Principal`].
#[derive(Clone)]
#[must_use]
pub struct PrincipalBuilder(Inner);

impl fmt::Debug for PrincipalBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PrincipalBuilder")
            .field(&self.0.subject)
            .finish()
    }
}

impl PrincipalBuilder {
    /// Sets the roles.
    pub fn roles<I: IntoIterator<Item = R>, R: Into<String>>(mut self, roles: I) -> Self {
        self.0.roles = roles.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the scopes.
    pub fn scopes<I: IntoIterator<Item = R>, R: Into<String>>(mut self, scopes: I) -> Self {
        self.0.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the tenant.
    pub fn tenant(mut self, tenant: impl Into<String>) -> Self {
        self.0.tenant = Some(tenant.into());
        self
    }

    /// Sets the token or key id.
    pub fn token_id(mut self, id: impl Into<String>) -> Self {
        self.0.token_id = Some(id.into());
        self
    }

    /// Sets the expiry (UNIX seconds).
    pub fn expires_at(mut self, unix_seconds: u64) -> Self {
        self.0.expires_at = Some(unix_seconds);
        self
    }

    /// Sets the scheme.
    pub fn scheme(mut self, scheme: Scheme) -> Self {
        self.0.scheme = scheme;
        self
    }

    /// Adds a claim.
    pub fn claim(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        let mut map = self.0.claims.map().clone();
        map.insert(name.into(), value.into());
        self.0.claims = ClaimSet::Map(map);
        self
    }

    #[cfg_attr(not(feature = "auth"), allow(dead_code))]
    pub(crate) fn raw_claims(mut self, json: String) -> Self {
        self.0.claims = ClaimSet::Raw {
            json,
            map: std::sync::OnceLock::new(),
        };
        self
    }

    /// The principal.
    pub fn build(self) -> Principal {
        Principal(Arc::new(self.0))
    }
}

/// Roles ordered from least to most privileged: a principal holding a role also satisfies every
/// requirement for a role below it.
///
/// ```
/// use protothrive::identity::{Principal, RoleHierarchy};
/// let h = RoleHierarchy::new(["vibe_coder", "engineer", "exec", "super_admin"])?;
/// let exec = Principal::builder("u").roles(["exec"]).build();
/// assert!(h.satisfies(&exec, "engineer")?);
/// assert!(!h.satisfies(&exec, "super_admin")?);
/// // An unknown role: a configuration error.
/// let err = h.satisfies(&exec, "root").unwrap_err();
/// assert_eq!(err.message(), "the role `root` is not in the hierarchy");
/// # Ok::<(), protothrive::error::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleHierarchy {
    ordered: Arc<[String]>,
}

impl RoleHierarchy {
    /// A hierarchy from the lowest role to the highest.
    ///
    /// # Errors
    /// When it is empty or names a role twice.
    pub fn new<I: IntoIterator<Item = R>, R: Into<String>>(roles: I) -> Result<Self, ConfigError> {
        let ordered: Vec<String> = roles.into_iter().map(Into::into).collect();
        if ordered.is_empty() {
            return Err(ConfigError::new("a role hierarchy needs at least one role"));
        }
        for (i, r) in ordered.iter().enumerate() {
            if ordered[..i].contains(r) {
                return Err(ConfigError::new(format!(
                    "the role `{r}` appears twice in the hierarchy"
                )));
            }
        }
        Ok(Self {
            ordered: ordered.into(),
        })
    }

    /// The rank of `role` (0 = lowest), if it is part of the hierarchy.
    #[must_use]
    pub fn rank(&self, role: &str) -> Option<usize> {
        self.ordered.iter().position(|r| r == role)
    }

    /// Whether `principal` holds `required` or a role above it.
    ///
    /// # Errors
    /// When `required` is not part of the hierarchy.
    pub fn satisfies(&self, principal: &Principal, required: &str) -> Result<bool, ConfigError> {
        let needed = self.rank(required).ok_or_else(|| {
            ConfigError::new(format!("the role `{required}` is not in the hierarchy"))
        })?;
        Ok(self.satisfies_rank(principal, needed))
    }

    pub(crate) fn satisfies_rank(&self, principal: &Principal, needed: usize) -> bool {
        principal
            .roles()
            .iter()
            .filter_map(|r| self.rank(r))
            .any(|rank| rank >= needed)
    }
}
