use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{HOST, RANGE};
use http::{Method, Request, Response, request};
use http_body::Body;
use tower_service::Service;

use super::body::CacheBody;
use super::config::{BoxError, Config};
use super::hit::*;
use super::key::{CacheKey, normalize_uri};
use super::origin::{Origin, miss, spawn_refresh};
use super::range::from_stored_range;
use super::store::Purge;
use super::{CacheControl, CacheStatus, Forward, Reuse, invalidation_targets, reuse};

type Boxed<B, E> = Pin<Box<dyn Future<Output = Result<Response<CacheBody<B>>, E>> + Send>>;

pin_project_lite::pin_project! {
    /// The response future of [`Cache`]: its error is the inner service's, `E`.
    ///
    /// A fresh hit in the in-process tier is answered by `call` itself, ready on the first poll
    /// with nothing boxed and the inner service not cloned; everything else runs boxed.
    pub struct ResponseFuture<B, E> {
        ready: Option<Response<CacheBody<B>>>,
        boxed: Option<Boxed<B, E>>,
    }
}

impl<B, E> ResponseFuture<B, E> {
    fn ready(res: Response<CacheBody<B>>) -> Self {
        Self {
            ready: Some(res),
            boxed: None,
        }
    }

    fn boxed(future: Boxed<B, E>) -> Self {
        Self {
            ready: None,
            boxed: Some(future),
        }
    }
}

impl<B, E> Future for ResponseFuture<B, E> {
    type Output = Result<Response<CacheBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Some(f) = this.boxed {
            return f.as_mut().poll(cx);
        }
        match this.ready.take() {
            Some(res) => Poll::Ready(Ok(res)),
            // Polled after completion, a breach of the future's contract: stay pending rather
            // than panic.
            None => Poll::Pending,
        }
    }
}

impl<B, E> std::fmt::Debug for ResponseFuture<B, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("ready", &self.ready.is_some())
            .finish_non_exhaustive()
    }
}

/// The service of [`CacheLayer`](super::CacheLayer) (the module docs have a full example).
///
/// It needs an inner service that is `Clone` (a background refresh and a coalesced request call
/// their own clone), a request body with a `Default` (the body of a background refresh), and a
/// response body of `Bytes`. Its error is the inner service's own, passed through unchanged; what
/// fails in the cache itself is answered with a problem response (a `502` when the origin's body
/// fails while it is buffered, a `504` for `only-if-cached`), never an error.
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
    S::Error: Send + 'static,
    ReqBody: Default + Send + 'static,
    ResBody: Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response<CacheBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let (mut parts, body) = req.into_parts();
        let step = prepare(&self.config, &mut parts);
        if let Step::Lookup {
            found: Some(Found::Hit(_, stored)),
            range: false,
            ..
        } = &step
            && let Some(res) = fresh_hit(&self.config, stored, &parts, false)
        {
            return ResponseFuture::ready(res);
        }
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::boxed(Box::pin(run(self.config.clone(), inner, parts, body, step)))
    }
}

/// What the synchronous first part of a request's handling found.
enum Step {
    /// An unsafe method: passed on, then what it changed is invalidated.
    Unsafe,
    /// Not cacheable as asked (no key): passed on untouched.
    Bypass,
    /// Keyed; `found` is the in-process tier's answer, `None` when it has none; `range` when a
    /// `GET` asks for a `Range` (answered from a stored complete response, never stored).
    Lookup {
        keys: Keys,
        found: Option<Found>,
        range: bool,
    },
}

/// Everything up to the in-process tier's lookup, done in `call` so a fresh hit costs no future.
fn prepare(cfg: &Config, parts: &mut request::Parts) -> Step {
    let head = parts.method == Method::HEAD;
    if parts.method != Method::GET && !head {
        return Step::Unsafe;
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
        return Step::Bypass;
    };
    // Range is defined for `GET` alone (RFC 9110 §14.2): a `HEAD` ignores it.
    let range = !head && parts.headers.contains_key(RANGE);
    let partition = cfg.partition.as_ref().and_then(|f| f(parts));
    let keys = Keys {
        partition: partition.map(|p| shared.in_partition(&p)),
        shared,
    };
    let found = lookup_l1(cfg, &keys, &parts.headers);
    Step::Lookup { keys, found, range }
}

