//! What every part of the cache's request path reads: the built configuration, its shared state
//! and counters. Below the layer, the service and the origin path, so each depends on it and not
//! on the others.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{HeaderName, request};

use super::l1::{L1, PurgeLog};
use super::store::CacheTier;
use crate::clock::SharedClock;

/// The error of the inner service's response body, boxed.
pub(super) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The partition function: the user a request's private responses belong to.
pub type PartitionFn = dyn Fn(&request::Parts) -> Option<String> + Send + Sync;

pub(crate) struct Config {
    pub(crate) l1: L1,
    pub(crate) tier: Option<Arc<dyn CacheTier>>,
    pub(crate) clock: SharedClock,
    pub(crate) partition: Option<Arc<PartitionFn>>,
    pub(crate) max_body: usize,
    pub(crate) heuristic_cap: Duration,
    pub(crate) grace: Duration,
    pub(crate) hit_for_pass: Duration,
    pub(crate) pass: quick_cache::sync::Cache<String, std::time::SystemTime>,
    pub(crate) scheme: String,
    pub(crate) unkeyed: Vec<HeaderName>,
    /// The targeted cache-control fields obeyed, most applicable first (RFC 9213 §2.1).
    pub(crate) targets: Vec<HeaderName>,
    pub(crate) inflight: Mutex<HashMap<String, tokio::sync::watch::Receiver<()>>>,
    pub(crate) refreshing: Mutex<HashSet<String>>,
    pub(crate) stats: Stats,
    pub(crate) purges: PurgeLog,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheConfig")
            .field("l1_bytes", &self.l1.weight())
            .field("l1_capacity", &self.l1.capacity())
            .field("tier", &self.tier)
            .field("partitioned", &self.partition.is_some())
            .field("max_body", &self.max_body)
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
