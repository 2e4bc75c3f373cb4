//! `GET /analytics/dashboard` (exec and above): platform totals, aggregated by SQLite in two
//! statements (one over roadmaps, one over agent logs and insights), never by loading rows.

use axum::Router;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use protothrive::gateway::ApiVersion;
use serde_json::json;

use crate::http::{ApiResult, envelope};
use crate::state::AppState;

pub fn router(state: &AppState) -> Router<AppState> {
    // The same totals for every exec: a shared entry, behind the role check.
    Router::new().route(
        "/api/analytics/dashboard",
        get(dashboard)
            .route_layer(crate::cache::cached(state))
            .route_layer(super::at_least("exec")),
    )
}

type RoadmapTotals = (
    i64,
    i64,
    i64,
    i64,
    i64,
    Option<f64>,
    Option<f64>,
    Option<f64>,
);
type ActivityTotals = (i64, i64, f64, i64, i64, i64, i64, i64, i64, i64);

/// Rounds to 4 decimals (scores and rates), 6 for money.
fn round(x: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (x * f).round() / f
}

async fn dashboard(State(s): State<AppState>, v: ApiVersion) -> ApiResult {
    let r: RoadmapTotals = sqlx::query_as(
        "SELECT COUNT(*), \
                COALESCE(SUM(status = 'draft'), 0), COALESCE(SUM(status = 'active'), 0), \
                COALESCE(SUM(status = 'completed'), 0), COALESCE(SUM(status = 'archived'), 0), \
                AVG(thrive_score), MIN(thrive_score), MAX(thrive_score) \
         FROM roadmaps WHERE deleted_at IS NULL",
    )
    .fetch_one(s.db.reader())
    .await?;
    let a: ActivityTotals = sqlx::query_as(
        "SELECT l.runs, l.successes, l.cost, i.total, i.performance, i.usage, i.quality, i.cost_n, i.collaboration, l.tokens \
         FROM (SELECT COUNT(*) AS runs, COALESCE(SUM(status IN ('success', 'retry')), 0) AS successes, \
                      COALESCE(SUM(cost_usd), 0.0) AS cost, COALESCE(SUM(token_count), 0) AS tokens \
               FROM agent_logs) AS l, \
              (SELECT COUNT(*) AS total, \
                      COALESCE(SUM(type = 'performance'), 0) AS performance, COALESCE(SUM(type = 'usage'), 0) AS usage, \
                      COALESCE(SUM(type = 'quality'), 0) AS quality, COALESCE(SUM(type = 'cost'), 0) AS cost_n, \
                      COALESCE(SUM(type = 'collaboration'), 0) AS collaboration \
               FROM insights) AS i",
    )
    .fetch_one(s.db.reader())
    .await?;
    #[allow(clippy::cast_precision_loss)] // counts far below 2^52
    let success_rate = (a.0 > 0).then(|| round(a.1 as f64 / a.0 as f64, 4));
    let data = json!({
        "roadmaps": {
            "total": r.0,
            "by_status": {"draft": r.1, "active": r.2, "completed": r.3, "archived": r.4},
            "thrive_score": {
                "average": r.5.map(|x| round(x, 4)),
                "min": r.6,
                "max": r.7,
            },
        },
        "agents": {
            "runs": a.0,
            "successes": a.1,
            "success_rate": success_rate,
            "cost_usd": round(a.2, 6),
            "tokens": a.9,
        },
        "insights": {
            "total": a.3,
            "by_type": {
                "performance": a.4, "usage": a.5, "quality": a.6, "cost": a.7, "collaboration": a.8,
            },
        },
    });
    Ok(crate::cache::tag(
        envelope(v, s.now(), data, json!({})).into_response(),
        crate::cache::shared(),
        "dashboard",
    ))
}
