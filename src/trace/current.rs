use std::cell::RefCell;
use std::sync::Arc;

use super::TraceContext;
use crate::error::{RequestId, TraceId};

/// The request being served on this task: its trace context and ids. See [`current`].
#[derive(Debug)]
pub struct Current {
    /// The server span's trace position.
    pub context: TraceContext,
    /// The request id.
    pub request_id: RequestId,
    /// The trace id, as problems carry it.
    pub trace_id: TraceId,
}

thread_local! {
    static CURRENT: RefCell<Option<Arc<Current>>> = const { RefCell::new(None) };
}

/// The request being served on this task, while [`TraceLayer`](super::TraceLayer)'s future is
/// polled — in a handler and in everything it awaits on the same task (not in a task it
/// spawns). A problem rendered without request extensions takes its ids from here, and
/// [`TraceClientLayer`](super::TraceClientLayer) its parent span.
///
/// ```
/// // Outside a traced request there is none.
/// assert!(protothrive::trace::current().is_none());
/// ```
#[must_use]
pub fn current() -> Option<Arc<Current>> {
    CURRENT.with(|c| c.borrow().clone())
}

/// Runs `f` with `cur` as the current request, restoring the previous one afterwards (also when
/// `f` panics).
pub(crate) fn scope<R>(cur: &Arc<Current>, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Arc<Current>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            // `try_with`: nothing to restore while the thread is being torn down.
            let _ = CURRENT.try_with(|c| *c.borrow_mut() = previous);
        }
    }
    let previous = CURRENT.with(|c| c.borrow_mut().replace(Arc::clone(cur)));
    let _restore = Restore(previous);
    f()
}
