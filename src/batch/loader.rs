//! [`Loader`]: coalesces the loads of one scheduling window into one [`BatchFn`] call.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use tracing::Instrument as _;

use super::config::Config;

/// The user's batch lookup: all values for a set of distinct keys, in one call.
///
/// A key absent from the returned map has no value (`load` gives `Ok(None)`). A failure of the
/// whole call (`Err`) fails the callers of that batch only; nothing of it is cached, so a later
/// load of the same keys calls again. An error that belongs to one key is a value: use
/// `Value = Result<T, E>`.
///
/// ```
/// use std::collections::HashMap;
/// use protothrive::batch::BatchFn;
///
/// struct Squares;
/// impl BatchFn for Squares {
///     type Key = u32;
///     type Value = u64;
///     type Error = String;
///     async fn load(&self, keys: &[u32]) -> Result<HashMap<u32, u64>, String> {
///         Ok(keys.iter().map(|&k| (k, u64::from(k) * u64::from(k))).collect())
///     }
/// }
/// ```
pub trait BatchFn: Send + Sync + 'static {
    /// What a caller asks for.
    type Key: Eq + Hash + Clone + Send + Sync + 'static;
    /// What it gets.
    type Value: Clone + Send + Sync + 'static;
    /// The failure of a whole batch (cloned to each of its callers).
    type Error: Clone + Send + Sync + 'static;

    /// Looks up `keys` (distinct, at most the loader's `max_batch_size`).
    fn load(
        &self,
        keys: &[Self::Key],
    ) -> impl Future<Output = Result<HashMap<Self::Key, Self::Value>, Self::Error>> + Send;
}

type Answer<F> = Result<Option<<F as BatchFn>::Value>, <F as BatchFn>::Error>;
type Waiters<F> = Vec<oneshot::Sender<Answer<F>>>;

/// What the loader knows of a key.
enum Entry<F: BatchFn> {
    /// Queued or in flight; these callers wait for it.
    Waiting(Waiters<F>),
    /// Loaded (kept when the per-request cache is on).
    Ready(Option<F::Value>),
}

struct State<F: BatchFn> {
    entries: HashMap<F::Key, Entry<F>>,
    /// Keys of the batch being gathered, each once.
    queued: Vec<F::Key>,
    /// Bumped whenever a batch is taken, so a window that ends late takes nothing.
    generation: u64,
    /// When the batch being gathered got its first key.
    opened: Option<Instant>,
}

struct Shared<F: BatchFn> {
    batch_fn: Arc<F>,
    config: Arc<Config>,
    state: Mutex<State<F>>,
}

/// A DataLoader: loads asked for within one scheduling window become one [`BatchFn`] call.
///
/// **Guarantees.**
/// * Loads of one window (a number of task yields and/or a maximum wait after the first key) are
///   coalesced into one batch call; a batch that reaches `max_batch_size` is sent at once.
/// * A key is asked for at most once per batch, and never while it is already queued or in
///   flight: concurrent loads of one key share one answer.
/// * With the per-request cache (the default), a loaded key (found or not) is answered from memory
///   afterwards. A failed batch is not cached: its callers get the error, later loads call again.
/// * The keys of one [`load_many`](Loader::load_many) are queued at once: one batch when they
///   fit, whatever the scheduler does meanwhile.
/// * The batch runs on its own task, so a caller that gives up does not strand the others; that
///   task runs in the span of the load that opened the batch, and in whatever context the
///   factory [carries](super::LoaderFactory::carry) (task-locals).
/// * Each batch is a `batch.load` span (loader name, size) and records the
///   `protothrive_batch_loader_size`, `protothrive_batch_loader_wait_seconds` and
///   `protothrive_batch_loader_duration_seconds` histograms and the
///   `protothrive_batch_loader_failures_total` counter, labelled by loader name. The handles
///   are resolved once per factory, on its first batch, against the `metrics` recorder
///   installed then: install the recorder before serving.
///
/// **Cost.** A load is one mutex lock and a hash lookup; a miss adds a oneshot channel, and the
/// first key of a batch one task spawn. Memory: the cache holds every value the loader loaded —
/// make one loader per request (from a [`LoaderFactory`](super::LoaderFactory)), not one per
/// process.
///
/// ```
/// use std::collections::HashMap;
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use protothrive::batch::{BatchFn, LoaderFactory};
///
/// #[derive(Default)]
/// struct Users(AtomicUsize);
/// impl BatchFn for Users {
///     type Key = u32;
///     type Value = String;
///     type Error = String;
///     async fn load(&self, keys: &[u32]) -> Result<HashMap<u32, String>, String> {
///         self.0.fetch_add(1, Ordering::SeqCst);
///         Ok(keys.iter().filter(|&&k| k < 100).map(|&k| (k, format!("user {k}"))).collect())
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let factory = LoaderFactory::new(Users::default());
/// let loader = factory.loader();
/// let (a, b, c) = tokio::join!(loader.load(1), loader.load(2), loader.load(1000));
/// assert_eq!(a, Ok(Some("user 1".to_owned())));
/// assert_eq!(b, Ok(Some("user 2".to_owned())));
/// assert_eq!(c, Ok(None));
/// assert_eq!(factory.batch_fn().0.load(Ordering::SeqCst), 1, "one batch call");
/// # }
/// ```
pub struct Loader<F: BatchFn> {
    shared: Arc<Shared<F>>,
}

