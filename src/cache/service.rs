use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use http::header::{HOST, RANGE};
use http::{Method, Request, Response, request};
use tower_service::Service;

use super::body::CacheBody;
use super::bounds::CacheableService;
use super::hit::{
    Found, Keys, call, fresh_hit, from_stored, from_stored_range, lookup, lookup_l1,
    only_if_cached, pass_through, ttl,
};
use super::origin::{Origin, miss, spawn_refresh};
use super::policy::control::CacheControl;
use super::policy::invalidation::invalidation_targets;
use super::policy::key::normalize_uri;
use super::policy::reuse::{Reuse, reuse};
use super::policy::status::{CacheStatus, Forward};
use super::state::Shared;
use super::store::Purge;

/// The response future of [`Cache`]: its error is the inner service's, `E`.
///
/// A fresh hit in the in-process tier is answered by `call` itself, ready on the first poll
/// with nothing boxed and the inner service not cloned; everything else runs boxed.
pub type ResponseFuture<B, E> =
    crate::response::ResponseFuture<std::future::Pending<Result<Response<B>, E>>, B, E>;

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
    pub(crate) shared: Arc<Shared>,
}

impl<S> Cache<S> {
    crate::macros::inner_service_accessors!();
}

impl<S, ReqBody> Service<Request<ReqBody>> for Cache<S>
where
    S: CacheableService<ReqBody>,
    ReqBody: Default + Send + 'static,
{
    type Response = Response<CacheBody<S::ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let (mut parts, body) = req.into_parts();
        let step = prepare(&self.shared, &mut parts);
        if let Step::Lookup {
            found: Some(Found::Hit(_, stored)),
            range: false,
            ..
        } = &step
            && let Some(res) = fresh_hit(&self.shared, stored, &parts, false)
        {
            return ResponseFuture::ready(res);
        }
        let inner = crate::response::take_ready(&mut self.inner);
        ResponseFuture::boxed(Box::pin(run(self.shared.clone(), inner, parts, body, step)))
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
fn prepare(shared: &Shared, parts: &mut request::Parts) -> Step {
    let head = parts.method == Method::HEAD;
    if parts.method != Method::GET && !head {
        return Step::Unsafe;
    }
    // Most requests carry none of them: look before removing (each removal hashes the name).
    if shared.config.unkeyed.any_in(&parts.headers) {
        for name in shared.config.unkeyed.iter() {
            parts.headers.remove(name);
        }
    }
    let Some(keys) = Keys::for_request(shared, parts) else {
        return Step::Bypass;
    };
    // Range is defined for `GET` alone (RFC 9110 §14.2): a `HEAD` ignores it.
    let range = !head && parts.headers.contains_key(RANGE);
    let found = lookup_l1(shared, &keys, &parts.headers);
    Step::Lookup { keys, found, range }
}

async fn run<S, ReqBody>(
    shared: Arc<Shared>,
    mut inner: S,
    parts: request::Parts,
    body: ReqBody,
    step: Step,
) -> Result<Response<CacheBody<S::ResBody>>, S::Error>
where
    S: CacheableService<ReqBody>,
    ReqBody: Default + Send + 'static,
{
    let head = parts.method == Method::HEAD;
    let (keys, found, range) = match step {
        Step::Unsafe => return Box::pin(unsafe_method(&shared, inner, parts, body)).await,
        Step::Bypass => {
            let res = Box::pin(call(&mut inner, Request::from_parts(parts, body))).await?;
            return Ok(pass_through(
                res,
                &CacheStatus::forward(Forward::Bypass),
                &shared.config.name,
            ));
        }
        Step::Lookup { keys, found, range } => (keys, found, range),
    };
    let req_cc = CacheControl::from_headers(&parts.headers);
    let found = match found {
        Some(hit) => hit,
        None if passing(&shared, &keys) => {
            if req_cc.only_if_cached {
                return Ok(only_if_cached(&parts, &shared.config.name));
            }
            if range {
                let res = Box::pin(call(&mut inner, Request::from_parts(parts, body))).await?;
                return Ok(pass_through(
                    res,
                    &CacheStatus::forward(Forward::UriMiss),
                    &shared.config.name,
                ));
            }
            shared.state.stats.misses.fetch_add(1, Ordering::Relaxed);
            let origin = Origin {
                shared: &shared,
                keys: &keys,
                why: Forward::UriMiss,
                collapsed: false,
                since: shared.state.purges.seq(),
            };
            return Box::pin(origin.forward(inner, parts, body)).await;
        }
        None => Box::pin(lookup(&shared, &keys, &parts.headers)).await,
    };
    let fwd = match found {
        Found::Hit(which, stored) => {
            let key = keys.of(&which);
            let age = stored.age(shared.config.clock.now());
            let name = &*shared.config.name;
            let answer = |status: &CacheStatus| {
                if range {
                    from_stored_range(&stored, &parts, age, status, name)
                } else {
                    from_stored(&stored, &parts.headers, head, age, status, name)
                }
            };
            let decision = reuse(&req_cc, &stored.cc, stored.scope, stored.lifetime, age);
            match decision {
                Reuse::Fresh | Reuse::StaleAccepted => {
                    shared.state.stats.hits.fetch_add(1, Ordering::Relaxed);
                    let status = CacheStatus::hit(Some(ttl(&stored, age)));
                    return Ok(answer(&status));
                }
                Reuse::StaleWhileRevalidate => {
                    shared.state.stats.hits.fetch_add(1, Ordering::Relaxed);
                    shared
                        .state
                        .stats
                        .stale_served
                        .fetch_add(1, Ordering::Relaxed);
                    spawn_refresh(&shared, inner, &parts, &keys, key, &stored);
                    let status =
                        CacheStatus::hit(Some(ttl(&stored, age))).detail("stale-while-revalidate");
                    return Ok(answer(&status));
                }
                Reuse::Revalidate { stale_if_error } => {
                    if req_cc.only_if_cached {
                        return Ok(only_if_cached(&parts, &shared.config.name));
                    }
                    let why = if age >= stored.lifetime {
                        Forward::Stale
                    } else {
                        Forward::Request
                    };
                    if range {
                        let res =
                            Box::pin(call(&mut inner, Request::from_parts(parts, body))).await?;
                        return Ok(pass_through(
                            res,
                            &CacheStatus::forward(why),
                            &shared.config.name,
                        ));
                    }
                    shared.state.stats.misses.fetch_add(1, Ordering::Relaxed);
                    let origin = Origin {
                        shared: &shared,
                        keys: &keys,
                        why,
                        collapsed: false,
                        since: shared.state.purges.seq(),
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
        return Ok(only_if_cached(&parts, &shared.config.name));
    }
    if head || range {
        let why = if head { Forward::Method } else { fwd };
        let res = Box::pin(call(&mut inner, Request::from_parts(parts, body))).await?;
        return Ok(pass_through(
            res,
            &CacheStatus::forward(why),
            &shared.config.name,
        ));
    }
    Box::pin(miss(&shared, inner, parts, body, &keys, fwd)).await
}

/// Whether the key is in a hit-for-pass window.
fn passing(shared: &Shared, keys: &Keys) -> bool {
    shared
        .state
        .pass
        .get(keys.flight().as_str())
        .is_some_and(|until| shared.config.clock.now() < until)
}

/// An unsafe method: passed through; on success, what it changed is invalidated (RFC 9111 §4.4).
async fn unsafe_method<S, ReqBody, ResBody>(
    shared: &Shared,
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
    let ticket = super::put::Ticket::now(shared);
    let mut res = call(&mut inner, Request::from_parts(parts, body)).await?;
    let through = res.extensions_mut().remove::<super::WriteThrough>();
    if let Some(meta) = meta {
        let targets = invalidation_targets(&meta, res.status(), res.headers());
        let host = meta.headers.get(HOST);
        let what: Vec<Purge> = targets
            .iter()
            .filter_map(|t| normalize_uri(t, host, &shared.config.scheme))
            .map(Purge::Uri)
            .collect();
        if let Some(through) = through {
            let through = through.only_purges_unless(res.status().is_success());
            super::put::apply(shared, ticket, what, through).await;
            return Ok(pass_through(
                res,
                &CacheStatus::forward(Forward::Method),
                &shared.config.name,
            ));
        }
        for w in &what {
            shared.state.purges.purge(&shared.state.l1, w);
        }
        if let Some(tier) = &shared.config.tier {
            for w in &what {
                tier.invalidate(w).await;
                shared.state.purges.purge(&shared.state.l1, w);
            }
        }
    }
    Ok(pass_through(
        res,
        &CacheStatus::forward(Forward::Method),
        &shared.config.name,
    ))
}
