//! The requests that reach the origin: coalesced misses, revalidation, background refresh,
//! and storing what comes back.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use http::header::{CONTENT_LENGTH, DATE, IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE, RANGE};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, request};
use http_body::Body;
use http_body_util::BodyExt;
use tower_service::Service;

use super::body::CacheBody;
use super::bounds::{CacheableBody, CacheableService};
use super::hit::{
    Found, Keys, call, clone_parts, fresh_hit, from_stored, lookup, lookup_l1, pass_through,
    status_header, ttl,
};
use super::policy::control::CacheControl;
use super::policy::key::CacheKey;
use super::policy::status::{CacheStatus, Forward};
use super::policy::storable::{NotStorable, Scope, storable_with};
use super::policy::targeted::Directives;
use super::policy::validate::{
    SURROGATE_KEY, conditional_headers, give_back, strip_listed, strip_unstorable, surrogate_keys,
    validates, withheld,
};
use super::policy::vary::{Vary, vary};
use super::state::{BoxError, Shared};
use super::store::{CacheEntry, StoredResponse};
use crate::coalesce::Join;
use crate::error::{Problem, code};

/// A miss: one origin call per key at a time; the others wait for it and read what it stored.
pub(super) async fn miss<S, ReqBody, ResBody>(
    shared: &Arc<Shared>,
    inner: S,
    parts: request::Parts,
    body: ReqBody,
    keys: &Keys,
    fwd: Forward,
) -> Result<Response<CacheBody<ResBody>>, S::Error>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: CacheableBody,
{
    let mut collapsed = false;
    let _leader = match shared.state.inflight.join(keys.flight().as_str()) {
        Join::Lead(leader) => {
            // The previous leader may have stored it between our lookup and now (in L1: asking
            // the tier again would cost every miss a second round trip).
            if let Some(Found::Hit(_, stored)) = lookup_l1(shared, keys, &parts.headers)
                && let Some(res) = fresh_hit(shared, &stored, &parts, false)
            {
                return Ok(res);
            }
            Some(leader)
        }
        Join::Wait(waiter) => {
            waiter.done().await;
            shared.state.stats.collapsed.fetch_add(1, Ordering::Relaxed);
            collapsed = true;
            if let Found::Hit(_, stored) = lookup(shared, keys, &parts.headers).await
                && let Some(res) = fresh_hit(shared, &stored, &parts, true)
            {
                return Ok(res);
            }
            None
        }
    };
    shared.state.stats.misses.fetch_add(1, Ordering::Relaxed);
    let origin = Origin {
        shared,
        keys,
        why: fwd,
        collapsed,
        since: shared.state.purges.seq(),
    };
    origin.forward(inner, parts, body).await
}

impl Origin<'_> {
    /// Sends the request on (without the client's own conditionals, answered here) and handles
    /// the response.
    pub(super) async fn forward<S, ReqBody, ResBody>(
        &self,
        mut inner: S,
        parts: request::Parts,
        body: ReqBody,
    ) -> Result<Response<CacheBody<ResBody>>, S::Error>
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>>,
        ResBody: CacheableBody,
    {
        let meta = clone_parts(&parts);
        let mut to_origin = parts;
        to_origin.headers.remove(IF_NONE_MATCH);
        to_origin.headers.remove(IF_MODIFIED_SINCE);
        let request_time = self.shared.config.clock.now();
        let res = call(&mut inner, Request::from_parts(to_origin, body)).await?;
        Ok(self.respond(&meta, res, request_time).await)
    }
}

/// Starts one background revalidation for `key` (`stale-while-revalidate`), unless one runs.
pub(super) fn spawn_refresh<S, ReqBody>(
    shared: &Arc<Shared>,
    inner: S,
    parts: &request::Parts,
    keys: &Keys,
    key: &CacheKey,
    stored: &Arc<StoredResponse>,
) where
    S: CacheableService<ReqBody>,
    ReqBody: Default + Send + 'static,
{
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let Some(leader) = shared.state.refreshing.try_lead(key.as_str()) else {
        return;
    };
    let shared = shared.clone();
    let parts = clone_parts(parts);
    let keys = keys.clone();
    let key = key.clone();
    let stored = stored.clone();
    runtime.spawn(async move {
        let _leader = leader;
        let origin = Origin {
            shared: &shared,
            keys: &keys,
            why: Forward::Stale,
            collapsed: false,
            since: shared.state.purges.seq(),
        };
        let _ = origin
            .revalidate(inner, parts, ReqBody::default(), &key, stored, false)
            .await;
    });
}

