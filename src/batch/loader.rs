//! [`Loader`]: coalesces the loads of one scheduling window into one [`BatchFn`] call.

use std::collections::{HashMap, hash_map};
use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use smallvec::{SmallVec, smallvec};
use tokio::sync::oneshot;
use tracing::Instrument as _;
use tracing::Level;
use tracing::level_filters::LevelFilter;

use super::config::{BatchTask, Carry, Config};

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
/// A key's callers besides the load that drives its batch: none or one, as a rule, kept
/// without an allocation of their own.
type Waiters<F> = SmallVec<[oneshot::Sender<Answer<F>>; 1]>;
/// The keys of one batch: a lone key kept without an allocation.
type Keys<F> = SmallVec<[<F as BatchFn>::Key; 1]>;

/// What the loader knows of a key.
enum Entry<F: BatchFn> {
    /// Queued or in flight; these callers wait for it (the load that drives its batch takes its
    /// answer from the batch).
    Waiting(Waiters<F>),
    /// Loaded (kept when the per-request cache is on).
    Ready(Option<F::Value>),
}

struct State<F: BatchFn> {
    /// Keyed by foldhash, seeded per map: a fifth of SipHash's cost on small keys.
    entries: HashMap<F::Key, Entry<F>, foldhash::fast::RandomState>,
    /// Keys of the batch being gathered, each once.
    queued: Keys<F>,
    /// Bumped whenever a batch is taken, so a window that ends late takes nothing.
    generation: u64,
    /// When the batch being gathered got its first key.
    opened: Option<Instant>,
    /// The answers of windows whose keys a full batch took, by the window's generation: the
    /// window's opening load awaits its own there.
    handed: Vec<(u64, oneshot::Receiver<Answer<F>>)>,
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
///   coalesced into one batch call; a batch that reaches `max_batch_size` is sent at once. A
///   yield wakes the load's task and hands the scheduler back: the tasks already queued run
///   before it is polled again (tokio's `yield_now` would also wait for a turn of the I/O
///   driver, for ~280 more instructions per batch).
/// * A key is asked for at most once per batch, and never while it is already queued or in
///   flight: concurrent loads of one key share one answer.
/// * With the per-request cache (the default), a loaded key (found or not) is answered from memory
///   afterwards. A failed batch is not cached: its callers get the error, later loads call again.
/// * The keys of one [`load_many`](Loader::load_many) are queued at once: one batch when they
///   fit, whatever the scheduler does meanwhile.
/// * The batch runs inside the load that opened it (the first key's; for a batch sent full, the
///   load that filled it), in that load's task: in its span and task-locals, with no task
///   spawned. That load takes its own answer from the batch; the others get theirs through a
///   channel. A caller that gives up does not strand the others: a batch whose opening load is
///   dropped before the batch ends carries on in a spawned task, in the span current where the
///   load was dropped and in whatever context the factory
///   [carries](super::LoaderFactory::carry) (task-locals). Like `dataloader`'s, the window only
///   ends while that load is polled: await the loads you start (`join!`, `join_all`,
///   `load_many`), do not park one and wait on another.
/// * Each batch is a `batch.load` span (loader name, size) — built only when a `tracing`
///   subscriber takes debug spans, so `log`'s fallback for a process without one does not see
///   it — and records the `protothrive_batch_loader_size`,
///   `protothrive_batch_loader_wait_seconds` and `protothrive_batch_loader_duration_seconds`
///   histograms and the `protothrive_batch_loader_failures_total` counter, labelled by loader
///   name. The handles are resolved once per factory, on its first batch, against the
///   `metrics` recorder installed then: install the recorder before serving.
///
/// **Cost.** A load is one mutex lock and a hash lookup. The load that opens a window (or fills
/// a batch) adds one boxed future, the window and the batch call it drives; a load that joins
/// another's batch adds a oneshot channel instead; the key list of a batch of one needs no
/// allocation. Per batch: three clock reads and the metric records. Memory: the cache holds
/// every value the loader loaded — make one loader per request (from a
/// [`LoaderFactory`](super::LoaderFactory)), not one per process.
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
    /// A loader with an empty cache over `batch_fn` (what [`LoaderFactory::loader`](super::LoaderFactory::loader) makes).
    pub(super) fn new(batch_fn: Arc<F>, config: Arc<Config>) -> Self {
        Self {
            shared: Arc::new(Shared {
                batch_fn,
                config,
                state: Mutex::new(State {
                    entries: HashMap::default(),
                    queued: Keys::<F>::new(),
                    generation: 0,
                    opened: None,
                    handed: Vec::new(),
                }),
            }),
        }
    }

