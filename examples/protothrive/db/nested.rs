//! The nested data pages show, in SQL: for keys of each [`Kind`], the rows of one `SELECT`, all
//! kinds of a batch in one `UNION ALL` statement, the ids of each kind bound as one JSON array
//! (a table through [`Dialect::each`]). The values are built as JSON by the database.

use super::{Db, Dialect};

/// An agent log as JSON (from a row of `agent_logs`).
pub fn log_item(d: Dialect) -> String {
    d.object(
        "'id', id, 'task_type', task_type, 'output', output, 'status', status, \
         'model_used', model_used, 'token_count', token_count, 'cost_usd', cost_usd, \
         'duration_ms', duration_ms, 'timestamp', timestamp",
    )
}

/// An insight as JSON (from a row of `insights`).
pub fn insight_item(d: Dialect) -> String {
    d.object(&format!(
        "'id', id, 'type', type, 'data', {}, 'score', score, 'trend', trend, \
         'created_at', created_at",
        d.json("data")
    ))
}

/// How many recent logs and insights a roadmap's detail view shows.
pub const RECENT: u32 = 10;

/// What a key asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A user's summary, `{id, name, email}` (callers drop the email where it is not shown).
    User,
    /// The number of a roadmap's agent logs.
    LogCount,
    /// A roadmap's newest insight.
    LatestInsight,
    /// A roadmap's newest [`RECENT`] agent logs, newest first.
    RecentLogs,
    /// A roadmap's newest [`RECENT`] insights, newest first.
    RecentInsights,
}

pub const KINDS: [Kind; 5] = [
    Kind::User,
    Kind::LogCount,
    Kind::LatestInsight,
    Kind::RecentLogs,
    Kind::RecentInsights,
];

impl Kind {
    /// Kind `tag`, as [`load`] answers it.
    pub fn of(tag: i64) -> Option<Self> {
        usize::try_from(tag)
            .ok()
            .and_then(|tag| KINDS.get(tag))
            .copied()
    }

    /// The `SELECT` answering this kind for the ids in the JSON array bound at `$param`: rows
    /// of (kind, id, JSON text), none for an id that has no value.
    fn select(self, d: Dialect, param: usize) -> String {
        let tag = self as u8;
        let each = d.each(param);
        let recent = |table: &str, item: String, time: &str| {
            format!(
                "SELECT {tag}, k.value, (SELECT {} FROM (SELECT {item} AS item, {time}, id \
                 FROM {table} WHERE roadmap_id = k.value ORDER BY {time} DESC, id DESC \
                 LIMIT {RECENT}) AS recent) FROM {each}",
                d.array("item", &format!("{time} DESC, id DESC")),
            )
        };
        match self {
            Self::User => format!(
                "SELECT {tag}, u.id, {} FROM users u WHERE u.id IN (SELECT k.value FROM {each})",
                d.text(&d.object("'id', u.id, 'name', u.name, 'email', u.email"))
            ),
            Self::LogCount => format!(
                "SELECT {tag}, k.value, CAST((SELECT COUNT(*) FROM agent_logs l \
                 WHERE l.roadmap_id = k.value) AS TEXT) FROM {each}"
            ),
            Self::LatestInsight => format!(
                "SELECT {tag}, k.value, (SELECT {} FROM insights \
                 WHERE roadmap_id = k.value ORDER BY created_at DESC, id DESC LIMIT 1) FROM {each}",
                d.text(&insight_item(d))
            ),
            Self::RecentLogs => recent("agent_logs", log_item(d), "timestamp"),
            Self::RecentInsights => recent("insights", insight_item(d), "created_at"),
        }
    }

    /// The UNIX-time members of this kind's JSON, shown as RFC 3339.
    pub fn times(self) -> &'static [&'static str] {
        match self {
            Self::User | Self::LogCount => &[],
            Self::LatestInsight | Self::RecentInsights => &["created_at"],
            Self::RecentLogs => &["timestamp"],
        }
    }
}

/// Rows of (kind's tag, id, JSON text) for `ids` (by kind, in [`KINDS`] order; none for an id
/// that has no value): one statement for all kinds.
pub async fn load(
    db: &Db,
    ids: &[Vec<&str>; KINDS.len()],
) -> Result<Vec<(i64, String, Option<String>)>, sqlx::Error> {
    let mut sql = String::new();
    let mut binds = Vec::new();
    for (kind, ids) in KINDS.iter().zip(ids) {
        if ids.is_empty() {
            continue;
        }
        if !sql.is_empty() {
            sql.push_str(" UNION ALL ");
        }
        binds.push(serde_json::to_string(ids).unwrap_or_default());
        sql.push_str(&kind.select(db.dialect, binds.len()));
    }
    let mut query = sqlx::query_as(&sql);
    for b in binds {
        query = query.bind(b);
    }
    query.fetch_all(db.reader()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_selects_its_tag_and_binds_its_own_parameter() {
        for (i, kind) in KINDS.iter().enumerate() {
            assert_eq!(*kind as usize, i, "KINDS is in tag order");
            for d in Dialect::BOTH {
                let sql = kind.select(d, i + 1);
                assert!(sql.starts_with(&format!("SELECT {i}, ")), "{sql}");
                assert!(sql.contains(&d.each(i + 1)), "{sql}");
            }
        }
    }
}
