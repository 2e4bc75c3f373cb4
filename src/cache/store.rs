//! What a tier holds ([`StoredResponse`], [`CacheEntry`], and their compact encoding), what to
//! invalidate ([`Purge`]), and the [`CacheTier`] trait a second tier implements (the
//! Redis tier of feature `redis`, or [`MemoryTier`](super::MemoryTier) in tests). The
//! in-process tier is in `l1.rs`.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use super::policy::control::CacheControl;
use super::policy::freshness::{
    DEFAULT_HEURISTIC_CAP, current_age, freshness_lifetime_with, initial_age,
};
use super::policy::key::{is_variant_key, key_uri, path_and_query};
use super::policy::storable::Scope;
use super::policy::targeted::Directives;

/// A boxed, sendable future, as the [`CacheTier`] methods return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A stored response: status, the headers that may be stored, the body, and what freshness needs.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use bytes::Bytes;
/// use http::{HeaderMap, StatusCode};
/// use protothrive::cache::StoredResponse;
/// use protothrive::cache::policy::Scope;
///
/// let mut headers = HeaderMap::new();
/// headers.insert("cache-control", "max-age=60".parse().unwrap());
/// let t = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
/// let stored = StoredResponse::new(StatusCode::OK, headers, Bytes::from("hi"), t, t, Scope::Shared)
///     .with_tags(vec!["snippets".into()]);
/// let copy = StoredResponse::decode(&stored.encode()).unwrap();
/// assert_eq!(copy.body(), "hi");
/// assert_eq!(copy.tags(), ["snippets"]);
/// assert_eq!(copy.lifetime(), Duration::from_secs(60));
/// ```
#[derive(Clone)]
pub struct StoredResponse {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
    pub(crate) request_time: SystemTime,
    pub(crate) response_time: SystemTime,
    pub(crate) initial_age: Duration,
    pub(crate) lifetime: Duration,
    pub(crate) scope: Scope,
    pub(crate) tags: Vec<String>,
    /// The directives that govern it here (a targeted field's, RFC 9213, or `Cache-Control`'s).
    pub(crate) cc: CacheControl,
    /// The targeted field they come from, if any (kept in the encoding: a tier's reader need not
    /// share the writer's target list).
    pub(crate) targeted: Option<HeaderName>,
    weight: u32,
}

impl fmt::Debug for StoredResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredResponse")
            .field("status", &self.status)
            .field("headers", &self.headers.len())
            .field("body", &self.body.len())
            .field("lifetime", &self.lifetime)
            .field("scope", &self.scope)
            .field("tags", &self.tags)
            .finish_non_exhaustive()
    }
}

fn headers_weight(h: &HeaderMap) -> usize {
    h.iter().map(|(n, v)| n.as_str().len() + v.len() + 8).sum()
}

impl StoredResponse {
    /// A response received at `response_time` for a request sent at `request_time`; its age and
    /// freshness lifetime are computed here (RFC 9111 §4.2) with the default heuristic cap.
    #[must_use]
    pub fn new(
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
        request_time: SystemTime,
        response_time: SystemTime,
        scope: Scope,
    ) -> Self {
        Self::with_cap(
            status,
            headers,
            body,
            (request_time, response_time),
            scope,
            (DEFAULT_HEURISTIC_CAP, &[]),
        )
    }

    /// With the heuristic cap and the target list (RFC 9213) of the layer.
    pub(crate) fn with_cap(
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
        (request_time, response_time): (SystemTime, SystemTime),
        scope: Scope,
        (cap, targets): (Duration, &[HeaderName]),
    ) -> Self {
        let mut s = Self {
            status,
            headers,
            body,
            request_time,
            response_time,
            initial_age: Duration::ZERO,
            lifetime: Duration::ZERO,
            scope,
            tags: Vec::new(),
            cc: CacheControl::default(),
            targeted: None,
            weight: 0,
        };
        s.refresh(cap, targets);
        s
    }

    /// Recomputes what derives from the headers and times (after a 304 or a `HEAD` merged new
    /// headers).
    pub(crate) fn refresh(&mut self, cap: Duration, targets: &[HeaderName]) {
        let directives = Directives::of(&self.headers, targets);
        self.initial_age = initial_age(&self.headers, self.request_time, self.response_time);
        let parts = {
            let mut r = http::Response::new(());
            *r.status_mut() = self.status;
            let (mut parts, ()) = r.into_parts();
            parts.headers = std::mem::take(&mut self.headers);
            parts
        };
        self.lifetime =
            freshness_lifetime_with(&parts, &directives, self.scope, self.response_time, cap);
        self.headers = parts.headers;
        self.cc = directives.cc;
        self.targeted = directives.field;
        self.weight = u32::try_from(
            self.body.len()
                + headers_weight(&self.headers)
                + self.tags.iter().map(String::len).sum::<usize>()
                + 160,
        )
        .unwrap_or(u32::MAX);
    }

