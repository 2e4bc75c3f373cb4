//! Whether a stored response may answer a request (RFC 9111 §4.2.4, §5.2; RFC 5861): a pure
//! function of both sides' directives, the scope, the lifetime and the age.

use std::time::Duration;

use super::control::{CacheControl, MaxStale};
use super::storable::Scope;

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
/// use protothrive::cache::policy::{reuse, CacheControl, Reuse, Scope};
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
        Some(MaxStale::Any) => return Reuse::StaleAccepted,
        Some(MaxStale::Seconds(s)) if stale_by <= Duration::from_secs(u64::from(s)) => {
            return Reuse::StaleAccepted;
        }
        _ => {}
    }
    if within(res.stale_while_revalidate) {
        return Reuse::StaleWhileRevalidate;
    }
    Reuse::Revalidate { stale_if_error }
}
