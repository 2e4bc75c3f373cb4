//! What a shared cache may store (RFC 9111 §3), and in which scope: a pure function of the
//! request, the response and the directives that govern this cache.

use http::header::{AUTHORIZATION, COOKIE, EXPIRES, SET_COOKIE};
use http::{Method, StatusCode, request, response};

use super::control::CacheControl;
use super::targeted::Directives;
use super::vary::{Vary, vary};

/// Which cache a response goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// The shared cache: one stored response for every client (RFC 9111 "shared cache").
    Shared,
    /// The partition of one user (the layer's partition function named them): a private cache
    /// for that user alone, so `private` responses and `Authorization` do not stop storing.
    Partition,
}

/// Why a response was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NotStorable {
    /// Only `GET` responses are stored.
    Method,
    /// Not a final status this cache understands (1xx, 206, 304, or an unknown code with
    /// `must-understand`), or neither explicit freshness nor a heuristically cacheable status.
    Status,
    /// `no-store` in the request or the response (§5.2.1.5, §5.2.2.5).
    NoStore,
    /// `private` in a response to a request with no partition (§5.2.2.7).
    Private,
    /// A request with `Authorization` and a response with neither `public`, `s-maxage` nor
    /// `must-revalidate` (§3.5).
    Authorization,
    /// A request with `Cookie`, no partition, and a response neither `public` nor with
    /// `s-maxage`: the same caution as §3.5, for cookie-authenticated applications.
    Cookie,
    /// The response sets a cookie: it is never stored, so a cookie is never replayed to anyone.
    SetCookie,
    /// `Vary: *` (or a `Vary` that cannot be read): no later request could match.
    VaryStar,
}

/// Status codes heuristically cacheable by default (RFC 9110 §15.1).
///
/// ```
/// use http::StatusCode;
/// use protothrive::cache::policy::heuristically_cacheable;
/// assert!(heuristically_cacheable(StatusCode::NOT_FOUND));
/// assert!(!heuristically_cacheable(StatusCode::FOUND));
/// ```
#[must_use]
pub fn heuristically_cacheable(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        200 | 203 | 204 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

/// Status codes this cache understands for `must-understand` (§5.2.2.3).
fn understood(status: StatusCode) -> bool {
    heuristically_cacheable(status)
        || matches!(
            status.as_u16(),
            302 | 303 | 307 | 400 | 403 | 500 | 502 | 503 | 504
        )
}

/// Whether `res` to `req` may be stored (RFC 9111 §3, §3.5), and in which scope.
///
/// `partitioned` says the layer's partition function named a user for this request. Such a
/// response is stored in that user's partition unless the origin marked it `public` or gave it an
/// `s-maxage` — explicit permission to share — so per-user data behind cookie authentication is
/// never shared by accident. Without a partition, `private` responses, (§3.5) responses to
/// requests with `Authorization` that lack `public`, `s-maxage` and `must-revalidate`, and — the
/// same caution for cookie sessions — responses to requests with `Cookie` that lack `public` and
/// `s-maxage` are refused.
///
/// `Set-Cookie` is never stored: a response that sets a cookie is not stored at all (a hit that
/// silently lost a cookie the origin meant to set would be its own bug), unless the origin lists
/// `Set-Cookie` in `no-cache="..."` or `private="..."` — then the response is stored without it
/// (RFC 9111 §5.2.2.4, §5.2.2.7). Either way the origin's `Set-Cookie` reaches the client whose
/// request fetched it, and no other.
///
/// This reads `Cache-Control` (and `Expires`); [`storable_with`] takes the [`Directives`] of a
/// targeted field instead.
///
/// ```
/// use http::{Request, Response};
/// use protothrive::cache::policy::{storable, NotStorable, Scope};
///
/// let (req, _) = Request::get("/a").body(()).unwrap().into_parts();
/// let ok = Response::builder().header("cache-control", "max-age=60").body(()).unwrap();
/// assert_eq!(storable(&req, &ok.into_parts().0, false), Ok(Scope::Shared));
/// let private = Response::builder().header("cache-control", "private, max-age=60").body(()).unwrap();
/// assert_eq!(storable(&req, &private.into_parts().0, false), Err(NotStorable::Private));
/// ```
///
/// # Errors
/// The reason it may not be stored.
pub fn storable(
    req: &request::Parts,
    res: &response::Parts,
    partitioned: bool,
) -> Result<Scope, NotStorable> {
    storable_with(req, res, partitioned, &Directives::of(&res.headers, &[]))
}

/// [`storable`] under the directives that govern this cache ([`Directives::of`] with its target
/// list, RFC 9213 §2.1): when a targeted field governs, its directives replace `Cache-Control`'s
/// and `Expires` does not count.
///
/// ```
/// use http::{Request, Response};
/// use protothrive::cache::policy::{storable_with, Directives, CDN_CACHE_CONTROL, NotStorable, Scope};
///
/// let (req, _) = Request::get("/a").body(()).unwrap().into_parts();
/// let res = Response::builder()
///     .header("cache-control", "no-store")
///     .header("cdn-cache-control", "max-age=60")
///     .body(()).unwrap().into_parts().0;
/// let ours = Directives::of(&res.headers, &[CDN_CACHE_CONTROL.clone()]);
/// assert_eq!(storable_with(&req, &res, false, &ours), Ok(Scope::Shared));
/// let plain = Directives::of(&res.headers, &[]);
/// assert_eq!(storable_with(&req, &res, false, &plain), Err(NotStorable::NoStore));
/// ```
///
/// # Errors
/// The reason it may not be stored.
pub fn storable_with(
    req: &request::Parts,
    res: &response::Parts,
    partitioned: bool,
    directives: &Directives,
) -> Result<Scope, NotStorable> {
    if req.method != Method::GET {
        return Err(NotStorable::Method);
    }
    let req_cc = CacheControl::from_headers(&req.headers);
    let cc = &directives.cc;
    let status = res.status;
    if status.is_informational() || matches!(status.as_u16(), 206 | 304) {
        return Err(NotStorable::Status);
    }
    if cc.must_understand {
        if !understood(status) {
            return Err(NotStorable::Status);
        }
    } else if cc.no_store {
        return Err(NotStorable::NoStore);
    }
    if req_cc.no_store {
        return Err(NotStorable::NoStore);
    }
    if res.headers.contains_key(SET_COOKIE) && !cc.lists(&SET_COOKIE) {
        return Err(NotStorable::SetCookie);
    }
    if matches!(vary(&res.headers), Vary::Star) {
        return Err(NotStorable::VaryStar);
    }
    let explicitly_shared = cc.public || cc.s_maxage.is_some();
    let scope = if partitioned && !explicitly_shared {
        Scope::Partition
    } else {
        Scope::Shared
    };
    if scope == Scope::Shared {
        if cc.private {
            return Err(NotStorable::Private);
        }
        if req.headers.contains_key(AUTHORIZATION) && !explicitly_shared && !cc.must_revalidate {
            return Err(NotStorable::Authorization);
        }
        if req.headers.contains_key(COOKIE) && !explicitly_shared {
            return Err(NotStorable::Cookie);
        }
    }
    let explicit = cc.max_age.is_some()
        || (scope == Scope::Shared && cc.s_maxage.is_some())
        || (directives.expires_counts() && res.headers.contains_key(EXPIRES))
        || cc.public
        || (scope == Scope::Partition && cc.private);
    if !explicit && !heuristically_cacheable(status) {
        return Err(NotStorable::Status);
    }
    Ok(scope)
}
