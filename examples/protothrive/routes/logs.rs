//! Agent logs and insights, written by engineers and above (agents and tooling report through
//! these). Each write is one statement: `INSERT ... SELECT ... WHERE EXISTS` the live roadmap, so a
//! missing or deleted roadmap is a 404 without a separate lookup.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use protothrive::gateway::{ApiVersion, ValidJson};
use serde::Deserialize;
use serde_json::{Value, json};
use validator::{Validate, ValidationError};

use crate::db::{self, is_uuid, logs, rfc3339};
use crate::http::{ApiResult, AppError, envelope};
use crate::state::AppState;

use super::table::{Route, Who::Role, ep};

pub const LOG_STATUSES: [&str; 5] = ["success", "fail", "timeout", "escalated", "retry"];
pub const INSIGHT_TYPES: [&str; 5] = ["performance", "usage", "quality", "cost", "collaboration"];
pub const TRENDS: [&str; 3] = ["improving", "declining", "stable"];
/// The largest insight `data` (serialized bytes).
pub const MAX_DATA_BYTES: usize = 10 * 1024;
const MAX_OUTPUT_BYTES: usize = 50_000;

pub fn routes() -> Vec<Route> {
    vec![
        Route::to(
            ep(
                "POST",
                "/api/agent-logs",
                "Record an agent log",
                Role("engineer"),
                "agents",
            )
            .body(new_log_schema)
            .created()
            .extra(&[404]),
            create_log,
        ),
        Route::to(
            ep(
                "POST",
                "/api/insights",
                "Record an insight",
                Role("engineer"),
                "agents",
            )
            .body(new_insight_schema)
            .created()
            .extra(&[404]),
            create_insight,
        ),
    ]
}

/// A log or an insight changed what reads of its roadmap (and the list pages it is on, and the
/// dashboard) answer.
async fn purge_roadmap(s: &AppState, roadmap_id: &str) {
    crate::loaders::forget_roadmap(&s.nested, roadmap_id).await;
    crate::cache::purge(
        s,
        &[format!("roadmap:{roadmap_id}"), "dashboard".to_owned()],
    )
    .await;
}

fn one_of(value: &str, allowed: &[&str]) -> Result<(), ValidationError> {
    if allowed.contains(&value) {
        Ok(())
    } else {
        Err(ValidationError::new("enum")
            .with_message(format!("one of: {}", allowed.join(", ")).into()))
    }
}

fn log_status(s: &str) -> Result<(), ValidationError> {
    one_of(s, &LOG_STATUSES)
}

/// An insight's `type`: a serde enum, so that a wrong value is reported under the JSON name
/// `type` (validator would report the Rust field name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InsightType {
    Performance,
    Usage,
    Quality,
    Cost,
    Collaboration,
}

impl InsightType {
    fn as_str(self) -> &'static str {
        INSIGHT_TYPES[self as usize]
    }
}

fn trend(s: &str) -> Result<(), ValidationError> {
    one_of(s, &TRENDS)
}

pub fn uuid(s: &str) -> Result<(), ValidationError> {
    is_uuid(s)
        .then_some(())
        .ok_or_else(|| ValidationError::new("uuid").with_message("a UUID".into()))
}

/// `[A-Za-z0-9_-]{1,50}`: task types name code paths, not prose.
pub fn task_type(s: &str) -> Result<(), ValidationError> {
    super::snippets::valid_category(s)
        .then_some(())
        .ok_or_else(|| {
            ValidationError::new("pattern")
                .with_message("1 to 50 characters of A-Z, a-z, 0-9, _ and -".into())
        })
}

fn output(s: &str) -> Result<(), ValidationError> {
    (s.len() <= MAX_OUTPUT_BYTES).then_some(()).ok_or_else(|| {
        ValidationError::new("length")
            .with_message(format!("at most {MAX_OUTPUT_BYTES} bytes").into())
    })
}

