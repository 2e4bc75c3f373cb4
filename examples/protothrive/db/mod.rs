//! The database: SQLite (the default: `sqlite://FILE`) or PostgreSQL (`postgres://…`), through
//! sqlx's `Any` driver, so each query is written once and runs on both.
//!
//! Why `Any` rather than an enum over the two pools: with an enum every query is written against
//! two executor types (or behind a macro that expands it twice), and every function that takes a
//! connection or a transaction twice too; `Any` takes the same SQL, binds and row types for both,
//! and costs a copy of each row into its own value type (microseconds, beside the statement
//! itself). The SQL is the part of both dialects that is the same: `$1` placeholders (SQLite reads
//! them too), `ON CONFLICT`, `RETURNING`, `COUNT(*) FILTER (…)`, `CASE` for two-value `MIN`/`MAX`,
//! integers for flags. What differs is in [`Dialect`] alone (`dialect.rs`) — building JSON in SQL, a JSON array
//! of ids as a table, the migrations' bookkeeping, and [`Db::begin_write`] — and the schema, kept
//! side by side: `schema.sql` and `schema.postgres.sql`.
//!
//! The SQL lives here, by area, as functions taking the [`Db`] (or a transaction's connection):
//! `users` (accounts, logins), `tokens` (refresh and revoked tokens), `roadmaps` (and the logs and
//! insights listed under one), `logs` (agent logs, insights), `agent` (agent runs), `snippets`,
//! `keys` (API keys, audit log), `analytics` (the dashboard's totals), `nested` (the loaders'
//! batches) and `seed` (demo data). Handlers call them and never write SQL.
//!
//! SQLite: one writer connection and a pool of readers (WAL lets readers run beside the writer),
//! so concurrent writes queue in-process instead of failing with "database is locked". Every
//! write transaction is serialized by that one connection. PostgreSQL: one pool of up to 16
//! connections for both; a statement is atomic on its own (the conditional `UPDATE`s of a login
//! and of a refresh-token claim re-check their `WHERE` on the row they lock), and the
//! transactions that must not interleave take a transaction-scoped advisory lock on what they
//! touch ([`Db::begin_write`]). Migrations run once, in one transaction, under an advisory lock
//! on PostgreSQL (several instances may start together).
//!
//! Every statement a handler runs goes through a [`Counted`] executor ([`Db::reader`],
//! [`Db::writer`], or `Counted(&mut *tx)` in a transaction), which counts it for the current
//! request (see `app::count_statements`): counting lives here, not at the call sites. A loader's batch runs
//! in the request's task, or in a task of its own once the load driving it is dropped;
//! [`carry_count`] carries the request's counter there. The count is exposed
//! as `X-Query-Count` and a test asserts it. The authentication lookups (the user's role, cached
//! for 5 s per user, and API keys) use the pools directly and are not counted: the header measures
//! what the endpoint itself costs, which is what "no N+1" is about. Neither is the advisory lock of
//! [`Db::begin_write`]: it stands for the wait for SQLite's one writer, which is no statement.

pub mod agent;
pub mod analytics;
mod dialect;
pub mod keys;
pub mod logs;
pub mod nested;
pub mod roadmaps;
pub mod seed;
pub mod snippets;
pub mod tokens;
pub mod users;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use protothrive::batch::BatchTask;
use serde_json::Value;
use sqlx::any::{AnyArguments, AnyPoolOptions, AnyQueryResult, AnyRow, AnyStatement, AnyTypeInfo};
use sqlx::{
    Any, AnyPool, Arguments, Describe, Either, Encode, Execute, Executor, Transaction, Type,
};

pub use dialect::{Dialect, Sql};

const SCHEMA: &str = include_str!("schema.sql");
const SCHEMA_POSTGRES: &str = include_str!("schema.postgres.sql");
const SCHEMA_VERSION: i64 = 1;

/// A page window's binds: the keyset cursor's time and id (`None` for the first page or with
/// offsets), the `LIMIT` and the `OFFSET`.
pub type Window<'a> = (Option<i64>, Option<&'a str>, i64, i64);

#[derive(Clone, Debug)]
pub struct Db {
    /// Readers (SQLite: WAL, they never block the writer; PostgreSQL: the one pool).
    pub read: AnyPool,
    /// The writer (SQLite: its single connection; PostgreSQL: the one pool).
    pub write: AnyPool,
    /// What the SQL may differ in.
    pub dialect: Dialect,
}

tokio::task_local! {
    static QUERIES: Arc<AtomicU32>;
}

/// Counts one statement for the current request.
fn tick() {
    let _ = QUERIES.try_with(|q| q.fetch_add(1, Ordering::Relaxed));
}

