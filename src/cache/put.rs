//! Write-through: a write that knows the new state of a resource stores its representation in
//! the cache's tiers, in the same step that purges what it cannot rebuild, so the reads after it
//! are hits rather than trips to the origin.
//!
//! **Guarantees.** A [`WriteThrough`] is judged like a miss-fill: against a [`Ticket`] taken
//! *before* the write reached the origin's data (the layer takes it before it calls the handler
//! of an unsafe request). Its purges are applied first (in L1, logged; in the tier); then each
//! response is stored unless a purge *other than its own* that covers it was recorded since the
//! ticket — another write's, which may hold newer data — so a write-through that raced with a
//! newer write never leaves its older value behind; a read that started before the write never
//! stores its older answer after it (its miss-fill meets this write's purges). With an L2 tier the
//! tier judges the puts against its own record of purges ([`CacheTier::write_through`]; Redis in
//! one Lua script with the tag tombstones, within the second of clock skew they allow: a put that
//! follows another purge of one of its tags by less than a second is not stored there, only
//! purged), and L1 takes only what the tier took. Keys are derived as for a `GET` through the
//! layer (normalized URI, `Host`, the partition function, `Vary`), freshness and storability as
//! for an origin response received now.
//!
//! **Cost.** Per response, what a miss-fill costs to store it (one L1 insert; with Redis, all the
//! puts and tag purges of one write in one round trip, then one `PUBLISH` per purge).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::DATE;
use http::{HeaderValue, Method, Request, Response, request};

use super::hit::Keys;
use super::l1::invalidate_l1_all;
use super::policy::storable::{Scope, storable_with};
use super::policy::targeted::Directives;
use super::policy::validate::{SURROGATE_KEY, strip_listed, strip_unstorable, surrogate_keys};
use super::policy::vary::{Vary, vary};
use super::state::Shared;
use super::store::{CacheEntry, Purge, StoredResponse};

/// When a write started, as the cache counts: the purge log's number and the clock's time. Take
/// it ([`CacheHandle::ticket`](super::CacheHandle::ticket)) before the write reaches the
/// origin's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    pub(super) since: u64,
    pub(super) at: SystemTime,
}

impl Ticket {
    pub(super) fn now(cfg: &Shared) -> Self {
        Self {
            since: cfg.state.purges.seq(),
            at: cfg.config.clock.now(),
        }
    }
}

/// One representation to store: the `GET` request that would read it and the response.
#[derive(Debug)]
struct Put {
    req: request::Parts,
    res: Response<Bytes>,
}

/// What a write changes in the cache: what to purge, and the new representations to store in
/// place of what the purges remove.
///
/// A handler behind the [`CacheLayer`](super::CacheLayer) puts it in the extensions of its
/// response to an unsafe request; the layer applies it with the ticket it took before calling
/// the handler, after its own RFC 9111 §4.4 invalidations (purges count as the write's own), and
/// removes it from the response. A response that is not a 2xx only gets the purges. Elsewhere,
/// [`CacheHandle::write_through`](super::CacheHandle::write_through) applies one.
///
/// ```
/// use bytes::Bytes;
/// use http::{Request, Response};
/// use protothrive::cache::{CacheLayer, Purge, WriteThrough};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let cache = CacheLayer::builder().build().unwrap().handle();
/// let ticket = cache.ticket();
/// // ... the write reaches the database, and answers the new state:
/// let get = Request::get("http://api.example.com/notes/7").body(()).unwrap();
/// let now = Response::builder()
///     .header("cache-control", "max-age=60")
///     .header("surrogate-key", "note:7")
///     .body(Bytes::from(r#"{"title":"new"}"#))
///     .unwrap();
/// let through = WriteThrough::new().purge(Purge::Tag("notes".into())).put(get, now);
/// let done = cache.write_through(ticket, through).await;
/// assert_eq!((done.stored, done.refused), (1, 0));
/// assert_eq!(cache.l1_len(), 1);
/// # }
/// ```
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct WriteThrough {
    purges: Vec<Purge>,
    puts: Vec<Arc<Put>>,
}