fn data(v: &Value) -> Result<(), ValidationError> {
    if !v.is_object() {
        return Err(ValidationError::new("type").with_message("a JSON object".into()));
    }
    if v.to_string().len() > MAX_DATA_BYTES {
        return Err(ValidationError::new("length")
            .with_message(format!("at most {MAX_DATA_BYTES} bytes of JSON").into()));
    }
    Ok(())
}

#[derive(Debug, Deserialize, Validate)]
#[serde(deny_unknown_fields)]
pub struct NewLog {
    #[validate(custom(function = "uuid"))]
    roadmap_id: String,
    #[validate(custom(function = "task_type"))]
    task_type: String,
    #[validate(custom(function = "output"))]
    #[serde(default)]
    output: String,
    #[validate(custom(function = "log_status"))]
    status: String,
    #[validate(length(min = 1, max = 100, message = "1 to 100 characters"))]
    model_used: String,
    #[validate(range(min = 1, max = 100_000_000, message = "between 1 and 100000000"))]
    #[serde(deserialize_with = "crate::http::integer")]
    token_count: i64,
    #[validate(range(min = 0.0, max = 1_000_000.0, message = "between 0 and 1000000"))]
    #[serde(default)]
    cost_usd: f64,
    #[validate(range(min = 0, max = 86_400_000, message = "between 0 and 86400000 (a day)"))]
    #[serde(default, deserialize_with = "crate::http::integer")]
    duration_ms: i64,
}

#[derive(Debug, Deserialize, Validate)]
#[serde(deny_unknown_fields)]
pub struct NewInsight {
    #[validate(custom(function = "uuid"))]
    roadmap_id: String,
    #[serde(rename = "type")]
    kind: InsightType,
    #[validate(custom(function = "data"))]
    #[serde(default = "empty_object")]
    data: Value,
    #[validate(range(min = 0.0, max = 1.0, message = "between 0 and 1"))]
    score: f64,
    #[validate(custom(function = "trend"))]
    trend: String,
}

fn empty_object() -> Value {
    json!({})
}

/// JSON Schemas (2020-12) of the two bodies, for the OpenAPI document.
pub fn new_log_schema(_v: u8) -> Value {
    json!({
        "type": "object", "additionalProperties": false,
        "required": ["roadmap_id", "task_type", "status", "model_used", "token_count"],
        "properties": {
            "roadmap_id": {"type": "string", "format": "uuid"},
            "task_type": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,50}$"},
            "output": {"type": "string", "default": ""},
            "status": {"enum": LOG_STATUSES},
            "model_used": {"type": "string", "minLength": 1, "maxLength": 100},
            "token_count": {"type": "integer", "minimum": 1, "maximum": 100_000_000},
            "cost_usd": {"type": "number", "minimum": 0, "maximum": 1_000_000, "default": 0},
            "duration_ms": {"type": "integer", "minimum": 0, "maximum": 86_400_000, "default": 0},
        }
    })
}

pub fn new_insight_schema(_v: u8) -> Value {
    json!({
        "type": "object", "additionalProperties": false,
        "required": ["roadmap_id", "type", "score", "trend"],
        "properties": {
            "roadmap_id": {"type": "string", "format": "uuid"},
            "type": {"enum": INSIGHT_TYPES},
            "data": {"type": "object", "description": format!("at most {MAX_DATA_BYTES} bytes of JSON"), "default": {}},
            "score": {"type": "number", "minimum": 0, "maximum": 1},
            "trend": {"enum": TRENDS},
        }
    })
}

