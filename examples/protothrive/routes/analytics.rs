//! `GET /analytics/dashboard` (exec and above): platform totals, aggregated by SQLite in one
//! statement (never by loading rows), and the top public roadmaps by thrive score with their
//! owner, log count and latest insight from one batch of the request's loader: two statements.

use axum::extract::State;
use axum::response::IntoResponse;
use std::sync::LazyLock;

use protothrive::gateway::ApiVersion;
use serde_json::{Value, json};
use sqlx::Row;

use crate::http::{ApiResult, AppError, envelope};
use crate::loaders::{self, Kind, Nested, NestedLoader, public_user};
use crate::state::AppState;

use super::table::{Route, Who::Role, ep};

pub fn routes() -> Vec<Route> {
    // The same totals for every exec: a shared entry, behind the role check.
    vec![Route::to(
        ep("GET", "/api/analytics/dashboard", "Totals per status, scores, agent cost and success rate, insights per type, top public roadmaps", Role("exec"), "analytics"),
        dashboard,
    )
    .wrap(|r, state| r.route_layer(crate::cache::cached(state)))]
}

/// How many roadmaps `top_roadmaps` shows.
const TOP: u32 = 5;

/// Every total in one row: three one-row aggregates cross-joined, and the top public roadmaps by
/// thrive score as a JSON array (the dashboard is shared by every exec: private titles stay out).
static TOTALS_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT r.*, l.*, i.*, (SELECT json_group_array(json_object('id', id, 'title', title, \
                'status', status, 'thrive_score', thrive_score, 'user_id', user_id)) \
           FROM (SELECT id, title, status, thrive_score, user_id FROM roadmaps \
                 WHERE deleted_at IS NULL AND visibility = 'public' \
                 ORDER BY thrive_score DESC, updated_at DESC, id DESC LIMIT {TOP})) AS top \
         FROM (SELECT COUNT(*) AS roadmaps, \
                 COALESCE(SUM(status = 'draft'), 0) AS draft, \
                 COALESCE(SUM(status = 'active'), 0) AS active, \
                 COALESCE(SUM(status = 'completed'), 0) AS completed, \
                 COALESCE(SUM(status = 'archived'), 0) AS archived, \
                 AVG(thrive_score) AS score_avg, MIN(thrive_score) AS score_min, \
                 MAX(thrive_score) AS score_max \
               FROM roadmaps WHERE deleted_at IS NULL) AS r, \
              (SELECT COUNT(*) AS runs, COALESCE(SUM(status IN ('success', 'retry')), 0) AS successes, \
                 COALESCE(SUM(cost_usd), 0.0) AS cost, COALESCE(SUM(token_count), 0) AS tokens \
               FROM agent_logs) AS l, \
              (SELECT COUNT(*) AS insights, \
                 COALESCE(SUM(type = 'performance'), 0) AS performance, \
                 COALESCE(SUM(type = 'usage'), 0) AS usage, \
                 COALESCE(SUM(type = 'quality'), 0) AS quality, \
                 COALESCE(SUM(type = 'cost'), 0) AS cost_n, \
                 COALESCE(SUM(type = 'collaboration'), 0) AS collaboration \
               FROM insights) AS i"
    )
});

/// Rounds to 4 decimals (scores and rates), 6 for money.
fn round(x: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (x * f).round() / f
}

/// The top roadmaps with their owner (id and name), log count and latest insight: one batch.
async fn top_roadmaps(loader: &NestedLoader, top: &str) -> ApiResult<Vec<Value>> {
    let mut top: Vec<Value> = serde_json::from_str(top)
        .map_err(|e| AppError::Internal(format!("the top roadmaps are not JSON: {e}")))?;
    let text = |v: &Value, key: &str| v[key].as_str().unwrap_or_default().to_owned();
    let mut keys = Vec::with_capacity(top.len() * 3);
    for r in &top {
        keys.push(Nested(Kind::User, text(r, "user_id")));
        keys.push(Nested(Kind::LogCount, text(r, "id")));
        keys.push(Nested(Kind::LatestInsight, text(r, "id")));
    }
    let nested = loaders::load(loader, keys).await?;
    for (r, n) in top.iter_mut().zip(nested.chunks(3)) {
        if let (Some(map), [owner, log_count, latest_insight]) = (r.as_object_mut(), n) {
            map.remove("user_id");
            map.insert("owner".into(), public_user(owner.clone()));
            map.insert("log_count".into(), log_count.clone());
            map.insert("latest_insight".into(), latest_insight.clone());
        }
    }
    Ok(top)
}

async fn dashboard(State(s): State<AppState>, v: ApiVersion, loader: NestedLoader) -> ApiResult {
    let t = sqlx::query(&TOTALS_SQL).fetch_one(s.db.reader()).await?;
    let n = |column: &str| t.try_get::<i64, _>(column);
    let runs = n("runs")?;
    let successes = n("successes")?;
    let score = |column: &str| t.try_get::<Option<f64>, _>(column);
    let top = top_roadmaps(&loader, &t.try_get::<String, _>("top")?).await?;
    #[allow(clippy::cast_precision_loss)] // counts far below 2^52
    let success_rate = (runs > 0).then(|| round(successes as f64 / runs as f64, 4));
    let data = json!({
        "roadmaps": {
            "total": n("roadmaps")?,
            "by_status": {
                "draft": n("draft")?, "active": n("active")?,
                "completed": n("completed")?, "archived": n("archived")?,
            },
            "thrive_score": {
                "average": score("score_avg")?.map(|x| round(x, 4)),
                "min": score("score_min")?,
                "max": score("score_max")?,
            },
        },
        "agents": {
            "runs": runs,
            "successes": successes,
            "success_rate": success_rate,
            "cost_usd": round(t.try_get("cost")?, 6),
            "tokens": n("tokens")?,
        },
        "insights": {
            "total": n("insights")?,
            "by_type": {
                "performance": n("performance")?, "usage": n("usage")?, "quality": n("quality")?,
                "cost": n("cost_n")?, "collaboration": n("collaboration")?,
            },
        },
        "top_roadmaps": top,
    });
    Ok(crate::cache::tag(
        envelope(v, s.now(), data, json!({})).into_response(),
        crate::cache::shared(),
        "dashboard",
    ))
}
