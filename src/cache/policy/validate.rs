//! Validation (RFC 9111 §4.3; RFC 9110 §13): conditional requests to the origin, merging a 304
//! into the stored response, answering clients' own conditional requests, and what is never
//! stored.

use std::time::SystemTime;

use http::header::{
    AGE, CONNECTION, CONTENT_LENGTH, ETAG, HeaderName, IF_MODIFIED_SINCE, IF_NONE_MATCH,
    LAST_MODIFIED, PROXY_AUTHENTICATE, SET_COOKIE, TE, TRAILER, TRANSFER_ENCODING, UPGRADE,
};
use http::{HeaderMap, HeaderValue, Response};

use super::control::CacheControl;
use super::storable::Scope;

/// `Surrogate-Key`: space-separated tags a handler sets; recorded, then stripped.
pub static SURROGATE_KEY: HeaderName = HeaderName::from_static("surrogate-key");

/// `ETag`s compared weakly (RFC 9110 §8.8.3.2): `W/"a"` equals `"a"`.
fn weak_eq(a: &str, b: &str) -> bool {
    let strip = |s: &str| s.trim().trim_start_matches("W/").to_owned();
    strip(a) == strip(b)
}

fn etag(headers: &HeaderMap) -> Option<&str> {
    headers.get(ETAG)?.to_str().ok()
}

/// The headers that make a revalidation conditional (RFC 9111 §4.3.1): `If-None-Match` with the
/// stored `ETag`, `If-Modified-Since` with the stored `Last-Modified`. Empty when the stored
/// response has neither.
///
/// ```
/// use http::HeaderMap;
/// use protothrive::cache::policy::conditional_headers;
///
/// let mut stored = HeaderMap::new();
/// stored.insert("etag", "\"v1\"".parse().unwrap());
/// let cond = conditional_headers(&stored);
/// assert_eq!(cond["if-none-match"], "\"v1\"");
/// assert!(!cond.contains_key("if-modified-since"));
/// ```
#[must_use]
pub fn conditional_headers(stored: &HeaderMap) -> HeaderMap {
    let mut h = HeaderMap::new();
    if let Some(e) = stored.get(ETAG) {
        h.insert(IF_NONE_MATCH, e.clone());
    }
    if let Some(lm) = stored.get(LAST_MODIFIED) {
        h.insert(IF_MODIFIED_SINCE, lm.clone());
    }
    h
}

/// Whether a client's conditional `GET` is answered with 304 by a stored response (RFC 9110
/// §13.1.2, §13.1.3): `If-None-Match` when present (`*` or a weakly equal tag), otherwise
/// `If-Modified-Since` against `Last-Modified`.
///
/// ```
/// use http::HeaderMap;
/// use protothrive::cache::policy::not_modified;
///
/// let mut stored = HeaderMap::new();
/// stored.insert("etag", "W/\"v1\"".parse().unwrap());
/// let mut req = HeaderMap::new();
/// req.insert("if-none-match", "\"v0\", \"v1\"".parse().unwrap());
/// assert!(not_modified(&req, &stored));
/// ```
#[must_use]
pub fn not_modified(req: &HeaderMap, stored: &HeaderMap) -> bool {
    if req.contains_key(IF_NONE_MATCH) {
        let Some(tag) = etag(stored) else {
            return false;
        };
        return crate::headers::comma_items(req, &IF_NONE_MATCH)
            .any(|t| t == "*" || weak_eq(t, tag));
    }
    let date = |h: &HeaderMap, n: &HeaderName| -> Option<SystemTime> {
        httpdate::parse_http_date(h.get(n)?.to_str().ok()?).ok()
    };
    match (date(req, &IF_MODIFIED_SINCE), date(stored, &LAST_MODIFIED)) {
        (Some(since), Some(modified)) => modified <= since,
        _ => false,
    }
}

/// Whether a 304 from the origin is about the stored response (RFC 9111 §4.3.4): its `ETag`, if
/// any, must equal the stored one; without one, its `Last-Modified`, if any, must equal the
/// stored one.
///
/// ```
/// use http::HeaderMap;
/// use protothrive::cache::policy::validates;
/// let mut stored = HeaderMap::new();
/// stored.insert("etag", "\"v1\"".parse().unwrap());
/// let mut other = HeaderMap::new();
/// other.insert("etag", "\"v2\"".parse().unwrap());
/// assert!(!validates(&stored, &other));
/// assert!(validates(&stored, &HeaderMap::new()));
/// let mut dated = HeaderMap::new();
/// dated.insert("last-modified", "Tue, 14 Nov 2023 12:13:20 GMT".parse().unwrap());
/// assert!(!validates(&stored, &dated), "another representation's date");
/// ```
#[must_use]
pub fn validates(stored: &HeaderMap, not_modified: &HeaderMap) -> bool {
    match (etag(stored), etag(not_modified)) {
        (Some(a), Some(b)) => weak_eq(a, b),
        (None, Some(_)) => false,
        (_, None) => match not_modified.get(LAST_MODIFIED) {
            Some(lm) => {
                let date = |v: &HeaderValue| httpdate::parse_http_date(v.to_str().ok()?).ok();
                let stored = stored.get(LAST_MODIFIED).and_then(date);
                stored.is_some() && stored == date(lm)
            }
            None => true,
        },
    }
}

