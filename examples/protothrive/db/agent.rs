//! Agent runs: one row per run with its budget and cost, and one trace row per attempt.

use sqlx::AnyConnection;

use super::{Builder, Counted, new_id};
use crate::agent::Attempt;

/// One run to record.
#[derive(Debug)]
pub struct NewRun<'a> {
    pub id: &'a str,
    pub roadmap_id: &'a str,
    pub user_id: &'a str,
    pub task_type: &'a str,
    pub status: &'a str,
    pub budget_usd: f64,
    pub cost_usd: f64,
    pub created_at: i64,
    pub finished_at: i64,
}

/// Records `run` and its `attempts` (one statement each, none for no attempts) on `tx`.
pub async fn insert_run(
    tx: &mut AnyConnection,
    run: &NewRun<'_>,
    attempts: &[Attempt],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO agent_runs (id, roadmap_id, user_id, task_type, status, budget_usd, \
         cost_usd, created_at, finished_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(run.id)
    .bind(run.roadmap_id)
    .bind(run.user_id)
    .bind(run.task_type)
    .bind(run.status)
    .bind(run.budget_usd)
    .bind(run.cost_usd)
    .bind(run.created_at)
    .bind(run.finished_at)
    .execute(Counted(&mut *tx))
    .await?;
    if attempts.is_empty() {
        return Ok(());
    }
    let mut qb = Builder::new(
        "INSERT INTO agent_run_traces (id, run_id, attempt, agent, status, duration_ms, error, \
         created_at) VALUES ",
    );
    for (i, a) in attempts.iter().enumerate() {
        qb.push(if i == 0 { "(" } else { ", (" })
            .push_bind(new_id())
            .push(", ")
            .push_bind(run.id)
            .push(", ")
            .push_bind(i64::from(a.number))
            .push(", ")
            .push_bind(a.agent.as_str())
            .push(", ")
            .push_bind(a.status.as_str())
            .push(", ")
            .push_bind(a.duration_ms)
            .push(", ")
            .push_bind(a.error.as_deref())
            .push(", ")
            .push_bind(run.finished_at)
            .push(")");
    }
    qb.build().execute(Counted(tx)).await.map(drop)
}
