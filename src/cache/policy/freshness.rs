//! How long a stored response is fresh and how old it is (RFC 9111 §4.2): pure functions,
//! `now` a parameter.

use std::time::{Duration, SystemTime};

use http::header::{AGE, DATE, EXPIRES, LAST_MODIFIED};
use http::{HeaderMap, HeaderName, response};

use super::control::MAX_DELTA_SECONDS;
use super::storable::{Scope, heuristically_cacheable};
use super::targeted::Directives;

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
/// use protothrive::cache::policy::{freshness_lifetime, Scope, DEFAULT_HEURISTIC_CAP};
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
/// use protothrive::cache::policy::{freshness_lifetime_with, Directives, Scope, CDN_CACHE_CONTROL, DEFAULT_HEURISTIC_CAP};
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
/// use protothrive::cache::policy::initial_age;
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
/// use protothrive::cache::policy::current_age;
/// let stored_at = UNIX_EPOCH + Duration::from_secs(1_000);
/// let now = stored_at + Duration::from_secs(30);
/// assert_eq!(current_age(Duration::from_secs(5), stored_at, now), Duration::from_secs(35));
/// ```
#[must_use]
pub fn current_age(initial_age: Duration, response_time: SystemTime, now: SystemTime) -> Duration {
    initial_age + now.duration_since(response_time).unwrap_or(Duration::ZERO)
}
