//! Finding a stored response and answering from it (the whole of it, a range, or a 304).

use std::future::poll_fn;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http::header::Entry;
use http::header::{
    CACHE_CONTROL, CONTENT_LENGTH, CONTENT_LOCATION, CONTENT_RANGE, DATE, ETAG, EXPIRES,
    LAST_MODIFIED, RANGE, VARY,
};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, request};
use tower_service::Service;

use super::body::CacheBody;
use super::policy::control::CacheControl;
use super::policy::key::CacheKey;
use super::policy::range::{ByteRange, byte_range, if_range_holds};
use super::policy::reuse::{Reuse, reuse};
use super::policy::status::{CACHE_STATUS, CacheStatus, Forward, age_value};
use super::policy::validate::{SURROGATE_KEY, not_modified};
use super::state::Shared;
use super::store::{CacheEntry, StoredResponse};
use crate::error::{Problem, code};

/// The shared and partition keys of a request.
#[derive(Clone)]
pub(super) struct Keys {
    pub(super) shared: CacheKey,
    pub(super) partition: Option<CacheKey>,
}

impl Keys {
    /// The keys of `parts` (its unkeyed headers already removed), read as a `GET`; `None` when
    /// its URI cannot be a key.
    pub(super) fn for_request(shared: &Shared, parts: &request::Parts) -> Option<Self> {
        let key = CacheKey::for_request(
            &Method::GET,
            &parts.uri,
            &parts.headers,
            &shared.config.scheme,
            None,
        )?;
        let partition = shared.config.partition.as_ref().and_then(|f| f(parts));
        Some(Self {
            partition: partition.map(|p| key.in_partition(&p)),
            shared: key,
        })
    }

    /// The key concurrent misses coalesce on.
    pub(super) fn flight(&self) -> &CacheKey {
        self.partition.as_ref().unwrap_or(&self.shared)
    }

    /// The key a hit was stored under.
    pub(super) fn of<'a>(&'a self, hit: &'a HitKey) -> &'a CacheKey {
        match hit {
            HitKey::Shared => &self.shared,
            HitKey::Partition => self.flight(),
            HitKey::Variant(k) => k,
        }
    }
}

/// Which key a hit was found under: one of [`Keys`] (not copied: a fresh hit never needs it),
/// or the variant key its `Vary` led to.
pub(super) enum HitKey {
    Shared,
    Partition,
    Variant(CacheKey),
}

pub(super) enum Found {
    Hit(HitKey, Arc<StoredResponse>),
    VaryMiss,
    Miss,
}

pub(super) async fn call<S, B, R>(inner: &mut S, req: Request<B>) -> Result<Response<R>, S::Error>
where
    S: Service<Request<B>, Response = Response<R>>,
{
    poll_fn(|cx| inner.poll_ready(cx)).await?;
    inner.call(req).await
}

pub(super) fn clone_parts(p: &request::Parts) -> request::Parts {
    let (mut c, ()) = Request::new(()).into_parts();
    c.method = p.method.clone();
    c.uri = p.uri.clone();
    c.version = p.version;
    c.headers = p.headers.clone();
    c.extensions = p.extensions.clone();
    c
}

/// Adds this cache's member to `Cache-Status`. A response that already has the field (from a
/// cache nearer the origin, or stored with it) keeps its members and gets this one after them
/// (RFC 9211 §2: the first member is the cache closest to the origin), in one field line so
/// a reader of the first line sees the whole list.
pub(super) fn status_header<B>(res: &mut Response<B>, status: &CacheStatus, name: &str) {
    let ours = status.header_value_named(name);
    match res.headers_mut().entry(&CACHE_STATUS) {
        Entry::Vacant(field) => {
            field.insert(ours);
        }
        Entry::Occupied(mut field) => {
            let mut list = Vec::new();
            for member in field.iter().chain([&ours]) {
                if !list.is_empty() {
                    list.extend_from_slice(b", ");
                }
                list.extend_from_slice(member.as_bytes());
            }
            field.insert(HeaderValue::from_bytes(&list).unwrap_or(ours));
        }
    }
}

pub(super) fn ttl(stored: &StoredResponse, age: Duration) -> i64 {
    let secs = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
    secs(stored.lifetime) - secs(age)
}

