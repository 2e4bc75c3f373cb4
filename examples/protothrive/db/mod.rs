//! SQLite: one writer connection and a pool of readers (WAL lets readers run beside the writer),
//! so concurrent writes queue in-process instead of failing with "database is locked".
//!
//! Every statement a handler runs goes through a [`Counted`] executor ([`Db::reader`],
//! [`Db::writer`], or `Counted(&mut *tx)` in a transaction), which counts it for the current
//! request (see `app::count_statements`): counting lives here, not at the call sites. A loader's batch runs
//! in the request's task, or in a task of its own once the load driving it is dropped;
//! [`carry_count`] carries the request's counter there. The count is exposed
//! as `X-Query-Count` and a test asserts it. The authentication lookups (the user's role, cached
//! for 5 s per user, and API keys) use the pools directly and are not counted: the header measures
//! what the endpoint itself costs, which is what "no N+1" is about.

pub mod seed;

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use protothrive::batch::BatchTask;
use serde_json::Value;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::sqlite::{SqliteQueryResult, SqliteRow, SqliteStatement, SqliteTypeInfo};
use sqlx::{Describe, Either, Execute, Executor, Sqlite, SqlitePool};

const SCHEMA: &str = include_str!("schema.sql");
const SCHEMA_VERSION: i64 = 1;

#[derive(Clone, Debug)]
pub struct Db {
    /// Readers (WAL: they never block the writer).
    pub read: SqlitePool,
    /// The single writer.
    pub write: SqlitePool,
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
    X: Executor<'c, Database = Sqlite>,
{
    type Database = Sqlite;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<SqliteQueryResult, SqliteRow>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Sqlite>,
    {
        tick();
        self.0.fetch_many(query)
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<SqliteRow>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Sqlite>,
    {
        tick();
        self.0.fetch_optional(query)
    }

    fn prepare_with<'e, 'q: 'e>(
        self,
        sql: &'q str,
        parameters: &'e [SqliteTypeInfo],
    ) -> BoxFuture<'e, Result<SqliteStatement<'q>, sqlx::Error>>
    where
        'c: 'e,
    {
        self.0.prepare_with(sql, parameters)
    }

    fn describe<'e, 'q: 'e>(
        self,
        sql: &'q str,
    ) -> BoxFuture<'e, Result<Describe<Sqlite>, sqlx::Error>>
    where
        'c: 'e,
    {
        self.0.describe(sql)
    }
}

impl Db {
    /// The reader pool, counting statements.
    pub fn reader(&self) -> Counted<&SqlitePool> {
        Counted(&self.read)
    }

    /// The writer, counting statements.
    pub fn writer(&self) -> Counted<&SqlitePool> {
        Counted(&self.write)
    }

    /// Opens (creating if needed) and migrates the database. A statement waits up to `busy` for
    /// a lock another connection holds, then fails with "database is locked" (answered 503
    /// `DB-503`); a request waits up to `busy` again for a connection of its pool.
    pub async fn connect(url: &str, busy: Duration) -> Result<Self, sqlx::Error> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // NORMAL in WAL mode: a committed transaction survives a killed process (it is in the
            // WAL, in the OS page cache); only a power loss can take the last ones.
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(busy)
            .pragma("temp_store", "memory")
            .pragma("cache_size", "-16000");
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(busy)
            .connect_with(options.clone())
            .await?;
        let db = Self {
            read: write.clone(),
            write,
        };
        db.migrate().await?;
        let read = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(busy)
            .connect_with(options.read_only(true))
            .await?;
        Ok(Self {
            read,
            write: db.write,
        })
    }

    async fn migrate(&self) -> Result<(), sqlx::Error> {
        let version: i64 = sqlx::query_scalar("PRAGMA user_version")
            .fetch_one(&self.write)
            .await?;
        if version >= SCHEMA_VERSION {
            return Ok(());
        }
        let mut tx = self.write.begin().await?;
        sqlx::raw_sql(SCHEMA).execute(&mut *tx).await?;
        sqlx::raw_sql(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))
            .execute(&mut *tx)
            .await?;
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
    fn times_become_rfc3339_in_objects_and_arrays() {
        let mut v = json!([{"timestamp": 0, "id": "a"}, {"timestamp": 1_767_225_600}, 3]);
        times(&mut v, &["timestamp"]);
        assert_eq!(
            v,
            json!([{"timestamp": "1970-01-01T00:00:00Z", "id": "a"}, {"timestamp": "2026-01-01T00:00:00Z"}, 3])
        );
    }
}