/// Merges the header fields of a 304 into the stored response's (RFC 9111 §3.2, §4.3.4): each
/// field in the 304 replaces the stored one, except `Content-Length` and the fields never stored.
/// The stored `Age` is dropped: the response is as old as the 304 says.
///
/// ```
/// use http::HeaderMap;
/// use protothrive::cache::policy::merge_not_modified;
///
/// let mut stored = HeaderMap::new();
/// stored.insert("cache-control", "max-age=1".parse().unwrap());
/// stored.insert("content-length", "5".parse().unwrap());
/// let mut fresh = HeaderMap::new();
/// fresh.insert("cache-control", "max-age=60".parse().unwrap());
/// fresh.insert("content-length", "0".parse().unwrap());
/// merge_not_modified(&mut stored, &fresh);
/// assert_eq!(stored["cache-control"], "max-age=60");
/// assert_eq!(stored["content-length"], "5");
/// ```
pub fn merge_not_modified(stored: &mut HeaderMap, not_modified: &HeaderMap) {
    let mut fresh = not_modified.clone();
    strip_unstorable(&mut fresh);
    stored.remove(AGE);
    fresh.remove(CONTENT_LENGTH);
    let mut last: Option<HeaderName> = None;
    for (name, value) in fresh {
        if let Some(n) = name {
            stored.insert(n.clone(), value);
            last = Some(n);
        } else if let Some(n) = &last {
            stored.append(n.clone(), value);
        }
    }
}

/// Removes the fields a qualified `no-cache="..."` lists (RFC 9111 §5.2.2.4: not to be reused
/// without revalidation) and, from a response stored for every client ([`Scope::Shared`]), those a
/// qualified `private="..."` lists (§5.2.2.7: a shared cache does not store them). What stays is
/// what the stored response may give others. Returns whether anything was removed.
///
/// ```
/// use http::HeaderMap;
/// use protothrive::cache::policy::{strip_listed, CacheControl, Scope};
///
/// let cc = CacheControl::parse(r#"max-age=60, no-cache="x-a", private="x-b""#);
/// let mut h = HeaderMap::new();
/// for n in ["x-a", "x-b", "x-c"] {
///     h.insert(n, "1".parse().unwrap());
/// }
/// let mut mine = h.clone();
/// assert!(strip_listed(&mut h, &cc, Scope::Shared));
/// assert_eq!(h.keys().map(|k| k.as_str()).collect::<Vec<_>>(), ["x-c"]);
/// strip_listed(&mut mine, &cc, Scope::Partition);
/// assert_eq!(mine.len(), 2, "a user's own partition keeps what is private to them");
/// ```
pub fn strip_listed(headers: &mut HeaderMap, cc: &CacheControl, scope: Scope) -> bool {
    let private: &[HeaderName] = match scope {
        Scope::Shared => &cc.private_fields,
        Scope::Partition => &[],
    };
    let mut removed = false;
    for name in cc.no_cache_fields.iter().chain(private) {
        removed |= headers.remove(name).is_some();
    }
    removed
}