impl<F: BatchFn> Clone for Loader<F> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<F: BatchFn> fmt::Debug for Loader<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Loader")
            .field("name", &self.shared.config.name)
            .finish_non_exhaustive()
    }
}

impl<F: BatchFn> Loader<F> {
    /// A loader with an empty cache over `batch_fn` and `config`.
    pub(super) fn new(batch_fn: Arc<F>, config: Arc<Config>) -> Self {
        Self {
            shared: Arc::new(Shared {
                batch_fn,
                config,
                state: Mutex::new(State {
                    entries: HashMap::new(),
                    queued: Vec::new(),
                    generation: 0,
                    opened: None,
                }),
            }),
        }
    }

    /// The value of `key`: `Ok(None)` when the batch function has none, `Err` when its batch
    /// failed.
    ///
    /// Must be called within a tokio runtime (the batch runs on a spawned task).
    pub async fn load(&self, key: F::Key) -> Answer<F> {
        let pending = self.enqueue(&mut self.lock(), key);
        pending.await
    }

    /// The values of `keys`, in order.
    ///
    /// The keys are queued at once, under one lock: those not yet known go out in one batch
    /// when they fit in `max_batch_size` (in consecutive full batches when they do not), however
    /// the scheduler interleaves other tasks — a handler that gathers the keys of a page and
    /// loads them here costs one batch call, not one per window.
    pub async fn load_many(&self, keys: impl IntoIterator<Item = F::Key>) -> Vec<Answer<F>> {
        let pending: Vec<_> = {
            let mut state = self.lock();
            keys.into_iter()
                .map(|k| self.enqueue(&mut state, k))
                .collect()
        };
        futures_util::future::join_all(pending).await
    }

    /// The answer of `key`: ready now, or a waiter on its batch (queuing the key if needed).
    fn enqueue(&self, state: &mut State<F>, key: F::Key) -> Pending<F> {
        match state.entries.get_mut(&key) {
            Some(Entry::Ready(v)) => Pending::Ready(Some(Ok(v.clone()))),
            Some(Entry::Waiting(waiters)) => {
                let (tx, rx) = oneshot::channel();
                waiters.push(tx);
                Pending::Waiting(rx)
            }
            None => {
                let (tx, rx) = oneshot::channel();
                state.entries.insert(key.clone(), Entry::Waiting(vec![tx]));
                state.queued.push(key);
                self.after_queue(state);
                Pending::Waiting(rx)
            }
        }
    }

    /// Forgets `key`, so the next load asks the batch function again (after a write).
    pub fn forget(&self, key: &F::Key) {
        let mut state = self.lock();
        if let Some(Entry::Ready(_)) = state.entries.get(key) {
            state.entries.remove(key);
        }
    }