pub(super) async fn get(shared: &Shared, key: &str) -> Option<CacheEntry> {
    if let Some(e) = shared.state.l1.get(key) {
        return Some(e);
    }
    let since = shared.state.purges.seq();
    let entry = shared.config.tier.as_ref()?.get(key).await?;
    // Promoted unless a purge ran meanwhile (it may have missed the tier's copy we hold).
    if !shared
        .state
        .purges
        .insert(&shared.state.l1, since, key, &entry)
    {
        return None;
    }
    Some(entry)
}

pub(super) async fn find(
    shared: &Shared,
    key: &CacheKey,
    which: HitKey,
    headers: &HeaderMap,
) -> Found {
    match get(shared, key.as_str()).await {
        None => Found::Miss,
        Some(CacheEntry::Response(r)) => Found::Hit(which, r),
        Some(CacheEntry::Vary(names)) => {
            let variant = key.with_vary(&names, headers);
            match get(shared, variant.as_str()).await {
                Some(CacheEntry::Response(r)) => Found::Hit(HitKey::Variant(variant), r),
                _ => Found::VaryMiss,
            }
        }
    }
}

/// A hit in L1, found without awaiting anything (the common case).
pub(super) fn find_l1(
    shared: &Shared,
    key: &CacheKey,
    which: HitKey,
    headers: &HeaderMap,
) -> Option<Found> {
    match shared.state.l1.get(key.as_str())? {
        CacheEntry::Response(r) => Some(Found::Hit(which, r)),
        CacheEntry::Vary(names) => {
            let variant = key.with_vary(&names, headers);
            match shared.state.l1.get(variant.as_str())? {
                CacheEntry::Response(r) => Some(Found::Hit(HitKey::Variant(variant), r)),
                CacheEntry::Vary(_) => None,
            }
        }
    }
}

pub(super) fn lookup_l1(shared: &Shared, keys: &Keys, headers: &HeaderMap) -> Option<Found> {
    if let Some(p) = &keys.partition
        && let Some(hit) = find_l1(shared, p, HitKey::Partition, headers)
    {
        return Some(hit);
    }
    find_l1(shared, &keys.shared, HitKey::Shared, headers)
}

pub(super) async fn lookup(shared: &Shared, keys: &Keys, headers: &HeaderMap) -> Found {
    let mut first = Found::Miss;
    if let Some(p) = &keys.partition {
        first = find(shared, p, HitKey::Partition, headers).await;
        if matches!(first, Found::Hit(..)) {
            return first;
        }
    }
    match find(shared, &keys.shared, HitKey::Shared, headers).await {
        Found::Miss => first,
        other => other,
    }
}

/// Room for the headers added to a hit after the stored ones.
const HIT_HEADER_ROOM: usize = 16;

/// A response from a stored one: a 304 when the client's own conditional matches.
pub(super) fn from_stored<B>(
    stored: &StoredResponse,
    req: &HeaderMap,
    head: bool,
    age: Duration,
    status: &CacheStatus,
    name: &str,
) -> Response<CacheBody<B>> {
    let mut res = if not_modified(req, &stored.headers) {
        let mut res = Response::new(CacheBody::full(Bytes::new()));
        *res.status_mut() = StatusCode::NOT_MODIFIED;
        for name in [
            CACHE_CONTROL,
            CONTENT_LOCATION,
            DATE,
            ETAG,
            EXPIRES,
            LAST_MODIFIED,
            VARY,
        ] {
            for v in stored.headers.get_all(&name) {
                res.headers_mut().append(name.clone(), v.clone());
            }
        }
        res
    } else {
        let body = if head {
            Bytes::new()
        } else {
            stored.body.clone()
        };
        let mut res = Response::new(CacheBody::full(body));
        *res.status_mut() = stored.status;
        // Sized for what this layer and the layers outside add to a hit (`Age`, `Cache-Status`,
        // rate-limit, request-id, trace, CORS and security headers): a clone of the stored map
        // would be exactly full and grow, reallocating and rehashing, on the first insert.
        let h = res.headers_mut();
        h.reserve(stored.headers.len() + HIT_HEADER_ROOM);
        for (name, value) in &stored.headers {
            h.append(name.clone(), value.clone());
        }
        res
    };
    res.headers_mut().insert(http::header::AGE, age_value(age));
    status_header(&mut res, status, name);
    res
}