/// Whether a `200` answer to `HEAD` describes the stored `GET` response (RFC 9111 §4.3.5), so
/// its header fields may update it: it carries at least one validator (`ETag`,
/// `Last-Modified`), each equal to the stored one, and a `Content-Length`, if any, equal to the
/// stored body's length. Otherwise the stored response is no longer the origin's.
///
/// ```
/// use http::HeaderMap;
/// use protothrive::cache::policy::head_matches;
///
/// let mut stored = HeaderMap::new();
/// stored.insert("etag", "\"v1\"".parse().unwrap());
/// let mut head = HeaderMap::new();
/// head.insert("etag", "\"v1\"".parse().unwrap());
/// head.insert("content-length", "5".parse().unwrap());
/// assert!(head_matches(&stored, 5, &head));
/// assert!(!head_matches(&stored, 6, &head));
/// head.insert("etag", "\"v2\"".parse().unwrap());
/// assert!(!head_matches(&stored, 5, &head));
/// assert!(!head_matches(&stored, 5, &HeaderMap::new()), "no validator: nothing to match");
/// ```
#[must_use]
pub fn head_matches(stored: &HeaderMap, stored_len: usize, head: &HeaderMap) -> bool {
    let mut seen = false;
    if let Some(tag) = etag(head) {
        seen = true;
        if !etag(stored).is_some_and(|s| weak_eq(s, tag)) {
            return false;
        }
    }
    if head.contains_key(LAST_MODIFIED) {
        seen = true;
        let date =
            |h: &HeaderMap| httpdate::parse_http_date(h.get(LAST_MODIFIED)?.to_str().ok()?).ok();
        if date(head).is_none() || date(head) != date(stored) {
            return false;
        }
    }
    let length = head
        .get(CONTENT_LENGTH)
        .map(|v| v.to_str().ok().and_then(|s| s.trim().parse::<usize>().ok()));
    seen && length.is_none_or(|l| l == Some(stored_len))
}

/// Removes what is never stored (RFC 9111 §3.1): hop-by-hop fields and those named in
/// `Connection`, `Set-Cookie`, and `Surrogate-Key` (recorded by the layer, never sent). `Age`
/// stays: the stored response's age starts from it, and every answer replaces it.
///
/// ```
/// use http::HeaderMap;
/// use protothrive::cache::policy::strip_unstorable;
/// let mut h = HeaderMap::new();
/// h.insert("connection", "x-hop".parse().unwrap());
/// h.insert("x-hop", "1".parse().unwrap());
/// h.insert("set-cookie", "a=b".parse().unwrap());
/// h.insert("etag", "\"v1\"".parse().unwrap());
/// strip_unstorable(&mut h);
/// assert_eq!(h.keys().map(|k| k.as_str()).collect::<Vec<_>>(), ["etag"]);
/// ```
pub fn strip_unstorable(headers: &mut HeaderMap) {
    let listed: Vec<HeaderName> = crate::headers::comma_items(headers, &CONNECTION)
        .filter_map(|n| HeaderName::from_bytes(n.as_bytes()).ok())
        .collect();
    for n in listed {
        headers.remove(n);
    }
    for n in [
        CONNECTION,
        TE,
        TRANSFER_ENCODING,
        UPGRADE,
        TRAILER,
        PROXY_AUTHENTICATE,
        SET_COOKIE,
        SURROGATE_KEY.clone(),
        HeaderName::from_static("keep-alive"),
        HeaderName::from_static("proxy-connection"),
    ] {
        headers.remove(n);
    }
}

/// The tags of a `Surrogate-Key` header: space-separated, every field line, sorted, no
/// duplicates.
///
/// ```
/// use http::HeaderMap;
/// use protothrive::cache::policy::surrogate_keys;
/// let mut h = HeaderMap::new();
/// h.append("surrogate-key", "snippets  snippet:7".parse().unwrap());
/// h.append("surrogate-key", "snippets".parse().unwrap());
/// assert_eq!(surrogate_keys(&h), ["snippet:7", "snippets"]);
/// ```
#[must_use]
pub fn surrogate_keys(headers: &HeaderMap) -> Vec<String> {
    let mut tags: Vec<String> = headers
        .get_all(&SURROGATE_KEY)
        .iter()
        .filter_map(|v: &HeaderValue| v.to_str().ok())
        .flat_map(str::split_ascii_whitespace)
        .map(str::to_owned)
        .collect();
    tags.sort_unstable();
    tags.dedup();
    tags
}

/// The fields of an origin's response that the stored copy goes without but the client whose
/// request fetched it gets: `Set-Cookie`, and those a qualified `no-cache`/`private` lists.
pub(in crate::cache) fn withheld(
    origin: &HeaderMap,
    cc: &CacheControl,
) -> Vec<(HeaderName, HeaderValue)> {
    if !origin.contains_key(SET_COOKIE)
        && cc.no_cache_fields.is_empty()
        && cc.private_fields.is_empty()
    {
        return Vec::new();
    }
    origin
        .iter()
        .filter(|(n, _)| **n == SET_COOKIE || cc.lists(n))
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect()
}

/// Gives the withheld fields back to the answer (those it lacks).
pub(in crate::cache) fn give_back<B>(
    res: &mut Response<B>,
    withheld: Vec<(HeaderName, HeaderValue)>,
) {
    let missing: Vec<_> = withheld
        .into_iter()
        .filter(|(n, _)| !res.headers().contains_key(n))
        .collect();
    for (n, v) in missing {
        res.headers_mut().append(n, v);
    }
}