/// Runs `fut` with a fresh statement counter, returning its output and the count.
pub async fn counted<F: std::future::Future>(fut: F) -> (F::Output, u32) {
    let counter = Arc::new(AtomicU32::new(0));
    let out = QUERIES.scope(counter.clone(), fut).await;
    (out, counter.load(Ordering::Relaxed))
}

/// Carries the current request's statement counter into a task the request starts (a loader's
/// batch: `LoaderFactory::carry`), so the statements that task runs count for the request.
pub fn carry_count() -> Box<dyn FnOnce(BatchTask) -> BatchTask + Send> {
    let counter = QUERIES.try_with(Arc::clone).ok();
    Box::new(move |task| match counter {
        Some(counter) => Box::pin(QUERIES.scope(counter, task)),
        None => task,
    })
}

/// An executor that counts each statement it runs for the current request, then runs it on the
/// executor it wraps (a pool, a connection, a transaction).
#[derive(Debug)]
pub struct Counted<X>(pub X);

impl<'c, X> Executor<'c> for Counted<X>
where
    X: Executor<'c, Database = Any>,
{
    type Database = Any;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<AnyQueryResult, AnyRow>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Any>,
    {
        tick();
        self.0.fetch_many(query)
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<AnyRow>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Any>,
    {
        tick();
        self.0.fetch_optional(query)
    }

    fn prepare_with<'e, 'q: 'e>(
        self,
        sql: &'q str,
        parameters: &'e [AnyTypeInfo],
    ) -> BoxFuture<'e, Result<AnyStatement<'q>, sqlx::Error>>
    where
        'c: 'e,
    {
        self.0.prepare_with(sql, parameters)
    }

    fn describe<'e, 'q: 'e>(self, sql: &'q str) -> BoxFuture<'e, Result<Describe<Any>, sqlx::Error>>
    where
        'c: 'e,
    {
        self.0.describe(sql)
    }
}

/// A statement put together from pieces, each bound value numbered `$n` as it is pushed (sqlx's
/// `QueryBuilder` writes `?` for the `Any` driver, which PostgreSQL does not read).
#[derive(Default)]
pub struct Builder<'a> {
    sql: String,
    args: AnyArguments<'a>,
    n: usize,
}

impl<'a> Builder<'a> {
    /// A statement starting with `sql`.
    pub fn new(sql: &str) -> Self {
        Self {
            sql: sql.to_owned(),
            ..Self::default()
        }
    }

    /// Appends SQL text.
    pub fn push(&mut self, sql: &str) -> &mut Self {
        self.sql.push_str(sql);
        self
    }

    /// Appends the next placeholder and binds `value` to it.
    pub fn push_bind<T: 'a + Encode<'a, Any> + Type<Any>>(&mut self, value: T) -> &mut Self {
        self.n += 1;
        self.sql.push_str(&format!("${}", self.n));
        // Encoding into `Any`'s own value list cannot fail.
        let _ = self.args.add(value);
        self
    }