pub(super) fn only_if_cached<B>(parts: &request::Parts, name: &str) -> Response<CacheBody<B>> {
    let mut res = Problem::new(StatusCode::GATEWAY_TIMEOUT, code::CACHE_ONLY_IF_CACHED)
        .with_detail("The request allows only a cached response (only-if-cached) and none fits.")
        .render_for(&parts.extensions)
        .map(CacheBody::full);
    status_header(
        &mut res,
        &CacheStatus::forward(Forward::Request).detail("only-if-cached"),
        name,
    );
    res
}

pub(super) fn pass_through<B>(
    mut res: Response<B>,
    status: &CacheStatus,
    name: &str,
) -> Response<CacheBody<B>> {
    res.headers_mut().remove(&SURROGATE_KEY);
    status_header(&mut res, status, name);
    res.map(CacheBody::inner)
}

pub(super) fn fresh_hit<B>(
    shared: &Shared,
    stored: &StoredResponse,
    parts: &request::Parts,
    collapsed: bool,
) -> Option<Response<CacheBody<B>>> {
    let age = stored.age(shared.config.clock.now());
    let req_cc = CacheControl::from_headers(&parts.headers);
    match reuse(&req_cc, &stored.cc, stored.scope, stored.lifetime, age) {
        Reuse::Fresh | Reuse::StaleAccepted => {
            shared.state.stats.hits.fetch_add(1, Ordering::Relaxed);
            let status = CacheStatus::hit(Some(ttl(stored, age))).collapsed(collapsed);
            let head = parts.method == http::Method::HEAD;
            Some(from_stored(
                stored,
                &parts.headers,
                head,
                age,
                &status,
                &shared.config.name,
            ))
        }
        _ => None,
    }
}

/// The answer to a `GET` with `Range` from a stored response that may be reused: a `206` of the
/// range, a `416` problem, or — a stored status other than `200`, a client's conditional that
/// matched, an `If-Range` that does not hold, a `Range` to ignore — what
/// [`from_stored`] answers.
pub(super) fn from_stored_range<B>(
    stored: &StoredResponse,
    parts: &request::Parts,
    age: Duration,
    status: &CacheStatus,
    name: &str,
) -> Response<CacheBody<B>> {
    let res = from_stored(stored, &parts.headers, false, age, status, name);
    if res.status() != StatusCode::OK
        || stored.status != StatusCode::OK
        || !if_range_holds(&parts.headers, &stored.headers)
    {
        return res;
    }
    let len = stored.body.len() as u64;
    let range = parts
        .headers
        .get(RANGE)
        .and_then(|v| v.to_str().ok())
        .map_or(ByteRange::Whole, |v| byte_range(v, len));
    match range {
        ByteRange::Whole => res,
        ByteRange::Span(first, last) => {
            let (mut head, _) = res.into_parts();
            head.status = StatusCode::PARTIAL_CONTENT;
            let content_range = format!("bytes {first}-{last}/{len}");
            if let Ok(v) = HeaderValue::try_from(content_range) {
                head.headers.insert(CONTENT_RANGE, v);
            }
            head.headers
                .insert(CONTENT_LENGTH, HeaderValue::from(last - first + 1));
            let (first, last) = (
                usize::try_from(first).unwrap_or(usize::MAX),
                usize::try_from(last).unwrap_or(usize::MAX),
            );
            Response::from_parts(head, CacheBody::full(stored.body.slice(first..=last)))
        }
        ByteRange::Unsatisfiable => {
            let mut res = Problem::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                code::CACHE_RANGE_NOT_SATISFIABLE,
            )
            .with_detail("No range of the request starts within the representation.")
            .render_for(&parts.extensions)
            .map(CacheBody::full);
            if let Ok(v) = HeaderValue::try_from(format!("bytes */{len}")) {
                res.headers_mut().insert(CONTENT_RANGE, v);
            }
            res.headers_mut().insert(http::header::AGE, age_value(age));
            status_header(&mut res, status, name);
            res
        }
    }
}
