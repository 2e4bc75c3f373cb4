//! The write endpoints. Each is one statement on the writer — the ownership check is in its
//! `WHERE`, the roadmap's columns in its `RETURNING` — so none needs a transaction; the answer's
//! nested data is one batch of the request's loader after it, and a refused write costs a second,
//! read-only statement instead to tell 403 (a public roadmap someone else owns) from 404.

use std::sync::LazyLock;

use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use protothrive::auth::Principal;
use protothrive::cache::{Purge, WriteThrough};
use protothrive::gateway::{ApiVersion, ValidJson};
use serde_json::json;
use sqlx::sqlite::SqliteRow;

use super::input::RoadmapBody;
use super::read::{self, Id, roadmap_id};
use super::repr::{self, COLUMNS};
use super::{invalidate_roadmap, tags};
use crate::cache;
use crate::db;
use crate::http::{ApiResult, AppError, created, envelope};
use crate::loaders::NestedLoader;
use crate::state::AppState;

/// Why a write matched no row: someone else's public roadmap (403), or none the caller may see.
async fn refused(s: &AppState, id: &str) -> AppError {
    let public: Result<Option<i64>, _> = sqlx::query_scalar(
        "SELECT 1 FROM roadmaps WHERE id = ? AND deleted_at IS NULL AND visibility = 'public'",
    )
    .bind(id)
    .fetch_optional(s.db.reader())
    .await;
    match public {
        Ok(Some(_)) => AppError::Forbidden("Only the owner may change this roadmap.".into()),
        Ok(None) => AppError::NotFound("Roadmap"),
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
    row: &SqliteRow,
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
    row: &SqliteRow,
) -> ApiResult<Response> {
    let through = through(s, p, headers, loader, row).await?;
    let data = repr::one(loader, row, v, p.subject(), false).await?;
    let res = envelope(v, s.now(), data, json!({})).into_response();
    Ok(cache::with_write_through(res, through))
}

static INSERT_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO roadmaps (id, user_id, title, description, json_graph, status, vibe_mode, \
         visibility, tags, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
         RETURNING {COLUMNS}"
    )
});

/// PUT: every column a client sets; the owner check is in the `WHERE`.
static PUT_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE roadmaps SET title = ?, description = ?, json_graph = ?, status = ?, vibe_mode = ?, \
         visibility = ?, tags = ?, updated_at = ? \
         WHERE id = ? AND user_id = ? AND deleted_at IS NULL RETURNING {COLUMNS}"
    )
});

/// PATCH: `NULL` binds keep the column.
static PATCH_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE roadmaps SET title = COALESCE(?, title), description = COALESCE(?, description), \
         json_graph = COALESCE(?, json_graph), status = COALESCE(?, status), \
         vibe_mode = COALESCE(?, vibe_mode), visibility = COALESCE(?, visibility), \
         tags = COALESCE(?, tags), updated_at = ? \
         WHERE id = ? AND user_id = ? AND deleted_at IS NULL RETURNING {COLUMNS}"
    )
});

pub async fn create(
    State(s): State<AppState>,
    v: ApiVersion,
    Extension(p): Extension<Principal>,
    loader: NestedLoader,
    headers: HeaderMap,
    ValidJson(body): ValidJson<RoadmapBody>,
) -> ApiResult<Response> {
    let r = body.full(v)?;
    let id = db::new_id();
    let now = s.now();
    let row = sqlx::query(&INSERT_SQL)
        .bind(&id)
        .bind(p.subject())
        .bind(&r.title)
        .bind(&r.description)
        .bind(&r.graph)
        .bind(&r.status)
        .bind(r.vibe_mode)
        .bind(&r.visibility)
        .bind(&r.tags)
        .bind(now)
        .bind(now)
        .fetch_one(s.db.writer())
        .await?;
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
    Extension(p): Extension<Principal>,
    loader: NestedLoader,
    id: Id,
    headers: HeaderMap,
    ValidJson(body): ValidJson<RoadmapBody>,
) -> ApiResult<Response> {
    let id = roadmap_id(id)?;
    let r = body.full(v)?;
    let row = sqlx::query(&PUT_SQL)
        .bind(&r.title)
        .bind(&r.description)
        .bind(&r.graph)
        .bind(&r.status)
        .bind(r.vibe_mode)
        .bind(&r.visibility)
        .bind(&r.tags)
        .bind(s.now())
        .bind(&id)
        .bind(p.subject())
        .fetch_optional(s.db.writer())
        .await?;
    match row {
        Some(row) => written(&s, (v, &p, &headers), &loader, &row).await,
        None => Err(refused(&s, &id).await),
    }
}