    /// Appends a page window to a query over a table with `created_at` and `id`: the keyset
    /// condition after `after` (`AND …`, after a `WHERE`), newest first, `LIMIT`, and `OFFSET`.
    pub fn window(
        &mut self,
        (after, limit, offset): (Option<(i64, &'a str)>, i64, Option<i64>),
    ) -> &mut Self {
        if let Some((at, id)) = after {
            self.push(" AND (created_at < ")
                .push_bind(at)
                .push(" OR (created_at = ")
                .push_bind(at)
                .push(" AND id < ")
                .push_bind(id)
                .push("))");
        }
        self.push(" ORDER BY created_at DESC, id DESC LIMIT ")
            .push_bind(limit);
        if let Some(offset) = offset {
            self.push(" OFFSET ").push_bind(offset);
        }
        self
    }

    /// One page of `table` (its `columns`, the rows `filter` keeps, in the window) and their
    /// total: a one-row `COUNT(*)` left-joined to the page, so that even an empty page returns
    /// one row, carrying the total (`total`, then the columns, `NULL` on an empty page).
    pub fn page(
        table: &str,
        columns: &str,
        filter: impl Fn(&mut Self),
        window: (Option<(i64, &'a str)>, i64, Option<i64>),
    ) -> Self {
        let mut qb = Self::new(&format!(
            "SELECT t.total, p.* FROM (SELECT COUNT(*) AS total FROM {table} WHERE 1 = 1"
        ));
        filter(&mut qb);
        qb.push(&format!(
            ") AS t LEFT JOIN (SELECT {columns} FROM {table} WHERE 1 = 1"
        ));
        filter(&mut qb);
        qb.window(window);
        qb.push(") AS p ON TRUE ORDER BY p.created_at DESC, p.id DESC");
        qb
    }

    /// Runs a [`page`](Self::page) statement on the reader: the total (`total` of the first row)
    /// and the items `item` makes of the rows (`None` for the one row an empty page's join gives).
    pub async fn fetch_page<R, T>(
        mut self,
        db: &Db,
        total: impl Fn(&R) -> i64,
        item: impl FnMut(R) -> Option<T>,
    ) -> Result<(i64, Vec<T>), sqlx::Error>
    where
        R: for<'r> sqlx::FromRow<'r, AnyRow> + Send + Unpin,
    {
        let rows: Vec<R> = self.build_query_as().fetch_all(db.reader()).await?;
        let total = rows.first().map_or(0, total);
        Ok((total, rows.into_iter().filter_map(item).collect()))
    }

    /// The statement, its rows as `T`.
    pub fn build_query_as<T>(&mut self) -> sqlx::query::QueryAs<'_, Any, T, AnyArguments<'_>>
    where
        T: for<'r> sqlx::FromRow<'r, AnyRow>,
    {
        sqlx::query_as_with(&self.sql, std::mem::take(&mut self.args))
    }

    /// The statement, to run with `fetch_*` / `execute`.
    pub fn build(&mut self) -> sqlx::query::Query<'_, Any, AnyArguments<'_>> {
        sqlx::query_with(&self.sql, std::mem::take(&mut self.args))
    }
}

/// A database URL with a query parameter added when the URL has none of that name.
fn with_param(url: &str, key: &str, value: &str) -> String {
    if url.contains(&format!("{key}=")) {
        return url.to_owned();
    }
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{key}={value}")
}

impl Db {
    /// The reader pool, counting statements.
    pub fn reader(&self) -> Counted<&AnyPool> {
        Counted(&self.read)
    }

    /// The writer, counting statements.
    pub fn writer(&self) -> Counted<&AnyPool> {
        Counted(&self.write)
    }

    /// A write transaction that runs alone among those begun with the same `key` (refresh-token
    /// rotation and revocation of one family): on SQLite every write transaction does (the
    /// writer is one connection); on PostgreSQL it first takes a transaction-scoped advisory lock
    /// on the key, so a transaction that begins after another committed sees all it wrote.
    pub async fn begin_write(&self, key: &str) -> Result<Transaction<'static, Any>, sqlx::Error> {
        let mut tx = self.write.begin().await?;
        if self.dialect == Dialect::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
                .bind(key)
                .execute(&mut *tx)
                .await?;
        }
        Ok(tx)
    }

    /// Opens (creating if needed) and migrates the database. A statement waits up to `busy` for
    /// a lock another connection holds, then fails with "database is locked" (answered 503
    /// `DB-503`); a request waits up to `busy` again for a connection of its pool.
    pub async fn connect(url: &str, busy: Duration) -> Result<Self, sqlx::Error> {
        sqlx::any::install_default_drivers();
        let dialect = Dialect::of(url);
        let ms = busy.as_millis();
        if dialect == Dialect::Postgres {
            let pool = AnyPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(busy)
                .after_connect(move |conn, _| {
                    Box::pin(async move {
                        // A lock held longer than `busy` fails the statement (`55P03`: 503).
                        let sql = format!("SET lock_timeout = {ms}");
                        conn.execute(sql.as_str()).await.map(drop)
                    })
                })
                .connect(url)
                .await?;
            let db = Self {
                read: pool.clone(),
                write: pool,
                dialect,
            };
            db.migrate().await?;
            return Ok(db);
        }
        // NORMAL in WAL mode: a committed transaction survives a killed process (it is in the
        // WAL, in the OS page cache); only a power loss can take the last ones.
        let pragmas = format!(
            "PRAGMA foreign_keys = ON; PRAGMA busy_timeout = {ms}; PRAGMA synchronous = NORMAL; \
             PRAGMA temp_store = MEMORY; PRAGMA cache_size = -16000;"
        );
        let writer_pragmas = format!("PRAGMA journal_mode = WAL; {pragmas}");
        let write = AnyPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(busy)
            .after_connect(move |conn, _| {
                let sql = writer_pragmas.clone();
                Box::pin(async move { conn.execute(sql.as_str()).await.map(drop) })
            })
            .connect(&with_param(url, "mode", "rwc"))
            .await?;
        let db = Self {
            read: write.clone(),
            write,
            dialect,
        };
        db.migrate().await?;
        let read = AnyPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(busy)
            .after_connect(move |conn, _| {
                let sql = pragmas.clone();
                Box::pin(async move { conn.execute(sql.as_str()).await.map(drop) })
            })
            .connect(&with_param(url, "mode", "ro"))
            .await?;
        Ok(Self {
            read,
            write: db.write,
            dialect,
        })
    }

    /// Applies the schema once: SQLite keeps its version in `PRAGMA user_version`, PostgreSQL in
    /// a table, under an advisory lock so that instances starting together migrate once.
    async fn migrate(&self) -> Result<(), sqlx::Error> {
        let mut tx = self.write.begin().await?;
        let (version_sql, schema, mark) = match self.dialect {
            Dialect::Sqlite => (
                "PRAGMA user_version",
                SCHEMA,
                format!("PRAGMA user_version = {SCHEMA_VERSION}"),
            ),
            Dialect::Postgres => {
                sqlx::raw_sql(
                    "SELECT pg_advisory_xact_lock(7450000001); \
                     CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)",
                )
                .execute(&mut *tx)
                .await?;
                (
                    "SELECT COALESCE(MAX(version), 0) FROM schema_version",
                    SCHEMA_POSTGRES,
                    format!(
                        "DELETE FROM schema_version; \
                         INSERT INTO schema_version (version) VALUES ({SCHEMA_VERSION})"
                    ),
                )
            }
        };
        let version: i64 = sqlx::query_scalar(version_sql).fetch_one(&mut *tx).await?;
        if version >= SCHEMA_VERSION {
            return tx.commit().await;
        }
        sqlx::raw_sql(schema).execute(&mut *tx).await?;
        sqlx::raw_sql(&mark).execute(&mut *tx).await?;
        tx.commit().await
    }

    /// Whether the database answers (readiness).
    pub async fn ping(&self) -> bool {
        sqlx::query_scalar::<_, i64>("SELECT 1")
            .fetch_one(&self.read)
            .await
            .is_ok()
    }
}

/// Whether a database error means "busy, retry later" (answered 503): SQLite's locked or busy
/// database, PostgreSQL's lock timeout, serialization failure or deadlock.
pub fn is_busy(e: &dyn sqlx::error::DatabaseError) -> bool {
    let message = e.message();
    message.contains("locked")
        || message.contains("busy")
        || matches!(e.code().as_deref(), Some("55P03" | "40001" | "40P01"))
}

/// RFC 3339 (UTC, seconds) for a UNIX time.
pub fn rfc3339(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Rewrites the UNIX-time members `keys` of `value` (an object or an array of them) as RFC 3339.
pub fn times(value: &mut Value, keys: &[&str]) {
    match value {
        Value::Array(items) => items.iter_mut().for_each(|v| times(v, keys)),
        Value::Object(map) => {
            for key in keys {
                if let Some(t) = map.get(*key).and_then(Value::as_i64) {
                    map.insert((*key).to_owned(), rfc3339(t).into());
                }
            }
        }
        _ => {}
    }
}

/// A new random id.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Whether `s` is a canonical UUID (ids in paths are checked before any query).
pub fn is_uuid(s: &str) -> bool {
    s.len() == 36 && uuid::Uuid::parse_str(s).is_ok()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_url_names_the_dialect() {
        assert_eq!(Dialect::of("postgres://u@h:5432/db"), Dialect::Postgres);
        assert_eq!(Dialect::of("postgresql://h/db"), Dialect::Postgres);
        assert_eq!(Dialect::of("sqlite://protothrive.db"), Dialect::Sqlite);
        assert_eq!(Dialect::of("sqlite::memory:"), Dialect::Sqlite);
    }

    #[test]
    fn a_sqlite_mode_is_added_unless_the_url_has_one() {
        assert_eq!(
            with_param("sqlite://a.db", "mode", "ro"),
            "sqlite://a.db?mode=ro"
        );
        assert_eq!(
            with_param("sqlite://a.db?cache=shared", "mode", "rwc"),
            "sqlite://a.db?cache=shared&mode=rwc"
        );
        assert_eq!(
            with_param("sqlite://a.db?mode=rw", "mode", "ro"),
            "sqlite://a.db?mode=rw"
        );
    }

    #[test]
    fn a_builder_numbers_its_placeholders() {
        let mut qb = Builder::new("SELECT 1 FROM t WHERE 1 = 1");
        qb.push(" AND a = ").push_bind("x");
        qb.window((Some((5, "id")), 10, None));
        assert_eq!(
            qb.sql,
            "SELECT 1 FROM t WHERE 1 = 1 AND a = $1 AND (created_at < $2 OR (created_at = $3 \
             AND id < $4)) ORDER BY created_at DESC, id DESC LIMIT $5"
        );
        let mut v1 = Builder::new("SELECT 1 FROM t WHERE 1 = 1");
        v1.window((None, 10, Some(20)));
        assert!(v1.sql.ends_with("LIMIT $1 OFFSET $2"), "{}", v1.sql);
    }

    #[test]
    fn times_become_rfc3339_in_objects_and_arrays() {
        let mut v = json!([{"timestamp": 0, "id": "a"}, {"timestamp": 1_767_225_600}, 3]);
        times(&mut v, &["timestamp"]);
        assert_eq!(
            v,
            json!([{"timestamp": "1970-01-01T00:00:00Z", "id": "a"}, {"timestamp": "2026-01-01T00:00:00Z"}, 3])
        );
    }
}
