//! Cache keys: method + normalized URI + partition + the `Vary`-selected request header values.
//!
//! The URI rules (RFC 3986 §6.2.2 syntax-based normalization, no further) are on
//! [`normalize_uri`].
//!
//! Hand-written: the `url` crate would change more than this (it resolves dot segments, and its
//! WHATWG parsing differs from `http::Uri`), and `percent-encoding` decodes everything or nothing.
//!
//! Partition and `Vary` values are escaped (`%`, and the two separators `\x1e` `\x1f`), so no
//! value can forge another part of a key.

use std::fmt::Write as _;

use http::header::HOST;
use http::{HeaderMap, HeaderName, Method, Uri};

use super::host::{host_field, plain_host, simple_host_field, unreserved};
use super::vary::vary_value;

const SEP: char = '\u{1f}';
const VSEP: char = '\u{1e}';

fn hex(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// Appends `s` with unreserved escapes decoded and other escapes uppercased.
fn push_normalized_escapes(out: &mut String, s: &str) {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        // Runs without `%` are copied whole (`%` is ASCII: a char boundary on both sides).
        let run = b[i..]
            .iter()
            .position(|&c| c == b'%')
            .unwrap_or(b.len() - i);
        out.push_str(&s[i..i + run]);
        i += run;
        if i == b.len() {
            break;
        }
        if i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            let c = h * 16 + l;
            if unreserved(c) {
                out.push(char::from(c));
            } else {
                let _ = write!(out, "%{c:02X}");
            }
            i += 3;
        } else {
            // A bare `%` is written `%25`, so that no decoded character can complete it into
            // a new escape on a second pass.
            out.push_str("%25");
            i += 1;
        }
    }
}

/// The normalized form of a request's URI: `scheme://host[:port]/path[?query]`; `None` when no
/// host is known or the host is malformed.
///
/// The URI is normalized the way RFC 3986 §6.2.2 calls safe ("syntax-based"), and no further:
///
/// * scheme and host lowercased; `http`'s `:80` and `https`'s `:443` dropped; user info dropped;
/// * the host comes from the URI (absolute form, HTTP/2 `:authority`) or else the `Host` header —
///   never `X-Forwarded-Host`, `Forwarded` or any other header; a request with neither, or with
///   a host that is not a DNS name or IP literal, is not cached; the scheme comes from the URI
///   or else the layer's configured scheme;
/// * percent-encoded unreserved characters (`A-Z a-z 0-9 - . _ ~`) decoded, other escapes
///   uppercased (`%2f` → `%2F`), a bare `%` written `%25`, in the path and the query;
/// * the query kept as it is, parameters in their order: `?a=1&b=2` and `?b=2&a=1` are two keys,
///   because an application may read them in order (sorting would serve one for the other);
/// * dot segments (`/a/../b`) kept: routers do not all resolve them, so they may name another
///   resource; an empty `?` dropped, an empty path read as `/`.
///
/// ```
/// use protothrive::cache::policy::normalize_uri;
///
/// let uri = "HTTPS://User@API.Example.COM:443/a/%7euser/%2f?q=%41&b".parse().unwrap();
/// assert_eq!(
///     normalize_uri(&uri, None, "http").as_deref(),
///     Some("https://api.example.com/a/~user/%2F?q=A&b"),
/// );
/// let origin_form = "/x".parse().unwrap();
/// let host = "Example.com:80".parse().unwrap();
/// assert_eq!(normalize_uri(&origin_form, Some(&host), "http").as_deref(), Some("http://example.com/x"));
/// assert_eq!(normalize_uri(&origin_form, None, "http"), None);
/// ```
#[must_use]
pub fn normalize_uri(
    uri: &Uri,
    host: Option<&http::HeaderValue>,
    default_scheme: &str,
) -> Option<String> {
    let mut out = String::new();
    normalize_into(&mut out, uri, host, default_scheme).then_some(out)
}

