//! The read endpoints: the caller's list, one roadmap, and a roadmap's logs and insights. Each is
//! one SQL statement on the read pool for its rows, plus (the list and one roadmap) one batch of
//! the request's loader for their nested data — two statements whatever the page size.

use std::collections::HashMap;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use protothrive::auth::Principal;
use protothrive::gateway::ApiVersion;
use serde_json::Value;
use sqlx::Row;

use super::cursor::{Cursor, Pagination};
use super::input::STATUSES;
use super::repr;
use crate::cache;
use crate::db::is_uuid;
use crate::db::roadmaps::{self, Child};
use crate::http::{ApiResult, AppError, envelope};
use crate::loaders::NestedLoader;
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

pub async fn list(
    State(s): State<AppState>,
    v: ApiVersion,
    p: Principal,
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
    let rows = roadmaps::list(&s.db, p.subject(), status, paging.binds()).await?;
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
    p: Principal,
    loader: NestedLoader,
    id: Id,
) -> ApiResult<Response> {
    let id = roadmap_id(id)?;
    let row = roadmaps::one(&s.db, &id, p.subject())
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

async fn children(
    s: &AppState,
    v: ApiVersion,
    p: &Principal,
    id: Id,
    q: Params,
    c: Child,
) -> ApiResult<Response> {
    let id = roadmap_id(id)?;
    let q = params(q)?;
    let paging = Pagination::from_query(v, &q)?;
    let rows = roadmaps::children(&s.db, c, &id, p.subject(), paging.binds()).await?;
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
        let value: Value = repr::item(Some(text), &[c.time()])?;
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
    p: Principal,
    id: Id,
    q: Params,
) -> ApiResult<Response> {
    children(&s, v, &p, id, q, Child::Logs).await
}

pub async fn insights(
    State(s): State<AppState>,
    v: ApiVersion,
    p: Principal,
    id: Id,
    q: Params,
) -> ApiResult<Response> {
    children(&s, v, &p, id, q, Child::Insights).await
}
