//! What goose does not keep: the `X-Query-Count` and `Cache-Status` response headers, and every
//! request's latency with the moment it started, so percentiles can be cut by load phase (goose's
//! own figures cover the whole run).
//!
//! One process-wide recorder behind a mutex: a few hundred requests a second take it for
//! microseconds each, far below what would show in the latencies measured.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex, MutexGuard, PoisonError};

use goose::goose::GooseResponse;

/// Per request name: how many responses carried each header, and what they said.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HeaderCounts {
    /// Responses received (any status).
    pub(crate) responses: u64,
    /// Responses with a readable `X-Query-Count`.
    pub(crate) query_counted: u64,
    /// The sum of their counts.
    pub(crate) query_sum: u64,
    /// Responses with a `Cache-Status`.
    pub(crate) cache_counted: u64,
    /// Those whose `Cache-Status` says a cache served it (`hit`).
    pub(crate) cache_hits: u64,
    /// Successful `GET`s (reads).
    pub(crate) reads: u64,
    /// Reads answered without a database statement: `X-Query-Count: 0`, or a cache hit where
    /// the count is missing.
    pub(crate) reads_without_db: u64,
}

impl HeaderCounts {
    /// Mean statements per request among responses that said, or `None` when none did.
    pub(crate) fn mean_queries(&self) -> Option<f64> {
        (self.query_counted > 0).then(|| self.query_sum as f64 / self.query_counted as f64)
    }

    /// Share of hits among responses with a `Cache-Status`, or `None` when none had one.
    pub(crate) fn hit_rate(&self) -> Option<f64> {
        (self.cache_counted > 0).then(|| self.cache_hits as f64 / self.cache_counted as f64)
    }

    /// Share of reads answered without the database, or `None` when there was no read.
    pub(crate) fn without_db(&self) -> Option<f64> {
        (self.reads > 0).then(|| self.reads_without_db as f64 / self.reads as f64)
    }

    /// Adds `other` into `self`.
    pub(crate) fn add(&mut self, other: &Self) {
        self.responses += other.responses;
        self.query_counted += other.query_counted;
        self.query_sum += other.query_sum;
        self.cache_counted += other.cache_counted;
        self.cache_hits += other.cache_hits;
        self.reads += other.reads;
        self.reads_without_db += other.reads_without_db;
    }
}

/// One request as sent: when it started (milliseconds since the load test started), how long it
/// took (microseconds), whether goose counted it a success, and which request name it had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sample {
    pub(crate) elapsed_ms: u64,
    pub(crate) micros: u64,
    pub(crate) success: bool,
    pub(crate) name: u16,
}

/// Everything recorded so far.
#[derive(Debug, Default)]
pub(crate) struct Observed {
    /// Request names, indexed by [`Sample::name`].
    pub(crate) names: Vec<String>,
    pub(crate) headers: HashMap<String, HeaderCounts>,
    pub(crate) samples: Vec<Sample>,
    /// The moment goose's clock started (what [`Sample::elapsed_ms`] counts from), estimated
    /// from the first response: now, less its duration and its start.
    pub(crate) origin: Option<std::time::Instant>,
}

impl Observed {
    fn name_index(&mut self, name: &str) -> u16 {
        let at = self
            .names
            .iter()
            .position(|n| n == name)
            .unwrap_or_else(|| {
                self.names.push(name.to_owned());
                self.names.len() - 1
            });
        u16::try_from(at).unwrap_or(u16::MAX)
    }

    /// Records one response (or a transport error, which has no headers).
    pub(crate) fn record(
        &mut self,
        name: &str,
        sample: (u64, u64, bool),
        query_count: Option<u64>,
        cache_hit: Option<bool>,
    ) {
        let index = self.name_index(name);
        let (elapsed_ms, micros, success) = sample;
        self.samples.push(Sample {
            elapsed_ms,
            micros,
            success,
            name: index,
        });
        let counts = self.headers.entry(name.to_owned()).or_default();
        counts.responses += 1;
        if let Some(q) = query_count {
            counts.query_counted += 1;
            counts.query_sum += q;
        }
        if let Some(hit) = cache_hit {
            counts.cache_counted += 1;
            counts.cache_hits += u64::from(hit);
        }
        if success && name.starts_with("GET ") {
            counts.reads += 1;
            let without = match query_count {
                Some(q) => q == 0,
                None => cache_hit == Some(true),
            };
            counts.reads_without_db += u64::from(without);
        }
    }
}

static OBSERVED: LazyLock<Mutex<Observed>> = LazyLock::new(Mutex::default);

fn lock() -> MutexGuard<'static, Observed> {
    // A panicking user task cannot leave the recorder half-written in a way that matters here.
    OBSERVED.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Now, on the monotonic clock. The load test's one reading of it besides goose's own: what it
/// measures is the time clients see, not an injected clock's.
#[allow(clippy::disallowed_methods)]
pub(crate) fn now() -> std::time::Instant {
    std::time::Instant::now()
}

