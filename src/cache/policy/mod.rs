//! The rules of RFC 9111 (and RFC 9110 §13–14, RFC 9211, RFC 9213) as pure functions: what may
//! be stored and in which scope, for how long it is fresh, how old it is, whether it may answer a
//! request, how requests are keyed, validated and invalidated, and how `Cache-Status` is written.
//! No I/O, no clock (`now` is a parameter), no tokio: the [`CacheLayer`](super::CacheLayer) is
//! built on them, and property tests, fuzz targets and benches aim at them.
//!
//! ```
//! use std::time::Duration;
//! use protothrive::cache::policy::{CacheControl, Reuse, Scope, reuse};
//!
//! let res = CacheControl::parse("max-age=60, stale-while-revalidate=30");
//! let req = CacheControl::default();
//! let s = Duration::from_secs;
//! assert_eq!(reuse(&req, &res, Scope::Shared, s(60), s(10)), Reuse::Fresh);
//! assert_eq!(reuse(&req, &res, Scope::Shared, s(60), s(70)), Reuse::StaleWhileRevalidate);
//! ```

pub(in crate::cache) mod control;
pub(in crate::cache) mod freshness;
mod host;
pub(in crate::cache) mod invalidation;
pub(in crate::cache) mod key;
pub(in crate::cache) mod range;
pub(in crate::cache) mod reuse;
pub(in crate::cache) mod status;
pub(in crate::cache) mod storable;
pub(in crate::cache) mod targeted;
pub(in crate::cache) mod validate;
pub(in crate::cache) mod vary;

#[cfg(test)]
mod tests;

pub use control::{CacheControl, MAX_DELTA_SECONDS, MaxStale};
pub use freshness::{
    DEFAULT_HEURISTIC_CAP, current_age, freshness_lifetime, freshness_lifetime_with, initial_age,
};
pub use invalidation::invalidation_targets;
pub use key::{CacheKey, normalize_uri, normalize_uri_str};
pub use range::{ByteRange, byte_range, if_range_holds};
pub use reuse::{Reuse, reuse};
pub use status::{CACHE_NAME, CACHE_STATUS, CacheStatus, Forward, age_value};
pub use storable::{NotStorable, Scope, heuristically_cacheable, storable, storable_with};
pub use targeted::{CDN_CACHE_CONTROL, Directives};
pub use validate::{
    SURROGATE_KEY, conditional_headers, head_matches, merge_not_modified, not_modified,
    strip_listed, strip_unstorable, surrogate_keys, validates,
};
pub use vary::{Vary, vary, vary_matches, vary_value};