/// [`normalize_uri`] appended to `out` (the key's buffer: one allocation per key on a hit).
fn normalize_into(
    out: &mut String,
    uri: &Uri,
    host: Option<&http::HeaderValue>,
    default_scheme: &str,
) -> bool {
    let fast = match (uri.authority(), host) {
        (None, Some(h)) => simple_host_field(h.as_bytes()),
        _ => None,
    };
    let (host_part, lowercase, port) = match fast {
        Some(f) => f,
        None => {
            let (host_part, port) = match (uri.authority(), host) {
                (Some(a), _) => (a.host(), a.port_u16()),
                (None, Some(h)) => match h.to_str().ok().and_then(host_field) {
                    Some(hp) => hp,
                    None => return false,
                },
                (None, None) => return false,
            };
            if !plain_host(host_part) {
                return false;
            }
            (host_part, false, port)
        }
    };
    let scheme = uri.scheme_str().unwrap_or(default_scheme);
    let pq = uri.path_and_query().map_or(1, |pq| pq.as_str().len());
    out.reserve(scheme.len() + host_part.len() + pq + 10);
    push_lowercase(out, scheme);
    out.push_str("://");
    if lowercase {
        out.push_str(host_part);
    } else {
        push_lowercase(out, host_part);
    }
    let http = scheme.eq_ignore_ascii_case("http");
    let https = scheme.eq_ignore_ascii_case("https");
    match port {
        Some(80) if http => {}
        Some(443) if https => {}
        Some(p) => {
            out.push(':');
            out.push_str(itoa::Buffer::new().format(p));
        }
        None => {}
    }
    let path = uri.path();
    if path.is_empty() || !path.starts_with('/') {
        out.push('/');
    }
    push_normalized_escapes(out, path);
    if let Some(q) = uri.query().filter(|q| !q.is_empty()) {
        out.push('?');
        push_normalized_escapes(out, q);
    }
    true
}

fn push_lowercase(out: &mut String, s: &str) {
    let start = out.len();
    out.push_str(s);
    out[start..].make_ascii_lowercase();
}

/// [`normalize_uri`] of a string: an absolute URI, or origin-form with `host`.
///
/// ```
/// use protothrive::cache::policy::normalize_uri_str;
/// assert_eq!(
///     normalize_uri_str("/a?b", Some("H.example"), "https").as_deref(),
///     Some("https://h.example/a?b"),
/// );
/// assert_eq!(normalize_uri_str("not a uri", None, "http"), None);
/// ```
#[must_use]
pub fn normalize_uri_str(uri: &str, host: Option<&str>, default_scheme: &str) -> Option<String> {
    let uri: Uri = uri.parse().ok()?;
    let host = host.and_then(|h| http::HeaderValue::from_str(h).ok());
    normalize_uri(&uri, host.as_ref(), default_scheme)
}

fn push_escaped(out: &mut String, s: &str) {
    push_escaped_with(out, s, true);
}

/// A URI has no `%` to escape (its own escapes stay as they are) and no control characters once
/// `http::Uri` parsed it; the separators are still replaced, for a URI given as a plain string.
fn push_escaped_with(out: &mut String, s: &str, percent: bool) {
    for ch in s.chars() {
        match ch {
            '%' if percent => out.push_str("%25"),
            SEP => out.push_str("%1F"),
            VSEP => out.push_str("%1E"),
            c => out.push(c),
        }
    }
}

/// A cache key: `METHOD uri`, then optionally `\x1fp=partition`, then optionally
/// `\x1fv=name:value\x1e...`.
///
/// The primary key (method, URI, partition) finds what is stored for a URI; a response with
/// `Vary` is stored under the primary key extended with the request's values of the named
/// headers ([`with_vary`](Self::with_vary)).
///
/// ```
/// use http::{Method, HeaderMap};
/// use protothrive::cache::policy::CacheKey;
///
/// let key = CacheKey::new(&Method::GET, "https://api.example.com/a?x=1", Some("user-1"));
/// assert_eq!(key.uri(), "https://api.example.com/a?x=1");
/// assert_eq!(key.path_and_query(), "/a?x=1");
/// assert_eq!(key.partition(), Some("user-1"));
/// let mut h = HeaderMap::new();
/// h.insert("accept", "text/html".parse().unwrap());
/// let variant = key.with_vary(&["accept".parse().unwrap()], &h);
/// assert!(variant.as_str().starts_with(key.as_str()));
/// assert_eq!(variant.uri(), key.uri());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    key: String,
}

