//! `POST /agent/run`: runs an agent task on a roadmap through the agent service.
//!
//! Order: the route's load shedder (503 `LOAD-503` when too many runs are in flight), validate
//! the body (422), the budget (402), that the caller may use the roadmap (404,
//! one statement), the breaker (503 with `Retry-After`, nothing recorded: no run happened). Then
//! the attempts (see `agent::AgentClient::run`), and one write transaction recording the run, a
//! trace per attempt and a log. A run that failed is still recorded, then answered with 502.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use protothrive::auth::Principal;
use protothrive::error::Problem;
use protothrive::gateway::{ApiVersion, ValidJson};
use serde::Deserialize;
use serde_json::{Value, json};
use validator::Validate;

use crate::agent::{AgentOutput, AgentRequest, Attempt, AttemptStatus, Run, RunError};
use crate::db::{self, Counted, rfc3339};
use crate::http::{ApiResult, AppError, envelope};
use crate::state::AppState;

use super::table::{Route, Who::User, ep};

/// The largest budget of one run.
pub const MAX_BUDGET_USD: f64 = 5.00;
const MAX_PROMPT_CHARS: u64 = 4000;

/// The route's own load shedder bounds the runs in flight (signed-in callers only reach it:
/// anonymous ones get 401).
pub fn routes() -> Vec<Route> {
    vec![Route::to(
        ep("POST", "/api/agent/run", "Run an agent task (timeout, retry budget, circuit breaker); records the run, traces and a log", User, "agents")
            .body(run_task_schema)
            .created()
            .extra(&[402, 404, 502, 503]),
        run,
    )
    .wrap(|r, state| r.layer(super::shed(state.config.resilience.agent_max_in_flight)))]
}

#[derive(Debug, Deserialize, Validate)]
#[serde(deny_unknown_fields)]
pub struct RunTask {
    #[validate(custom(function = "super::logs::uuid"))]
    roadmap_id: String,
    #[validate(custom(function = "super::logs::task_type"))]
    task_type: String,
    #[validate(length(min = 1, max = MAX_PROMPT_CHARS, message = "1 to 4000 characters"))]
    prompt: String,
    /// Checked by hand: out of range is a 402, not a 422.
    budget_usd: f64,
}

/// JSON Schema (2020-12) of [`RunTask`], for the OpenAPI document.
pub fn run_task_schema(_v: u8) -> Value {
    json!({
        "type": "object", "additionalProperties": false,
        "required": ["roadmap_id", "task_type", "prompt", "budget_usd"],
        "properties": {
            "roadmap_id": {"type": "string", "format": "uuid"},
            "task_type": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,50}$"},
            "prompt": {"type": "string", "minLength": 1, "maxLength": MAX_PROMPT_CHARS},
            "budget_usd": {
                "type": "number", "exclusiveMinimum": 0, "maximum": MAX_BUDGET_USD,
                "description": "outside (0, 5.00] the answer is 402 COST-402"
            },
        }
    })
}

fn breaker_open(retry_after: std::time::Duration) -> AppError {
    let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
    AppError::Problem(
        Problem::new(StatusCode::SERVICE_UNAVAILABLE, "SRV-503")
            .with_detail("The agent service is failing; calls are paused. Retry later.")
            .with_header(header::RETRY_AFTER, HeaderValue::from(secs.max(1))),
    )
}

/// `agent_logs.status` of a run: success, retry (succeeded after retrying), timeout or fail.
fn log_status(run: &Run) -> &'static str {
    match &run.result {
        Ok(_) if run.attempts.len() > 1 => "retry",
        Ok(_) => "success",
        Err(RunError::Failed {
            last: AttemptStatus::Timeout,
            ..
        }) => "timeout",
        Err(_) => "fail",
    }
}

fn trace_json(run_id: &str, a: &Attempt) -> Value {
    json!({
        "run_id": run_id, "attempt": a.number, "agent": a.agent, "status": a.status.as_str(),
        "duration_ms": a.duration_ms, "error": a.error,
    })
}

