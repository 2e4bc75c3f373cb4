//! An HTTP shared cache (RFC 9111) in front of handlers.

mod control;

pub use control::{CacheControl, MAX_DELTA_SECONDS, MaxStale};
