//! RFC 9111 as pure functions: what may be stored, for how long it is fresh, how old it is, and
//! whether a stored response may answer a request. No I/O, no clock: `now` is a parameter.

use std::time::{Duration, SystemTime};

use http::header::{AGE, AUTHORIZATION, COOKIE, DATE, EXPIRES, LAST_MODIFIED, SET_COOKIE, VARY};
use http::{HeaderMap, HeaderName, Method, StatusCode, request, response};

use super::control::MAX_DELTA_SECONDS;
use super::{CacheControl, Directives};

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
/// use protothrive::cache::heuristically_cacheable;
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
/// use protothrive::cache::{storable, NotStorable, Scope};
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
/// use protothrive::cache::{storable_with, Directives, CDN_CACHE_CONTROL, NotStorable, Scope};
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

fn http_date(headers: &HeaderMap, name: &HeaderName) -> Option<SystemTime> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    if values.next().is_some() {
        return None;
    }
    httpdate::parse_http_date(first.to_str().ok()?).ok()
}

/// The heuristic freshness cap applied when no other is configured: one day.
pub const DEFAULT_HEURISTIC_CAP: Duration = Duration::from_secs(86_400);

/// The freshness lifetime of a response (RFC 9111 §4.2.1, §4.2.2).
///
/// In order: `s-maxage` (shared scope only), `max-age`, `Expires` − `Date` (`Date` missing: the
/// time the response was received; a bad or repeated `Expires`: already expired), and last the
/// heuristic — 10% of `Date` − `Last-Modified`, at most `heuristic_cap` — only when none of the
/// above is present and the status is heuristically cacheable or the response is `public`.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use http::Response;
/// use protothrive::cache::{freshness_lifetime, Scope, DEFAULT_HEURISTIC_CAP};
///
/// let res = Response::builder()
///     .header("date", "Tue, 14 Nov 2023 22:13:20 GMT")
///     .header("last-modified", "Tue, 14 Nov 2023 12:13:20 GMT")
///     .body(()).unwrap().into_parts().0;
/// let received = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
/// let life = freshness_lifetime(&res, Scope::Shared, received, DEFAULT_HEURISTIC_CAP);
/// assert_eq!(life, Duration::from_secs(3_600)); // 10% of 10 hours
/// ```
#[must_use]
pub fn freshness_lifetime(
    res: &response::Parts,
    scope: Scope,
    response_time: SystemTime,
    heuristic_cap: Duration,
) -> Duration {
    let directives = Directives::of(&res.headers, &[]);
    freshness_lifetime_with(res, &directives, scope, response_time, heuristic_cap)
}

/// [`freshness_lifetime`] under the directives that govern this cache: when a targeted field
/// governs (RFC 9213 §2.1), its `s-maxage`/`max-age` and not `Expires`.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use http::Response;
/// use protothrive::cache::{freshness_lifetime_with, Directives, Scope, CDN_CACHE_CONTROL, DEFAULT_HEURISTIC_CAP};
///
/// let res = Response::builder()
///     .header("date", "Tue, 14 Nov 2023 22:13:20 GMT")
///     .header("expires", "Tue, 14 Nov 2023 23:13:20 GMT")
///     .header("cdn-cache-control", "must-revalidate")
///     .body(()).unwrap().into_parts().0;
/// let received = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
/// let ours = Directives::of(&res.headers, &[CDN_CACHE_CONTROL.clone()]);
/// assert_eq!(freshness_lifetime_with(&res, &ours, Scope::Shared, received, DEFAULT_HEURISTIC_CAP), Duration::ZERO);
/// let plain = Directives::of(&res.headers, &[]);
/// assert_eq!(freshness_lifetime_with(&res, &plain, Scope::Shared, received, DEFAULT_HEURISTIC_CAP), Duration::from_secs(3_600));
/// ```
#[must_use]
pub fn freshness_lifetime_with(
    res: &response::Parts,
    directives: &Directives,
    scope: Scope,
    response_time: SystemTime,
    heuristic_cap: Duration,
) -> Duration {
    let cc = &directives.cc;
    if scope == Scope::Shared
        && let Some(s) = cc.s_maxage
    {
        return Duration::from_secs(u64::from(s));
    }
    if let Some(s) = cc.max_age {
        return Duration::from_secs(u64::from(s));
    }
    let date = http_date(&res.headers, &DATE).unwrap_or(response_time);
    if directives.expires_counts() && res.headers.contains_key(EXPIRES) {
        return http_date(&res.headers, &EXPIRES)
            .and_then(|e| e.duration_since(date).ok())
            .unwrap_or(Duration::ZERO);
    }
    if !(heuristically_cacheable(res.status) || cc.public) {
        return Duration::ZERO;
    }
    http_date(&res.headers, &LAST_MODIFIED)
        .and_then(|lm| date.duration_since(lm).ok())
        .map_or(Duration::ZERO, |d| (d / 10).min(heuristic_cap))
}