async fn run(
    State(s): State<AppState>,
    v: ApiVersion,
    p: Principal,
    ValidJson(body): ValidJson<RunTask>,
) -> ApiResult {
    if !(body.budget_usd > 0.0 && body.budget_usd <= MAX_BUDGET_USD) {
        return Err(AppError::PaymentRequired(format!(
            "budget_usd must be more than 0 and at most {MAX_BUDGET_USD:.2} USD."
        )));
    }
    if !db::roadmaps::is_owned(&s.db, &body.roadmap_id, p.subject()).await? {
        return Err(AppError::NotFound("Roadmap"));
    }

    let started_at = s.now();
    let started = s.clock.instant();
    let req = AgentRequest {
        task_type: body.task_type.clone(),
        roadmap_id: body.roadmap_id.clone(),
        prompt: body.prompt.clone(),
        budget_usd: body.budget_usd,
    };
    let run = s.agent.run(&req).await;
    if let Err(RunError::Open { retry_after }) = &run.result {
        return Err(breaker_open(*retry_after));
    }
    let duration_ms = i64::try_from(
        s.clock
            .instant()
            .saturating_duration_since(started)
            .as_millis(),
    )
    .unwrap_or(i64::MAX);
    let finished_at = s.now();
    let run_id = db::new_id();
    let log_id = db::new_id();
    let status = log_status(&run);
    let (output, model, tokens, cost) = match &run.result {
        Ok(AgentOutput {
            output,
            model,
            token_count,
            cost_usd,
        }) => (output.clone(), model.clone(), *token_count, *cost_usd),
        // The schema wants token_count > 0: a failed run is charged the prompt it sent (~4 chars
        // a token) and no cost.
        Err(e) => (
            match e {
                RunError::Failed { message, .. } => message.clone(),
                RunError::Open { .. } => String::new(),
            },
            "none".to_owned(),
            i64::try_from(body.prompt.len().div_ceil(4))
                .unwrap_or(1)
                .max(1),
            0.0,
        ),
    };
    let run_status = if run.result.is_ok() {
        "succeeded"
    } else {
        "failed"
    };

    let mut tx = s.db.write.begin().await?;
    let new_run = db::agent::NewRun {
        id: &run_id,
        roadmap_id: &body.roadmap_id,
        user_id: p.subject(),
        task_type: &body.task_type,
        status: run_status,
        budget_usd: body.budget_usd,
        cost_usd: cost,
        created_at: started_at,
        finished_at,
    };
    db::agent::insert_run(&mut tx, &new_run, &run.attempts).await?;
    let log = db::logs::NewLog {
        id: &log_id,
        roadmap_id: &body.roadmap_id,
        task_type: &body.task_type,
        output: &output,
        status,
        model_used: &model,
        token_count: tokens,
        cost_usd: cost,
        duration_ms,
        timestamp: finished_at,
    };
    db::logs::insert_log(Counted(&mut *tx), &log).await?;
    tx.commit().await?;
    // The roadmap's logs, the list pages it is on and the dashboard changed.
    crate::loaders::forget_roadmap(&s.nested, &body.roadmap_id).await;
    crate::cache::purge(
        &s,
        &[
            format!("roadmap:{}", body.roadmap_id),
            "dashboard".to_owned(),
        ],
    )
    .await;

    if let Err(RunError::Failed { .. }) = &run.result {
        return Err(AppError::Agent(format!(
            "The agent service failed after {} attempt(s); run {run_id} was recorded.",
            run.attempts.len()
        )));
    }
    let traces: Vec<Value> = run
        .attempts
        .iter()
        .map(|a| trace_json(&run_id, a))
        .collect();
    let data = json!({
        "run": {
            "id": run_id, "roadmap_id": body.roadmap_id, "user_id": p.subject(), "task_type": body.task_type,
            "status": run_status, "budget_usd": body.budget_usd, "cost_usd": cost,
            "created_at": rfc3339(started_at), "finished_at": rfc3339(finished_at),
        },
        "traces": traces,
        "log": {
            "id": log_id, "roadmap_id": body.roadmap_id, "task_type": body.task_type, "output": output,
            "status": status, "model_used": model, "token_count": tokens, "cost_usd": cost,
            "duration_ms": duration_ms, "timestamp": rfc3339(finished_at),
        },
    });
    let mut res = (
        StatusCode::CREATED,
        envelope(v, finished_at, data, json!({})),
    )
        .into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok::<Response, AppError>(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_with(attempts: &[AttemptStatus], result: Result<AgentOutput, RunError>) -> Run {
        Run {
            attempts: attempts
                .iter()
                .enumerate()
                .map(|(i, s)| Attempt {
                    number: u32::try_from(i + 1).unwrap_or(0),
                    agent: "a".into(),
                    status: *s,
                    duration_ms: 1,
                    error: None,
                })
                .collect(),
            result,
        }
    }

    fn out() -> AgentOutput {
        AgentOutput {
            output: "o".into(),
            model: "m".into(),
            token_count: 1,
            cost_usd: 0.0,
        }
    }

    #[test]
    fn log_status_tells_success_retry_timeout_and_fail_apart() {
        use AttemptStatus::{Error, Success, Timeout};
        assert_eq!(log_status(&run_with(&[Success], Ok(out()))), "success");
        assert_eq!(log_status(&run_with(&[Error, Success], Ok(out()))), "retry");
        let failed = |last| {
            Err(RunError::Failed {
                last,
                message: String::new(),
            })
        };
        assert_eq!(
            log_status(&run_with(&[Error, Timeout], failed(Timeout))),
            "timeout"
        );
        assert_eq!(
            log_status(&run_with(&[Timeout, Error], failed(Error))),
            "fail"
        );
    }
}
