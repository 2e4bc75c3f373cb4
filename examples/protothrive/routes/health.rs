//! Health, status and metrics.

use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use protothrive::auth::Principal;
use protothrive::gateway::ApiVersion;
use protothrive::health::{CheckState, Health, Status};
use serde_json::json;

use crate::http::{AppError, envelope};
use crate::state::AppState;

use super::table::{Route, Who::Anyone, ep};

/// The longest a readiness probe waits for the database.
const DB_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest it waits for Redis (whose own `PING` is bounded by the handle's timeout).
const REDIS_TIMEOUT: Duration = Duration::from_secs(1);

pub fn routes() -> Vec<Route> {
    vec![
        Route::to(
            ep("GET", "/api/health", "Liveness", Anyone, "health").unscoped(),
            live,
        ),
        Route::to(
            ep("GET", "/api/health/live", "Liveness", Anyone, "health").unscoped(),
            live,
        ),
        Route::to(
            ep(
                "GET",
                "/api/health/ready",
                "Readiness: database and Redis checks (503 when unhealthy)",
                Anyone,
                "health",
            )
            .unscoped()
            .extra(&[503]),
            ready,
        ),
        Route::to(
            ep(
                "GET",
                "/api/status",
                "Version and uptime; cache statistics for users; configuration for super_admins",
                Anyone,
                "health",
            ),
            status,
        ),
        Route::to(
            ep(
                "GET",
                "/metrics",
                "Prometheus metrics (unversioned; a configured token may be required)",
                Anyone,
                "health",
            ),
            metrics_text,
        ),
    ]
}

/// Health routes answer outside the versioned prefix too (as v1).
fn version(v: Option<ApiVersion>) -> ApiVersion {
    v.unwrap_or(ApiVersion(1))
}

async fn live(State(s): State<AppState>, v: Option<ApiVersion>) -> Response {
    envelope(version(v), s.now(), json!({"status": "healthy"}), json!({})).into_response()
}

/// The database is required (down → `unhealthy`, 503), Redis optional when configured (down →
/// `degraded`, 200); both checked at once, each within its timeout (a hung one is `down`).
async fn ready(State(s): State<AppState>, v: Option<ApiVersion>) -> Response {
    let db = s.db.clone();
    let mut health = Health::builder()
        .clock(s.clock.clone())
        .hide_errors()
        .check("database", DB_TIMEOUT, move || {
            let db = db.clone();
            async move { db.ping().await.then_some(()).ok_or("no answer") }
        });
    if let Some(redis) = s.stack.redis().cloned() {
        health = health.optional("redis", REDIS_TIMEOUT, move || {
            let redis = redis.clone();
            async move { redis.ping().await.then_some(()).ok_or("no answer") }
        });
    }
    let report = match health.build() {
        Ok(h) => h.readiness().await,
        Err(e) => return AppError::Internal(e.message().to_owned()).into_response(),
    };
    let state = |name| match report.check(name).map(|c| c.state) {
        None => "not_configured",
        Some(CheckState::Up) => "up",
        Some(_) => "down",
    };
    let status = match report.status() {
        Status::Ready => "healthy",
        Status::Degraded => "degraded",
        _ => "unhealthy",
    };
    let body = envelope(
        version(v),
        s.now(),
        json!({
            "status": status,
            "checks": {"database": state("database"), "redis": state("redis")},
        }),
        json!({}),
    );
    (report.http_status(), body).into_response()
}

/// Liveness figures for anyone; the cache's counters for signed-in users; the configuration
/// (environment, rate limits, revocations) for super_admins only: an anonymous caller learns
/// nothing about how the service is set up.
async fn status(
    State(s): State<AppState>,
    v: Option<ApiVersion>,
    who: Option<Principal>,
) -> Response {
    let mut data = json!({
        "service": "protothrive",
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": s.clock.instant().saturating_duration_since(s.started).as_secs(),
        "requests_in_flight": s.stack.trace().map_or(0, |t| t.in_flight().get()),
    });
    if let Some(p) = who {
        data["cache"] = cache_stats(&s);
        if p.has_role("super_admin") {
            data["environment"] = format!("{:?}", s.config.env).to_lowercase().into();
            data["rate_limits"] = s.config.rate_limits.as_deref().unwrap_or("default").into();
            data["auth"] = json!({
                "cached_tokens": s.auth.cached_tokens(),
                "revoked_tokens": s.revocations.count(),
            });
        }
    }
    envelope(version(v), s.now(), data, json!({})).into_response()
}

/// The read cache's counters, and its hit rate among cacheable requests.
fn cache_stats(s: &AppState) -> serde_json::Value {
    let handle = s.cache.handle();
    let st = handle.stats();
    let looked = st.hits + st.misses;
    json!({
        "hits": st.hits, "misses": st.misses, "stored": st.stored, "collapsed": st.collapsed,
        "stale_served": st.stale_served,
        "hit_rate": if looked == 0 { 0.0 } else { st.hits as f64 / looked as f64 },
        "l1_entries": handle.l1_len(), "l1_bytes": handle.l1_bytes(),
    })
}

/// The cache's counters as Prometheus series, read at scrape time.
fn publish_cache_metrics(s: &AppState) {
    let handle = s.cache.handle();
    let st = handle.stats();
    for (result, n) in [
        ("hit", st.hits),
        ("miss", st.misses),
        ("collapsed", st.collapsed),
        ("stale", st.stale_served),
    ] {
        metrics::counter!("protothrive_cache_requests_total", "result" => result).absolute(n);
    }
    metrics::counter!("protothrive_cache_stored_total").absolute(st.stored);
    let looked = st.hits + st.misses;
    metrics::gauge!("protothrive_cache_hit_ratio").set(if looked == 0 {
        0.0
    } else {
        st.hits as f64 / looked as f64
    });
    metrics::gauge!("protothrive_cache_l1_bytes").set(handle.l1_bytes() as f64);
}

/// Prometheus text. With `PROTOTHRIVE_METRICS_TOKEN` set, only a caller holding `metrics:read`
/// (the token itself, sent as `Authorization: Bearer`, or an API key with that scope).
async fn metrics_text(
    State(s): State<AppState>,
    who: Option<Principal>,
) -> Result<Response, AppError> {
    if s.config.metrics_token.is_some() {
        match who {
            Some(p) if p.has_scope("metrics:read") => {}
            Some(_) => return Err(AppError::Forbidden("needs metrics:read".into())),
            None => return Err(AppError::Unauthorized),
        }
    }
    publish_cache_metrics(&s);
    let text = s
        .metrics
        .as_ref()
        .map(metrics_exporter_prometheus::PrometheusHandle::render)
        .unwrap_or_default();
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}