    /// The same response carrying surrogate-key `tags`.
    #[must_use]
    pub fn with_tags(mut self, tags: Vec<String>) -> Self {
        self.weight = self.weight.saturating_add(
            u32::try_from(tags.iter().map(String::len).sum::<usize>()).unwrap_or(u32::MAX),
        );
        self.tags = tags;
        self
    }

    /// The status.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The stored header fields.
    #[must_use]
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The body.
    #[must_use]
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The surrogate-key tags.
    #[must_use]
    pub fn tags(&self) -> &[String] {
        &self.tags
    }

    /// The freshness lifetime (RFC 9111 §4.2.1).
    #[must_use]
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// The scope it was stored for.
    #[must_use]
    pub fn scope(&self) -> Scope {
        self.scope
    }

    /// The current age at `now` (RFC 9111 §4.2.3).
    #[must_use]
    pub fn age(&self, now: SystemTime) -> Duration {
        current_age(self.initial_age, self.response_time, now)
    }

    /// Whether it carries a validator (`ETag` or `Last-Modified`) to revalidate with.
    #[must_use]
    pub fn has_validator(&self) -> bool {
        self.headers.contains_key(http::header::ETAG)
            || self.headers.contains_key(http::header::LAST_MODIFIED)
    }

    /// How long from `now` it can still be of use: fresh, within `stale-while-revalidate` or
    /// `stale-if-error`, or — with a validator — `grace` more for a conditional revalidation.
    /// This is the TTL to give an L2 tier.
    #[must_use]
    pub fn useful_for(&self, now: SystemTime, grace: Duration) -> Duration {
        let window = |w: Option<u32>| Duration::from_secs(u64::from(w.unwrap_or(0)));
        let mut extra = window(self.cc.stale_while_revalidate).max(window(self.cc.stale_if_error));
        if self.has_validator() {
            extra = extra.max(grace);
        }
        (self.lifetime + extra).saturating_sub(self.age(now))
    }

    /// The weight in the L1 tier: body, headers and tags in bytes, plus a fixed overhead.
    #[must_use]
    pub fn weight(&self) -> u64 {
        u64::from(self.weight)
    }

    /// A compact binary encoding for an L2 tier (version byte, then length-prefixed fields; version
    /// 2 ends with the name of the targeted field that governs it).
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.weight as usize);
        out.push(if self.targeted.is_some() { 2 } else { 1 });
        out.extend_from_slice(&self.status.as_u16().to_le_bytes());
        out.push(u8::from(self.scope == Scope::Partition));
        for t in [self.request_time, self.response_time] {
            let ms = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
            out.extend_from_slice(&u64::try_from(ms).unwrap_or(u64::MAX).to_le_bytes());
        }
        let put = |out: &mut Vec<u8>, b: &[u8]| {
            out.extend_from_slice(&u32::try_from(b.len()).unwrap_or(u32::MAX).to_le_bytes());
            out.extend_from_slice(b);
        };
        put(
            &mut out,
            &u32::try_from(self.tags.len()).unwrap_or(0).to_le_bytes(),
        );
        for t in &self.tags {
            put(&mut out, t.as_bytes());
        }
        put(
            &mut out,
            &u32::try_from(self.headers.len()).unwrap_or(0).to_le_bytes(),
        );
        for (n, v) in &self.headers {
            put(&mut out, n.as_str().as_bytes());
            put(&mut out, v.as_bytes());
        }
        put(&mut out, &self.body);
        if let Some(t) = &self.targeted {
            put(&mut out, t.as_str().as_bytes());
        }
        out
    }

    /// Reads [`encode`](Self::encode)'s output back; `None` for anything else.
    #[must_use]
    pub fn decode(mut b: &[u8]) -> Option<Self> {
        fn take<'a>(b: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
            if b.len() < n {
                return None;
            }
            let (head, tail) = b.split_at(n);
            *b = tail;
            Some(head)
        }
        fn field<'a>(b: &mut &'a [u8]) -> Option<&'a [u8]> {
            let len = u32::from_le_bytes(take(b, 4)?.try_into().ok()?) as usize;
            take(b, len)
        }
        fn count(b: &mut &[u8]) -> Option<u32> {
            Some(u32::from_le_bytes(field(b)?.try_into().ok()?))
        }
        let version = take(&mut b, 1)?[0];
        if !matches!(version, 1 | 2) {
            return None;
        }
        let status =
            StatusCode::from_u16(u16::from_le_bytes(take(&mut b, 2)?.try_into().ok()?)).ok()?;
        let scope = match take(&mut b, 1)?[0] {
            0 => Scope::Shared,
            1 => Scope::Partition,
            _ => return None,
        };
        let mut time = || -> Option<SystemTime> {
            let ms = u64::from_le_bytes(take(&mut b, 8)?.try_into().ok()?);
            UNIX_EPOCH.checked_add(Duration::from_millis(ms))
        };
        let (request_time, response_time) = (time()?, time()?);
        let mut tags = Vec::new();
        for _ in 0..count(&mut b)? {
            tags.push(String::from_utf8(field(&mut b)?.to_vec()).ok()?);
        }
        let n = count(&mut b)?;
        let mut headers = HeaderMap::with_capacity(n.min(64) as usize);
        for _ in 0..n {
            let name = HeaderName::from_bytes(field(&mut b)?).ok()?;
            let value = HeaderValue::from_bytes(field(&mut b)?).ok()?;
            headers.append(name, value);
        }
        let body = Bytes::copy_from_slice(field(&mut b)?);
        let targets = match version {
            2 => vec![HeaderName::from_bytes(field(&mut b)?).ok()?],
            _ => Vec::new(),
        };
        if !b.is_empty() {
            return None;
        }
        let times = (request_time, response_time);
        let policy = (DEFAULT_HEURISTIC_CAP, &targets[..]);
        Some(Self::with_cap(status, headers, body, times, scope, policy).with_tags(tags))
    }
}

