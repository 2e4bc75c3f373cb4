//! The Redis tier's Lua scripts. Each touches one entry's keys, or one tag's, which the key
//! layout (`keys.rs`) keeps in one hash slot on a cluster.

/// `KEYS[1]` the entry, then its `n` tags (sorted sets of keys scored by expiry), then their `n`
/// tombstones; `ARGV` value, TTL (ms), when the response was requested (Unix ms, `0`: unknown),
/// `n`. A write whose
/// request started before (or within a second after: clock skew) one of its tags was purged is
/// refused: it may hold what the purge removed. Expired members are trimmed on every write, so a
/// tag holds only live entries.
pub(super) const PUT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local started = tonumber(ARGV[3])
local n = tonumber(ARGV[4])
for i = n + 2, 2 * n + 1 do
  local purged = redis.call('GET', KEYS[i])
  if purged and (started == 0 or tonumber(purged) >= started - 1000) then return 0 end
end
local ttl = tonumber(ARGV[2])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
for i = 2, n + 1 do
  redis.call('ZADD', KEYS[i], now + ttl, KEYS[1])
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
  if redis.call('PTTL', KEYS[i]) < ttl then redis.call('PEXPIRE', KEYS[i], ttl) end
end
return 1
";

/// `KEYS[1]` a tag, `KEYS[2]` its tombstone: deletes the tag's live entries and the tag, and
/// leaves the tombstone (the purge time, for `ARGV[1]` ms) that refuses older writes.
pub(super) const DROP_TAG: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local members = redis.call('ZRANGEBYSCORE', KEYS[1], now, '+inf')
for _, k in ipairs(members) do redis.call('UNLINK', k) end
redis.call('UNLINK', KEYS[1])
redis.call('SET', KEYS[2], now, 'PX', ARGV[1])
return #members
";

/// How long a purge's tombstone refuses writes of responses requested before it: longer than
/// any request takes.
pub(super) const TOMBSTONE_MS: u64 = 60_000;