impl WriteThrough {
    /// Nothing to purge or store yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Purges `what` (in every tier and, through the tier, on every instance).
    pub fn purge(mut self, what: Purge) -> Self {
        self.purges.push(what);
        self
    }

    /// Stores `res` as the answer to `req` (read as a `GET`, its body ignored): give it the
    /// headers and extensions the cache keys on (`Host`, what the partition function reads, the
    /// fields the response's `Vary` names) and the headers the origin would answer.
    pub fn put<B, T: Into<Bytes>>(mut self, req: Request<B>, res: Response<T>) -> Self {
        let (req, _) = req.into_parts();
        self.puts.push(Arc::new(Put {
            req,
            res: res.map(Into::into),
        }));
        self
    }

    /// Itself, or only its purges when `keep` is false (a write that failed).
    pub(super) fn only_purges_unless(mut self, keep: bool) -> Self {
        if !keep {
            self.puts.clear();
        }
        self
    }

    /// The purges, in order.
    #[must_use]
    pub fn purges(&self) -> &[Purge] {
        &self.purges
    }

    /// How many responses it stores.
    #[must_use]
    pub fn len(&self) -> usize {
        self.puts.len()
    }

    /// Whether it stores nothing.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.puts.is_empty()
    }
}

/// What a write-through did with its responses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Written {
    /// Responses stored (in L1, and in the tier when there is one).
    pub stored: usize,
    /// Responses left out because a newer purge covers them (or the tier would not take them).
    pub refused: usize,
    /// Responses the cache would not store from the origin either (`no-store`, no freshness,
    /// `private` without a partition, too large, ...).
    pub not_storable: usize,
}

/// One entry to store: key, entry, TTL for the tier.
pub(super) type Entry = (String, CacheEntry, Duration);

/// The entries that store `put` (a `Vary` marker and the variant, or the response), as the
/// origin path would store it; `None` when the cache would not.
fn entries(cfg: &Shared, put: &Put, request_time: SystemTime) -> Option<Vec<Entry>> {
    let mut req = super::hit::clone_parts(&put.req);
    req.method = Method::GET;
    for name in cfg.config.unkeyed.iter() {
        req.headers.remove(name);
    }
    let keys = Keys::for_request(cfg, &req)?;
    let (mut rp, ()) = {
        let mut r = Response::new(());
        *r.status_mut() = put.res.status();
        r.headers_mut().clone_from(put.res.headers());
        r.into_parts()
    };
    let body = put.res.body().clone();
    if body.len() > cfg.config.max_body {
        return None;
    }
    let tags = surrogate_keys(&rp.headers);
    rp.headers.remove(&SURROGATE_KEY);
    let directives = Directives::of(&rp.headers, &cfg.config.targets);
    let scope = storable_with(&req, &rp, keys.partition.is_some(), &directives).ok()?;
    let now = cfg.config.clock.now();
    let mut headers = rp.headers.clone();
    strip_unstorable(&mut headers);
    strip_listed(&mut headers, &directives.cc, scope);
    if !headers.contains_key(DATE)
        && let Ok(v) = HeaderValue::try_from(httpdate::fmt_http_date(now))
    {
        headers.insert(DATE, v);
    }
    let stored = StoredResponse::with_cap(
        rp.status,
        headers,
        body,
        (request_time, now),
        scope,
        (cfg.config.heuristic_cap, &cfg.config.targets),
    )
    .with_tags(tags);
    if stored.lifetime == Duration::ZERO && !stored.has_validator() {
        return None;
    }
    let ttl = stored
        .useful_for(now, cfg.config.grace)
        .max(Duration::from_secs(1));
    let key = match scope {
        Scope::Partition => keys.flight().clone(),
        Scope::Shared => keys.shared,
    };
    let stored = CacheEntry::Response(Arc::new(stored));
    Some(match vary(&rp.headers) {
        Vary::Names(names) => {
            let variant = key.with_vary(&names, &req.headers);
            vec![
                (key.as_str().to_owned(), CacheEntry::Vary(names.into()), ttl),
                (variant.as_str().to_owned(), stored, ttl),
            ]
        }
        Vary::None | Vary::Star => vec![(key.as_str().to_owned(), stored, ttl)],
    })
}

