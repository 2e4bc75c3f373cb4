//! Roadmaps, and the agent logs and insights listed under one.
//!
//! [`COLUMNS`] is one select list used everywhere a roadmap is answered — the list, the single
//! read, and the `RETURNING` clause of every write — so the representation cannot drift between
//! endpoints and a write answers in the same statement that makes it. It names the table
//! `roadmaps` without an alias because `RETURNING` cannot use one. Each write is one statement
//! with the ownership check in its `WHERE`; a write that matched no row is told apart (403 or
//! 404) by [`is_public`].

use std::sync::LazyLock;

use sqlx::any::AnyRow;

use super::nested::{insight_item, log_item};
use super::{Db, Dialect, Sql, Window};

/// The select list of a roadmap.
pub const COLUMNS: &str = "roadmaps.id, roadmaps.user_id, roadmaps.title, roadmaps.description, \
     roadmaps.json_graph, roadmaps.status, roadmaps.vibe_mode, roadmaps.thrive_score, \
     roadmaps.visibility, roadmaps.tags, roadmaps.created_at, roadmaps.updated_at";

/// Every column of a roadmap a client sets (POST, PUT): absent optional fields take defaults.
#[derive(Debug)]
pub struct Full {
    pub title: String,
    pub description: Option<String>,
    pub graph: String,
    pub status: String,
    pub vibe_mode: bool,
    pub visibility: String,
    pub tags: String,
}

/// The columns a PATCH changes (`None`: keep).
#[derive(Debug)]
pub struct Partial {
    pub title: Option<String>,
    pub description: Option<String>,
    pub graph: Option<String>,
    pub status: Option<String>,
    pub vibe_mode: Option<bool>,
    pub visibility: Option<String>,
    pub tags: Option<String>,
}

/// The owner's roadmaps: a `total` CTE and a `page` CTE joined so that even an empty page
/// returns one row carrying the total — one statement for the page and `meta.total`.
static LIST_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH total AS ( \
           SELECT COUNT(*) AS n FROM roadmaps \
           WHERE user_id = $1 AND deleted_at IS NULL AND ($2 IS NULL OR status = $2)), \
         page AS ( \
           SELECT {COLUMNS} FROM roadmaps \
           WHERE roadmaps.user_id = $1 AND roadmaps.deleted_at IS NULL \
             AND ($2 IS NULL OR roadmaps.status = $2) \
             AND ($3 IS NULL OR (roadmaps.updated_at, roadmaps.id) < ($3, $4)) \
           ORDER BY roadmaps.updated_at DESC, roadmaps.id DESC LIMIT $5 OFFSET $6) \
         SELECT total.n AS total, page.* FROM total LEFT JOIN page ON TRUE \
         ORDER BY page.updated_at DESC, page.id DESC"
    )
});

/// Rows of `total` and [`COLUMNS`] (all `NULL` but `total` on an empty page), newest first, with
/// `status` if given.
pub async fn list(
    db: &Db,
    owner: &str,
    status: Option<&str>,
    (key, after, limit, offset): Window<'_>,
) -> Result<Vec<AnyRow>, sqlx::Error> {
    sqlx::query(&LIST_SQL)
        .bind(owner)
        .bind(status)
        .bind(key)
        .bind(after)
        .bind(limit)
        .bind(offset)
        .fetch_all(db.reader())
        .await
}

/// One roadmap, if `viewer` may read it. `team` has no team model behind it yet: it reads as
/// private (owner only).
pub async fn one(db: &Db, id: &str, viewer: &str) -> Result<Option<AnyRow>, sqlx::Error> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "SELECT {COLUMNS} FROM roadmaps WHERE roadmaps.id = $1 AND roadmaps.deleted_at IS NULL \
             AND (roadmaps.user_id = $2 OR roadmaps.visibility = 'public')"
        )
    });
    sqlx::query(&SQL)
        .bind(id)
        .bind(viewer)
        .fetch_optional(db.reader())
        .await
}

/// Whether roadmap `id` is live and public (a refused write: 403 rather than 404).
pub async fn is_public(db: &Db, id: &str) -> Result<bool, sqlx::Error> {
    let public: Option<i64> = sqlx::query_scalar(
        "SELECT 1 FROM roadmaps WHERE id = $1 AND deleted_at IS NULL AND visibility = 'public'",
    )
    .bind(id)
    .fetch_optional(db.reader())
    .await?;
    Ok(public.is_some())
}

