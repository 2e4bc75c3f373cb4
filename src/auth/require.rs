use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use super::{ConfigError, Principal, Reason, RoleHierarchy, challenge};
use crate::response::{ResponseBody, ResponseFuture};

#[derive(Debug, Clone)]
struct Rules {
    scopes: Vec<String>,
    any_role: Vec<String>,
    min_role: Option<(RoleHierarchy, usize, String)>,
    realm: String,
}

impl Rules {
    /// Any authenticated principal, challenged in the default realm.
    fn anyone() -> Self {
        Self {
            scopes: Vec::new(),
            any_role: Vec::new(),
            min_role: None,
            realm: "api".to_owned(),
        }
    }
}

/// Per-route authorisation: an authenticated [`Principal`], and the scopes and roles it must have.
/// Goes inside [`AuthLayer`](super::AuthLayer) (on a route or a group of routes).
///
/// No principal → 401; a principal lacking a scope or role → 403 with
/// `WWW-Authenticate: Bearer error="insufficient_scope", scope="..."` naming what is missing
/// (RFC 6750 §3.1).
///
/// ```
/// use protothrive::auth::{RequireLayer, RoleHierarchy};
/// let roles = RoleHierarchy::new(["vibe_coder", "engineer", "exec", "super_admin"])?;
/// let engineers = RequireLayer::role_at_least(&roles, "engineer")?;
/// let writers = RequireLayer::scopes(["roadmaps:write"]);
/// let anyone_signed_in = RequireLayer::authenticated();
/// let err = RequireLayer::role_at_least(&roles, "ceo").err().unwrap();
/// assert_eq!(err.message(), "the role `ceo` is not in the hierarchy");
/// # let _ = (engineers, writers, anyone_signed_in);
/// # Ok::<(), protothrive::auth::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct RequireLayer {
    rules: Arc<Rules>,
}

impl RequireLayer {
    fn with(rules: Rules) -> Self {
        Self {
            rules: Arc::new(rules),
        }
    }

    /// Requires an authenticated principal, any one: no scope, no role. A request without a
    /// [`Principal`] is refused with 401, as by every rule.
    ///
    /// ```
    /// use std::convert::Infallible;
    /// use http::{Request, Response};
    /// use protothrive::auth::{Principal, RequireLayer};
    /// use tower::{service_fn, ServiceBuilder, ServiceExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let svc = ServiceBuilder::new()
    ///     .layer(RequireLayer::authenticated().realm("acme"))
    ///     .service(service_fn(|_: Request<()>| async {
    ///         Ok::<_, Infallible>(Response::new(http_body_util::Empty::<bytes::Bytes>::new()))
    ///     }));
    /// let anonymous = svc.clone().oneshot(Request::new(())).await?;
    /// assert_eq!(anonymous.status(), 401);
    /// assert_eq!(anonymous.headers()["www-authenticate"], r#"Bearer realm="acme""#);
    ///
    /// let mut req = Request::new(());
    /// req.extensions_mut().insert(Principal::builder("user-1").build());
    /// let signed_in = svc.oneshot(req).await?;
    /// assert_eq!(signed_in.status(), 200);
    /// # Ok(())
    /// # }
    /// ```
    pub fn authenticated() -> Self {
        Self::with(Rules::anyone())
    }

    /// Requires every one of `scopes`.
    pub fn scopes<I: IntoIterator<Item = S>, S: Into<String>>(scopes: I) -> Self {
        Self::with(Rules {
            scopes: scopes.into_iter().map(Into::into).collect(),
            ..Rules::anyone()
        })
    }

    /// Requires at least one of `roles` (exact names).
    pub fn any_role<I: IntoIterator<Item = S>, S: Into<String>>(roles: I) -> Self {
        Self::with(Rules {
            any_role: roles.into_iter().map(Into::into).collect(),
            ..Rules::anyone()
        })
    }

    /// Requires `role` or a role above it in `hierarchy`.
    ///
    /// # Errors
    /// When `role` is not part of the hierarchy.
    pub fn role_at_least(hierarchy: &RoleHierarchy, role: &str) -> Result<Self, ConfigError> {
        let rank = hierarchy.rank(role).ok_or_else(|| {
            ConfigError::new(format!("the role `{role}` is not in the hierarchy"))
        })?;
        Ok(Self::with(Rules {
            min_role: Some((hierarchy.clone(), rank, role.to_owned())),
            ..Rules::anyone()
        }))
    }

    /// Also requires these scopes.
    pub fn and_scopes<I: IntoIterator<Item = S>, S: Into<String>>(self, scopes: I) -> Self {
        let mut rules = Arc::unwrap_or_clone(self.rules);
        rules.scopes.extend(scopes.into_iter().map(Into::into));
        Self::with(rules)
    }

    /// The `realm` of challenges (default `api`; match the authenticator's).
    pub fn realm(self, realm: impl Into<String>) -> Self {
        let mut rules = Arc::unwrap_or_clone(self.rules);
        rules.realm = realm.into();
        Self::with(rules)
    }

    /// Whether `principal` satisfies the rules; `Err` carries the missing scopes and a detail.
    fn check(&self, principal: &Principal) -> Result<(), (Vec<String>, String)> {
        let r = &self.rules;
        let missing: Vec<String> = r
            .scopes
            .iter()
            .filter(|s| !principal.has_scope(s))
            .cloned()
            .collect();
        if !missing.is_empty() {
            let detail = format!("Missing scope: {}.", missing.join(" "));
            return Err((missing, detail));
        }
        if !r.any_role.is_empty() && !r.any_role.iter().any(|role| principal.has_role(role)) {
            return Err((
                Vec::new(),
                format!("Requires one of the roles: {}.", r.any_role.join(", ")),
            ));
        }
        if let Some((h, rank, name)) = &r.min_role
            && !h.satisfies_rank(principal, *rank)
        {
            return Err((Vec::new(), format!("Requires the role {name} or above.")));
        }
        Ok(())
    }
}

impl<S> Layer<S> for RequireLayer {
    type Service = Require<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Require {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service of [`RequireLayer`].
#[derive(Debug, Clone)]
pub struct Require<S> {
    inner: S,
    layer: RequireLayer,
}

impl<S> Require<S> {
    crate::macros::inner_service_accessors!();
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Require<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let realm = &self.layer.rules.realm;
        let problem = match Principal::of(req.extensions()) {
            None => Some(challenge::refused(Reason::Missing, realm, false)),
            Some(p) => match self.layer.check(p) {
                Ok(()) => None,
                Err((missing, detail)) => Some(challenge::forbidden(realm, &missing, detail)),
            },
        };
        match problem {
            None => ResponseFuture::inner(self.inner.call(req)),
            Some(p) => {
                ResponseFuture::ready(ResponseBody::map_problem(p.render_for(req.extensions())))
            }
        }
    }
}