/// Now, in UNIX microseconds (to compare with the timestamps of a server's log).
#[allow(clippy::disallowed_methods)]
pub(crate) fn unix_micros_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// Records a goose response under `name` (the request name goose files it under).
pub(crate) fn record(name: &str, goose: &GooseResponse) {
    let request = &goose.request;
    let sample = (
        request.elapsed,
        request.response_time_micros(),
        request.success,
    );
    let (queries, cache) = match &goose.response {
        Ok(response) => {
            let headers = response.headers();
            let queries = headers
                .get("x-query-count")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            let cache = headers
                .get_all("cache-status")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find_map(|v| member_hit(v, API_CACHE));
            (queries, cache)
        }
        Err(_) => (None, None),
    };
    let mut observed = lock();
    if observed.origin.is_none() {
        let since = std::time::Duration::from_micros(
            sample.1.saturating_add(sample.0.saturating_mul(1000)),
        );
        observed.origin = now().checked_sub(since);
    }
    observed.record(name, sample, queries, cache);
}

/// Takes everything recorded so far, leaving the recorder empty.
pub(crate) fn take() -> Observed {
    std::mem::take(&mut *lock())
}

/// The cache whose hit rate the report gives: the API's (the crate's cache layer names its member
/// so). A cache in front of the API — the gateway's — adds a member of its own after it, under
/// another name.
pub(crate) const API_CACHE: &str = "protothrive";

/// The members of a `Cache-Status` field value (RFC 9211), closest to the origin first: each
/// cache's name (unquoted) and whether it served the response — the boolean `hit` parameter,
/// bare or `hit=?1`. `fwd=miss`, `fwd=stale` and the like are not hits.
fn members(value: &str) -> impl Iterator<Item = (&str, bool)> {
    value.split(',').map(|member| {
        let mut parts = member.split(';');
        let name = parts.next().unwrap_or_default().trim().trim_matches('"');
        let hit = parts.any(|param| {
            let (key, value) = param.split_once('=').unwrap_or((param, "?1"));
            key.trim().eq_ignore_ascii_case("hit") && value.trim() == "?1"
        });
        (name, hit)
    })
}

/// Whether a `Cache-Status` field value says some cache served the response (any member's
/// `hit`).
pub(crate) fn cache_status_is_hit(value: &str) -> bool {
    members(value).any(|(_, hit)| hit)
}

/// What the member of cache `name` says (the first, closest to the origin, if there are two):
/// whether it served the response; `None` when the value has no member of that cache.
pub(crate) fn member_hit(value: &str, name: &str) -> Option<bool> {
    members(value).find(|(n, _)| *n == name).map(|(_, hit)| hit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_status_hits_and_misses() {
        for (value, hit) in [
            ("protothrive; hit", true),
            ("protothrive; hit; ttl=30", true),
            ("protothrive; fwd=miss; stored", false),
            ("protothrive; fwd=stale; fwd-status=200", false),
            ("redis; fwd=miss, protothrive; hit", true),
            ("ExampleCache; hit=?1", true),
            ("ExampleCache; hit=?0", false),
            ("hit", false), // a cache named "hit" with no parameters
            ("", false),
        ] {
            assert_eq!(cache_status_is_hit(value), hit, "{value}");
        }
    }

    #[test]
    fn the_api_member_is_read_through_a_cache_in_front() {
        for (value, api) in [
            ("protothrive; hit; ttl=20", Some(true)),
            ("protothrive; fwd=uri-miss; stored", Some(false)),
            // Through the gateway: the API's member first, the gateway's after it.
            (
                "protothrive; hit; ttl=20, gateway; fwd=uri-miss; fwd-status=200",
                Some(true),
            ),
            (
                "protothrive; fwd=uri-miss, gateway; hit; ttl=5",
                Some(false),
            ),
            ("\"protothrive\"; hit=?1, gateway; fwd=miss", Some(true)),
            // Two of the same name: the one closest to the origin.
            ("protothrive; hit, protothrive; fwd=uri-miss", Some(true)),
            // The API's cache was not on the route: only the gateway said something.
            ("gateway; fwd=method", None),
            ("gateway; hit", None),
            ("", None),
        ] {
            assert_eq!(member_hit(value, API_CACHE), api, "{value}");
        }
    }

    #[test]
    fn counts_means_and_rates() {
        let mut observed = Observed::default();
        observed.record("GET /a", (1, 900, true), Some(2), Some(true));
        observed.record("GET /a", (2, 1100, true), Some(1), Some(false));
        observed.record("GET /b", (3, 500, false), None, None);
        observed.record("GET /a", (4, 800, true), Some(0), Some(false));
        observed.record("GET /a", (5, 700, true), None, Some(true));
        observed.record("POST /a", (6, 700, true), Some(0), None);
        let a = observed.headers["GET /a"];
        assert_eq!(a.mean_queries(), Some(1.0));
        assert_eq!(a.hit_rate(), Some(0.5));
        assert_eq!(
            (a.reads, a.reads_without_db),
            (4, 2),
            "a 0 count or a hit without one"
        );
        assert_eq!(a.without_db(), Some(0.5));
        assert_eq!(observed.headers["POST /a"].without_db(), None, "not a read");
        let b = observed.headers["GET /b"];
        assert_eq!(
            (b.responses, b.mean_queries(), b.hit_rate()),
            (1, None, None)
        );
        assert_eq!(observed.names, ["GET /a", "GET /b", "POST /a"]);
        assert_eq!(
            observed.samples[2],
            Sample {
                elapsed_ms: 3,
                micros: 500,
                success: false,
                name: 1
            }
        );
    }
}
