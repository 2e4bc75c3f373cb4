//! [`LoaderFactory`]: the shared batch function and settings that per-request [`Loader`]s are
//! made from.

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use super::config::{BatchTask, Config};
use super::loader::{BatchFn, Loader};
use crate::clock::{self, SharedClock};

/// Makes cheap per-request [`Loader`]s over one shared [`BatchFn`] and configuration.
///
/// ```
/// use std::collections::HashMap;
/// use std::time::Duration;
/// use protothrive::batch::{BatchFn, LoaderFactory};
///
/// struct Echo;
/// impl BatchFn for Echo {
///     type Key = u8;
///     type Value = u8;
///     type Error = ();
///     async fn load(&self, keys: &[u8]) -> Result<HashMap<u8, u8>, ()> {
///         Ok(keys.iter().map(|&k| (k, k)).collect())
///     }
/// }
///
/// let factory = LoaderFactory::new(Echo)
///     .name("echo")
///     .max_batch_size(100)
///     .max_wait(Duration::from_millis(1));
/// let one_request = factory.loader();
/// # let _ = one_request;
/// ```
pub struct LoaderFactory<F: BatchFn> {
    batch_fn: Arc<F>,
    config: Arc<Config>,
}

impl<F: BatchFn> Clone for LoaderFactory<F> {
    fn clone(&self) -> Self {
        Self {
            batch_fn: self.batch_fn.clone(),
            config: self.config.clone(),
        }
    }
}

impl<F: BatchFn> fmt::Debug for LoaderFactory<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoaderFactory")
            .field("name", &self.config.name)
            .field("max_batch_size", &self.config.max_batch_size)
            .field("yields", &self.config.yields)
            .field("max_wait", &self.config.max_wait)
            .field("cache", &self.config.cache)
            .field("carry", &self.config.carry.is_some())
            .finish_non_exhaustive()
    }
}

impl<F: BatchFn> LoaderFactory<F> {
    /// A factory over `batch_fn`: batches of up to 1000 keys, a window of one task yield (the
    /// loads a handler starts together, as `join!` does), the per-request cache on.
    pub fn new(batch_fn: F) -> Self {
        Self {
            batch_fn: Arc::new(batch_fn),
            config: Arc::new(Config {
                name: "loader",
                max_batch_size: 1000,
                yields: 1,
                max_wait: Duration::ZERO,
                cache: true,
                clock: clock::system(),
                carry: None,
                metrics: OnceLock::new(),
            }),
        }
    }

    /// The name in spans and metric labels.
    #[must_use]
    pub fn name(mut self, name: &'static str) -> Self {
        let config = Arc::make_mut(&mut self.config);
        config.name = name;
        config.metrics = OnceLock::new();
        self
    }

    /// The most keys in one batch call (at least 1); a batch that reaches it is sent at once.
    #[must_use]
    pub fn max_batch_size(mut self, n: usize) -> Self {
        Arc::make_mut(&mut self.config).max_batch_size = n.max(1);
        self
    }

    /// How many times the load that opened a batch yields to the scheduler before sending it
    /// (one by default: the loads a handler starts together, as `join!` does, are all queued
    /// by then). A yield wakes the load's task at once; the tasks already queued run first. With none, the batch goes out at that load's first poll, holding the keys
    /// queued so far: a [`load_many`](super::Loader::load_many)'s all, one `join!` branch's own.
    #[must_use]
    pub fn yields(mut self, n: u32) -> Self {
        Arc::make_mut(&mut self.config).yields = n;
        self
    }

    /// How long the window stays open after its first key (after the yields); zero by default.
    #[must_use]
    pub fn max_wait(mut self, wait: Duration) -> Self {
        Arc::make_mut(&mut self.config).max_wait = wait;
        self
    }

    /// Whether loaded values are kept for the loader's lifetime (on by default).
    #[must_use]
    pub fn cache(mut self, on: bool) -> Self {
        Arc::make_mut(&mut self.config).cache = on;
        self
    }

    /// The clock that measures batch wait and duration (the system clock by default).
    #[must_use]
    pub fn clock(mut self, clock: SharedClock) -> Self {
        Arc::make_mut(&mut self.config).clock = clock;
        self
    }

    /// Carries the opening task's context into a batch handed to a task of its own (when the
    /// load that drives it is dropped before it ends): `capture` runs where that load is
    /// dropped — in its task, as a rule — and the wrapper it returns runs the batch task. For
    /// task-local values (tokio's `task_local!`), which a spawned task does not inherit; a
    /// batch run by its load needs none of this. The current `tracing` span is carried without
    /// it. Costs one boxed future per handed-on batch, nothing otherwise.
    ///
    /// ```
    /// use std::collections::HashMap;
    /// use protothrive::batch::{BatchFn, BatchTask, LoaderFactory};
    ///
    /// tokio::task_local! { static TENANT: u32; }
    ///
    /// struct Tenanted;
    /// impl BatchFn for Tenanted {
    ///     type Key = u8;
    ///     type Value = u32;
    ///     type Error = ();
    ///     async fn load(&self, keys: &[u8]) -> Result<HashMap<u8, u32>, ()> {
    ///         let tenant = TENANT.try_with(|t| *t).unwrap_or(0);
    ///         Ok(keys.iter().map(|&k| (k, tenant)).collect())
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let factory = LoaderFactory::new(Tenanted).carry(|| {
    ///     let tenant = TENANT.try_with(|t| *t).ok();
    ///     Box::new(move |task: BatchTask| -> BatchTask {
    ///         match tenant {
    ///             Some(t) => Box::pin(TENANT.scope(t, task)),
    ///             None => task,
    ///         }
    ///     })
    /// });
    /// let loader = factory.loader();
    /// assert_eq!(TENANT.scope(7, loader.load(1)).await, Ok(Some(7)));
    /// # }
    /// ```
    #[must_use]
    pub fn carry<C>(mut self, capture: C) -> Self
    where
        C: Fn() -> Box<dyn FnOnce(BatchTask) -> BatchTask + Send> + Send + Sync + 'static,
    {
        Arc::make_mut(&mut self.config).carry = Some(Arc::new(capture));
        self
    }

    /// The shared batch function.
    #[must_use]
    pub fn batch_fn(&self) -> &F {
        &self.batch_fn
    }

    /// A new loader with an empty cache (one per request).
    #[must_use]
    pub fn loader(&self) -> Loader<F> {
        Loader::new(self.batch_fn.clone(), self.config.clone())
    }
}