/// Whether roadmap `id` is live and `owner`'s.
pub async fn is_owned(db: &Db, id: &str, owner: &str) -> Result<bool, sqlx::Error> {
    let owned: Option<i64> = sqlx::query_scalar(
        "SELECT 1 FROM roadmaps WHERE id = $1 AND deleted_at IS NULL AND user_id = $2",
    )
    .bind(id)
    .bind(owner)
    .fetch_optional(db.reader())
    .await?;
    Ok(owned.is_some())
}

/// Inserts roadmap `id` of `owner`; returns its [`COLUMNS`].
pub async fn insert(
    db: &Db,
    id: &str,
    owner: &str,
    r: &Full,
    now: i64,
) -> Result<AnyRow, sqlx::Error> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "INSERT INTO roadmaps (id, user_id, title, description, json_graph, status, vibe_mode, \
             visibility, tags, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) RETURNING {COLUMNS}"
        )
    });
    sqlx::query(&SQL)
        .bind(id)
        .bind(owner)
        .bind(&r.title)
        .bind(&r.description)
        .bind(&r.graph)
        .bind(&r.status)
        .bind(i64::from(r.vibe_mode))
        .bind(&r.visibility)
        .bind(&r.tags)
        .bind(now)
        .fetch_one(db.writer())
        .await
}

/// The columns a client sets, as bound by [`put`] and [`patch`] (`None`: `NULL`).
type Set<'a> = (
    Option<&'a str>,
    Option<&'a str>,
    Option<&'a str>,
    Option<&'a str>,
    Option<i64>,
    Option<&'a str>,
    Option<&'a str>,
);

/// PUT: every column a client sets, if `owner` owns it; returns its [`COLUMNS`].
pub async fn put(
    db: &Db,
    id: &str,
    owner: &str,
    r: &Full,
    now: i64,
) -> Result<Option<AnyRow>, sqlx::Error> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "UPDATE roadmaps SET title = $1, description = $2, json_graph = $3, status = $4, \
             vibe_mode = $5, visibility = $6, tags = $7, updated_at = $8 \
             WHERE id = $9 AND user_id = $10 AND deleted_at IS NULL RETURNING {COLUMNS}"
        )
    });
    let set = (
        Some(r.title.as_str()),
        r.description.as_deref(),
        Some(r.graph.as_str()),
        Some(r.status.as_str()),
        Some(i64::from(r.vibe_mode)),
        Some(r.visibility.as_str()),
        Some(r.tags.as_str()),
    );
    update(db, &SQL, set, (id, owner, now)).await
}

/// PATCH: the given columns (`NULL` binds keep the others), if `owner` owns it.
pub async fn patch(
    db: &Db,
    id: &str,
    owner: &str,
    r: &Partial,
    now: i64,
) -> Result<Option<AnyRow>, sqlx::Error> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "UPDATE roadmaps SET title = COALESCE($1, title), \
             description = COALESCE($2, description), json_graph = COALESCE($3, json_graph), \
             status = COALESCE($4, status), vibe_mode = COALESCE($5, vibe_mode), \
             visibility = COALESCE($6, visibility), tags = COALESCE($7, tags), updated_at = $8 \
             WHERE id = $9 AND user_id = $10 AND deleted_at IS NULL RETURNING {COLUMNS}"
        )
    });
    let set = (
        r.title.as_deref(),
        r.description.as_deref(),
        r.graph.as_deref(),
        r.status.as_deref(),
        r.vibe_mode.map(i64::from),
        r.visibility.as_deref(),
        r.tags.as_deref(),
    );
    update(db, &SQL, set, (id, owner, now)).await
}

/// Runs an update of [`put`] or [`patch`]: `set` at `$1`..`$7`, then the time, id and owner.
async fn update(
    db: &Db,
    sql: &str,
    set: Set<'_>,
    (id, owner, now): (&str, &str, i64),
) -> Result<Option<AnyRow>, sqlx::Error> {
    sqlx::query(sql)
        .bind(set.0)
        .bind(set.1)
        .bind(set.2)
        .bind(set.3)
        .bind(set.4)
        .bind(set.5)
        .bind(set.6)
        .bind(now)
        .bind(id)
        .bind(owner)
        .fetch_optional(db.writer())
        .await
}

/// Soft delete, if `owner` owns it: the row stays (logs and insights reference it) but every read
/// skips it. Returns whether it did.
pub async fn delete(db: &Db, id: &str, owner: &str, now: i64) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE roadmaps SET deleted_at = $1, updated_at = $1 \
         WHERE id = $2 AND user_id = $3 AND deleted_at IS NULL",
    )
    .bind(now)
    .bind(id)
    .bind(owner)
    .execute(db.writer())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The score: the mean of the roadmap's insight scores, each weighted `1 / (1 + age / 30 days)`
