//! What the loaders of one [`LoaderFactory`](super::LoaderFactory) share: how they gather,
//! cache and measure their batches.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::clock::SharedClock;

/// A batch task's future, as the wrapper of
/// [`LoaderFactory::carry`](super::LoaderFactory::carry) gets and returns it.
pub type BatchTask = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Captures, in the task that opens a batch, what its batch task should run in, and returns the
/// wrapper that puts it around the task (see
/// [`LoaderFactory::carry`](super::LoaderFactory::carry)).
pub(super) type Carry =
    Arc<dyn Fn() -> Box<dyn FnOnce(BatchTask) -> BatchTask + Send> + Send + Sync>;

/// How a loader gathers and caches (shared by every loader of a
/// [`LoaderFactory`](super::LoaderFactory)).
#[derive(Clone)]
pub(super) struct Config {
    pub(super) name: &'static str,
    pub(super) max_batch_size: usize,
    pub(super) yields: u32,
    pub(super) max_wait: Duration,
    pub(super) cache: bool,
    pub(super) clock: SharedClock,
    pub(super) carry: Option<Carry>,
    /// The metric handles, resolved on the first batch (against the recorder installed then).
    pub(super) metrics: OnceLock<Handles>,
}

/// A loader's metric handles: labels built and looked up once, not per batch.
#[derive(Clone)]
pub(super) struct Handles {
    pub(super) size: metrics::Histogram,
    pub(super) wait: metrics::Histogram,
    pub(super) duration: metrics::Histogram,
    pub(super) failures: metrics::Counter,
}

impl Config {
    pub(super) fn handles(&self) -> &Handles {
        self.metrics.get_or_init(|| {
            let name = self.name;
            Handles {
                size: metrics::histogram!("protothrive_batch_loader_size", "loader" => name),
                wait: metrics::histogram!("protothrive_batch_loader_wait_seconds", "loader" => name),
                duration: metrics::histogram!(
                    "protothrive_batch_loader_duration_seconds",
                    "loader" => name
                ),
                failures: metrics::counter!(
                    "protothrive_batch_loader_failures_total",
                    "loader" => name
                ),
            }
        })
    }
}