fn created(v: ApiVersion, now: i64, data: Value) -> Response {
    let mut res = (StatusCode::CREATED, envelope(v, now, data, json!({}))).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

async fn create_log(
    State(s): State<AppState>,
    v: ApiVersion,
    ValidJson(body): ValidJson<NewLog>,
) -> ApiResult {
    let now = s.now();
    let log = logs::NewLog {
        id: &db::new_id(),
        roadmap_id: &body.roadmap_id,
        task_type: &body.task_type,
        output: &body.output,
        status: &body.status,
        model_used: body.model_used.trim(),
        token_count: body.token_count,
        cost_usd: body.cost_usd,
        duration_ms: body.duration_ms,
        timestamp: now,
    };
    let row = logs::insert_log(s.db.writer(), &log).await?;
    let r = row.ok_or(AppError::NotFound("Roadmap"))?;
    purge_roadmap(&s, &r.1).await;
    Ok(created(
        v,
        now,
        json!({
            "id": r.0, "roadmap_id": r.1, "task_type": r.2, "output": r.3, "status": r.4,
            "model_used": r.5, "token_count": r.6, "cost_usd": r.7, "duration_ms": r.8,
            "timestamp": rfc3339(r.9),
        }),
    ))
}

async fn create_insight(
    State(s): State<AppState>,
    v: ApiVersion,
    ValidJson(body): ValidJson<NewInsight>,
) -> ApiResult {
    let now = s.now();
    let insight = logs::NewInsight {
        roadmap_id: &body.roadmap_id,
        kind: body.kind.as_str(),
        data: &body.data.to_string(),
        score: body.score,
        trend: &body.trend,
        created_at: now,
    };
    let row = logs::insert_insight(&s.db, &insight).await?;
    let r = row.ok_or(AppError::NotFound("Roadmap"))?;
    purge_roadmap(&s, &r.1).await;
    Ok(created(
        v,
        now,
        json!({
            "id": r.0, "roadmap_id": r.1, "type": r.2,
            "data": serde_json::from_str::<Value>(&r.3).unwrap_or_else(|_| json!({})),
            "score": r.4, "trend": r.5, "created_at": rfc3339(r.6),
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn insight(data: Value, score: f64) -> NewInsight {
        NewInsight {
            roadmap_id: "00000000-0000-4000-8000-000000000001".into(),
            kind: InsightType::Quality,
            data,
            score,
            trend: "stable".into(),
        }
    }

    /// The `(field, code)` of each error, or none when valid.
    fn refused(insight: &NewInsight) -> Vec<(String, String)> {
        let Err(errors) = insight.validate() else {
            return Vec::new();
        };
        let mut found: Vec<_> = errors
            .field_errors()
            .into_iter()
            .flat_map(|(field, list)| {
                list.iter()
                    .map(move |e| (field.to_string(), e.code.to_string()))
            })
            .collect();
        found.sort();
        found
    }

    fn field(field: &str, code: &str) -> Vec<(String, String)> {
        vec![(field.to_owned(), code.to_owned())]
    }

    /// The code of a single value's error.
    fn code(r: Result<(), ValidationError>) -> Result<(), String> {
        r.map_err(|e| e.code.into_owned())
    }

    #[test]
    fn insight_data_must_be_a_small_object_and_score_in_0_1() {
        assert_eq!(refused(&insight(json!({"a": 1}), 0.5)), []);
        assert_eq!(refused(&insight(json!([1, 2]), 0.5)), field("data", "type"));
        assert_eq!(refused(&insight(json!("x"), 0.5)), field("data", "type"));
        assert_eq!(
            refused(&insight(json!({"a": "x".repeat(MAX_DATA_BYTES)}), 0.5)),
            field("data", "length")
        );
        assert_eq!(refused(&insight(json!({}), 1.01)), field("score", "range"));
        assert_eq!(refused(&insight(json!({}), -0.01)), field("score", "range"));
    }

    #[test]
    fn enums_are_the_schemas() {
        assert_eq!(code(log_status("retry")), Ok(()));
        assert_eq!(code(log_status("RETRY")), Err("enum".to_owned()));
        assert_eq!(code(log_status("")), Err("enum".to_owned()));
        assert_eq!(InsightType::Collaboration.as_str(), "collaboration");
        assert_eq!(InsightType::Performance.as_str(), "performance");
        assert_eq!(
            serde_json::from_str::<InsightType>("\"speed\"").map_err(|e| e.to_string()),
            Err(
                "unknown variant `speed`, expected one of `performance`, `usage`, `quality`, \
                 `cost`, `collaboration` at line 1 column 7"
                    .to_owned()
            )
        );
        assert_eq!(code(trend("declining")), Ok(()));
        assert_eq!(code(trend("up")), Err("enum".to_owned()));
    }
}
