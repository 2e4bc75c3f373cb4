//! Invalidation after unsafe requests (RFC 9111 §4.4): which stored URIs a successful write
//! makes stale.

use http::header::{CONTENT_LOCATION, HOST, LOCATION};
use http::{HeaderMap, Method, StatusCode, Uri, request};

fn is_safe(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

/// Lowercased authority with the default port of `scheme` dropped (both when the scheme is
/// unknown: an origin-form request does not say which it came over).
fn origin_authority(authority: &str, scheme: Option<&str>) -> String {
    let a = authority.to_ascii_lowercase();
    let drop = |port: &str| a.strip_suffix(port).map(str::to_owned);
    match scheme {
        Some(s) if s.eq_ignore_ascii_case("http") => drop(":80").unwrap_or(a.clone()),
        Some(s) if s.eq_ignore_ascii_case("https") => drop(":443").unwrap_or(a.clone()),
        Some(_) => a.clone(),
        None => drop(":80").or_else(|| drop(":443")).unwrap_or(a.clone()),
    }
}

/// The URIs whose stored responses an unsafe request invalidates (RFC 9111 §4.4): for a non-safe
/// method answered with a 2xx or 3xx, the target URI, and `Location` and `Content-Location` when
/// they are on the same origin (relative references always are). Each is returned in the form
/// of the request (absolute, or origin-form `path?query`).
///
/// ```
/// use http::{Request, StatusCode, HeaderMap};
/// use protothrive::cache::policy::invalidation_targets;
///
/// let (req, _) = Request::post("/roadmaps").header("host", "api.example.com").body(()).unwrap().into_parts();
/// let mut res = HeaderMap::new();
/// res.insert("location", "https://api.example.com/roadmaps/7".parse().unwrap());
/// res.insert("content-location", "https://evil.example.net/roadmaps".parse().unwrap());
/// let targets = invalidation_targets(&req, StatusCode::CREATED, &res);
/// assert_eq!(targets, ["/roadmaps", "/roadmaps/7"]);
/// ```
#[must_use]
pub fn invalidation_targets(
    req: &request::Parts,
    status: StatusCode,
    res_headers: &HeaderMap,
) -> Vec<Uri> {
    if is_safe(&req.method) || !(status.is_success() || status.is_redirection()) {
        return Vec::new();
    }
    let mut out = vec![req.uri.clone()];
    let scheme = req.uri.scheme_str();
    let authority = req
        .uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| req.headers.get(HOST)?.to_str().ok().map(str::to_owned));
    for name in [LOCATION, CONTENT_LOCATION] {
        let Some(v) = res_headers.get(&name).and_then(|v| v.to_str().ok()) else {
            continue;
        };
        let resolved = if v.starts_with('/') && !v.starts_with("//") {
            rebase(&req.uri, v)
        } else if !v.contains(':') && !v.starts_with("//") {
            let dir = req.uri.path().rsplit_once('/').map_or("", |(d, _)| d);
            rebase(&req.uri, &format!("{dir}/{v}"))
        } else {
            let Ok(target) = v.parse::<Uri>() else {
                continue;
            };
            let (Some(ts), Some(ta)) = (target.scheme_str(), target.authority()) else {
                continue;
            };
            let same_scheme = scheme.is_none_or(|s| s.eq_ignore_ascii_case(ts));
            let same_host = authority.as_deref().is_some_and(|a| {
                origin_authority(a, scheme) == origin_authority(ta.as_str(), Some(ts))
            });
            if !(same_scheme && same_host) {
                continue;
            }
            if req.uri.authority().is_some() {
                target
            } else {
                let Some(pq) = target.path_and_query() else {
                    continue;
                };
                rebase(&req.uri, pq.as_str())
            }
        };
        if !out.contains(&resolved) {
            out.push(resolved);
        }
    }
    out
}

/// `path` (with its query) on the scheme and authority of `base`, if it had them.
fn rebase(base: &Uri, path: &str) -> Uri {
    let mut parts = http::uri::Parts::default();
    parts.scheme = base.scheme().cloned();
    parts.authority = base.authority().cloned();
    parts.path_and_query = path.parse().ok();
    Uri::from_parts(parts).unwrap_or_else(|_| base.clone())
}
