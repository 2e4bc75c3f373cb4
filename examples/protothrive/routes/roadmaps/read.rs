//! The read endpoints: the caller's list, one roadmap, and a roadmap's logs and insights. Each is
//! one SQL statement on the read pool for its rows, plus (the list and one roadmap) one batch of
//! the request's loader for their nested data — two statements whatever the page size.

use std::collections::HashMap;
use std::sync::LazyLock;

use axum::Extension;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use protothrive::auth::Principal;
use protothrive::gateway::ApiVersion;
use serde_json::Value;
use sqlx::Row;

use super::cursor::{Cursor, Pagination};
use super::input::STATUSES;
use super::repr::{self, COLUMNS};
use crate::cache;
use crate::db::is_uuid;
use crate::http::{ApiResult, AppError, envelope};
use crate::loaders::{INSIGHT_ITEM, LOG_ITEM, NestedLoader};
use crate::state::AppState;

pub type Params = Result<Query<HashMap<String, String>>, QueryRejection>;
pub type Id = Result<Path<String>, PathRejection>;

/// The query parameters, or a 400 problem (axum's own rejection is plain text).
fn params(q: Params) -> Result<HashMap<String, String>, AppError> {
    q.map(|Query(q)| q)
        .map_err(|_| AppError::BadRequest("The query string is malformed.".into()))
}

/// The id in the path, when it is a UUID; anything else is a 404 before any query.
pub fn roadmap_id(id: Id) -> Result<String, AppError> {
    match id {
        Ok(Path(id)) if is_uuid(&id) => Ok(id),
        _ => Err(AppError::NotFound("Roadmap")),
    }
}

/// The caller's roadmaps: a `total` CTE and a `page` CTE joined so that even an empty page
/// returns one row carrying the total — one statement for the page and `meta.total`.
const LIST: &str = "WITH total AS ( \
       SELECT COUNT(*) AS n FROM roadmaps \
       WHERE user_id = ?1 AND deleted_at IS NULL AND (?2 IS NULL OR status = ?2)), \
     page AS ( \
       SELECT {COLUMNS} FROM roadmaps \
       WHERE roadmaps.user_id = ?1 AND roadmaps.deleted_at IS NULL \
         AND (?2 IS NULL OR roadmaps.status = ?2) \
         AND (?3 IS NULL OR (roadmaps.updated_at, roadmaps.id) < (?3, ?4)) \
       ORDER BY roadmaps.updated_at DESC, roadmaps.id DESC LIMIT ?5 OFFSET ?6) \
     SELECT total.n AS total, page.* FROM total LEFT JOIN page ON 1 \
     ORDER BY page.updated_at DESC, page.id DESC";

static LIST_SQL: LazyLock<String> = LazyLock::new(|| LIST.replace("{COLUMNS}", COLUMNS));

/// One roadmap, if the caller may read it. `team` has no team model behind it yet: it reads as
/// private (owner only).
static ONE_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {COLUMNS} FROM roadmaps WHERE roadmaps.id = ?1 AND roadmaps.deleted_at IS NULL \
         AND (roadmaps.user_id = ?2 OR roadmaps.visibility = 'public')"
    )
});

pub async fn list(
    State(s): State<AppState>,
    v: ApiVersion,
    Extension(p): Extension<Principal>,
    loader: NestedLoader,
    q: Params,
) -> ApiResult<Response> {
    let q = params(q)?;
    let status = match q.get("status") {
        Some(st) if STATUSES.contains(&st.as_str()) => Some(st.as_str()),
        Some(_) => {
            return Err(AppError::field(
                "status",
                "enum",
                format!("status must be one of {}", STATUSES.join(", ")),
            ));
        }
        None => None,
    };
    let paging = Pagination::from_query(v, &q)?;
    let (key, after, limit, offset) = paging.binds();
    let rows = sqlx::query(&LIST_SQL)
        .bind(p.subject())
        .bind(status)
        .bind(key)
        .bind(after)
        .bind(limit)
        .bind(offset)
        .fetch_all(s.db.reader())
        .await?;
    let total: i64 = rows
        .first()
        .map(|r| r.try_get("total"))
        .transpose()?
        .unwrap_or(0);
    let page: Vec<_> = rows
        .iter()
        .filter(|r| {
            r.try_get::<Option<String>, _>("id")
                .ok()
                .flatten()
                .is_some()
        })
        .collect();
    let shown = repr::roadmaps(&loader, &page, v, p.subject(), false).await?;
    let mut items = Vec::with_capacity(page.len());
    // Tagged with the owner's list and every roadmap on the page: a write to any of them purges it.
    let mut tags = format!("roadmaps:{}", p.subject());
    for (row, value) in page.iter().zip(shown) {
        let cursor = Cursor {
            key: row.try_get("updated_at")?,
            id: row.try_get("id")?,
        };
        tags.push_str(" roadmap:");
        tags.push_str(&cursor.id);
        items.push((value, cursor));
    }
    let (data, meta) = paging.finish(total, items);
    Ok(cache::tag(
        envelope(v, s.now(), data, meta).into_response(),
        cache::per_user(),
        &tags,
    ))
}