async fn run<S, ReqBody, ResBody>(
    cfg: Arc<Config>,
    mut inner: S,
    parts: request::Parts,
    body: ReqBody,
    step: Step,
) -> Result<Response<CacheBody<ResBody>>, S::Error>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Default + Send + 'static,
    ResBody: Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    let head = parts.method == Method::HEAD;
    let (keys, found, range) = match step {
        Step::Unsafe => return Box::pin(unsafe_method(&cfg, inner, parts, body)).await,
        Step::Bypass => {
            let res = Box::pin(call(&mut inner, Request::from_parts(parts, body))).await?;
            return Ok(pass_through(res, &CacheStatus::forward(Forward::Bypass)));
        }
        Step::Lookup { keys, found, range } => (keys, found, range),
    };
    let req_cc = CacheControl::from_headers(&parts.headers);
    let found = match found {
        Some(hit) => hit,
        None if passing(&cfg, &keys) => {
            if req_cc.only_if_cached {
                return Ok(only_if_cached(&parts));
            }
            if range {
                let res = Box::pin(call(&mut inner, Request::from_parts(parts, body))).await?;
                return Ok(pass_through(res, &CacheStatus::forward(Forward::UriMiss)));
            }
            cfg.stats.misses.fetch_add(1, Ordering::Relaxed);
            let origin = Origin {
                cfg: &cfg,
                keys: &keys,
                why: Forward::UriMiss,
                collapsed: false,
                since: cfg.purges.seq(),
            };
            return Box::pin(origin.forward(inner, parts, body)).await;
        }
        None => Box::pin(lookup(&cfg, &keys, &parts.headers)).await,
    };
    let fwd = match found {
        Found::Hit(which, stored) => {
            let key = keys.of(&which);
            let age = stored.age(cfg.clock.now());
            let decision = reuse(&req_cc, &stored.cc, stored.scope, stored.lifetime, age);
            match decision {
                Reuse::Fresh | Reuse::StaleAccepted => {
                    cfg.stats.hits.fetch_add(1, Ordering::Relaxed);
                    let status = CacheStatus::hit(Some(ttl(&stored, age)));
                    if range {
                        return Ok(from_stored_range(&stored, &parts, age, &status));
                    }
                    return Ok(from_stored(&stored, &parts.headers, head, age, &status));
                }
                Reuse::StaleWhileRevalidate => {
                    cfg.stats.hits.fetch_add(1, Ordering::Relaxed);
                    cfg.stats.stale_served.fetch_add(1, Ordering::Relaxed);
                    spawn_refresh(&cfg, inner, &parts, &keys, key, &stored);
                    let status =
                        CacheStatus::hit(Some(ttl(&stored, age))).detail("stale-while-revalidate");
                    if range {
                        return Ok(from_stored_range(&stored, &parts, age, &status));
                    }
                    return Ok(from_stored(&stored, &parts.headers, head, age, &status));
                }
                Reuse::Revalidate { stale_if_error } => {
                    if req_cc.only_if_cached {
                        return Ok(only_if_cached(&parts));
                    }
                    let why = if age >= stored.lifetime {
                        Forward::Stale
                    } else {
                        Forward::Request
                    };
                    if range {
                        let res =
                            Box::pin(call(&mut inner, Request::from_parts(parts, body))).await?;
                        return Ok(pass_through(res, &CacheStatus::forward(why)));
                    }
                    cfg.stats.misses.fetch_add(1, Ordering::Relaxed);
                    let origin = Origin {
                        cfg: &cfg,
                        keys: &keys,
                        why,
                        collapsed: false,
                        since: cfg.purges.seq(),
                    };
                    if head {
                        return Box::pin(origin.head(inner, parts, body, key, &stored)).await;
                    }
                    return Box::pin(origin.revalidate(
                        inner,
                        parts,
                        body,
                        key,
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
    if head || range {
        let why = if head { Forward::Method } else { fwd };
        let res = Box::pin(call(&mut inner, Request::from_parts(parts, body))).await?;
        return Ok(pass_through(res, &CacheStatus::forward(why)));
    }
    Box::pin(miss(&cfg, inner, parts, body, &keys, fwd)).await
}

/// Whether the key is in a hit-for-pass window.
fn passing(cfg: &Config, keys: &Keys) -> bool {
    cfg.pass
        .get(keys.flight().as_str())
        .is_some_and(|until| cfg.clock.now() < until)
}

/// An unsafe method: passed through; on success, what it changed is invalidated (RFC 9111 §4.4).
async fn unsafe_method<S, ReqBody, ResBody>(
    cfg: &Config,
    mut inner: S,
    parts: request::Parts,
    body: ReqBody,
) -> Result<Response<CacheBody<ResBody>>, S::Error>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
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
    let ticket = super::put::Ticket::now(cfg);
    let mut res = call(&mut inner, Request::from_parts(parts, body)).await?;
    let through = res.extensions_mut().remove::<super::WriteThrough>();
    if let Some(meta) = meta {
        let targets = invalidation_targets(&meta, res.status(), res.headers());
        let host = meta.headers.get(HOST);
        let what: Vec<Purge> = targets
            .iter()
            .filter_map(|t| normalize_uri(t, host, &cfg.scheme))
            .map(Purge::Uri)
            .collect();
        if let Some(through) = through {
            let through = through.only_purges_unless(res.status().is_success());
            super::put::apply(cfg, ticket, what, through).await;
            return Ok(pass_through(res, &CacheStatus::forward(Forward::Method)));
        }
        for w in &what {
            cfg.purges.purge(&cfg.l1, w);
        }
        if let Some(tier) = &cfg.tier {
            for w in &what {
                tier.invalidate(w).await;
                cfg.purges.purge(&cfg.l1, w);
            }
        }
    }
    Ok(pass_through(res, &CacheStatus::forward(Forward::Method)))
}
