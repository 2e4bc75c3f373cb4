//! What every part of the cache's request path reads: the [`Config`] fixed when the layer is
//! built, and the [`State`] its requests share at run time (the tiers' contents, the flights
//! under way, the counters, the purge log). Below the layer, the service and the origin path,
//! so each of them depends on it and not on the others.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, SystemTime};

use http::{HeaderName, request};

use super::l1::{L1, PurgeLog};
use super::store::CacheTier;
use crate::clock::SharedClock;
use crate::coalesce::Flights;

/// The error of the inner service's response body, boxed.
pub(super) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The partition function: the user a request's private responses belong to.
pub type PartitionFn = dyn Fn(&request::Parts) -> Option<String> + Send + Sync;

/// One cache: what its layer, services and handles share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) state: State,
}

/// The configuration, as built and checked by the layer's builder.
pub(crate) struct Config {
    /// The L2 tier, if any.
    pub(crate) tier: Option<Arc<dyn CacheTier>>,
    pub(crate) clock: SharedClock,
    pub(crate) partition: Option<Arc<PartitionFn>>,
    pub(crate) max_body: usize,
    pub(crate) heuristic_cap: Duration,
    pub(crate) grace: Duration,
    pub(crate) hit_for_pass: Duration,
    pub(crate) scheme: String,
    pub(crate) unkeyed: crate::headers::NameSet,
    /// The targeted cache-control fields obeyed, most applicable first (RFC 9213 §2.1).
    pub(crate) targets: Vec<HeaderName>,
    /// This cache's name in `Cache-Status`.
    pub(crate) name: Box<str>,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("tier", &self.tier)
            .field("partitioned", &self.partition.is_some())
            .field("max_body", &self.max_body)
            .finish_non_exhaustive()
    }
}

/// What the requests share at run time.
pub(crate) struct State {
    /// The in-process tier.
    pub(crate) l1: L1,
    /// Keys in a hit-for-pass window, and when it ends.
    pub(crate) pass: quick_cache::sync::Cache<String, SystemTime>,
    /// Origin calls of misses under way, by the key they coalesce on.
    pub(crate) inflight: Flights<String>,
    /// Background revalidations under way, by key.
    pub(crate) refreshing: Flights<String>,
    pub(crate) stats: Stats,
    pub(crate) purges: PurgeLog,
}

impl fmt::Debug for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("State")
            .field("l1_bytes", &self.l1.weight())
            .field("l1_capacity", &self.l1.capacity())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) stored: AtomicU64,
    pub(crate) collapsed: AtomicU64,
    pub(crate) stale_served: AtomicU64,
}
