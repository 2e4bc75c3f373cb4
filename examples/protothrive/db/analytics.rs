//! The analytics dashboard's totals: aggregated by the database in one statement, never by
//! loading rows.

use sqlx::any::AnyRow;

use super::{Db, Dialect, Sql};

/// How many roadmaps `top_roadmaps` shows.
pub const TOP: u32 = 5;

/// Every total in one row: three one-row aggregates cross-joined, and the top public roadmaps by
/// thrive score as a JSON array (the dashboard is shared by every exec: private titles stay out).
static TOTALS_SQL: Sql = Sql::new(|| Dialect::BOTH.map(totals_sql));

fn totals_sql(d: Dialect) -> String {
    let top = d.array(
        &d.object(
            "'id', id, 'title', title, 'status', status, 'thrive_score', thrive_score, \
             'user_id', user_id",
        ),
        "thrive_score DESC, updated_at DESC, id DESC",
    );
    format!(
        "SELECT r.*, l.*, i.*, (SELECT {top} \
           FROM (SELECT id, title, status, thrive_score, user_id, updated_at FROM roadmaps \
                 WHERE deleted_at IS NULL AND visibility = 'public' \
                 ORDER BY thrive_score DESC, updated_at DESC, id DESC LIMIT {TOP}) AS t) AS top \
         FROM (SELECT COUNT(*) AS roadmaps, \
                 COUNT(*) FILTER (WHERE status = 'draft') AS draft, \
                 COUNT(*) FILTER (WHERE status = 'active') AS active, \
                 COUNT(*) FILTER (WHERE status = 'completed') AS completed, \
                 COUNT(*) FILTER (WHERE status = 'archived') AS archived, \
                 AVG(thrive_score) AS score_avg, MIN(thrive_score) AS score_min, \
                 MAX(thrive_score) AS score_max \
               FROM roadmaps WHERE deleted_at IS NULL) AS r, \
              (SELECT COUNT(*) AS runs, \
                 COUNT(*) FILTER (WHERE status IN ('success', 'retry')) AS successes, \
                 COALESCE(SUM(cost_usd), 0.0) AS cost, \
                 CAST(COALESCE(SUM(token_count), 0) AS BIGINT) AS tokens \
               FROM agent_logs) AS l, \
              (SELECT COUNT(*) AS insights, \
                 COUNT(*) FILTER (WHERE type = 'performance') AS performance, \
                 COUNT(*) FILTER (WHERE type = 'usage') AS usage, \
                 COUNT(*) FILTER (WHERE type = 'quality') AS quality, \
                 COUNT(*) FILTER (WHERE type = 'cost') AS cost_n, \
                 COUNT(*) FILTER (WHERE type = 'collaboration') AS collaboration \
               FROM insights) AS i"
    )
}

/// The totals' one row: `roadmaps`, `draft`, `active`, `completed`, `archived`, `score_avg`,
/// `score_min`, `score_max`, `runs`, `successes`, `cost`, `tokens`, `insights`, one column per
/// insight type (`cost_n` for `cost`), and `top` (JSON text).
pub async fn totals(db: &Db) -> Result<AnyRow, sqlx::Error> {
    sqlx::query(TOTALS_SQL.get(db)).fetch_one(db.reader()).await
}
