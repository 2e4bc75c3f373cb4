use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use http::header::{
    CACHE_CONTROL, CONTENT_LENGTH, CONTENT_LOCATION, DATE, ETAG, EXPIRES, HOST, IF_MODIFIED_SINCE,
    IF_NONE_MATCH, LAST_MODIFIED, RANGE, VARY,
};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, request};
use http_body::Body;
use http_body_util::BodyExt;
use tower_service::Service;

use super::body::CacheBody;
use super::key::{CacheKey, normalize_uri};
use super::layer::Config;
use super::store::{CacheEntry, Purge, StoredResponse, invalidate_l1};
use super::{
    CACHE_STATUS, CacheControl, CacheStatus, Forward, NotStorable, Reuse, SURROGATE_KEY, Scope,
    Vary, age_value, conditional_headers, invalidation_targets, merge_not_modified, not_modified,
    reuse, storable, strip_unstorable, surrogate_keys, validates, vary,
};
use crate::error::Problem;

/// The error of [`Cache`]: the inner service's or its body's, boxed.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The problem code of a `504` for `only-if-cached` with nothing usable stored.
pub const ONLY_IF_CACHED_CODE: &str = "CACHE-504";

/// The response future of [`Cache`].
pub type ResponseFuture<B> =
    Pin<Box<dyn Future<Output = Result<Response<CacheBody<B>>, BoxError>> + Send>>;

/// The service of [`CacheLayer`](super::CacheLayer) (the module docs have a full example).
///
/// It needs an inner service that is `Clone` (a background refresh and a coalesced request call
/// their own clone), a request body with a `Default` (the body of a background refresh), and a
/// response body of `Bytes`; its error is the inner service's or the body's, boxed.
///
/// ```
/// use std::convert::Infallible;
/// use http::{Request, Response};
/// use protothrive::cache::{Cache, CacheLayer};
/// use tower::{Layer, service_fn};
///
/// let inner = service_fn(|_: Request<()>| async {
///     Ok::<_, Infallible>(Response::new(http_body_util::Empty::<bytes::Bytes>::new()))
/// });
/// let svc: Cache<_> = CacheLayer::builder().build().unwrap().layer(inner);
/// let _inner = svc.into_inner();
/// ```
#[derive(Debug, Clone)]
pub struct Cache<S> {
    pub(crate) inner: S,
    pub(crate) config: Arc<Config>,
}

impl<S> Cache<S> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes the layer, returning the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Cache<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    ReqBody: Default + Send + 'static,
    ResBody: Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response<CacheBody<ResBody>>;
    type Error = BoxError;
    type Future = ResponseFuture<ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(run(self.config.clone(), inner, req))
    }
}

/// The shared and partition keys of a request.
#[derive(Clone)]
struct Keys {
    shared: CacheKey,
    partition: Option<CacheKey>,
}

impl Keys {
    /// The key concurrent misses coalesce on.
    fn flight(&self) -> &CacheKey {
        self.partition.as_ref().unwrap_or(&self.shared)
    }
}

enum Found {
    Hit(CacheKey, Arc<StoredResponse>),
    VaryMiss,
    Miss,
}

async fn call<S, B, R>(inner: &mut S, req: Request<B>) -> Result<Response<R>, BoxError>
where
    S: Service<Request<B>, Response = Response<R>>,
    S::Error: Into<BoxError>,
{
    poll_fn(|cx| inner.poll_ready(cx))
        .await
        .map_err(Into::into)?;
    inner.call(req).await.map_err(Into::into)
}

fn clone_parts(p: &request::Parts) -> request::Parts {
    let (mut c, ()) = Request::new(()).into_parts();
    c.method = p.method.clone();
    c.uri = p.uri.clone();
    c.version = p.version;
    c.headers = p.headers.clone();
    c.extensions = p.extensions.clone();
    c
}

fn status_header<B>(res: &mut Response<B>, status: &CacheStatus) {
    res.headers_mut()
        .insert(CACHE_STATUS.clone(), status.header_value());
}

fn ttl(stored: &StoredResponse, age: Duration) -> i64 {
    let secs = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
    secs(stored.lifetime) - secs(age)
}