impl CacheKey {
    /// The primary key of `method` on a normalized URI (see [`normalize_uri`]), in `partition`.
    #[must_use]
    pub fn new(method: &Method, normalized_uri: &str, partition: Option<&str>) -> Self {
        let mut key = String::with_capacity(method.as_str().len() + normalized_uri.len() + 24);
        key.push_str(method.as_str());
        key.push(' ');
        push_escaped_with(&mut key, normalized_uri, false);
        if let Some(p) = partition {
            key.push(SEP);
            key.push_str("p=");
            push_escaped(&mut key, p);
        }
        Self { key }
    }

    /// The primary key of a request: `None` when its URI cannot be normalized (no host).
    #[must_use]
    pub fn for_request(
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        default_scheme: &str,
        partition: Option<&str>,
    ) -> Option<Self> {
        let mut key = String::with_capacity(96);
        key.push_str(method.as_str());
        key.push(' ');
        if !normalize_into(&mut key, uri, headers.get(HOST), default_scheme) {
            return None;
        }
        if let Some(p) = partition {
            key.push(SEP);
            key.push_str("p=");
            push_escaped(&mut key, p);
        }
        Some(Self { key })
    }

    /// This key in `partition` (a primary key without partition and `Vary` values).
    #[must_use]
    pub fn in_partition(&self, partition: &str) -> Self {
        Self::new(&Method::GET, self.uri(), Some(partition)).with_method(self.method())
    }

    fn with_method(mut self, method: &str) -> Self {
        if method != "GET" {
            let rest = self.key.split_once(' ').map_or("", |(_, r)| r).to_owned();
            self.key = format!("{method} {rest}");
        }
        self
    }

    /// This key extended with the request's normalized values of `names` (the response's `Vary`).
    #[must_use]
    pub fn with_vary(&self, names: &[HeaderName], headers: &HeaderMap) -> Self {
        let mut key = self.key.clone();
        key.push(SEP);
        key.push_str("v=");
        for (i, n) in names.iter().enumerate() {
            if i > 0 {
                key.push(VSEP);
            }
            key.push_str(n.as_str());
            key.push(':');
            push_escaped(&mut key, &vary_value(headers, n));
        }
        Self { key }
    }

    /// Reads a key back from its string form (as a [`CacheTier`](crate::cache::CacheTier) stores it).
    #[must_use]
    pub fn from_string(key: String) -> Self {
        Self { key }
    }

    /// The key as a string.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.key
    }

    /// The method.
    #[must_use]
    pub fn method(&self) -> &str {
        key_method(&self.key)
    }

    /// The normalized URI.
    #[must_use]
    pub fn uri(&self) -> &str {
        key_uri(&self.key)
    }

    /// The path and query of the normalized URI.
    #[must_use]
    pub fn path_and_query(&self) -> &str {
        path_and_query(self.uri())
    }

    /// The partition, if any (escaped as in the key).
    #[must_use]
    pub fn partition(&self) -> Option<&str> {
        self.key
            .split(SEP)
            .skip(1)
            .find_map(|part| part.strip_prefix("p="))
    }

    /// Whether this is `primary` or one of its `Vary` variants.
    #[must_use]
    pub fn is_variant_of(&self, primary: &CacheKey) -> bool {
        self.key == primary.key || is_variant_key(&self.key, &primary.key)
    }
}

impl From<CacheKey> for String {
    fn from(k: CacheKey) -> Self {
        k.key
    }
}

/// Whether `key` is one of the `Vary` variants stored under the primary key `primary`.
pub(crate) fn is_variant_key(key: &str, primary: &str) -> bool {
    key.strip_prefix(primary)
        .and_then(|rest| rest.strip_prefix(SEP))
        .is_some_and(|rest| rest.starts_with("v="))
}

pub(crate) fn key_method(key: &str) -> &str {
    key.split_once(' ').map_or("", |(m, _)| m)
}

pub(crate) fn key_uri(key: &str) -> &str {
    let rest = key.split_once(' ').map_or("", |(_, r)| r);
    rest.split(SEP).next().unwrap_or("")
}

