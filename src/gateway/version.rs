//! API version negotiation as a pure function of the request head.
//!
//! Order of precedence: the path prefix (`/api/v2/...`), then the `API-Version` header, then the
//! media type (`Accept: application/vnd.{vendor}.v2+json` or a `version=2` parameter), then the
//! default version. An explicit version that is not supported is an error (404), never a silent
//! fallback.

use std::borrow::Cow;

/// A version of the API, as negotiated for a request: a request extension set by
/// [`VersionLayer`](super::VersionLayer), displayed as its name (`v2`).
///
/// With the `axum` feature it is also an extractor: a handler behind the layer takes
/// `version: ApiVersion`. Without the layer in front of the route it is a configuration mistake,
/// answered with a 500 problem ([`ApiVersionRejection`](super::ApiVersionRejection)) that names
/// the missing layer; `Option<ApiVersion>` never fails.
///
/// ```
/// use protothrive::gateway::ApiVersion;
///
/// let v = ApiVersion(2);
/// assert_eq!(v.number(), 2);
/// assert_eq!(v.to_string(), "v2");
/// assert_eq!(v.name(), "v2");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ApiVersion(pub u16);

impl ApiVersion {
    /// The version's number (`2` for `v2`).
    #[must_use]
    pub fn number(self) -> u16 {
        self.0
    }

    /// The version's name, `v{N}` (its [`Display`](std::fmt::Display) form).
    #[must_use]
    pub fn name(self) -> String {
        self.to_string()
    }
}

impl std::fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "v{}", self.0)
    }
}

/// Where the version of a request came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VersionSource {
    /// The path prefix.
    Path,
    /// The `API-Version` header.
    Header,
    /// The `Accept` media type.
    MediaType,
    /// Nothing said; the default applied.
    Default,
}

/// The outcome of negotiation for a path under the API prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Negotiated<'a> {
    /// The version.
    pub(crate) version: ApiVersion,
    /// Where it came from.
    pub(crate) source: VersionSource,
    /// The path without its version segment (`/api/v2/roadmaps` → `/api/roadmaps`).
    pub(crate) unversioned_path: Cow<'a, str>,
}

/// Why negotiation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NegotiationError {
    /// An explicit version that is not supported (404 listing the supported ones).
    Unsupported(String),
}

/// Parses `v2`, `V2` or `2` (no sign, no leading zeros beyond `0`, at most 4 digits).
pub(crate) fn parse_version(text: &str) -> Option<u16> {
    let digits = text
        .strip_prefix('v')
        .or_else(|| text.strip_prefix('V'))
        .unwrap_or(text);
    if digits.is_empty() || digits.len() > 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if digits.len() > 1 && digits.starts_with('0') {
        return None;
    }
    digits.parse().ok()
}

/// A path segment that names a version: `v` followed by digits.
fn version_segment(segment: &str) -> Option<&str> {
    let digits = segment.strip_prefix('v')?;
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())).then_some(segment)
}

/// The version named by an `Accept` header, if any: `application/vnd.{vendor}.v{N}+json`, or any
/// media range with a `version` parameter.
pub(crate) fn version_from_accept(accept: &str, vendor: &str) -> Option<Result<u16, String>> {
    let prefix = format!("application/vnd.{vendor}.");
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        if let Some(rest) = media.strip_prefix(&prefix) {
            let named = rest.strip_suffix("+json").unwrap_or(rest);
            return Some(parse_version(named).ok_or_else(|| named.to_owned()));
        }
        for param in parts {
            if let Some((k, v)) = param.split_once('=')
                && k.trim().eq_ignore_ascii_case("version")
            {
                let v = v.trim().trim_matches('"');
                return Some(parse_version(v).ok_or_else(|| v.to_owned()));
            }
        }
    }
    None
}

