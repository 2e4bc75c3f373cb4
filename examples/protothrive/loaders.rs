//! The nested data pages show — a roadmap's owner, log count, latest insight, recent logs and
//! insights; a snippet's author; an API key's user; the dashboard's top roadmaps — loaded through
//! `protothrive::batch::Loader`s: one per request (the router's `LoaderLayer`, from the factory in
//! the state), taken by handlers as an extractor.
//!
//! A handler reads its rows (one statement), gathers the nested keys of every row and asks for
//! them with one `load_many`. The loader deduplicates them (the owner of a hundred roadmaps is one
//! key) and its batch function answers every kind in one `UNION ALL` statement, the ids of each
//! kind bound as one JSON array — so a page costs two statements whatever its size. The batch
//! runs in the request's task, so `X-Query-Count` counts it; should the load that drives it be
//! dropped first, it carries on in a task of its own, and the factory carries the request's
//! statement counter there (`db::carry_count`).
//!
//! The values outlive the request: the batch function is wrapped in a `SharedCache` over a
//! `DataCache` (in process; with Redis as its second tier and the purges of other instances when
//! Redis is configured), so a page asks the database only for the nested values no request has
//! loaded lately — a list page after a write reads its rows, and its nested data from memory.
//! Writes that change nested values forget them ([`forget_roadmap`]: a log or an insight); users'
//! summaries change with no route. What a load reads while a forget runs is answered, not kept.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use protothrive::batch::{BatchFn, Loader, LoaderFactory, SharedCache};
use protothrive::cache::DataCache;
use protothrive::clock::SharedClock;
use serde_json::Value;

use crate::db::{self, Db};
use crate::http::AppError;

/// An agent log as JSON (from a row of `agent_logs`).
pub const LOG_ITEM: &str = "json_object('id', id, 'task_type', task_type, 'output', output, \
     'status', status, 'model_used', model_used, 'token_count', token_count, 'cost_usd', cost_usd, \
     'duration_ms', duration_ms, 'timestamp', timestamp)";

/// An insight as JSON (from a row of `insights`).
pub const INSIGHT_ITEM: &str = "json_object('id', id, 'type', type, 'data', json(data), \
     'score', score, 'trend', trend, 'created_at', created_at)";

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

const KINDS: [Kind; 5] = [
    Kind::User,
    Kind::LogCount,
    Kind::LatestInsight,
    Kind::RecentLogs,
    Kind::RecentInsights,
];

impl Kind {
    /// The `SELECT` answering this kind for the ids in the JSON array bound at `?{param}`: rows
    /// of (kind, id, JSON text), none for an id that has no value.
    fn select(self, param: usize) -> String {
        let tag = self as u8;
        let each = format!("json_each(?{param}) k");
        match self {
            Self::User => format!(
                "SELECT {tag}, u.id, json_object('id', u.id, 'name', u.name, 'email', u.email) \
                 FROM users u WHERE u.id IN (SELECT value FROM json_each(?{param}))"
            ),
            Self::LogCount => format!(
                "SELECT {tag}, k.value, CAST((SELECT COUNT(*) FROM agent_logs l \
                 WHERE l.roadmap_id = k.value) AS TEXT) FROM {each}"
            ),
            Self::LatestInsight => format!(
                "SELECT {tag}, k.value, (SELECT {INSIGHT_ITEM} FROM insights \
                 WHERE roadmap_id = k.value ORDER BY created_at DESC, id DESC LIMIT 1) FROM {each}"
            ),
            Self::RecentLogs => format!(
                "SELECT {tag}, k.value, (SELECT json_group_array(json(item)) FROM (SELECT \
                 {LOG_ITEM} AS item FROM agent_logs WHERE roadmap_id = k.value \
                 ORDER BY timestamp DESC, id DESC LIMIT {RECENT})) FROM {each}"
            ),
            Self::RecentInsights => format!(
                "SELECT {tag}, k.value, (SELECT json_group_array(json(item)) FROM (SELECT \
                 {INSIGHT_ITEM} AS item FROM insights WHERE roadmap_id = k.value \
                 ORDER BY created_at DESC, id DESC LIMIT {RECENT})) FROM {each}"
            ),
        }
    }

    /// The UNIX-time members of this kind's JSON, shown as RFC 3339.
    fn times(self) -> &'static [&'static str] {
        match self {
            Self::User | Self::LogCount => &[],
            Self::LatestInsight | Self::RecentInsights => &["created_at"],
            Self::RecentLogs => &["timestamp"],
        }
    }
}

/// One piece of nested data: a kind and the id it is of (a user's or a roadmap's).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Nested(pub Kind, pub String);

/// The key in the data cache: the kind's tag and the id.
impl fmt::Display for Nested {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.0 as u8, self.1)
    }
}

/// The batch function: every kind asked for in one statement on the reader pool.
#[derive(Debug)]
pub struct NestedData {
    db: Db,
}

/// [`NestedData`] with its values kept across requests.
pub type Shared = SharedCache<NestedData>;

/// The loader handlers take (`loader: NestedLoader` as an extractor).
pub type NestedLoader = Loader<Shared>;

