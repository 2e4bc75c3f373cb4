//! Full-jitter exponential backoff and `Retry-After`, written once for the retry layer
//! ([`crate::resilience`]) and the OTLP exporter's retries.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http::{HeaderMap, header};

use crate::clock::SharedClock;

/// Full-jitter exponential backoff: uniform in `[0, min(cap, base · 2^retry)]` (in
/// microseconds), where `random` is any random `u64`.
///
/// ```
/// use std::time::Duration;
/// use protothrive::resilience::backoff;
///
/// let (base, cap) = (Duration::from_millis(100), Duration::from_secs(1));
/// assert_eq!(backoff(2, base, cap, 400_000), Duration::from_millis(400));
/// assert!(backoff(30, base, cap, u64::MAX) <= cap);
/// ```
#[must_use]
#[cfg_attr(not(feature = "resilience"), allow(unreachable_pub))]
pub fn backoff(retry: u32, base: Duration, cap: Duration, random: u64) -> Duration {
    let ceiling = base.saturating_mul(1u32 << retry.min(20)).min(cap);
    let micros = u64::try_from(ceiling.as_micros()).unwrap_or(u64::MAX);
    Duration::from_micros(random % micros.saturating_add(1))
}

/// A random `u64` for jitter: the standard library's randomly keyed hasher over a counter (no
/// cryptographic quality needed, no extra dependency).
pub(crate) fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.finish()
}

/// `Retry-After` as a wait: delta-seconds, or an HTTP date on `clock`'s wall time.
pub(crate) fn retry_after(headers: &HeaderMap, clock: &SharedClock) -> Option<Duration> {
    let v = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(clock.now()).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use proptest::prelude::*;

    use super::*;
    use crate::clock::ManualClock;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let clock: SharedClock = Arc::new(ManualClock::at_unix(1_000_000));
        let mut h = HeaderMap::new();
        h.insert(header::RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&h, &clock), Some(Duration::from_secs(7)));
        let later = httpdate::fmt_http_date(clock.now() + Duration::from_secs(30));
        h.insert(header::RETRY_AFTER, later.parse().unwrap());
        assert_eq!(retry_after(&h, &clock), Some(Duration::from_secs(30)));
        h.insert(header::RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&h, &clock), None);
    }

    proptest! {
        #[test]
        fn backoff_stays_under_its_ceiling(retry in 0u32..64, base_ms in 1u64..1000, cap_ms in 1u64..10_000, random: u64) {
            let (base, cap) = (Duration::from_millis(base_ms), Duration::from_millis(cap_ms));
            let wait = backoff(retry, base, cap, random);
            prop_assert!(wait <= cap);
            prop_assert!(wait <= base.saturating_mul(1u32 << retry.min(20)));
        }
    }
}
