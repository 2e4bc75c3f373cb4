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

pub use crate::db::nested::Kind;
use crate::db::nested::{self, KINDS};
use crate::db::{self, Db};
use crate::http::AppError;

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
        let rows = nested::load(&self.db, &ids).await.map_err(Arc::new)?;
        let mut values = HashMap::with_capacity(rows.len());
        for (tag, id, text) in rows {
            let (Some(kind), Some(text)) = (Kind::of(tag), text) else {
                continue;
            };
            // The database built this text as JSON: it parses; a value that does not is left out.
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
