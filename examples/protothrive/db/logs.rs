//! Agent logs and insights: what agents did on a roadmap, and what was learnt from it. (Their
//! lists under a roadmap are in `roadmaps.rs`; their nested summaries in `nested.rs`.)

use sqlx::{Any, Executor};

use super::{Db, new_id};

/// One agent log to record.
#[derive(Debug)]
pub struct NewLog<'a> {
    pub id: &'a str,
    pub roadmap_id: &'a str,
    pub task_type: &'a str,
    pub output: &'a str,
    pub status: &'a str,
    pub model_used: &'a str,
    pub token_count: i64,
    pub cost_usd: f64,
    pub duration_ms: i64,
    pub timestamp: i64,
}

/// id, roadmap, task type, output, status, model, tokens, cost, duration, time.
pub type LogRow = (
    String,
    String,
    String,
    String,
    String,
    String,
    i64,
    f64,
    i64,
    i64,
);

/// One insight to record.
#[derive(Debug)]
pub struct NewInsight<'a> {
    pub roadmap_id: &'a str,
    pub kind: &'a str,
    /// JSON text.
    pub data: &'a str,
    pub score: f64,
    pub trend: &'a str,
    pub created_at: i64,
}

/// id, roadmap, type, data (JSON text), score, trend, time.
pub type InsightRow = (String, String, String, String, f64, String, i64);

/// Only while the roadmap (bound at `$2`) is live.
const LIVE_ROADMAP: &str =
    "WHERE EXISTS (SELECT 1 FROM roadmaps WHERE id = $2 AND deleted_at IS NULL)";

/// Records `log` on `ex` (the writer, or a transaction) while its roadmap is live; returns the
/// row, `None` when there is no such live roadmap.
pub async fn insert_log<'c>(
    ex: impl Executor<'c, Database = Any>,
    log: &NewLog<'_>,
) -> Result<Option<LogRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "INSERT INTO agent_logs (id, roadmap_id, task_type, output, status, model_used, \
         token_count, cost_usd, duration_ms, timestamp) \
         SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10 {LIVE_ROADMAP} \
         RETURNING id, roadmap_id, task_type, output, status, model_used, token_count, cost_usd, \
         duration_ms, timestamp"
    ))
    .bind(log.id)
    .bind(log.roadmap_id)
    .bind(log.task_type)
    .bind(log.output)
    .bind(log.status)
    .bind(log.model_used)
    .bind(log.token_count)
    .bind(log.cost_usd)
    .bind(log.duration_ms)
    .bind(log.timestamp)
    .fetch_optional(ex)
    .await
}

/// Records `insight` while its roadmap is live; returns the row, `None` when there is no such
/// live roadmap.
pub async fn insert_insight(
    db: &Db,
    insight: &NewInsight<'_>,
) -> Result<Option<InsightRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "INSERT INTO insights (id, roadmap_id, type, data, score, trend, created_at) \
         SELECT $1, $2, $3, $4, $5, $6, $7 {LIVE_ROADMAP} \
         RETURNING id, roadmap_id, type, data, score, trend, created_at"
    ))
    .bind(new_id())
    .bind(insight.roadmap_id)
    .bind(insight.kind)
    .bind(insight.data)
    .bind(insight.score)
    .bind(insight.trend)
    .bind(insight.created_at)
    .fetch_optional(db.writer())
    .await
}