async fn get(cfg: &Config, key: &str) -> Option<CacheEntry> {
    if let Some(e) = cfg.l1.get(key) {
        return Some(e);
    }
    let entry = cfg.tier.as_ref()?.get(key).await?;
    cfg.l1.insert(key.to_owned(), entry.clone());
    Some(entry)
}

async fn find(cfg: &Config, key: &CacheKey, headers: &HeaderMap) -> Found {
    match get(cfg, key.as_str()).await {
        None => Found::Miss,
        Some(CacheEntry::Response(r)) => Found::Hit(key.clone(), r),
        Some(CacheEntry::Vary(names)) => {
            let variant = key.with_vary(&names, headers);
            match get(cfg, variant.as_str()).await {
                Some(CacheEntry::Response(r)) => Found::Hit(variant, r),
                _ => Found::VaryMiss,
            }
        }
    }
}

/// A hit in L1, found without awaiting anything (the common case).
fn find_l1(cfg: &Config, key: &CacheKey, headers: &HeaderMap) -> Option<Found> {
    match cfg.l1.get(key.as_str())? {
        CacheEntry::Response(r) => Some(Found::Hit(key.clone(), r)),
        CacheEntry::Vary(names) => {
            let variant = key.with_vary(&names, headers);
            match cfg.l1.get(variant.as_str())? {
                CacheEntry::Response(r) => Some(Found::Hit(variant, r)),
                CacheEntry::Vary(_) => None,
            }
        }
    }
}

fn lookup_l1(cfg: &Config, keys: &Keys, headers: &HeaderMap) -> Option<Found> {
    if let Some(p) = &keys.partition
        && let Some(hit) = find_l1(cfg, p, headers)
    {
        return Some(hit);
    }
    find_l1(cfg, &keys.shared, headers)
}

async fn lookup(cfg: &Config, keys: &Keys, headers: &HeaderMap) -> Found {
    let mut first = Found::Miss;
    if let Some(p) = &keys.partition {
        first = find(cfg, p, headers).await;
        if matches!(first, Found::Hit(..)) {
            return first;
        }
    }
    match find(cfg, &keys.shared, headers).await {
        Found::Miss => first,
        other => other,
    }
}

/// A response from a stored one: a 304 when the client's own conditional matches.
fn from_stored<B>(
    stored: &StoredResponse,
    req: &HeaderMap,
    head: bool,
    age: Duration,
    status: &CacheStatus,
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
        *res.headers_mut() = stored.headers.clone();
        res
    };
    res.headers_mut().insert(http::header::AGE, age_value(age));
    status_header(&mut res, status);
    res
}

fn only_if_cached<B>(parts: &request::Parts) -> Response<CacheBody<B>> {
    let mut res = Problem::new(StatusCode::GATEWAY_TIMEOUT, ONLY_IF_CACHED_CODE)
        .with_detail("The request allows only a cached response (only-if-cached) and none fits.")
        .render_for(&parts.extensions)
        .map(CacheBody::full);
    status_header(
        &mut res,
        &CacheStatus::forward(Forward::Request).detail("only-if-cached"),
    );
    res
}

fn pass_through<B>(mut res: Response<B>, status: &CacheStatus) -> Response<CacheBody<B>> {
    res.headers_mut().remove(&SURROGATE_KEY);
    status_header(&mut res, status);
    res.map(CacheBody::inner)
}