    /// Sets the value of `key` in this loader's cache (a value the handler already has).
    pub fn prime(&self, key: F::Key, value: Option<F::Value>) {
        if !self.shared.config.cache {
            return;
        }
        let mut state = self.lock();
        if !matches!(state.entries.get(&key), Some(Entry::Waiting(_))) {
            state.entries.insert(key, Entry::Ready(value));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<F>> {
        self.shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts the window for a new batch, or sends a full one now.
    fn after_queue(&self, state: &mut State<F>) {
        let config = &self.shared.config;
        if state.queued.len() >= config.max_batch_size {
            let keys = take(state);
            let opened = state.opened.take();
            spawn(config, run(self.shared.clone(), keys, opened));
        } else if state.queued.len() == 1 {
            state.opened = Some(config.clock.instant());
            let generation = state.generation;
            let shared = self.shared.clone();
            spawn(config, async move {
                for _ in 0..shared.config.yields {
                    tokio::task::yield_now().await;
                }
                if !shared.config.max_wait.is_zero() {
                    tokio::time::sleep(shared.config.max_wait).await;
                }
                let taken = {
                    let mut state = shared.state.lock().unwrap_or_else(PoisonError::into_inner);
                    (state.generation == generation)
                        .then(|| (take(&mut state), state.opened.take()))
                };
                if let Some((keys, opened)) = taken {
                    run(shared, keys, opened).await;
                }
            });
        }
    }
}

/// The answer of one load: known at once, or from its batch.
enum Pending<F: BatchFn> {
    Ready(Option<Answer<F>>),
    Waiting(oneshot::Receiver<Answer<F>>),
}

// Neither variant is ever pinned in place: the answer is moved out, the receiver is `Unpin`.
impl<F: BatchFn> Unpin for Pending<F> {}

impl<F: BatchFn> Future for Pending<F> {
    type Output = Answer<F>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Answer<F>> {
        match &mut *self {
            Self::Ready(answer) => Poll::Ready(answer.take().unwrap_or(Ok(None))),
            // The batch task always answers or drops every waiter; a dropped one means the
            // runtime is shutting down, and there is nothing better to say than "none".
            Self::Waiting(rx) => Pin::new(rx).poll(cx).map(|r| r.unwrap_or(Ok(None))),
        }
    }
}

/// Runs a batch task: inside the span of the task that opened the batch (so `batch.load` is a
/// child of the request's span) and the context the factory [carries](super::LoaderFactory::carry).
fn spawn(config: &Config, task: impl Future<Output = ()> + Send + 'static) {
    let task = task.instrument(tracing::Span::current());
    match &config.carry {
        Some(capture) => {
            let wrap = capture();
            drop(tokio::spawn(wrap(Box::pin(task))));
        }
        None => drop(tokio::spawn(task)),
    }
}

/// Takes the batch being gathered and starts the next one.
fn take<F: BatchFn>(state: &mut State<F>) -> Vec<F::Key> {
    state.generation = state.generation.wrapping_add(1);
    std::mem::take(&mut state.queued)
}

/// Calls the batch function for `keys` and answers their waiters.
async fn run<F: BatchFn>(shared: Arc<Shared<F>>, keys: Vec<F::Key>, opened: Option<Instant>) {
    let config = &shared.config;
    let start = config.clock.instant();
    let wait = opened.map_or(Duration::ZERO, |o| start.saturating_duration_since(o));
    let span = tracing::debug_span!("batch.load", loader = config.name, size = keys.len());
    let result = shared.batch_fn.load(&keys).instrument(span).await;
    let took = config.clock.instant().saturating_duration_since(start);
    let m = config.handles();
    m.size.record(keys.len() as f64);
    m.wait.record(wait.as_secs_f64());
    m.duration.record(took.as_secs_f64());
    if result.is_err() {
        m.failures.increment(1);
    }
    let mut state = shared.state.lock().unwrap_or_else(PoisonError::into_inner);
    match result {
        Ok(mut values) => {
            for key in keys {
                let value = values.remove(&key);
                let entry = if config.cache {
                    state.entries.insert(key, Entry::Ready(value.clone()))
                } else {
                    state.entries.remove(&key)
                };
                if let Some(Entry::Waiting(waiters)) = entry {
                    for tx in waiters {
                        let _ = tx.send(Ok(value.clone()));
                    }
                }
            }
        }
        Err(e) => {
            for key in keys {
                if let Some(Entry::Waiting(waiters)) = state.entries.remove(&key) {
                    for tx in waiters {
                        let _ = tx.send(Err(e.clone()));
                    }
                }
            }
        }
    }
}