/// One stored entry: a response, or the `Vary` header names of the responses stored for a URI
/// (each under the key extended with the request's values, [`CacheKey::with_vary`](super::policy::CacheKey::with_vary)).
#[derive(Debug, Clone)]
pub enum CacheEntry {
    /// A response.
    Response(Arc<StoredResponse>),
    /// The `Vary` names of this URI's responses.
    Vary(Arc<[HeaderName]>),
}

impl CacheEntry {
    /// A compact binary encoding for an L2 tier.
    ///
    /// ```
    /// use protothrive::cache::CacheEntry;
    /// let e = CacheEntry::Vary(vec!["accept".parse().unwrap()].into());
    /// assert!(matches!(CacheEntry::decode(&e.encode()), Some(CacheEntry::Vary(n)) if n[0] == "accept"));
    /// ```
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Self::Response(r) => {
                let mut v = vec![b'R'];
                v.extend_from_slice(&r.encode());
                v
            }
            Self::Vary(names) => {
                let mut v = vec![b'V'];
                for (i, n) in names.iter().enumerate() {
                    if i > 0 {
                        v.push(b',');
                    }
                    v.extend_from_slice(n.as_str().as_bytes());
                }
                v
            }
        }
    }

    /// Reads [`encode`](Self::encode)'s output back; `None` for anything else.
    #[must_use]
    pub fn decode(b: &[u8]) -> Option<Self> {
        match b.split_first()? {
            (b'R', rest) => Some(Self::Response(Arc::new(StoredResponse::decode(rest)?))),
            (b'V', rest) => {
                let names: Option<Vec<HeaderName>> = rest
                    .split(|&c| c == b',')
                    .map(|n| HeaderName::from_bytes(n).ok())
                    .collect();
                Some(Self::Vary(names?.into()))
            }
            _ => None,
        }
    }

    pub(crate) fn weight(&self) -> u64 {
        match self {
            Self::Response(r) => r.weight(),
            Self::Vary(n) => 64 + n.iter().map(|n| n.as_str().len() as u64 + 16).sum::<u64>(),
        }
    }

    fn has_tag(&self, tag: &str) -> bool {
        matches!(self, Self::Response(r) if r.tags.iter().any(|t| t == tag))
    }
}