async fn run<S, ReqBody, ResBody>(
    cfg: Arc<Config>,
    mut inner: S,
    req: Request<ReqBody>,
) -> Result<Response<CacheBody<ResBody>>, BoxError>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    ReqBody: Default + Send + 'static,
    ResBody: Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    let (mut parts, body) = req.into_parts();
    let head = parts.method == Method::HEAD;
    if parts.method != Method::GET && !head {
        return Box::pin(unsafe_method(&cfg, inner, parts, body)).await;
    }
    // Most requests carry none of them: look before removing (each removal hashes the name).
    if parts
        .headers
        .keys()
        .any(|k| cfg.unkeyed.iter().any(|u| u == k))
    {
        for name in &cfg.unkeyed {
            parts.headers.remove(name);
        }
    }
    let Some(shared) =
        CacheKey::for_request(&Method::GET, &parts.uri, &parts.headers, &cfg.scheme, None)
    else {
        let res = Box::pin(call(&mut inner, Request::from_parts(parts, body))).await?;
        return Ok(pass_through(res, &CacheStatus::forward(Forward::Bypass)));
    };
    if parts.headers.contains_key(RANGE) {
        let res = Box::pin(call(&mut inner, Request::from_parts(parts, body))).await?;
        return Ok(pass_through(res, &CacheStatus::forward(Forward::Bypass)));
    }
    let partition = cfg.partition.as_ref().and_then(|f| f(&parts));
    let keys = Keys {
        partition: partition.map(|p| shared.in_partition(&p)),
        shared,
    };
    let req_cc = CacheControl::from_headers(&parts.headers);
    let found = match lookup_l1(&cfg, &keys, &parts.headers) {
        Some(hit) => hit,
        None if passing(&cfg, &keys) => {
            if req_cc.only_if_cached {
                return Ok(only_if_cached(&parts));
            }
            cfg.stats.misses.fetch_add(1, Ordering::Relaxed);
            let origin = Origin {
                cfg: &cfg,
                keys: &keys,
                why: Forward::UriMiss,
                collapsed: false,
            };
            return Box::pin(origin.forward(inner, parts, body)).await;
        }
        None => Box::pin(lookup(&cfg, &keys, &parts.headers)).await,
    };
    let fwd = match found {
        Found::Hit(key, stored) => {
            let age = stored.age(cfg.clock.now());
            let decision = reuse(&req_cc, &stored.cc, stored.scope, stored.lifetime, age);
            match decision {
                Reuse::Fresh | Reuse::StaleAccepted => {
                    cfg.stats.hits.fetch_add(1, Ordering::Relaxed);
                    let status = CacheStatus::hit(Some(ttl(&stored, age)));
                    return Ok(from_stored(&stored, &parts.headers, head, age, &status));
                }
                Reuse::StaleWhileRevalidate => {
                    cfg.stats.hits.fetch_add(1, Ordering::Relaxed);
                    cfg.stats.stale_served.fetch_add(1, Ordering::Relaxed);
                    spawn_refresh(&cfg, inner, &parts, &keys, &key, &stored);
                    let status =
                        CacheStatus::hit(Some(ttl(&stored, age))).detail("stale-while-revalidate");
                    return Ok(from_stored(&stored, &parts.headers, head, age, &status));
                }
                Reuse::Revalidate { stale_if_error } => {
                    if req_cc.only_if_cached {
                        return Ok(only_if_cached(&parts));
                    }
                    if head {
                        let res =
                            Box::pin(call(&mut inner, Request::from_parts(parts, body))).await?;
                        return Ok(pass_through(res, &CacheStatus::forward(Forward::Method)));
                    }
                    let why = if age >= stored.lifetime {
                        Forward::Stale
                    } else {
                        Forward::Request
                    };
                    cfg.stats.misses.fetch_add(1, Ordering::Relaxed);
                    let origin = Origin {
                        cfg: &cfg,
                        keys: &keys,
                        why,
                        collapsed: false,
                    };
                    return Box::pin(origin.revalidate(
                        inner,
                        parts,
                        body,
                        &key,
                        stored,
                        stale_if_error,
                    ))
                    .await;
                }
            }
        }
        Found::VaryMiss => Forward::VaryMiss,
        Found::Miss => Forward::UriMiss,
    };
    if req_cc.only_if_cached {
        return Ok(only_if_cached(&parts));
    }
    if head {
        let res = Box::pin(call(&mut inner, Request::from_parts(parts, body))).await?;
        return Ok(pass_through(res, &CacheStatus::forward(Forward::Method)));
    }
    Box::pin(miss(&cfg, inner, parts, body, &keys, fwd)).await
}

/// Whether the key is in a hit-for-pass window.
fn passing(cfg: &Config, keys: &Keys) -> bool {
    cfg.pass
        .get(keys.flight().as_str())
        .is_some_and(|until| cfg.clock.now() < until)
}

