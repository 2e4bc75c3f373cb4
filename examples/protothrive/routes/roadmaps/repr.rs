//! How a roadmap is read from its row (`db::roadmaps::COLUMNS`, the one select list of every
//! read and write) and shown to clients. The nested data (owner, log
//! count, latest insight; recent logs and insights in the detail view) come from the request's
//! loader ([`roadmaps`]): one batch for all the rows, so any page size costs two statements.

use protothrive::gateway::ApiVersion;
use serde_json::{Value, json};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::db::{rfc3339, times};
use crate::http::AppError;
use crate::loaders::{self, Kind, Nested, NestedLoader, public_user};

/// What a roadmap shows besides its columns, in the order [`roadmap`] reads them.
const NESTED: [Kind; 3] = [Kind::User, Kind::LogCount, Kind::LatestInsight];
/// What its detail view shows besides its columns.
const DETAIL: [Kind; 5] = [
    Kind::User,
    Kind::LogCount,
    Kind::LatestInsight,
    Kind::RecentLogs,
    Kind::RecentInsights,
];

/// Rows of `COLUMNS` as the version's representation, with their nested data (and the recent
/// logs and insights when `with_recent`) loaded in one batch. `viewer` is the caller: the owner's
/// email is shown to the owner only.
pub async fn roadmaps(
    loader: &NestedLoader,
    rows: &[&AnyRow],
    v: ApiVersion,
    viewer: &str,
    with_recent: bool,
) -> Result<Vec<Value>, AppError> {
    let kinds: &[Kind] = if with_recent { &DETAIL } else { &NESTED };
    let mut keys = Vec::with_capacity(rows.len() * kinds.len());
    for row in rows {
        let id: String = row.try_get("id")?;
        let owner = owner_id(row)?;
        keys.extend(kinds.iter().map(|&kind| {
            Nested(
                kind,
                if kind == Kind::User {
                    owner.clone()
                } else {
                    id.clone()
                },
            )
        }));
    }
    let nested = loaders::load(loader, keys).await?;
    rows.iter()
        .zip(nested.chunks(kinds.len()))
        .map(|(row, nested)| roadmap(row, v, viewer, nested))
        .collect()
}

/// One row of `COLUMNS` as [`roadmaps`] shows it.
pub async fn one(
    loader: &NestedLoader,
    row: &AnyRow,
    v: ApiVersion,
    viewer: &str,
    with_recent: bool,
) -> Result<Value, AppError> {
    let mut shown = roadmaps(loader, &[row], v, viewer, with_recent).await?;
    shown
        .pop()
        .ok_or_else(|| AppError::Internal("a roadmap without its representation".into()))
}

fn parse(text: &str) -> Result<Value, AppError> {
    serde_json::from_str(text)
        .map_err(|e| AppError::Internal(format!("stored JSON is invalid: {e}")))
}

/// A JSON column (an item built by SQLite), with its times in RFC 3339.
pub fn item(text: Option<String>, keys: &[&str]) -> Result<Value, AppError> {
    let Some(text) = text else {
        return Ok(Value::Null);
    };
    let mut v = parse(&text)?;
    times(&mut v, keys);
    Ok(v)
}

/// The owner's id of a row of `COLUMNS`.
pub fn owner_id(row: &AnyRow) -> Result<String, AppError> {
    Ok(row.try_get("user_id")?)
}

/// A row of `COLUMNS` with its nested values (in the order of [`NESTED`] or [`DETAIL`]).
fn roadmap(row: &AnyRow, v: ApiVersion, viewer: &str, nested: &[Value]) -> Result<Value, AppError> {
    let graph_text: String = row.try_get("json_graph")?;
    let tags: String = row.try_get("tags")?;
    let value = |i: usize| nested.get(i).cloned().unwrap_or(Value::Null);
    let owner = if owner_id(row)? == viewer {
        value(0)
    } else {
        public_user(value(0))
    };
    let mut out = json!({
        "id": row.try_get::<String, _>("id")?,
        "title": row.try_get::<String, _>("title")?,
        "description": row.try_get::<Option<String>, _>("description")?,
        "status": row.try_get::<String, _>("status")?,
        "vibe_mode": row.try_get::<i64, _>("vibe_mode")? != 0,
        "thrive_score": row.try_get::<f64, _>("thrive_score")?,
        "visibility": row.try_get::<String, _>("visibility")?,
        "tags": parse(&tags)?,
        "created_at": rfc3339(row.try_get("created_at")?),
        "updated_at": rfc3339(row.try_get("updated_at")?),
        "owner": owner,
        "log_count": value(1),
        "latest_insight": value(2),
    });
    if let Some(map) = out.as_object_mut() {
        if v.0 >= 2 {
            map.insert("graph".into(), parse(&graph_text)?);
        } else {
            map.insert("json_graph".into(), graph_text.into());
        }
        if nested.len() > NESTED.len() {
            map.insert("recent_logs".into(), value(3));
            map.insert("recent_insights".into(), value(4));
        }
    }
    Ok(out)
}