/// The `Age` header's value: its first member, if a valid delta-seconds (RFC 9111 §5.1).
fn age_header(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(AGE)?.to_str().ok()?;
    let first = v.split(',').next()?.trim();
    if first.is_empty() || !first.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs = first
        .parse::<u64>()
        .map_or(u64::from(MAX_DELTA_SECONDS), |s| {
            s.min(u64::from(MAX_DELTA_SECONDS))
        });
    Some(Duration::from_secs(secs))
}

/// The corrected initial age of a response when it was received (RFC 9111 §4.2.3):
/// `max(response_time − Date, Age + (response_time − request_time))`.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use http::HeaderMap;
/// use protothrive::cache::initial_age;
///
/// let mut h = HeaderMap::new();
/// h.insert("age", "10".parse().unwrap());
/// let sent = UNIX_EPOCH + Duration::from_secs(1_000);
/// let received = sent + Duration::from_secs(2);
/// assert_eq!(initial_age(&h, sent, received), Duration::from_secs(12));
/// ```
#[must_use]
pub fn initial_age(
    headers: &HeaderMap,
    request_time: SystemTime,
    response_time: SystemTime,
) -> Duration {
    let apparent = http_date(headers, &DATE)
        .and_then(|d| response_time.duration_since(d).ok())
        .unwrap_or(Duration::ZERO);
    let delay = response_time
        .duration_since(request_time)
        .unwrap_or(Duration::ZERO);
    let corrected = age_header(headers).unwrap_or(Duration::ZERO) + delay;
    apparent.max(corrected)
}

/// The current age of a stored response: its initial age plus the time it has been stored
/// (RFC 9111 §4.2.3). A clock that went backwards adds nothing.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use protothrive::cache::current_age;
/// let stored_at = UNIX_EPOCH + Duration::from_secs(1_000);
/// let now = stored_at + Duration::from_secs(30);
/// assert_eq!(current_age(Duration::from_secs(5), stored_at, now), Duration::from_secs(35));
/// ```
#[must_use]
pub fn current_age(initial_age: Duration, response_time: SystemTime, now: SystemTime) -> Duration {
    initial_age + now.duration_since(response_time).unwrap_or(Duration::ZERO)
}

/// What a stored response may do for a request (RFC 9111 §4.2, §4.2.4, §5.2; RFC 5861).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reuse {
    /// Fresh enough for this request: answer with it.
    Fresh,
    /// Stale, but the request's `max-stale` accepts it: answer with it.
    StaleAccepted,
    /// Stale within `stale-while-revalidate`: answer with it and refresh it in the background.
    StaleWhileRevalidate,
    /// Ask the origin (conditionally); if the origin fails and `stale_if_error`, answer with it.
    Revalidate {
        /// Within a `stale-if-error` window and not forbidden by `must-revalidate`.
        stale_if_error: bool,
    },
}

/// Whether a stored response with `lifetime` and `age` may answer a request.
///
/// * request `no-cache`, response `no-cache`, request `max-age` exceeded, or `min-fresh` not
///   met → revalidate;
/// * stale and `must-revalidate` (or, shared, `proxy-revalidate` or `s-maxage`, §5.2.2.10) →
///   revalidate with no stale fallback;
/// * stale within the request's `max-stale` → serve;
/// * stale within `stale-while-revalidate` → serve and refresh;
/// * otherwise revalidate, falling back to the stored response on error within `stale-if-error`
///   (the larger of the response's and the request's windows; a request's `no-cache` or
///   `max-age` does not forbid the fallback).
///
/// ```
/// use std::time::Duration;
/// use protothrive::cache::{reuse, CacheControl, Reuse, Scope};
///
/// let res = CacheControl::parse("max-age=60, stale-while-revalidate=30");
/// let none = CacheControl::default();
/// let s = Duration::from_secs;
/// assert_eq!(reuse(&none, &res, Scope::Shared, s(60), s(59)), Reuse::Fresh);
/// assert_eq!(reuse(&none, &res, Scope::Shared, s(60), s(80)), Reuse::StaleWhileRevalidate);
/// assert_eq!(reuse(&none, &res, Scope::Shared, s(60), s(95)), Reuse::Revalidate { stale_if_error: false });
/// ```
#[must_use]
pub fn reuse(
    req: &CacheControl,
    res: &CacheControl,
    scope: Scope,
    lifetime: Duration,
    age: Duration,
) -> Reuse {
    let stale_by = age.saturating_sub(lifetime);
    let strict = res.must_revalidate
        || (scope == Scope::Shared && (res.proxy_revalidate || res.s_maxage.is_some()));
    let within = |w: Option<u32>| w.is_some_and(|w| stale_by <= Duration::from_secs(u64::from(w)));
    let stale_if_error =
        !strict && !res.no_cache && (within(res.stale_if_error) || within(req.stale_if_error));
    let revalidate = Reuse::Revalidate { stale_if_error };
    if req.no_cache || res.no_cache {
        return revalidate;
    }
    if let Some(max) = req.max_age
        && age > Duration::from_secs(u64::from(max))
    {
        return revalidate;
    }
    if age < lifetime {
        let left = lifetime - age;
        return match req.min_fresh {
            Some(m) if left < Duration::from_secs(u64::from(m)) => revalidate,
            _ => Reuse::Fresh,
        };
    }
    if strict {
        return Reuse::Revalidate {
            stale_if_error: false,
        };
    }
    match req.max_stale {
        Some(super::MaxStale::Any) => return Reuse::StaleAccepted,
        Some(super::MaxStale::Seconds(s)) if stale_by <= Duration::from_secs(u64::from(s)) => {
            return Reuse::StaleAccepted;
        }
        _ => {}
    }
    if within(res.stale_while_revalidate) {
        return Reuse::StaleWhileRevalidate;
    }
    Reuse::Revalidate { stale_if_error }
}