    /// The value of `key`: `Ok(None)` when the batch function has none, `Err` when its batch
    /// failed.
    ///
    /// Must be called within a tokio runtime (the window yields to it, and a batch whose opening
    /// load is dropped carries on in a spawned task).
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

    /// The answer of `key`: ready now, its batch driven by this load (the key opened a window
    /// or filled a batch), or a waiter on another load's batch.
    fn enqueue(&self, state: &mut State<F>, key: F::Key) -> Pending<F> {
        let free = match state.entries.entry(key) {
            hash_map::Entry::Occupied(mut known) => {
                return match known.get_mut() {
                    Entry::Ready(v) => Pending::Ready(Some(Ok(v.clone()))),
                    Entry::Waiting(waiters) => {
                        let (tx, rx) = oneshot::channel();
                        waiters.push(tx);
                        Pending::Waiting(rx)
                    }
                };
            }
            hash_map::Entry::Vacant(free) => free,
        };
        let config = &self.shared.config;
        let queued = state.queued.len() + 1;
        if queued < config.max_batch_size && queued > 1 {
            // Joins the open window: answered by the load that opened it.
            let (tx, rx) = oneshot::channel();
            if queued == 2 {
                // Spilling from the inline key: room for four, as a `Vec` starts.
                state.queued.reserve(3);
            }
            state.queued.push(free.key().clone());
            free.insert(Entry::Waiting(smallvec![tx]));
            return Pending::Waiting(rx);
        }
        // This load drives the batch its key is in, and takes its answer from it.
        state.queued.push(free.key().clone());
        free.insert(Entry::Waiting(Waiters::<F>::new()));
        Pending::Leading(if queued >= config.max_batch_size {
            self.send_full(state)
        } else {
            self.open_window(state)
        })
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

    /// Takes the full batch whose last key the current load queued; that load drives it. The
    /// window's opening load, when the batch has one, gets its answer through a channel.
    fn send_full(&self, state: &mut State<F>) -> Drive<F> {
        let generation = state.generation;
        let keys = take(state);
        if keys.len() > 1 {
            // The first key opened this generation's window, whose load finds its answer here.
            let (tx, rx) = oneshot::channel();
            if let Some(Entry::Waiting(waiters)) = state.entries.get_mut(&keys[0]) {
                waiters.push(tx);
            }
            state.handed.push((generation, rx));
        }
        let opened = state.opened.take();
        let own = keys.len() - 1;
        Drive::new(
            &self.shared.config,
            run(self.shared.clone(), keys, opened, own),
        )
    }

    /// Opens the window of a new batch, which the current load (its first key's) drives.
    fn open_window(&self, state: &mut State<F>) -> Drive<F> {
        let config = &self.shared.config;
        state.opened = Some(config.clock.instant());
        let generation = state.generation;
        let shared = self.shared.clone();
        Drive::new(config, async move {
            for _ in 0..shared.config.yields {
                YieldNow(false).await;
            }
            if !shared.config.max_wait.is_zero() {
                tokio::time::sleep(shared.config.max_wait).await;
            }
            let taken = {
                let mut state = shared.state.lock().unwrap_or_else(PoisonError::into_inner);
                if state.generation == generation {
                    Ok((take(&mut state), state.opened.take()))
                } else {
                    // A full batch took this window's keys; its answer comes from that batch.
                    let at = state.handed.iter().position(|(g, _)| *g == generation);
                    Err(at.map(|at| state.handed.swap_remove(at).1))
                }
            };
            match taken {
                // The key that opened the window is the batch's first.
                Ok((keys, opened)) => run(shared, keys, opened, 0).await,
                Err(Some(rx)) => rx.await.unwrap_or(Ok(None)),
                Err(None) => Ok(None),
            }
        })
    }
}

/// What the load that drives a batch awaits: the window and the batch call, then its own key's
/// answer.
type Lead<F> = Pin<Box<dyn Future<Output = Answer<F>> + Send>>;

/// A batch's window and call, driven by the load that opened it or filled it (polled inside that
/// load, in its task), which takes its own answer from it. Dropped before it ends — its load
/// given up on — it carries on in a spawned task, so the batch's other callers still get their
/// answers.
struct Drive<F: BatchFn> {
    task: Option<Lead<F>>,
    carry: Option<Carry>,
}

impl<F: BatchFn> Drive<F> {
    fn new(config: &Config, task: impl Future<Output = Answer<F>> + Send + 'static) -> Self {
        Self {
            task: Some(Box::pin(task)),
            carry: config.carry.clone(),
        }
    }
}

impl<F: BatchFn> Drop for Drive<F> {
    fn drop(&mut self) {
        let Some(task) = self.task.take() else { return };
        // With no runtime left the batch is dropped, and its callers get `Ok(None)`.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let task = async move { drop(task.await) }.instrument(tracing::Span::current());
            let task: BatchTask = Box::pin(task);
            let task = match &self.carry {
                Some(capture) => capture()(task),
                None => task,
            };
            drop(runtime.spawn(task));
        }
    }
}