/// A miss: one origin call per key at a time; the others wait for it and read what it stored.
async fn miss<S, ReqBody, ResBody>(
    cfg: &Arc<Config>,
    inner: S,
    parts: request::Parts,
    body: ReqBody,
    keys: &Keys,
    fwd: Forward,
) -> Result<Response<CacheBody<ResBody>>, BoxError>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Error: Into<BoxError>,
    ResBody: Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    let mut collapsed = false;
    let _leader = match join(cfg, keys.flight().as_str()) {
        Join::Lead(leader) => {
            // The previous leader may have stored it between our lookup and now (in L1: asking
            // the tier again would cost every miss a second round trip).
            if let Some(Found::Hit(_, stored)) = lookup_l1(cfg, keys, &parts.headers)
                && let Some(res) = fresh_hit(cfg, &stored, &parts, false)
            {
                return Ok(res);
            }
            Some(leader)
        }
        Join::Wait(mut rx) => {
            let _ = rx.changed().await;
            cfg.stats.collapsed.fetch_add(1, Ordering::Relaxed);
            collapsed = true;
            if let Found::Hit(_, stored) = lookup(cfg, keys, &parts.headers).await
                && let Some(res) = fresh_hit(cfg, &stored, &parts, true)
            {
                return Ok(res);
            }
            None
        }
    };
    cfg.stats.misses.fetch_add(1, Ordering::Relaxed);
    let origin = Origin {
        cfg,
        keys,
        why: fwd,
        collapsed,
    };
    origin.forward(inner, parts, body).await
}

impl Origin<'_> {
    /// Sends the request on (without the client's own conditionals, answered here) and handles
    /// the response.
    async fn forward<S, ReqBody, ResBody>(
        &self,
        mut inner: S,
        parts: request::Parts,
        body: ReqBody,
    ) -> Result<Response<CacheBody<ResBody>>, BoxError>
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>>,
        S::Error: Into<BoxError>,
        ResBody: Body<Data = Bytes> + Send + 'static,
        ResBody::Error: Into<BoxError>,
    {
        let meta = clone_parts(&parts);
        let mut to_origin = parts;
        to_origin.headers.remove(IF_NONE_MATCH);
        to_origin.headers.remove(IF_MODIFIED_SINCE);
        let request_time = self.cfg.clock.now();
        let res = call(&mut inner, Request::from_parts(to_origin, body)).await?;
        self.respond(&meta, res, request_time).await
    }
}

fn fresh_hit<B>(
    cfg: &Config,
    stored: &StoredResponse,
    parts: &request::Parts,
    collapsed: bool,
) -> Option<Response<CacheBody<B>>> {
    let age = stored.age(cfg.clock.now());
    let req_cc = CacheControl::from_headers(&parts.headers);
    match reuse(&req_cc, &stored.cc, stored.scope, stored.lifetime, age) {
        Reuse::Fresh | Reuse::StaleAccepted => {
            cfg.stats.hits.fetch_add(1, Ordering::Relaxed);
            let status = CacheStatus::hit(Some(ttl(stored, age))).collapsed(collapsed);
            Some(from_stored(stored, &parts.headers, false, age, &status))
        }
        _ => None,
    }
}

enum Join {
    Lead(Leader),
    Wait(tokio::sync::watch::Receiver<()>),
}

/// The one request calling the origin for a key; dropping it (done, failed or cancelled) wakes
/// the waiters.
struct Leader {
    cfg: Arc<Config>,
    key: String,
    _tx: tokio::sync::watch::Sender<()>,
}

impl Drop for Leader {
    fn drop(&mut self) {
        let mut map = self
            .cfg
            .inflight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.remove(&self.key);
    }
}

fn join(cfg: &Arc<Config>, key: &str) -> Join {
    let mut map = cfg
        .inflight
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(rx) = map.get(key) {
        return Join::Wait(rx.clone());
    }
    let (tx, rx) = tokio::sync::watch::channel(());
    map.insert(key.to_owned(), rx);
    Join::Lead(Leader {
        cfg: cfg.clone(),
        key: key.to_owned(),
        _tx: tx,
    })
}