/// Handling of a request that reached the origin.
pub(super) struct Origin<'a> {
    pub(super) shared: &'a Arc<Shared>,
    pub(super) keys: &'a Keys,
    pub(super) why: Forward,
    pub(super) collapsed: bool,
    /// The purge log's number before the origin was asked: a purge after it that covers the
    /// response keeps it from being stored.
    pub(super) since: u64,
}

impl Origin<'_> {
    pub(super) fn status(&self) -> CacheStatus {
        CacheStatus::forward(self.why).collapsed(self.collapsed)
    }

    /// Revalidates `stored` (RFC 9111 §4.3): a conditional request, a 304 merged in, a full
    /// response handled as a miss, an error or 5xx answered with `stored` within
    /// `stale-if-error`.
    pub(super) async fn revalidate<S, ReqBody, ResBody>(
        &self,
        mut inner: S,
        parts: request::Parts,
        body: ReqBody,
        key: &CacheKey,
        stored: Arc<StoredResponse>,
        stale_if_error: bool,
    ) -> Result<Response<CacheBody<ResBody>>, S::Error>
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>>,
        ReqBody: Default,
        ResBody: CacheableBody,
    {
        let shared = self.shared;
        let meta = clone_parts(&parts);
        let mut to_origin = parts;
        // The whole stored response is revalidated, whatever part the client asked for.
        for name in [IF_NONE_MATCH, IF_MODIFIED_SINCE, RANGE, IF_RANGE] {
            to_origin.headers.remove(name);
        }
        let unconditional = clone_parts(&to_origin);
        to_origin
            .headers
            .extend(conditional_headers(&stored.headers));
        let request_time = shared.config.clock.now();
        let stale = |fwd_status: Option<u16>| {
            shared
                .state
                .stats
                .stale_served
                .fetch_add(1, Ordering::Relaxed);
            let age = stored.age(shared.config.clock.now());
            let mut status = self
                .status()
                .detail("stale-if-error")
                .ttl(ttl(&stored, age));
            if let Some(s) = fwd_status {
                status = status.fwd_status(s);
            }
            Ok(from_stored(
                &stored,
                &meta.headers,
                false,
                age,
                &status,
                &shared.config.name,
            ))
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
            return Ok(self.respond(&meta, res, request_time).await);
        }
        if !validates(&stored.headers, res.headers()) {
            // A 304 about another representation: ask again without conditions.
            let request_time = shared.config.clock.now();
            let res = call(
                &mut inner,
                Request::from_parts(unconditional, ReqBody::default()),
            )
            .await?;
            return Ok(self.respond(&meta, res, request_time).await);
        }
        let (merged, still) = self
            .freshen(&meta, key, &stored, res.headers(), request_time)
            .await;
        let age = merged.age(shared.config.clock.now());
        let status = self
            .status()
            .fwd_status(304)
            .stored(still)
            .ttl(ttl(&merged, age));
        let mut answer = from_stored(
            &merged,
            &meta.headers,
            false,
            age,
            &status,
            &shared.config.name,
        );
        give_back(&mut answer, withheld(res.headers(), &merged.cc));
        Ok(answer)
    }

    /// Remembers the key as not storable for a while, when the response (not this request)
    /// was why.
    pub(super) fn remember_pass(&self, why: NotStorable, req: &request::Parts) {
        let shared = self.shared;
        let by_response = match why {
            NotStorable::NoStore => !CacheControl::from_headers(&req.headers).no_store,
            NotStorable::Private
            | NotStorable::SetCookie
            | NotStorable::VaryStar
            | NotStorable::Status => true,
            _ => false,
        };
        if by_response && !shared.config.hit_for_pass.is_zero() {
            shared.state.pass.insert(
                self.keys.flight().as_str().to_owned(),
                shared.config.clock.now() + shared.config.hit_for_pass,
            );
        }
    }

    /// Stores in L1 and the tier. A `Vary` marker lives in the tier as long as the `variant`
    /// response it leads to (each new variant stores it again).
    pub(super) async fn put(&self, key: &str, entry: CacheEntry, variant: Option<&StoredResponse>) {
        let shared = self.shared;
        let ttl = match (&entry, variant) {
            (CacheEntry::Response(r), _) => {
                r.useful_for(shared.config.clock.now(), shared.config.grace)
            }
            (CacheEntry::Vary(_), Some(r)) => {
                r.useful_for(shared.config.clock.now(), shared.config.grace)
            }
            (CacheEntry::Vary(_), None) => Duration::ZERO,
        };
        if !shared
            .state
            .purges
            .insert(&shared.state.l1, self.since, key, &entry)
        {
            return;
        }
        if let Some(tier) = &shared.config.tier {
            tier.put(key, &entry, ttl.max(Duration::from_secs(1))).await;
            // A purge that ran while the tier wrote may have deleted before this write landed:
            // the tier refuses writes older than its purges (Redis keeps tombstones), and L1
            // follows the log.
            if shared.state.purges.purged_since(self.since, key, &entry) {
                shared.state.l1.remove(key);
            }
        }
    }

    /// Stores the origin's response when it may be, and answers with it (with a `502` problem
    /// when its body fails while buffered).
    pub(super) async fn respond<ResBody>(
        &self,
        req: &request::Parts,
        res: Response<ResBody>,
        request_time: SystemTime,
    ) -> Response<CacheBody<ResBody>>
    where
        ResBody: CacheableBody,
    {
        let shared = self.shared;
        let (mut rp, body) = res.into_parts();
        let tags = surrogate_keys(&rp.headers);
        rp.headers.remove(&SURROGATE_KEY);
        let status = self.status().fwd_status(rp.status.as_u16());
        let directives = Directives::of(&rp.headers, &shared.config.targets);
        let scope = match storable_with(req, &rp, self.keys.partition.is_some(), &directives) {
            Ok(scope) => scope,
            Err(why) => {
                self.remember_pass(why, req);
                return pass_through(Response::from_parts(rp, body), &status, &shared.config.name);
            }
        };
        let too_big = |n: u64| n > shared.config.max_body as u64;
        let declared = rp
            .headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(too_big) || too_big(body.size_hint().lower()) {
            return pass_through(Response::from_parts(rp, body), &status, &shared.config.name);
        }
        let (data, trailers, rest) = match buffer(body, shared.config.max_body).await {
            Ok(buffered) => buffered,
            Err(e) => return body_failed(req, &status, &e.into(), &shared.config.name),
        };
        if let Some(rest) = rest {
            let mut res = Response::from_parts(rp, CacheBody::rest(data, rest));
            status_header(&mut res, &status, &shared.config.name);
            return res;
        }
        if trailers.is_some() {
            let mut res = Response::from_parts(rp, CacheBody::buffered(data, trailers));
            status_header(&mut res, &status, &shared.config.name);
            return res;
        }
        let response_time = shared.config.clock.now();
        let mut headers = rp.headers.clone();
        strip_unstorable(&mut headers);
        strip_listed(&mut headers, &directives.cc, scope);
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
            (shared.config.heuristic_cap, &shared.config.targets),
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
            status_header(&mut res, &status, &shared.config.name);
            return res;
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
        shared.state.stats.stored.fetch_add(1, Ordering::Relaxed);
        shared.state.pass.remove(self.keys.flight().as_str());
        let age = stored.age(response_time);
        let status = status.stored(true).ttl(ttl(&stored, age));
        let mut answer = from_stored(
            &stored,
            &req.headers,
            false,
            age,
            &status,
            &shared.config.name,
        );
        give_back(&mut answer, withheld(&rp.headers, &directives.cc));
        answer
    }
}