pub(crate) fn path_and_query(uri: &str) -> &str {
    let after_scheme = uri.split_once("://").map_or(uri, |(_, r)| r);
    after_scheme.find('/').map_or("/", |i| &after_scheme[i..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn normalization_table() {
        let cases: &[(&str, Option<&str>, Option<&str>)] = &[
            ("http://a.example/", None, Some("http://a.example/")),
            ("http://A.EXAMPLE:80", None, Some("http://a.example/")),
            ("https://a.example:443/x", None, Some("https://a.example/x")),
            (
                "http://a.example:443/x",
                None,
                Some("http://a.example:443/x"),
            ),
            (
                "https://a.example:8443/x",
                None,
                Some("https://a.example:8443/x"),
            ),
            (
                "http://a.example/%41%2d%5F%7e%2f%3a%e2",
                None,
                Some("http://a.example/A-_~%2F%3A%E2"),
            ),
            ("http://a.example/x?", None, Some("http://a.example/x")),
            (
                "http://a.example/x?b=2&a=1",
                None,
                Some("http://a.example/x?b=2&a=1"),
            ),
            (
                "http://a.example/a/../b",
                None,
                Some("http://a.example/a/../b"),
            ),
            (
                "http://a.example/%zz%4",
                None,
                Some("http://a.example/%25zz%254"),
            ),
            (
                "http://a.example/%%30a",
                None,
                Some("http://a.example/%250a"),
            ),
            (
                "/x?y",
                Some("H.example:8080"),
                Some("http://h.example:8080/x?y"),
            ),
            ("/x", Some("bad host/"), None),
            ("/x", Some(""), None),
            ("/x", None, None),
            ("*", Some("h"), Some("http://h/*")),
            // Found by the `cache_key` fuzz target: `http::Uri` takes `$]` as a host.
            ("[:@$]", None, None),
            ("/x", Some("a$b"), None),
            ("http://[::1]:8080/x", None, Some("http://[::1]:8080/x")),
            ("/x", Some("[::1]:8080"), Some("http://[::1]:8080/x")),
            ("/x", Some("[::1]"), Some("http://[::1]/x")),
            ("/x", Some("[::1]8080"), None),
            ("/x", Some("h.example:"), Some("http://h.example/x")),
            ("/x", Some("h.example:99999"), None),
            ("/x", Some("h.example:8o"), None),
            ("/x", Some("user@h.example"), None),
            ("/x", Some("h:1:2"), None),
            ("/%41%", Some("h"), Some("http://h/A%25")),
        ];
        for (uri, host, want) in cases {
            assert_eq!(
                normalize_uri_str(uri, *host, "http").as_deref(),
                *want,
                "{uri}"
            );
        }
    }

    #[test]
    fn keys_keep_their_parts_apart() {
        let k = CacheKey::new(&Method::GET, "http://h/a", Some("u\u{1f}v=x%"));
        assert_eq!(k.partition(), Some("u%1Fv=x%25"));
        assert_eq!(k.uri(), "http://h/a");
        assert_eq!(k.method(), "GET");
        let mut h = HeaderMap::new();
        h.insert(
            "accept",
            "a\u{1e}b"
                .parse()
                .unwrap_or(http::HeaderValue::from_static("x")),
        );
        let v = k.with_vary(&[HeaderName::from_static("accept")], &h);
        assert!(v.is_variant_of(&k));
        assert!(
            !CacheKey::new(&Method::GET, "http://h/ab", None).is_variant_of(&CacheKey::new(
                &Method::GET,
                "http://h/a",
                None
            ))
        );
        assert_eq!(path_and_query("http://h"), "/");
    }

    proptest! {
        #[test]
        fn normalization_is_idempotent(
            scheme in "(http|HTTPS|ftp)",
            host in "[a-zA-Z0-9.-]{1,12}",
            port in proptest::option::of(prop_oneof![Just(80u16), Just(443), 1u16..]),
            path in "(/([a-zA-Z0-9._~!$&'()*+,;=:@-]|%[0-9a-fA-F]{2}|%){0,8}){0,4}",
            query in proptest::option::of("([a-zA-Z0-9._~!$&'()*+,;=:@/?-]|%[0-9a-fA-F]{2}){0,12}"),
        ) {
            let mut uri = format!("{scheme}://{host}");
            if let Some(p) = port { uri.push_str(&format!(":{p}")); }
            uri.push_str(&path);
            if let Some(q) = &query { uri.push('?'); uri.push_str(q); }
            if let Some(once) = normalize_uri_str(&uri, None, "http") {
                let twice = normalize_uri_str(&once, None, "http");
                prop_assert_eq!(twice.as_deref(), Some(once.as_str()));
                let key = CacheKey::new(&Method::GET, &once, None);
                prop_assert_eq!(key.uri(), once.as_str());
            }
        }
    }
}