/// Starts one background revalidation for `key` (`stale-while-revalidate`), unless one runs.
fn spawn_refresh<S, ReqBody, ResBody>(
    cfg: &Arc<Config>,
    inner: S,
    parts: &request::Parts,
    keys: &Keys,
    key: &CacheKey,
    stored: &Arc<StoredResponse>,
) where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    ReqBody: Default + Send + 'static,
    ResBody: Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    {
        let mut running = cfg
            .refreshing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !running.insert(key.as_str().to_owned()) {
            return;
        }
    }
    let cfg = cfg.clone();
    let parts = clone_parts(parts);
    let keys = keys.clone();
    let key = key.clone();
    let stored = stored.clone();
    runtime.spawn(async move {
        struct Done(Arc<Config>, String);
        impl Drop for Done {
            fn drop(&mut self) {
                let mut running = self
                    .0
                    .refreshing
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                running.remove(&self.1);
            }
        }
        let _done = Done(cfg.clone(), key.as_str().to_owned());
        let origin = Origin {
            cfg: &cfg,
            keys: &keys,
            why: Forward::Stale,
            collapsed: false,
        };
        let _ = origin
            .revalidate(inner, parts, ReqBody::default(), &key, stored, false)
            .await;
    });
}

/// Handling of a request that reached the origin.
struct Origin<'a> {
    cfg: &'a Arc<Config>,
    keys: &'a Keys,
    why: Forward,
    collapsed: bool,
}