/// The answer of one load: known at once, from another load's batch, or from the batch this
/// load drives.
enum Pending<F: BatchFn> {
    Ready(Option<Answer<F>>),
    Waiting(oneshot::Receiver<Answer<F>>),
    Leading(Drive<F>),
}

// No variant is ever pinned in place: the answer is moved out, the receiver is `Unpin`, the
// batch is boxed.
impl<F: BatchFn> Unpin for Pending<F> {}

impl<F: BatchFn> Future for Pending<F> {
    type Output = Answer<F>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Answer<F>> {
        match &mut *self {
            Self::Ready(answer) => Poll::Ready(answer.take().unwrap_or(Ok(None))),
            // The batch always answers or drops every waiter; a dropped one means the runtime
            // is shutting down, and there is nothing better to say than "none".
            Self::Waiting(rx) => Pin::new(rx).poll(cx).map(|r| r.unwrap_or(Ok(None))),
            Self::Leading(drive) => match &mut drive.task {
                Some(task) => {
                    let answer = task.as_mut().poll(cx);
                    if answer.is_ready() {
                        drive.task = None;
                    }
                    answer
                }
                None => Poll::Ready(Ok(None)),
            },
        }
    }
}

/// One turn given back to the scheduler: the task wakes itself and is polled again after the
/// tasks already queued.
struct YieldNow(bool);

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// Takes the batch being gathered and starts the next one.
fn take<F: BatchFn>(state: &mut State<F>) -> Keys<F> {
    state.generation = state.generation.wrapping_add(1);
    std::mem::take(&mut state.queued)
}

/// Calls the batch function for `keys`, answers their waiters, and returns the answer of
/// `keys[own]` (the key of the load that drives the batch).
async fn run<F: BatchFn>(
    shared: Arc<Shared<F>>,
    keys: Keys<F>,
    opened: Option<Instant>,
    own: usize,
) -> Answer<F> {
    let config = &shared.config;
    let start = config.clock.instant();
    let wait = opened.map_or(Duration::ZERO, |o| start.saturating_duration_since(o));
    let load = shared.batch_fn.load(&keys);
    // The span is built only when a subscriber takes debug spans (`log`'s fallback for a
    // process without one is not worth its cost per batch).
    let result = if LevelFilter::current() >= Level::DEBUG {
        let span = tracing::debug_span!("batch.load", loader = config.name, size = keys.len());
        load.instrument(span).await
    } else {
        load.await
    };
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
            let mut answer = None;
            for (i, key) in keys.into_iter().enumerate() {
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
                if i == own {
                    answer = value;
                }
            }
            Ok(answer)
        }
        Err(e) => {
            for key in keys {
                if let Some(Entry::Waiting(waiters)) = state.entries.remove(&key) {
                    for tx in waiters {
                        let _ = tx.send(Err(e.clone()));
                    }
                }
            }
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use futures_util::FutureExt as _;

    use super::Entry;
    use crate::batch::LoaderFactory;
    use crate::batch::loader_tests::{Doubler, batches};

    #[tokio::test]
    async fn the_opening_load_takes_its_answer_from_its_batch_without_a_channel() {
        let factory = LoaderFactory::new(Doubler::default());
        let loader = factory.loader();
        let mut opening = Box::pin(loader.load(1));
        assert_eq!((&mut opening).now_or_never(), None, "the window is open");
        let waiting = |k| match loader.lock().entries.get(&k) {
            Some(Entry::Waiting(w)) => Some(w.len()),
            _ => None,
        };
        assert_eq!(waiting(1), Some(0), "no channel for the opening load");
        // Loads started meanwhile, of another key and of the same one, join the window.
        let (other, same) = (loader.load(2), loader.load(1));
        let answers = tokio::join!(other, same, opening);
        assert_eq!(answers, (Ok(Some(4)), Ok(Some(2)), Ok(Some(2))));
        assert_eq!(batches(&factory), vec![vec![1, 2]]);
        assert!(loader.lock().handed.is_empty());
    }
}