/// so recent insights count more (an insight 30 days old counts half as much as a new one),
/// clamped to 0..1; no insights → 0. Plain arithmetic (no math extension, the same on both).
const THRIVE_SCORE: &str = "(SELECT CAST(CASE WHEN a IS NULL OR a < 0.0 THEN 0.0 \
       WHEN a > 1.0 THEN 1.0 ELSE a END AS DOUBLE PRECISION) \
     FROM (SELECT SUM(score * w) / SUM(w) AS a \
       FROM (SELECT score, 1.0 / (1.0 + (CASE WHEN $1 > created_at THEN $1 - created_at ELSE 0 END) \
             / 2592000.0) AS w \
           FROM insights WHERE roadmap_id = roadmaps.id) AS weighted) AS mean)";

/// Recomputes the thrive score, if `owner` owns it; returns its [`COLUMNS`].
pub async fn rescore(
    db: &Db,
    id: &str,
    owner: &str,
    now: i64,
) -> Result<Option<AnyRow>, sqlx::Error> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "UPDATE roadmaps SET thrive_score = {THRIVE_SCORE}, updated_at = $1 \
             WHERE id = $2 AND user_id = $3 AND deleted_at IS NULL RETURNING {COLUMNS}"
        )
    });
    sqlx::query(&SQL)
        .bind(now)
        .bind(id)
        .bind(owner)
        .fetch_optional(db.writer())
        .await
}

/// A list under a roadmap: its table and sort-time column.
#[derive(Clone, Copy, Debug)]
pub enum Child {
    Logs,
    Insights,
}

impl Child {
    /// The sort-time column (also the time shown as RFC 3339).
    pub fn time(self) -> &'static str {
        match self {
            Self::Logs => "timestamp",
            Self::Insights => "created_at",
        }
    }

    /// One statement: the caller's access (`access`: 2 owner, 1 someone else's public roadmap, 0
    /// none or deleted), the total and the page (`item` as JSON text, its time `k` and `id`; both
    /// empty unless the caller owns the roadmap).
    fn sql(self, d: Dialect) -> String {
        let (table, item) = match self {
            Self::Logs => ("agent_logs", log_item(d)),
            Self::Insights => ("insights", insight_item(d)),
        };
        let (item, time) = (d.text(&item), self.time());
        format!(
            "WITH access AS (SELECT COALESCE((SELECT CASE WHEN user_id = $2 THEN 2 \
                 WHEN visibility = 'public' THEN 1 ELSE 0 END \
               FROM roadmaps WHERE id = $1 AND deleted_at IS NULL), 0) AS level), \
             owned AS (SELECT $1 AS id FROM access WHERE level = 2), \
             total AS (SELECT COUNT(*) AS n FROM {table} WHERE roadmap_id IN (SELECT id FROM owned)), \
             page AS (SELECT {item} AS item, {time} AS k, id FROM {table} \
               WHERE roadmap_id IN (SELECT id FROM owned) AND ($3 IS NULL OR ({time}, id) < ($3, $4)) \
               ORDER BY {time} DESC, id DESC LIMIT $5 OFFSET $6) \
             SELECT (SELECT level FROM access) AS access, total.n AS total, page.item, page.k, page.id \
             FROM total LEFT JOIN page ON TRUE ORDER BY page.k DESC, page.id DESC"
        )
    }
}

/// Rows of `access`, `total`, and a page of `child` of roadmap `id` (`item`, `k`, `id`).
pub async fn children(
    db: &Db,
    child: Child,
    id: &str,
    viewer: &str,
    (key, after, limit, offset): Window<'_>,
) -> Result<Vec<AnyRow>, sqlx::Error> {
    static LOGS: Sql = Sql::new(|| Dialect::BOTH.map(|d| Child::Logs.sql(d)));
    static INSIGHTS: Sql = Sql::new(|| Dialect::BOTH.map(|d| Child::Insights.sql(d)));
    let sql = match child {
        Child::Logs => &LOGS,
        Child::Insights => &INSIGHTS,
    };
    sqlx::query(sql.get(db))
        .bind(id)
        .bind(viewer)
        .bind(key)
        .bind(after)
        .bind(limit)
        .bind(offset)
        .fetch_all(db.reader())
        .await
}