impl Origin<'_> {
    fn status(&self) -> CacheStatus {
        CacheStatus::forward(self.why).collapsed(self.collapsed)
    }

    /// Revalidates `stored` (RFC 9111 §4.3): a conditional request, a 304 merged in, a full
    /// response handled as a miss, an error or 5xx answered with `stored` within
    /// `stale-if-error`.
    async fn revalidate<S, ReqBody, ResBody>(
        &self,
        mut inner: S,
        parts: request::Parts,
        body: ReqBody,
        key: &CacheKey,
        stored: Arc<StoredResponse>,
        stale_if_error: bool,
    ) -> Result<Response<CacheBody<ResBody>>, BoxError>
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>>,
        S::Error: Into<BoxError>,
        ReqBody: Default,
        ResBody: Body<Data = Bytes> + Send + 'static,
        ResBody::Error: Into<BoxError>,
    {
        let cfg = self.cfg;
        let meta = clone_parts(&parts);
        let mut to_origin = parts;
        to_origin.headers.remove(IF_NONE_MATCH);
        to_origin.headers.remove(IF_MODIFIED_SINCE);
        let unconditional = clone_parts(&to_origin);
        to_origin
            .headers
            .extend(conditional_headers(&stored.headers));
        let request_time = cfg.clock.now();
        let stale = |fwd_status: Option<u16>| {
            cfg.stats.stale_served.fetch_add(1, Ordering::Relaxed);
            let age = stored.age(cfg.clock.now());
            let mut status = self
                .status()
                .detail("stale-if-error")
                .ttl(ttl(&stored, age));
            if let Some(s) = fwd_status {
                status = status.fwd_status(s);
            }
            Ok(from_stored(&stored, &meta.headers, false, age, &status))
        };
        let res = match call(&mut inner, Request::from_parts(to_origin, body)).await {
            Ok(res) => res,
            Err(_) if stale_if_error => return stale(None),
            Err(e) => return Err(e),
        };
        if res.status().is_server_error() && stale_if_error {
            return stale(Some(res.status().as_u16()));
        }
        if res.status() != StatusCode::NOT_MODIFIED {
            return self.respond(&meta, res, request_time).await;
        }
        if !validates(&stored.headers, res.headers()) {
            // A 304 about another representation: ask again without conditions.
            let request_time = cfg.clock.now();
            let res = call(
                &mut inner,
                Request::from_parts(unconditional, ReqBody::default()),
            )
            .await?;
            return self.respond(&meta, res, request_time).await;
        }
        let mut merged = StoredResponse::clone(&stored);
        merge_not_modified(&mut merged.headers, res.headers());
        merged.request_time = request_time;
        merged.response_time = cfg.clock.now();
        if !res.headers().contains_key(DATE)
            && let Ok(v) = HeaderValue::try_from(httpdate::fmt_http_date(merged.response_time))
        {
            merged.headers.insert(DATE, v);
        }
        merged.refresh(cfg.heuristic_cap);
        let merged = Arc::new(merged);
        self.put(key.as_str(), CacheEntry::Response(merged.clone()), None)
            .await;
        let age = merged.age(cfg.clock.now());
        let status = self
            .status()
            .fwd_status(304)
            .stored(true)
            .ttl(ttl(&merged, age));
        Ok(from_stored(&merged, &meta.headers, false, age, &status))
    }

    /// Remembers the key as not storable for a while, when the response (not this request)
    /// was why.
    fn remember_pass(&self, why: NotStorable, req: &request::Parts) {
        let cfg = self.cfg;
        let by_response = match why {
            NotStorable::NoStore => !CacheControl::from_headers(&req.headers).no_store,
            NotStorable::Private
            | NotStorable::SetCookie
            | NotStorable::VaryStar
            | NotStorable::Status => true,
            _ => false,
        };
        if by_response && !cfg.hit_for_pass.is_zero() {
            cfg.pass.insert(
                self.keys.flight().as_str().to_owned(),
                cfg.clock.now() + cfg.hit_for_pass,
            );
        }
    }

    /// Stores in L1 and the tier. A `Vary` marker lives in the tier as long as the `variant`
    /// response it leads to (each new variant stores it again).
    async fn put(&self, key: &str, entry: CacheEntry, variant: Option<&StoredResponse>) {
        let cfg = self.cfg;
        let ttl = match (&entry, variant) {
            (CacheEntry::Response(r), _) => r.useful_for(cfg.clock.now(), cfg.grace),
            (CacheEntry::Vary(_), Some(r)) => r.useful_for(cfg.clock.now(), cfg.grace),
            (CacheEntry::Vary(_), None) => Duration::ZERO,
        };
        cfg.l1.insert(key.to_owned(), entry.clone());
        if let Some(tier) = &cfg.tier {
            tier.put(key, &entry, ttl.max(Duration::from_secs(1))).await;
        }
    }

    /// Stores the origin's response when it may be, and answers with it.
    async fn respond<ResBody>(
        &self,
        req: &request::Parts,
        res: Response<ResBody>,
        request_time: SystemTime,
    ) -> Result<Response<CacheBody<ResBody>>, BoxError>
    where
        ResBody: Body<Data = Bytes> + Send + 'static,
        ResBody::Error: Into<BoxError>,
    {
        let cfg = self.cfg;
        let (mut rp, body) = res.into_parts();
        let tags = surrogate_keys(&rp.headers);
        rp.headers.remove(&SURROGATE_KEY);
        let status = self.status().fwd_status(rp.status.as_u16());
        let scope = match storable(req, &rp, self.keys.partition.is_some()) {
            Ok(scope) => scope,
            Err(why) => {
                self.remember_pass(why, req);
                return Ok(pass_through(Response::from_parts(rp, body), &status));
            }
        };
        let too_big = |n: u64| n > cfg.max_body as u64;
        let declared = rp
            .headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(too_big) || too_big(body.size_hint().lower()) {
            return Ok(pass_through(Response::from_parts(rp, body), &status));
        }
        let (data, trailers, rest) = buffer(body, cfg.max_body).await?;
        if let Some(rest) = rest {
            let mut res = Response::from_parts(rp, CacheBody::rest(data, rest));
            status_header(&mut res, &status);
            return Ok(res);
        }
        if trailers.is_some() {
            let mut res = Response::from_parts(rp, CacheBody::buffered(data, trailers));
            status_header(&mut res, &status);
            return Ok(res);
        }
        let response_time = cfg.clock.now();
        let mut headers = rp.headers.clone();
        strip_unstorable(&mut headers);
        if !headers.contains_key(DATE)
            && let Ok(v) = HeaderValue::try_from(httpdate::fmt_http_date(response_time))
        {
            headers.insert(DATE, v);
        }
        let stored = StoredResponse::with_cap(
            rp.status,
            headers,
            data.clone(),
            (request_time, response_time),
            scope,
            cfg.heuristic_cap,
        )
        .with_tags(tags);
        let worth = stored.lifetime > Duration::ZERO
            || stored.has_validator()
            || stored.cc.stale_if_error.is_some();
        let key = match scope {
            Scope::Partition => self.keys.partition.as_ref().unwrap_or(&self.keys.shared),
            Scope::Shared => &self.keys.shared,
        };
        let names = match vary(&rp.headers) {
            Vary::Names(n) => Some(n),
            Vary::None | Vary::Star => None,
        };
        if !worth {
            let mut res = Response::from_parts(rp, CacheBody::full(data));
            status_header(&mut res, &status);
            return Ok(res);
        }
        let stored = Arc::new(stored);
        match names {
            Some(names) => {
                let variant = key.with_vary(&names, &req.headers);
                self.put(key.as_str(), CacheEntry::Vary(names.into()), Some(&stored))
                    .await;
                self.put(variant.as_str(), CacheEntry::Response(stored.clone()), None)
                    .await;
            }
            None => {
                self.put(key.as_str(), CacheEntry::Response(stored.clone()), None)
                    .await;
            }
        }
        cfg.stats.stored.fetch_add(1, Ordering::Relaxed);
        cfg.pass.remove(self.keys.flight().as_str());
        let age = stored.age(response_time);
        let status = status.stored(true).ttl(ttl(&stored, age));
        Ok(from_stored(&stored, &req.headers, false, age, &status))
    }
}

