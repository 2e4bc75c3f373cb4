//! The queue of purges the Redis tier could not apply or publish yet, in order and bounded, with
//! a `watch` of how far the replay got (`purge.rs` applies and replays them; the tier's docs say
//! what this guarantees).
//!
//! Written by hand: this is the tier's own bookkeeping (a bounded queue and a `watch`), not a
//! general mechanism a crate offers.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::watch;

use crate::cache::store::Purge;

/// At most this many unapplied purges are kept one by one; one more and they are replaced by a
/// purge of everything under the tier's prefix (the memory kept stays bounded whatever the
/// outage's length).
pub(super) const MAX_UNAPPLIED: usize = 256;

/// One purge to apply to Redis and then publish to every instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Work {
    /// A purge of the HTTP cache: keys and URIs drop their implicit tag, tags their set,
    /// prefixes scan.
    Http(Purge),
    /// A purge of the data cache: [`Purge::Key`] deletes that key, [`Purge::KeyPrefix`] scans.
    Data(Purge),
    /// Everything under the tier's prefix: what the journal keeps once it is full.
    All,
}

/// The queue of unapplied purges of one tier (shared by its clones).
#[derive(Debug)]
pub(super) struct Journal {
    inner: Mutex<Inner>,
    /// The queue's length, read without the lock before each L2 read.
    unapplied: AtomicUsize,
    /// The sequence number through which every purge is applied and published.
    done: watch::Sender<u64>,
}

#[derive(Debug, Default)]
struct Inner {
    /// The sequence number of the last purge taken in.
    last: u64,
    queue: VecDeque<(u64, Work)>,
    /// Whether a replay task is running.
    replaying: bool,
}

impl Default for Journal {
    fn default() -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            unapplied: AtomicUsize::new(0),
            done: watch::Sender::new(0),
        }
    }
}

impl Journal {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How many purges wait to be applied.
    pub(super) fn len(&self) -> usize {
        self.unapplied.load(Ordering::Acquire)
    }

    /// Whether none waits.
    pub(super) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Publishes the queue's length (under the lock).
    fn count(&self, inner: &Inner) {
        self.unapplied.store(inner.queue.len(), Ordering::Release);
        metrics::gauge!("protothrive_cache_purges_unapplied").set(inner.queue.len() as f64);
    }

    /// Takes `work` in; its sequence number, and whether the caller must start the replay.
    pub(super) fn push(&self, work: Work) -> (u64, bool) {
        let mut inner = self.lock();
        inner.last += 1;
        let seq = inner.last;
        if inner.queue.len() >= MAX_UNAPPLIED {
            inner.queue.clear();
            inner.queue.push_back((seq, Work::All));
        } else {
            inner.queue.push_back((seq, work));
        }
        self.count(&inner);
        let start = !inner.replaying;
        inner.replaying = true;
        (seq, start)
    }

    /// The oldest purge still waiting; `None` ends the replay (under the same lock, so a purge
    /// taken in afterwards starts a new one).
    pub(super) fn front(&self) -> Option<(u64, Work)> {
        let mut inner = self.lock();
        let front = inner.queue.front().cloned();
        if front.is_none() {
            inner.replaying = false;
        }
        front
    }

    /// Marks everything through `seq` applied.
    pub(super) fn applied(&self, seq: u64) {
        let mut inner = self.lock();
        while inner.queue.front().is_some_and(|(s, _)| *s <= seq) {
            inner.queue.pop_front();
        }
        self.count(&inner);
        drop(inner);
        self.done.send_if_modified(|done| {
            let moved = *done < seq;
            *done = (*done).max(seq);
            moved
        });
    }

    /// Resolves once every purge through `seq` is applied.
    pub(super) async fn reached(&self, seq: u64) {
        let mut done = self.done.subscribe();
        let _ = done.wait_for(|d| *d >= seq).await;
    }

    /// Resolves once no purge waits.
    pub(super) async fn drained(&self) {
        let last = self.lock().last;
        self.reached(last).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_journal_becomes_one_purge_of_everything() {
        let j = Journal::default();
        let (first, start) = j.push(Work::Data(Purge::Key("a".into())));
        assert_eq!((first, start), (1, true));
        for i in 1..MAX_UNAPPLIED {
            let (seq, start) = j.push(Work::Data(Purge::Key(format!("k{i}"))));
            assert_eq!((seq, start), (i as u64 + 1, false));
        }
        assert_eq!(j.len(), MAX_UNAPPLIED);
        let (seq, _) = j.push(Work::Http(Purge::Tag("t".into())));
        assert_eq!(seq, MAX_UNAPPLIED as u64 + 1);
        assert_eq!(j.len(), 1);
        assert_eq!(j.front(), Some((seq, Work::All)));
    }

    #[test]
    fn applied_pops_in_order_and_ends_the_replay_when_empty() {
        let j = Journal::default();
        j.push(Work::Http(Purge::Tag("a".into())));
        j.push(Work::Http(Purge::Tag("b".into())));
        j.applied(1);
        assert_eq!(j.front(), Some((2, Work::Http(Purge::Tag("b".into())))));
        assert_eq!(*j.done.borrow(), 1);
        j.applied(2);
        assert!(j.is_empty());
        assert_eq!(j.front(), None);
        // The replay ended: the next purge taken in starts another.
        assert_eq!(j.push(Work::All), (3, true));
    }

    #[tokio::test]
    async fn reached_waits_for_its_own_purge_not_a_later_one() {
        let j = std::sync::Arc::new(Journal::default());
        j.push(Work::All);
        j.push(Work::All);
        let waiter = tokio::spawn({
            let j = j.clone();
            async move { j.reached(2).await }
        });
        j.applied(1);
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        j.applied(2);
        waiter.await.unwrap();
        // Already reached: resolves at once.
        j.reached(1).await;
    }
}
