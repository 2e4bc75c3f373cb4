//! The write endpoints. Each is one statement on the writer — the ownership check is in its
//! `WHERE`, the roadmap's columns in its `RETURNING` — so none needs a transaction; the answer's
//! nested data is one batch of the request's loader after it, and a refused write costs a second,
//! read-only statement instead to tell 403 (a public roadmap someone else owns) from 404.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use protothrive::auth::Principal;
use protothrive::cache::{Purge, WriteThrough};
use protothrive::gateway::{ApiVersion, ValidJson};
use serde_json::json;
use sqlx::any::AnyRow;

use super::input::RoadmapBody;
use super::read::{self, Id, roadmap_id};
use super::repr;
use super::{invalidate_roadmap, tags};
use crate::cache;
use crate::db::{self, roadmaps};
use crate::http::{ApiResult, AppError, created, envelope};
use crate::loaders::NestedLoader;
use crate::state::AppState;

/// Why a write matched no row: someone else's public roadmap (403), or none the caller may see.
async fn refused(s: &AppState, id: &str) -> AppError {
    match roadmaps::is_public(&s.db, id).await {
        Ok(true) => AppError::Forbidden("Only the owner may change this roadmap.".into()),
        Ok(false) => AppError::NotFound("Roadmap"),
        Err(e) => e.into(),
    }
}

/// What a write of `row` changes in the read cache, for the cache layer to apply before the
/// answer leaves: the purges of [`invalidate_roadmap`], and in their place the roadmap's detail
/// view in both versions, stored in the writer's partition under the `Host` it wrote through,
/// so the writer's next read of it is a hit. The nested data come from the request's loader,
/// in the batch that also answers the write.
async fn through(
    s: &AppState,
    p: &Principal,
    headers: &HeaderMap,
    loader: &NestedLoader,
    row: &AnyRow,
) -> ApiResult<WriteThrough> {
    let id: String = sqlx::Row::try_get(row, "id")?;
    metrics::counter!("protothrive_roadmap_invalidations_total").increment(1);
    let mut through = WriteThrough::new();
    for tag in tags(&id, p.subject()) {
        through = through.purge(Purge::Tag(tag));
    }
    let path = format!("/api/roadmaps/{id}");
    for v in [ApiVersion(1), ApiVersion(2)] {
        let data = repr::one(loader, row, v, p.subject(), true).await?;
        let res = cache::buffered(read::detail(s, v, data, &id))
            .await
            .map_err(|e| AppError::Internal(e.to_string()))?;
        let get = cache::read_request(headers.get(header::HOST), &path, v, p);
        through = through.put(get, res);
    }
    Ok(through)
}

/// The answer of a write that returned `row`, with what it changes in the read cache.
async fn written(
    s: &AppState,
    (v, p, headers): (ApiVersion, &Principal, &HeaderMap),
    loader: &NestedLoader,
    row: &AnyRow,
) -> ApiResult<Response> {
    let through = through(s, p, headers, loader, row).await?;
    let data = repr::one(loader, row, v, p.subject(), false).await?;
    let res = envelope(v, s.now(), data, json!({})).into_response();
    Ok(cache::with_write_through(res, through))
}

pub async fn create(
    State(s): State<AppState>,
    v: ApiVersion,
    p: Principal,
    loader: NestedLoader,
    headers: HeaderMap,
    ValidJson(body): ValidJson<RoadmapBody>,
) -> ApiResult<Response> {
    let r = body.full(v)?;
    let id = db::new_id();
    let now = s.now();
    let row = roadmaps::insert(&s.db, &id, p.subject(), &r, now).await?;
    let through = through(&s, &p, &headers, &loader, &row).await?;
    let data = repr::one(&loader, &row, v, p.subject(), false).await?;
    let body = envelope(v, now, data, json!({}));
    let res = created(&format!("/api/{}/roadmaps/{id}", v.name()), body);
    Ok(cache::with_write_through(res, through))
}

/// PUT: every field replaced (absent optional ones back to their defaults).
pub async fn replace(
    State(s): State<AppState>,
    v: ApiVersion,
    p: Principal,
    loader: NestedLoader,
    id: Id,
    headers: HeaderMap,
    ValidJson(body): ValidJson<RoadmapBody>,
) -> ApiResult<Response> {
    let id = roadmap_id(id)?;
    let r = body.full(v)?;
    let row = roadmaps::put(&s.db, &id, p.subject(), &r, s.now()).await?;
    match row {
        Some(row) => written(&s, (v, &p, &headers), &loader, &row).await,
        None => Err(refused(&s, &id).await),
    }
}

/// PATCH: the given fields only; an empty update is a 422.
pub async fn patch(
    State(s): State<AppState>,
    v: ApiVersion,
    p: Principal,
    loader: NestedLoader,
    id: Id,
    headers: HeaderMap,
    ValidJson(body): ValidJson<RoadmapBody>,
) -> ApiResult<Response> {
    let id = roadmap_id(id)?;
    let r = body.partial(v)?;
    let row = roadmaps::patch(&s.db, &id, p.subject(), &r, s.now()).await?;
    match row {
        Some(row) => written(&s, (v, &p, &headers), &loader, &row).await,
        None => Err(refused(&s, &id).await),
    }
}

/// Soft delete: the row stays (logs and insights reference it) but every read skips it.
pub async fn delete(State(s): State<AppState>, p: Principal, id: Id) -> ApiResult<Response> {
    let id = roadmap_id(id)?;
    let now = s.now();
    if !roadmaps::delete(&s.db, &id, p.subject(), now).await? {
        return Err(refused(&s, &id).await);
    }
    invalidate_roadmap(&s, &id, p.subject()).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn thrive_score(
    State(s): State<AppState>,
    v: ApiVersion,
    p: Principal,
    loader: NestedLoader,
    id: Id,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let id = roadmap_id(id)?;
    let row = roadmaps::rescore(&s.db, &id, p.subject(), s.now()).await?;
    match row {
        Some(row) => written(&s, (v, &p, &headers), &loader, &row).await,
        None => Err(refused(&s, &id).await),
    }
}