/// PATCH: the given fields only; an empty update is a 422.
pub async fn patch(
    State(s): State<AppState>,
    v: ApiVersion,
    Extension(p): Extension<Principal>,
    loader: NestedLoader,
    id: Id,
    headers: HeaderMap,
    ValidJson(body): ValidJson<RoadmapBody>,
) -> ApiResult<Response> {
    let id = roadmap_id(id)?;
    let r = body.partial(v)?;
    let row = sqlx::query(&PATCH_SQL)
        .bind(&r.title)
        .bind(&r.description)
        .bind(&r.graph)
        .bind(&r.status)
        .bind(r.vibe_mode)
        .bind(&r.visibility)
        .bind(&r.tags)
        .bind(s.now())
        .bind(&id)
        .bind(p.subject())
        .fetch_optional(s.db.writer())
        .await?;
    match row {
        Some(row) => written(&s, (v, &p, &headers), &loader, &row).await,
        None => Err(refused(&s, &id).await),
    }
}

/// Soft delete: the row stays (logs and insights reference it) but every read skips it.
pub async fn delete(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    id: Id,
) -> ApiResult<Response> {
    let id = roadmap_id(id)?;
    let now = s.now();
    let done = sqlx::query(
        "UPDATE roadmaps SET deleted_at = ?, updated_at = ? \
         WHERE id = ? AND user_id = ? AND deleted_at IS NULL",
    )
    .bind(now)
    .bind(now)
    .bind(&id)
    .bind(p.subject())
    .execute(s.db.writer())
    .await?;
    if done.rows_affected() == 0 {
        return Err(refused(&s, &id).await);
    }
    invalidate_roadmap(&s, &id, p.subject()).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The score: the mean of the roadmap's insight scores, each weighted `1 / (1 + age / 30 days)`
/// so recent insights count more (an insight 30 days old counts half as much as a new one),
/// clamped to 0..1; no insights → 0. Plain arithmetic, so it needs no SQLite math extension.
const THRIVE_SCORE: &str = "(SELECT COALESCE(MIN(MAX(SUM(score * w) / SUM(w), 0.0), 1.0), 0.0) \
     FROM (SELECT score, 1.0 / (1.0 + MAX(?1 - created_at, 0) / 2592000.0) AS w \
           FROM insights WHERE roadmap_id = roadmaps.id))";

static SCORE_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE roadmaps SET thrive_score = {THRIVE_SCORE}, updated_at = ?1 \
         WHERE id = ?2 AND user_id = ?3 AND deleted_at IS NULL RETURNING {COLUMNS}"
    )
});

pub async fn thrive_score(
    State(s): State<AppState>,
    v: ApiVersion,
    Extension(p): Extension<Principal>,
    loader: NestedLoader,
    id: Id,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let id = roadmap_id(id)?;
    let row = sqlx::query(&SCORE_SQL)
        .bind(s.now())
        .bind(&id)
        .bind(p.subject())
        .fetch_optional(s.db.writer())
        .await?;
    match row {
        Some(row) => written(&s, (v, &p, &headers), &loader, &row).await,
        None => Err(refused(&s, &id).await),
    }
}