/// How long a nested value is kept: the writes that change one forget it, so this bounds only
/// what an instance that missed another's forget could answer.
pub const KEEP: Duration = Duration::from_secs(30);

impl BatchFn for NestedData {
    type Key = Nested;
    type Value = Value;
    type Error = Arc<sqlx::Error>;

    async fn load(&self, keys: &[Nested]) -> Result<HashMap<Nested, Value>, Arc<sqlx::Error>> {
        let mut ids: [Vec<&str>; KINDS.len()] = Default::default();
        for Nested(kind, id) in keys {
            ids[*kind as usize].push(id);
        }
        let mut sql = String::new();
        let mut binds = Vec::new();
        for (kind, ids) in KINDS.iter().zip(&ids) {
            if ids.is_empty() {
                continue;
            }
            if !sql.is_empty() {
                sql.push_str(" UNION ALL ");
            }
            binds.push(serde_json::to_string(ids).unwrap_or_default());
            sql.push_str(&kind.select(binds.len()));
        }
        let mut query = sqlx::query_as::<_, (u8, String, Option<String>)>(&sql);
        for b in binds {
            query = query.bind(b);
        }
        let rows = query.fetch_all(self.db.reader()).await.map_err(Arc::new)?;
        let mut values = HashMap::with_capacity(rows.len());
        for (tag, id, text) in rows {
            let (Some(&kind), Some(text)) = (KINDS.get(usize::from(tag)), text) else {
                continue;
            };
            // SQLite built this text as JSON: it parses; a value that does not is left out.
            if let Ok(mut value) = serde_json::from_str::<Value>(&text) {
                db::times(&mut value, kind.times());
                values.insert(Nested(kind, id), value);
            }
        }
        Ok(values)
    }
}

/// The factory in the state: batches of up to 1000 keys (a page of 100 roadmaps asks for at
/// most 301 distinct keys) over the values `cache` keeps, the request's statement counter carried
/// into each batch.
pub fn factory(db: Db, clock: SharedClock, cache: DataCache) -> LoaderFactory<Shared> {
    LoaderFactory::new(SharedCache::new(NestedData { db }, cache, "nested:", KEEP))
        .name("nested")
        .max_batch_size(1000)
        .clock(clock)
        .carry(db::carry_count)
}

/// The cache of nested values: 16 MiB in process; with Redis, Redis behind it (keys under
/// `protothrive:data:`) and the forgets of other instances, on a channel of its own (the HTTP
/// cache's purges do not concern it), through the returned subscription (keep it).
///
/// # Errors
/// The Redis tier or its subscription cannot be set up.
pub fn data_cache(
    clock: SharedClock,
    redis: Option<&protothrive::redis_handle::RedisHandle>,
) -> Result<
    (
        DataCache,
        Option<Arc<protothrive::cache::redis::Subscription>>,
    ),
    protothrive::error::ConfigError,
> {
    let builder = DataCache::builder().max_bytes(16 << 20).clock(clock);
    let Some(redis) = redis else {
        return Ok((builder.build(), None));
    };
    let tier = protothrive::cache::RedisTier::from_handle(redis)
        .key_prefix("protothrive:data:")
        .channel("protothrive:data:invalidate")
        .build()?;
    let cache = builder.redis(tier.clone()).build();
    let applied = cache.clone();
    let subscription = tier.subscribe(move |purge| applied.apply(&purge))?;
    Ok((cache, Some(Arc::new(subscription))))
}

/// After a log or an insight of roadmap `id` was written: its nested values are loaded anew
/// (here, in Redis, and on the other instances).
pub async fn forget_roadmap(factory: &LoaderFactory<Shared>, id: &str) {
    for kind in [
        Kind::LogCount,
        Kind::LatestInsight,
        Kind::RecentLogs,
        Kind::RecentInsights,
    ] {
        factory
            .batch_fn()
            .invalidate(&Nested(kind, id.to_owned()))
            .await;
    }
}

/// The values of `keys`, in order (`null` where there is none), as one batch.
pub async fn load(loader: &NestedLoader, keys: Vec<Nested>) -> Result<Vec<Value>, AppError> {
    loader
        .load_many(keys)
        .await
        .into_iter()
        .map(|answer| match answer {
            Ok(value) => Ok(value.unwrap_or(Value::Null)),
            Err(e) => Err(AppError::from(e.as_ref())),
        })
        .collect()
}

/// A user's summary as shown to someone else: without the email.
pub fn public_user(mut user: Value) -> Value {
    if let Some(u) = user.as_object_mut() {
        u.remove("email");
    }
    user
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_selects_its_tag_and_binds_its_own_parameter() {
        for (i, kind) in KINDS.iter().enumerate() {
            assert_eq!(*kind as usize, i, "KINDS is in tag order");
            let sql = kind.select(i + 1);
            assert!(sql.starts_with(&format!("SELECT {i}, ")), "{sql}");
            assert!(sql.contains(&format!("json_each(?{})", i + 1)), "{sql}");
        }
    }
}