/// What to invalidate in the HTTP cache's tiers ([`CacheHandle`](super::CacheHandle),
/// [`CacheTier::invalidate`]).
///
/// Keys are `GET <normalized URI>` (only `GET` responses are stored), then, when present,
/// `\x1fp=<partition>` and `\x1fv=<Vary values>`. So for a tier matching raw key strings:
/// `Uri("https://h/a")` is the key `GET https://h/a` and every key starting with it and `\x1f`;
/// an absolute `Prefix` is the raw prefix `GET <prefix>`; a path `Uri` or `Prefix` (starting
/// with `/`) matches the path after any `scheme://host`.
///
/// ```
/// use protothrive::cache::{CacheEntry, Purge};
/// let entry = CacheEntry::Vary(vec!["accept".parse().unwrap()].into());
/// let key = "GET https://api.example.com/roadmaps/7";
/// assert!(Purge::Uri("/roadmaps/7".into()).matches(key, &entry));
/// assert!(Purge::Prefix("https://api.example.com/roadmaps/".into()).matches(key, &entry));
/// assert!(!Purge::Uri("/roadmaps/70".into()).matches(key, &entry));
/// assert!(Purge::Key(key.into()).matches(&format!("{key}\u{1f}v=accept:json"), &entry));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Purge {
    /// One key ([`CacheKey::as_str`](super::policy::CacheKey::as_str)) and, when it is a primary key,
    /// its `Vary` variants (keys that continue with `\x1fv=`): without them, a new `Vary` marker
    /// would lead to the old variants again.
    Key(String),
    /// Every entry for a URI — every method, partition and `Vary` variant. An absolute URI is
    /// matched against the normalized URI; a path (`/a?b`) against every host's path and query.
    Uri(String),
    /// Every entry whose URI starts with this: an absolute prefix (`https://host/api/`) or a path
    /// prefix (`/api/roadmaps/`, every host).
    Prefix(String),
    /// Every key starting with this string, as it is (for keys that are not cache keys of URIs,
    /// such as [`DataCache`](super::DataCache)'s).
    KeyPrefix(String),
    /// Every response whose handler set this tag in `Surrogate-Key`.
    Tag(String),
    /// Everything (say, after a tier's invalidation broadcast may have been missed).
    All,
}

impl Purge {
    /// Whether the entry under `key` is invalidated.
    #[must_use]
    pub fn matches(&self, key: &str, entry: &CacheEntry) -> bool {
        let uri = key_uri(key);
        match self {
            Self::Key(k) => k == key || is_variant_key(key, k),
            Self::Uri(u) if u.starts_with('/') => path_and_query(uri) == u,
            Self::Uri(u) => uri == u,
            Self::Prefix(p) if p.starts_with('/') => path_and_query(uri).starts_with(p.as_str()),
            Self::Prefix(p) => uri.starts_with(p.as_str()),
            Self::KeyPrefix(p) => key.starts_with(p.as_str()),
            Self::Tag(t) => entry.has_tag(t),
            Self::All => true,
        }
    }
}

/// An asynchronous second tier (Redis) behind the in-process L1.
///
/// Object-safe: the layer holds an `Arc<dyn CacheTier>`. A tier never fails a request: an outage
/// reads as a miss and a failed write is dropped (count them inside the tier). Keys are
/// [`CacheKey`](super::policy::CacheKey) strings; [`CacheEntry::encode`] gives a compact value.
///
/// ```
/// use std::sync::Arc;
/// use protothrive::cache::{CacheTier, MemoryTier};
/// let tier: Arc<dyn CacheTier> = Arc::new(MemoryTier::default());
/// # let _ = tier;
/// ```
pub trait CacheTier: Send + Sync + fmt::Debug + 'static {
    /// The entry under `key`, if any.
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Option<CacheEntry>>;
    /// Stores `entry` under `key` for `ttl` (the stale windows included).
    fn put<'a>(&'a self, key: &'a str, entry: &'a CacheEntry, ttl: Duration) -> BoxFuture<'a, ()>;
    /// Removes `key`.
    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, ()>;
    /// Applies an invalidation to this tier (and, for a shared tier, tells the other instances to
    /// apply it to their L1 with [`CacheHandle::invalidate_local`](super::CacheHandle::invalidate_local)).
    /// The default handles [`Purge::Key`] with [`delete`](Self::delete) and nothing else.
    fn invalidate<'a>(&'a self, what: &'a Purge) -> BoxFuture<'a, ()> {
        match what {
            Purge::Key(k) => self.delete(k),
            _ => Box::pin(std::future::ready(())),
        }
    }
    /// A write-through ([`WriteThrough`](super::WriteThrough)): applies `purges`, then stores each
    /// of `puts` (key, entry, TTL) unless a purge of one of its keys or tags recorded since
    /// `since` (before the write reached the origin's data), other than these, says a newer
    /// write may have happened — the judging and the storing in one step no other purge can
    /// come between. Returns which it stored. The default applies the purges and stores
    /// nothing: a tier that cannot judge must not take them.
    fn write_through<'a>(
        &'a self,
        since: std::time::SystemTime,
        purges: &'a [Purge],
        puts: &'a [(String, CacheEntry, Duration)],
    ) -> BoxFuture<'a, Vec<bool>> {
        let _ = since;
        Box::pin(async move {
            for p in purges {
                self.invalidate(p).await;
            }
            vec![false; puts.len()]
        })
    }
    /// Resolves once every invalidation made so far has reached the tier (and, for a shared
    /// tier, the other instances): for a graceful shutdown. The default resolves at once.
    fn settled(&self) -> BoxFuture<'_, ()> {
        Box::pin(std::future::ready(()))
    }
}
