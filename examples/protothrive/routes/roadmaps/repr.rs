//! How a roadmap is read from SQL and shown to clients.
//!
//! [`COLUMNS`] is one select list used everywhere a roadmap is answered — the list, the single
//! read, and the `RETURNING` clause of every write — so the representation cannot drift between
//! endpoints and a write answers in the same statement that makes it. The related data (owner,
//! log count, latest insight, recent logs and insights) are correlated subqueries that build JSON
//! in SQLite, so any page size costs one statement, not one per row. It names the table
//! `roadmaps` without an alias because `RETURNING` cannot use one.

use protothrive::gateway::ApiVersion;
use serde_json::{Value, json};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use crate::db::rfc3339;
use crate::http::AppError;

/// An agent log as JSON (from a row of `agent_logs`).
pub const LOG_ITEM: &str = "json_object('id', id, 'task_type', task_type, 'output', output, \
     'status', status, 'model_used', model_used, 'token_count', token_count, 'cost_usd', cost_usd, \
     'duration_ms', duration_ms, 'timestamp', timestamp)";

/// An insight as JSON (from a row of `insights`).
pub const INSIGHT_ITEM: &str = "json_object('id', id, 'type', type, 'data', json(data), \
     'score', score, 'trend', trend, 'created_at', created_at)";

/// The select list of a roadmap with its owner summary, log count and latest insight.
pub const COLUMNS: &str = "roadmaps.id, roadmaps.user_id, roadmaps.title, roadmaps.description, \
     roadmaps.json_graph, roadmaps.status, roadmaps.vibe_mode, roadmaps.thrive_score, \
     roadmaps.visibility, roadmaps.tags, roadmaps.created_at, roadmaps.updated_at, \
     (SELECT json_object('id', u.id, 'name', u.name, 'email', u.email) \
        FROM users u WHERE u.id = roadmaps.user_id) AS owner, \
     (SELECT COUNT(*) FROM agent_logs l WHERE l.roadmap_id = roadmaps.id) AS log_count, \
     (SELECT json_object('id', i.id, 'type', i.type, 'data', json(i.data), 'score', i.score, \
             'trend', i.trend, 'created_at', i.created_at) \
        FROM insights i WHERE i.roadmap_id = roadmaps.id \
        ORDER BY i.created_at DESC, i.id DESC LIMIT 1) AS latest_insight";

/// The ten most recent logs and insights, for the single read (after [`COLUMNS`]).
pub fn recent() -> String {
    format!(
        "(SELECT json_group_array(json(item)) FROM (SELECT {LOG_ITEM} AS item FROM agent_logs \
            WHERE roadmap_id = roadmaps.id ORDER BY timestamp DESC, id DESC LIMIT 10)) AS recent_logs, \
         (SELECT json_group_array(json(item)) FROM (SELECT {INSIGHT_ITEM} AS item FROM insights \
            WHERE roadmap_id = roadmaps.id ORDER BY created_at DESC, id DESC LIMIT 10)) AS recent_insights"
    )
}

fn parse(text: &str) -> Result<Value, AppError> {
    serde_json::from_str(text)
        .map_err(|e| AppError::Internal(format!("stored JSON is invalid: {e}")))
}

/// Rewrites the UNIX-time members `keys` of `value` (an object or an array of them) as RFC 3339.
pub fn times(value: &mut Value, keys: &[&str]) {
    match value {
        Value::Array(items) => items.iter_mut().for_each(|v| times(v, keys)),
        Value::Object(map) => {
            for key in keys {
                if let Some(t) = map.get(*key).and_then(Value::as_i64) {
                    map.insert((*key).to_owned(), rfc3339(t).into());
                }
            }
        }
        _ => {}
    }
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

/// The owner's id of a row of [`COLUMNS`].
pub fn owner_id(row: &SqliteRow) -> Result<String, AppError> {
    Ok(row.try_get("user_id")?)
}

/// A row of [`COLUMNS`] (plus `recent_logs`/`recent_insights` when `with_recent`) as the
/// version's representation. `viewer` is the caller: the owner's email is shown to the owner only.
pub fn roadmap(
    row: &SqliteRow,
    v: ApiVersion,
    viewer: &str,
    with_recent: bool,
) -> Result<Value, AppError> {
    let graph_text: String = row.try_get("json_graph")?;
    let tags: String = row.try_get("tags")?;
    let mut owner = item(row.try_get("owner")?, &[])?;
    if owner_id(row)? != viewer
        && let Some(o) = owner.as_object_mut()
    {
        o.remove("email");
    }
    let mut out = json!({
        "id": row.try_get::<String, _>("id")?,
        "title": row.try_get::<String, _>("title")?,
        "description": row.try_get::<Option<String>, _>("description")?,
        "status": row.try_get::<String, _>("status")?,
        "vibe_mode": row.try_get::<bool, _>("vibe_mode")?,
        "thrive_score": row.try_get::<f64, _>("thrive_score")?,
        "visibility": row.try_get::<String, _>("visibility")?,
        "tags": parse(&tags)?,
        "created_at": rfc3339(row.try_get("created_at")?),
        "updated_at": rfc3339(row.try_get("updated_at")?),
        "owner": owner,
        "log_count": row.try_get::<i64, _>("log_count")?,
        "latest_insight": item(row.try_get("latest_insight")?, &["created_at"])?,
    });
    if let Some(map) = out.as_object_mut() {
        if v.0 >= 2 {
            map.insert("graph".into(), parse(&graph_text)?);
        } else {
            map.insert("json_graph".into(), graph_text.into());
        }
        if with_recent {
            map.insert(
                "recent_logs".into(),
                item(row.try_get("recent_logs")?, &["timestamp"])?,
            );
            map.insert(
                "recent_insights".into(),
                item(row.try_get("recent_insights")?, &["created_at"])?,
            );
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_become_rfc3339_in_objects_and_arrays() {
        let mut v = json!([{"timestamp": 0, "id": "a"}, {"timestamp": 1_767_225_600}, 3]);
        times(&mut v, &["timestamp"]);
        assert_eq!(
            v,
            json!([{"timestamp": "1970-01-01T00:00:00Z", "id": "a"}, {"timestamp": "2026-01-01T00:00:00Z"}, 3])
        );
    }
}