/// Applies `through` after the write's own purges `first` (the layer's §4.4 invalidations).
pub(super) async fn apply(
    cfg: &Shared,
    ticket: Ticket,
    mut purges: Vec<Purge>,
    through: WriteThrough,
) -> Written {
    purges.extend(through.purges);
    let mut done = Written::default();
    let mut puts: Vec<(usize, Entry)> = Vec::new();
    for (i, put) in through.puts.iter().enumerate() {
        match entries(cfg, put, ticket.at) {
            Some(entries) => puts.extend(entries.into_iter().map(|e| (i, e))),
            None => done.not_storable += 1,
        }
    }
    // Each purge is recorded before L1 is cleared (so an insert either sees it or is cleared),
    // and L1 is scanned once for all of them.
    let mut own: Vec<u64> = purges.iter().map(|p| cfg.state.purges.record(p)).collect();
    invalidate_l1_all(&cfg.state.l1, &purges);
    let entries: Vec<Entry> = puts.iter().map(|(_, e)| e.clone()).collect();
    let taken = match &cfg.config.tier {
        Some(tier) => {
            let taken = tier.write_through(ticket.at, &purges, &entries).await;
            // A reader may have promoted what the tier held before its purges into L1.
            own.extend(purges.iter().map(|p| cfg.state.purges.record(p)));
            invalidate_l1_all(&cfg.state.l1, &purges);
            taken
        }
        None => vec![true; entries.len()],
    };
    // A response is stored when all of its entries are.
    let mut kept = vec![true; through.puts.len()];
    for ((i, (key, entry, _)), taken) in puts.iter().zip(taken) {
        let ok = taken
            && cfg
                .state
                .purges
                .insert_except(&cfg.state.l1, ticket.since, &own, key, entry);
        kept[*i] &= ok;
    }
    for (i, put) in through.puts.iter().enumerate() {
        if !puts.iter().any(|(j, _)| *j == i) {
            continue;
        }
        if kept[i] {
            done.stored += 1;
            cfg.state.stats.stored.fetch_add(1, Ordering::Relaxed);
            if let Some(keys) = Keys::for_request(cfg, &put.req) {
                let key = keys.flight();
                cfg.state.pass.remove(key.as_str());
            }
        } else {
            done.refused += 1;
        }
    }
    done
}

/// `ARGV`: the ticket's time (Unix ms), the tombstones' lifetime (ms), `p` tag purges, `n` puts,
/// then per put its value, TTL (ms) and number of tags. `KEYS`: per purge its tag set and
/// tombstone; per put its key, then per tag its set and tombstone. Every put is judged against
/// the tombstones as they are before this write's purges (a purge from the ticket's time on, or
/// within a second before it for clock skew, refuses it), then the purges are applied (as
/// `DROP_TAG`), then the puts that passed are stored (as `PUT`). Returns 1 or 0 per put.
#[cfg(feature = "redis")]
const WRITE_THROUGH: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local started = tonumber(ARGV[1])
local p = tonumber(ARGV[3])
local n = tonumber(ARGV[4])
local ok = {}
local k = 2 * p + 1
for i = 1, n do
  local tags = tonumber(ARGV[4 + 3 * i])
  ok[i] = 1
  for j = 1, tags do
    local purged = redis.call('GET', KEYS[k + 2 * j])
    if purged and tonumber(purged) >= started - 1000 then ok[i] = 0 end
  end
  k = k + 1 + 2 * tags
