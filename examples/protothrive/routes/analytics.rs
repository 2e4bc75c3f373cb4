//! `GET /analytics/dashboard` (exec and above): platform totals, aggregated by the database in one
//! statement (never by loading rows), and the top public roadmaps by thrive score with their
//! owner, log count and latest insight from one batch of the request's loader: two statements.

use axum::extract::State;
use axum::response::IntoResponse;

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
    let t = crate::db::analytics::totals(&s.db).await?;
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