/// Negotiates the version of a request whose path is under `prefix` (returns `None` otherwise).
pub(crate) fn negotiate<'p>(
    prefix: &str,
    path: &'p str,
    header: Option<&str>,
    accept: Option<&str>,
    vendor: &str,
    supported: &[u16],
    default: u16,
) -> Option<Result<Negotiated<'p>, NegotiationError>> {
    let rest = path.strip_prefix(prefix)?;
    if !(rest.is_empty() || rest.starts_with('/')) {
        return None;
    }
    let check = |v: u16, source| {
        if supported.contains(&v) {
            Ok((ApiVersion(v), source))
        } else {
            Err(NegotiationError::Unsupported(ApiVersion(v).to_string()))
        }
    };
    let first = rest.trim_start_matches('/').split('/').next().unwrap_or("");
    let outcome = if let Some(seg) = version_segment(first) {
        let Some(v) = parse_version(seg) else {
            return Some(Err(NegotiationError::Unsupported(seg.to_owned())));
        };
        check(v, VersionSource::Path).map(|(version, source)| {
            let tail = &rest[1 + seg.len()..];
            Negotiated {
                version,
                source,
                unversioned_path: Cow::Owned(format!("{prefix}{tail}")),
            }
        })
    } else {
        let chosen = match (header, accept.and_then(|a| version_from_accept(a, vendor))) {
            (Some(h), _) => match parse_version(h.trim()) {
                Some(v) => check(v, VersionSource::Header),
                None => Err(NegotiationError::Unsupported(h.trim().to_owned())),
            },
            (None, Some(Ok(v))) => check(v, VersionSource::MediaType),
            (None, Some(Err(named))) => Err(NegotiationError::Unsupported(named)),
            (None, None) => check(default, VersionSource::Default),
        };
        chosen.map(|(version, source)| Negotiated {
            version,
            source,
            unversioned_path: Cow::Borrowed(path),
        })
    };
    Some(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn neg<'a>(
        path: &'a str,
        header: Option<&str>,
        accept: Option<&str>,
    ) -> Option<Result<Negotiated<'a>, NegotiationError>> {
        negotiate("/api", path, header, accept, "protothrive", &[1, 2], 1)
    }

    #[test]
    fn path_prefix_wins_and_is_stripped() {
        let n = neg("/api/v2/roadmaps/1", Some("1"), None).unwrap().unwrap();
        assert_eq!(n.version, ApiVersion(2));
        assert_eq!(n.source, VersionSource::Path);
        assert_eq!(n.unversioned_path, "/api/roadmaps/1");
        let n = neg("/api/v1", None, None).unwrap().unwrap();
        assert_eq!(n.unversioned_path, "/api");
    }

    #[test]
    fn header_then_media_type_then_default() {
        let v = |h, a| neg("/api/roadmaps", h, a).unwrap().unwrap();
        assert_eq!(v(Some("2"), None).version, ApiVersion(2));
        assert_eq!(
            v(Some("v2"), Some("application/vnd.protothrive.v1+json")).version,
            ApiVersion(2)
        );
        assert_eq!(
            v(None, Some("application/vnd.protothrive.v2+json")).version,
            ApiVersion(2)
        );
        assert_eq!(
            v(None, Some("application/json; version=2")).version,
            ApiVersion(2)
        );
        assert_eq!(
            v(None, Some("text/html, application/json")).source,
            VersionSource::Default
        );
        assert_eq!(v(None, None).version, ApiVersion(1));
    }

    #[test]
    fn unknown_versions_are_errors() {
        for (path, header, accept) in [
            ("/api/v3/roadmaps", None, None),
            ("/api/v01/roadmaps", None, None),
            ("/api/v99999/x", None, None),
            ("/api/roadmaps", Some("3"), None),
            ("/api/roadmaps", Some("latest"), None),
            (
                "/api/roadmaps",
                None,
                Some("application/vnd.protothrive.v7+json"),
            ),
            ("/api/roadmaps", None, Some("application/json;version=abc")),
        ] {
            assert!(
                matches!(
                    neg(path, header, accept),
                    Some(Err(NegotiationError::Unsupported(_)))
                ),
                "{path} {header:?} {accept:?}"
            );
        }
    }

    #[test]
    fn paths_outside_the_prefix_are_left_alone() {
        assert!(neg("/metrics", Some("9"), None).is_none());
        assert!(neg("/apiary", None, None).is_none());
        // A first segment that merely starts with `v` is not a version.
        let n = neg("/api/vibes", None, None).unwrap().unwrap();
        assert_eq!(n.source, VersionSource::Default);
    }
}