end
for i = 1, p do
  local members = redis.call('ZRANGEBYSCORE', KEYS[2 * i - 1], now, '+inf')
  for _, m in ipairs(members) do redis.call('UNLINK', m) end
  redis.call('UNLINK', KEYS[2 * i - 1])
  redis.call('SET', KEYS[2 * i], now, 'PX', ARGV[2])
end
k = 2 * p + 1
for i = 1, n do
  local tags = tonumber(ARGV[4 + 3 * i])
  if ok[i] == 1 then
    local ttl = tonumber(ARGV[3 + 3 * i])
    redis.call('SET', KEYS[k], ARGV[2 + 3 * i], 'PX', ttl)
    for j = 1, tags do
      local set = KEYS[k + 2 * j - 1]
      redis.call('ZADD', set, now + ttl, KEYS[k])
      redis.call('ZREMRANGEBYSCORE', set, '-inf', now)
      if redis.call('PTTL', set) < ttl then redis.call('PEXPIRE', set, ttl) end
    end
  end
  k = k + 1 + 2 * tags
end
return ok
";

/// How a Redis tier names what the write-through script touches.
#[cfg(feature = "redis")]
pub(super) struct RedisNames<'a> {
    /// An entry's key.
    pub(super) key: &'a dyn Fn(&str) -> String,
    /// A tag's set.
    pub(super) tag: &'a dyn Fn(&str) -> String,
    /// A tag's tombstone.
    pub(super) tombstone: &'a dyn Fn(&str) -> String,
    /// The tags every entry carries besides its own, by its key.
    pub(super) implicit: fn(&str) -> [String; 2],
    /// How long a tombstone refuses older writes.
    pub(super) tombstone_ms: u64,
}

/// The tag a purge drops in Redis (as the Redis tier's `invalidate` maps it), `None` for the
/// purges that scan (the tier applies those first, by itself).
#[cfg(feature = "redis")]
pub(super) fn purge_tag(what: &Purge, implicit: fn(&str) -> [String; 2]) -> Option<String> {
    match what {
        Purge::Key(k) => implicit(k).into_iter().next(),
        Purge::Uri(u) if u.starts_with('/') => Some(format!("path:{u}")),
        Purge::Uri(u) => Some(format!("uri:{u}")),
        Purge::Tag(t) => Some(t.clone()),
        _ => None,
    }
}

/// The script call of a write-through on Redis ([`WRITE_THROUGH`]): the tag purges `tags` and the
/// puts, judged against `since`. The tier runs it (on a cluster, once per shard, each call with
/// that shard's `names` and puts), then publishes the purges; when it fails, nothing is stored
/// (and every instance should drop everything, as after a failed invalidation).
#[cfg(feature = "redis")]
pub(super) fn redis_invocation(
    names: &RedisNames<'_>,
    since: SystemTime,
    tags: &[String],
    puts: &[&Entry],
) -> redis::ScriptInvocation<'static> {
    static SCRIPT: std::sync::LazyLock<redis::Script> =
        std::sync::LazyLock::new(|| redis::Script::new(WRITE_THROUGH));
    let started = since
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(0));
    let mut call = SCRIPT.prepare_invoke();
    call.arg(started)
        .arg(names.tombstone_ms)
        .arg(tags.len())
        .arg(puts.len());
    for tag in tags {
        call.key((names.tag)(tag)).key((names.tombstone)(tag));
    }
    for (key, entry, ttl) in puts.iter().copied() {
        let own: &[String] = match entry {
            CacheEntry::Response(r) => r.tags(),
            CacheEntry::Vary(_) => &[],
        };
        let all: Vec<String> = own.iter().cloned().chain((names.implicit)(key)).collect();
        call.key((names.key)(key));
        for tag in &all {
            call.key((names.tag)(tag)).key((names.tombstone)(tag));
        }
        call.arg(entry.encode())
            .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1))
            .arg(all.len());
    }
    call
}