pub async fn get_one(
    State(s): State<AppState>,
    v: ApiVersion,
    Extension(p): Extension<Principal>,
    loader: NestedLoader,
    id: Id,
) -> ApiResult<Response> {
    let id = roadmap_id(id)?;
    let row = sqlx::query(&ONE_SQL)
        .bind(&id)
        .bind(p.subject())
        .fetch_optional(s.db.reader())
        .await?
        .ok_or(AppError::NotFound("Roadmap"))?;
    let data = repr::one(&loader, &row, v, p.subject(), true).await?;
    Ok(detail(&s, v, data, &id))
}

/// One roadmap's answer, `data` its detail view: what [`get_one`] answers and what a write
/// stores in its place (`write::through`).
pub fn detail(s: &AppState, v: ApiVersion, data: Value, id: &str) -> Response {
    cache::tag(
        envelope(v, s.now(), data, serde_json::json!({})).into_response(),
        cache::per_user(),
        &format!("roadmap:{id}"),
    )
}

/// A child list of a roadmap: its sort-time column (also the time to show as RFC 3339) and SQL.
struct Child {
    time: &'static str,
    sql: LazyLock<String>,
}

static LOGS: Child = Child {
    time: "timestamp",
    sql: LazyLock::new(|| child_sql("agent_logs", "timestamp", LOG_ITEM)),
};
static INSIGHTS: Child = Child {
    time: "created_at",
    sql: LazyLock::new(|| child_sql("insights", "created_at", INSIGHT_ITEM)),
};

/// One statement: the caller's access (`access`: 2 owner, 1 someone else's public roadmap, 0 none
/// or deleted), the total and the page (both empty unless the caller owns the roadmap).
fn child_sql(table: &str, time: &str, item: &str) -> String {
    format!(
        "WITH access AS (SELECT COALESCE((SELECT CASE WHEN user_id = ?2 THEN 2 \
             WHEN visibility = 'public' THEN 1 ELSE 0 END \
           FROM roadmaps WHERE id = ?1 AND deleted_at IS NULL), 0) AS level), \
         owned AS (SELECT ?1 AS id FROM access WHERE level = 2), \
         total AS (SELECT COUNT(*) AS n FROM {table} WHERE roadmap_id IN (SELECT id FROM owned)), \
         page AS (SELECT {item} AS item, {time} AS k, id FROM {table} \
           WHERE roadmap_id IN (SELECT id FROM owned) AND (?3 IS NULL OR ({time}, id) < (?3, ?4)) \
           ORDER BY {time} DESC, id DESC LIMIT ?5 OFFSET ?6) \
         SELECT (SELECT level FROM access) AS access, total.n AS total, page.item, page.k, page.id \
         FROM total LEFT JOIN page ON 1 ORDER BY page.k DESC, page.id DESC"
    )
}

async fn children(
    s: &AppState,
    v: ApiVersion,
    p: &Principal,
    id: Id,
    q: Params,
    c: &Child,
) -> ApiResult<Response> {
    let id = roadmap_id(id)?;
    let q = params(q)?;
    let paging = Pagination::from_query(v, &q)?;
    let (key, after, limit, offset) = paging.binds();
    let rows = sqlx::query(&c.sql)
        .bind(&id)
        .bind(p.subject())
        .bind(key)
        .bind(after)
        .bind(limit)
        .bind(offset)
        .fetch_all(s.db.reader())
        .await?;
    let Some(first) = rows.first() else {
        return Err(AppError::Internal(
            "the list statement returned no row".into(),
        ));
    };
    match first.try_get::<i64, _>("access")? {
        2 => {}
        1 => {
            return Err(AppError::Forbidden(
                "Only the owner may list this roadmap's records.".into(),
            ));
        }
        _ => return Err(AppError::NotFound("Roadmap")),
    }
    let total: i64 = first.try_get("total")?;
    let mut items = Vec::with_capacity(rows.len());
    for row in &rows {
        let (Some(text), Some(k), Some(item_id)) = (
            row.try_get::<Option<String>, _>("item")?,
            row.try_get::<Option<i64>, _>("k")?,
            row.try_get::<Option<String>, _>("id")?,
        ) else {
            continue;
        };
        let value: Value = repr::item(Some(text), &[c.time])?;
        items.push((
            value,
            Cursor {
                key: k,
                id: item_id,
            },
        ));
    }
    let (data, meta) = paging.finish(total, items);
    Ok(cache::tag(
        envelope(v, s.now(), data, meta).into_response(),
        cache::per_user(),
        &format!("roadmap:{id}"),
    ))
}

pub async fn logs(
    State(s): State<AppState>,
    v: ApiVersion,
    Extension(p): Extension<Principal>,
    id: Id,
    q: Params,
) -> ApiResult<Response> {
    children(&s, v, &p, id, q, &LOGS).await
}

pub async fn insights(
    State(s): State<AppState>,
    v: ApiVersion,
    Extension(p): Extension<Principal>,
    id: Id,
    q: Params,
) -> ApiResult<Response> {
    children(&s, v, &p, id, q, &INSIGHTS).await
}