pub(super) type Buffered<B> = (Bytes, Option<HeaderMap>, Option<Pin<Box<B>>>);

/// The answer when the origin's body fails while the cache buffers it: the origin's status and
/// headers are lost with it, so the cache answers for itself, a `502` problem, and logs why.
fn body_failed<B>(
    req: &request::Parts,
    status: &CacheStatus,
    e: &BoxError,
    name: &str,
) -> Response<CacheBody<B>> {
    tracing::warn!(error = %e, uri = %req.uri, "cache: the origin's response body failed while buffered");
    let mut res = Problem::new(StatusCode::BAD_GATEWAY, code::CACHE_UPSTREAM_BODY)
        .with_detail("The origin's response body failed before it was complete.")
        .render_for(&req.extensions)
        .map(CacheBody::full);
    status_header(&mut res, &status.clone().detail("body-error"), name);
    res
}

/// Reads the body up to `max` bytes; past that, hands back what was read and the rest.
pub(super) async fn buffer<B: Body<Data = Bytes>>(
    body: B,
    max: usize,
) -> Result<Buffered<B>, B::Error> {
    let mut body = Box::pin(body);
    // One chunk (a `Full` body, a small response) is kept as it is, without a copy.
    let mut first: Option<Bytes> = None;
    let mut data = BytesMut::new();
    let mut len = 0;
    let mut trailers: Option<HeaderMap> = None;
    while let Some(frame) = body.frame().await {
        let frame = frame?;
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