type Buffered<B> = (Bytes, Option<HeaderMap>, Option<Pin<Box<B>>>);

/// Reads the body up to `max` bytes; past that, hands back what was read and the rest.
async fn buffer<B>(body: B, max: usize) -> Result<Buffered<B>, BoxError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let mut body = Box::pin(body);
    // One chunk (a `Full` body, a small response) is kept as it is, without a copy.
    let mut first: Option<Bytes> = None;
    let mut data = BytesMut::new();
    let mut len = 0;
    let mut trailers: Option<HeaderMap> = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(Into::into)?;
        match frame.into_data() {
            Ok(chunk) => {
                len += chunk.len();
                if first.is_none() && data.is_empty() {
                    first = Some(chunk);
                } else {
                    if let Some(f) = first.take() {
                        data.extend_from_slice(&f);
                    }
                    data.extend_from_slice(&chunk);
                }
                if len > max {
                    let read = first.take().unwrap_or_else(|| data.split().freeze());
                    return Ok((read, None, Some(body)));
                }
            }
            Err(frame) => {
                if let Ok(t) = frame.into_trailers() {
                    match &mut trailers {
                        Some(all) => all.extend(t),
                        None => trailers = Some(t),
                    }
                }
            }
        }
    }
    let read = first.unwrap_or_else(|| data.freeze());
    Ok((read, trailers, None))
}

/// An unsafe method: passed through; on success, what it changed is invalidated (RFC 9111 §4.4).
async fn unsafe_method<S, ReqBody, ResBody>(
    cfg: &Config,
    mut inner: S,
    parts: request::Parts,
    body: ReqBody,
) -> Result<Response<CacheBody<ResBody>>, BoxError>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Error: Into<BoxError>,
{
    let safe = matches!(parts.method, Method::OPTIONS | Method::TRACE);
    let meta = (!safe).then(|| {
        let (mut m, ()) = Request::new(()).into_parts();
        m.method = parts.method.clone();
        m.uri = parts.uri.clone();
        if let Some(h) = parts.headers.get(HOST) {
            m.headers.insert(HOST, h.clone());
        }
        m
    });
    let res = call(&mut inner, Request::from_parts(parts, body)).await?;
    if let Some(meta) = meta {
        let targets = invalidation_targets(&meta, res.status(), res.headers());
        let host = meta.headers.get(HOST);
        let what: Vec<Purge> = targets
            .iter()
            .filter_map(|t| normalize_uri(t, host, &cfg.scheme))
            .map(Purge::Uri)
            .collect();
        for w in &what {
            invalidate_l1(&cfg.l1, w);
        }
        if let Some(tier) = &cfg.tier {
            for w in &what {
                tier.invalidate(w).await;
            }
        }
    }
    Ok(pass_through(res, &CacheStatus::forward(Forward::Method)))
}