/// The `Vary` of a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Vary {
    /// No `Vary`: one response for every request to the URI.
    None,
    /// `Vary: *`, or a `Vary` that cannot be read: no request matches.
    Star,
    /// The request headers that select the response, lowercase, sorted, without duplicates.
    Names(Vec<HeaderName>),
}

/// Reads `Vary` (RFC 9110 §12.5.5) from response headers.
///
/// ```
/// use http::HeaderMap;
/// use protothrive::cache::{vary, Vary};
///
/// let mut h = HeaderMap::new();
/// h.append("vary", "Accept-Encoding, accept".parse().unwrap());
/// h.append("vary", "ACCEPT".parse().unwrap());
/// assert_eq!(vary(&h), Vary::Names(vec!["accept".parse().unwrap(), "accept-encoding".parse().unwrap()]));
/// ```
#[must_use]
pub fn vary(headers: &HeaderMap) -> Vary {
    let mut names = Vec::new();
    for v in headers.get_all(VARY) {
        let Ok(s) = v.to_str() else {
            return Vary::Star;
        };
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            if item == "*" {
                return Vary::Star;
            }
            match HeaderName::from_bytes(item.as_bytes()) {
                Ok(n) => names.push(n),
                Err(_) => return Vary::Star,
            }
        }
    }
    if names.is_empty() {
        return Vary::None;
    }
    names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    names.dedup();
    Vary::Names(names)
}

/// The normalised value of request header `name` for `Vary` matching (RFC 9111 §4.1): every
/// field line joined with `,`, whitespace around list commas and at both ends removed, inner runs
/// of whitespace collapsed to one space. Absent and empty read the same. Bytes that are not
/// visible ASCII are kept as they are (escaped), never dropped.
///
/// ```
/// use http::HeaderMap;
/// use protothrive::cache::vary_value;
/// let mut h = HeaderMap::new();
/// h.append("accept-encoding", " gzip ,  br".parse().unwrap());
/// h.append("accept-encoding", "zstd".parse().unwrap());
/// assert_eq!(vary_value(&h, &"accept-encoding".parse().unwrap()), "gzip,br,zstd");
/// ```
#[must_use]
pub fn vary_value(headers: &HeaderMap, name: &HeaderName) -> String {
    let mut out = String::new();
    for (i, v) in headers.get_all(name).iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let mut pending_space = false;
        for &b in v.as_bytes() {
            match b {
                b' ' | b'\t' => pending_space = !out.is_empty() && !out.ends_with(','),
                b',' => {
                    pending_space = false;
                    out.push(',');
                }
                _ => {
                    if pending_space {
                        out.push(' ');
                        pending_space = false;
                    }
                    if b.is_ascii_graphic() {
                        out.push(char::from(b));
                    } else {
                        out.push_str(&format!("\\x{b:02x}"));
                    }
                }
            }
        }
    }
    out
}

/// Whether a new request selects the same response as the stored request for `names`
/// (RFC 9111 §4.1).
///
/// ```
/// use http::HeaderMap;
/// use protothrive::cache::vary_matches;
/// let (mut stored, mut new) = (HeaderMap::new(), HeaderMap::new());
/// stored.insert("accept", "text/html".parse().unwrap());
/// new.insert("accept", "text/html ".parse().unwrap());
/// assert!(vary_matches(&["accept".parse().unwrap()], &stored, &new));
/// ```
#[must_use]
pub fn vary_matches(names: &[HeaderName], stored: &HeaderMap, new: &HeaderMap) -> bool {
    names
        .iter()
        .all(|n| vary_value(stored, n) == vary_value(new, n))
}
