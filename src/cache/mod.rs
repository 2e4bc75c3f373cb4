//! An HTTP shared cache (RFC 9111) in front of handlers.

mod control;
mod data;
mod key;
mod policy;
#[cfg(feature = "redis")]
mod redis;
#[cfg(test)]
mod policy_tests;
mod status;
mod validate;

pub use data::{DataCache, DataCacheBuilder};
pub use control::{CacheControl, MAX_DELTA_SECONDS, MaxStale};
pub use key::{CacheKey, normalize_uri, normalize_uri_str};
pub use policy::{
    DEFAULT_HEURISTIC_CAP, NotStorable, Reuse, Scope, Vary, current_age, freshness_lifetime,
    heuristically_cacheable, initial_age, invalidation_targets, reuse, storable, vary,
    vary_matches, vary_value,
};
#[cfg(feature = "redis")]
pub use redis::{Invalidation, RedisTier, RedisTierBuilder, Subscription, TierError};
pub use status::{CACHE_NAME, CACHE_STATUS, CacheStatus, Forward, age_value};
pub use validate::{
    SURROGATE_KEY, conditional_headers, merge_not_modified, not_modified, strip_unstorable,
    surrogate_keys, validates,
};
