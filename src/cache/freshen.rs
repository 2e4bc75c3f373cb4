//! Updating a stored response with the header fields of a newer one (RFC 9111 §3.2): a `304`
//! that validates it (§4.3.4) or a `200` answer to `HEAD` that describes it (§4.3.5).

use std::sync::Arc;
use std::time::SystemTime;

use http::header::DATE;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, request};
use tower_service::Service;

use super::body::CacheBody;
use super::hit::{call, clone_parts, pass_through};
use super::origin::Origin;
use super::policy::key::CacheKey;
use super::policy::storable::storable_with;
use super::policy::targeted::Directives;
use super::policy::validate::{SURROGATE_KEY, head_matches, merge_not_modified, strip_listed};
use super::store::{CacheEntry, StoredResponse};

impl Origin<'_> {
    /// Updates `stored` with the fields of `update` (a `304` or a `200` to `HEAD`) received at
    /// `now` for a request sent at `request_time`: each field replaces the stored one (but
    /// `Content-Length` and what is never stored), the stored `Age` goes (the update says how
    /// old it is), a missing `Date` is the time it arrived (RFC 9110 §6.6.1), and freshness is
    /// computed anew. The result is stored again when it still may be, in the same scope;
    /// otherwise the entry goes (the origin no longer lets it be reused). Returns the updated
    /// response and whether it was stored.
    pub(super) async fn freshen(
        &self,
        req: &request::Parts,
        key: &CacheKey,
        stored: &StoredResponse,
        update: &HeaderMap,
        request_time: SystemTime,
    ) -> (Arc<StoredResponse>, bool) {
        let shared = self.shared;
        let mut merged = stored.clone();
        merge_not_modified(&mut merged.headers, update);
        merged.request_time = request_time;
        merged.response_time = shared.config.clock.now();
        if !update.contains_key(DATE)
            && let Ok(v) = HeaderValue::try_from(httpdate::fmt_http_date(merged.response_time))
        {
            merged.headers.insert(DATE, v);
        }
        merged.refresh(shared.config.heuristic_cap, &shared.config.targets);
        // The update's headers may forbid what the stored ones allowed (`no-store`, `private`):
        // judge the merged response as a fresh one.
        let directives = Directives::of(&merged.headers, &shared.config.targets);
        let mut check = Response::new(());
        *check.status_mut() = merged.status;
        *check.headers_mut() = merged.headers.clone();
        let (check, ()) = check.into_parts();
        let still = storable_with(req, &check, self.keys.partition.is_some(), &directives)
            .is_ok_and(|scope| scope == merged.scope);
        let merged = Arc::new(merged);
        if still {
            let mut kept = StoredResponse::clone(&merged);
            let entry = if strip_listed(&mut kept.headers, &directives.cc, kept.scope) {
                kept.refresh(shared.config.heuristic_cap, &shared.config.targets);
                Arc::new(kept)
            } else {
                merged.clone()
            };
            self.put(key.as_str(), CacheEntry::Response(entry), None)
                .await;
        } else {
            shared.state.l1.remove(key.as_str());
            if let Some(tier) = &shared.config.tier {
                tier.delete(key.as_str()).await;
            }
        }
        (merged, still)
    }

    /// A `HEAD` for a stored `GET` response that may not answer it as it is: sent on; a `200`
    /// that describes the stored response updates it, any other `200` invalidates it (RFC 9111
    /// §4.3.5). The answer is the origin's.
    pub(super) async fn head<S, ReqBody, ResBody>(
        &self,
        mut inner: S,
        parts: request::Parts,
        body: ReqBody,
        key: &CacheKey,
        stored: &StoredResponse,
    ) -> Result<Response<CacheBody<ResBody>>, S::Error>
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    {
        let shared = self.shared;
        // Judged as the `GET` whose response it updates.
        let mut meta = clone_parts(&parts);
        meta.method = Method::GET;
        let request_time = shared.config.clock.now();
        let res = call(&mut inner, Request::from_parts(parts, body)).await?;
        let mut status = self.status().fwd_status(res.status().as_u16());
        if res.status() == StatusCode::OK {
            let mut head = res.headers().clone();
            head.remove(&SURROGATE_KEY);
            if head_matches(&stored.headers, stored.body.len(), &head) {
                let (_, still) = self.freshen(&meta, key, stored, &head, request_time).await;
                status = status.stored(still);
            } else {
                shared.state.l1.remove(key.as_str());
                if let Some(tier) = &shared.config.tier {
                    tier.delete(key.as_str()).await;
                }
            }
        }
        Ok(pass_through(res, &status, &shared.config.name))
    }
}
