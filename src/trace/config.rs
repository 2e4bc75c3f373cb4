//! The trace layer's configuration, sampler and in-flight count: what its service, future and
//! body share.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use http::HeaderName;

use super::metrics::Red;
use crate::clock::SharedClock;

/// Which traces are sampled (the `sampled` flag this service sends on).
///
/// ```
/// use protothrive::trace::Sampler;
/// // Follow the caller; sample 10 % of the traces this service starts.
/// let s = Sampler::parent_based(0.1);
/// # let _ = s;
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampler {
    pub(super) root_ratio: f64,
    pub(super) honour_parent: bool,
}

impl Sampler {
    /// The caller's `sampled` flag when there is a caller; `root_ratio` (0.0 to 1.0) of the
    /// traces this service starts, chosen by trace id so every service agrees.
    #[must_use]
    pub fn parent_based(root_ratio: f64) -> Self {
        Self {
            root_ratio: root_ratio.clamp(0.0, 1.0),
            honour_parent: true,
        }
    }

    /// `ratio` of all traces, whatever the caller decided.
    #[must_use]
    pub fn ratio(ratio: f64) -> Self {
        Self {
            root_ratio: ratio.clamp(0.0, 1.0),
            honour_parent: false,
        }
    }

    pub(super) fn sample(&self, trace_id: &[u8; 16], parent: Option<bool>) -> bool {
        if let (true, Some(p)) = (self.honour_parent, parent) {
            return p;
        }
        // The right 7 bytes of a trace id are random (Level 2): compare them to the ratio.
        let mut low = [0u8; 8];
        low[1..].copy_from_slice(&trace_id[9..]);
        let bound = self.root_ratio * (1u64 << 56) as f64;
        (u64::from_be_bytes(low) as f64) < bound
    }
}

impl Default for Sampler {
    /// Parent-based, every root sampled (OpenTelemetry's default).
    fn default() -> Self {
        Self::parent_based(1.0)
    }
}

/// Requests whose response body has not ended (or been dropped) yet: a handle that several
/// readers (a status page, a graceful shutdown) share.
///
/// ```
/// let layer = protothrive::trace::TraceLayer::new();
/// assert_eq!(layer.in_flight().get(), 0);
/// ```
#[derive(Debug, Clone, Default)]
pub struct InFlight(pub(super) Arc<AtomicUsize>);

impl InFlight {
    /// The number now.
    #[must_use]
    pub fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Debug)]
pub(super) struct Config {
    pub(super) header: HeaderName,
    pub(super) trust_request_id: bool,
    pub(super) trust_trace: bool,
    pub(super) sampler: Sampler,
    pub(super) metrics: bool,
    pub(super) catch_panics: bool,
    /// `false`: the layer passes requests through untouched (a stack position left out).
    pub(super) enabled: bool,
    pub(super) clock: SharedClock,
    pub(super) red: Red,
    pub(super) in_flight: InFlight,
}
