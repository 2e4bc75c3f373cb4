//! Purges the Redis tier could not apply or publish: kept in order, replayed until Redis takes
//! them, and waited for by the write that made them ([`RedisTier`] says what this guarantees).
//!
//! Written by hand: this is the tier's own bookkeeping (a bounded queue, a replay task and a
//! `watch` of how far it got), not a general mechanism a crate offers.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::watch;

use super::tier::{RedisTier, TierError, implicit_tags};
use super::wire::encode_purge;
use crate::cache::store::{CacheEntry, Purge};

/// At most this many unapplied purges are kept one by one; one more and they are replaced by a
/// purge of everything under the tier's prefix (the memory kept stays bounded whatever the
/// outage's length).
pub(super) const MAX_UNAPPLIED: usize = 256;

/// How long the replay waits after a failed attempt before the next.
const RETRY: Duration = Duration::from_millis(100);

/// One purge to apply to Redis and then publish to every instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Work {
    /// A purge of the HTTP cache: keys and URIs drop their implicit tag, tags their set,
    /// prefixes scan ([`RedisTier::apply_http`]).
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
    fn push(&self, work: Work) -> (u64, bool) {
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
    fn front(&self) -> Option<(u64, Work)> {
        let mut inner = self.lock();
        let front = inner.queue.front().cloned();
        if front.is_none() {
            inner.replaying = false;
        }
        front
    }

    /// Marks everything through `seq` applied.
    fn applied(&self, seq: u64) {
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
    async fn reached(&self, seq: u64) {
        let mut done = self.done.subscribe();
        let _ = done.wait_for(|d| *d >= seq).await;
    }

    /// Resolves once no purge waits.
    pub(super) async fn drained(&self) {
        let last = self.lock().last;
        self.reached(last).await;
    }
}

impl RedisTier {
    /// How many purges Redis did not take wait to be replayed (also the gauge
    /// `protothrive_cache_purges_unapplied`). While any does, this instance reads nothing from
    /// the tier.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let tier = protothrive::cache::RedisTier::builder("redis://127.0.0.1:6379").build().unwrap();
    /// assert_eq!(tier.unapplied_purges(), 0);
    /// # }
    /// ```
    #[must_use]
    pub fn unapplied_purges(&self) -> usize {
        self.journal.len()
    }

    /// Resolves once every purge made so far is applied to Redis and published — at once when
    /// none waits. For a graceful shutdown (bounded by a timeout of the caller's), and tests.
    pub async fn settled(&self) {
        self.journal.drained().await;
    }

    /// A purge of the data cache ([`Purge::Key`]: that key; [`Purge::KeyPrefix`]: every key
    /// under it), applied and published, or kept and replayed as the HTTP cache's are.
    pub(in crate::cache) async fn purge_data(&self, what: Purge) {
        self.purge(Work::Data(what)).await;
    }

    /// Publishes an invalidation to every subscribed instance (this one included).
    ///
    /// # Errors
    /// Redis down, slow or answering something else.
    pub async fn publish(&self, purge: &Purge) -> Result<(), TierError> {
        let mut conn = self.conn.clone();
        let message = encode_purge(purge);
        let publish = conn.publish(&self.channel, &message);
        if !self.conn.is_cluster() {
            return self.bounded("publish", self.timeout, publish).await;
        }
        // On a cluster, not held back by the outage breaker: one master down opens it, yet the
        // purge can still reach every instance through the others. Bounded by four timeouts (a
        // second attempt, on every master, may follow a failed first one).
        let error = match tokio::time::timeout(self.timeout * 4, publish).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) => format!("publish: {e}"),
            Err(_) => "publish: no answer in time".to_owned(),
        };
        metrics::counter!("protothrive_cache_l2_errors_total", "op" => "publish").increment(1);
        Err(TierError(error))
    }

    /// Applies `work` to Redis and publishes it to every instance; on failure keeps it for the
    /// replay and waits up to the tier's patience for the replay to get it through.
    pub(super) async fn purge(&self, work: Work) {
        if self.apply(&work).await.is_ok() {
            return;
        }
        self.keep([work]).await;
    }

    /// Keeps `works` (which Redis did not take) for the replay, and waits up to the tier's
    /// patience for them to be applied.
    pub(super) async fn keep(&self, works: impl IntoIterator<Item = Work>) {
        let mut seq = 0;
        for work in works {
            let (s, start) = self.journal.push(work);
            seq = s;
            tracing::debug!(seq, "cache purge kept for replay");
            if start {
                let tier = self.clone();
                tokio::spawn(async move { tier.replay().await });
            }
        }
        if seq > 0 && !self.patience.is_zero() {
            let _ = tokio::time::timeout(self.patience, self.journal.reached(seq)).await;
        }
    }

    /// Applies the kept purges in order until none is left.
    async fn replay(&self) {
        while let Some((seq, work)) = self.journal.front() {
            if self.apply(&work).await.is_ok() {
                self.journal.applied(seq);
            } else {
                tokio::time::sleep(RETRY).await;
            }
        }
    }

    /// Applies `work` to Redis, then publishes it.
    async fn apply(&self, work: &Work) -> Result<(), TierError> {
        match work {
            Work::Http(p) => {
                self.apply_http(p).await?;
                self.publish(p).await
            }
            Work::Data(p) => {
                match p {
                    Purge::Key(k) => self.delete(k).await?,
                    Purge::KeyPrefix(prefix) | Purge::Prefix(prefix) => {
                        self.delete_prefix(prefix).await.map(|_| ())?;
                    }
                    _ => self.delete_prefix("").await.map(|_| ())?,
                }
                self.publish(p).await
            }
            Work::All => {
                self.delete_prefix("").await?;
                self.publish(&Purge::All).await
            }
        }
    }

    /// Applies an HTTP cache purge to Redis: a key or URI purge drops the URI's implicit tag
    /// (the URI's every entry), a tag its set, a prefix scans; tombstones refuse older writes.
    pub(super) async fn apply_http(&self, what: &Purge) -> Result<(), TierError> {
        match what {
            Purge::Key(k) => {
                let [uri, _] = implicit_tags(k);
                self.delete_tag(&uri).await
            }
            Purge::Uri(u) if u.starts_with('/') => self.delete_tag(&format!("path:{u}")).await,
            Purge::Uri(u) => self.delete_tag(&format!("uri:{u}")).await,
            Purge::Tag(t) => self.delete_tag(t).await,
            Purge::KeyPrefix(p) => self.delete_prefix(p).await,
            Purge::All => self.delete_prefix("").await,
            other => {
                // URI prefixes match on the URI inside the key: scan every entry.
                let probe = CacheEntry::Vary(std::sync::Arc::from(Vec::new()));
                self.delete_where("", |k| other.matches(k, &probe)).await
            }
        }
        .map(|_| ())
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
