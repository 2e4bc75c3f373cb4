//! Single-flight: concurrent callers that need the same work done make one of them do it.
//!
//! [`Flights::join`] makes the first caller for a key the [`Leader`] and every later one, until the
//! leader is dropped, a [`Waiter`]. Dropping the leader — done, failed or cancelled — wakes every
//! waiter; a waiter then reads what the leader left (in a cache, say) and, when it left nothing,
//! joins again, so a failed leader hands the work to the next caller. Nothing is passed from the
//! leader to the waiters: what the work produced lives where the callers look for it anyway.
//!
//! Used by the HTTP cache (concurrent misses for one key, one background revalidation per key),
//! the data cache (concurrent misses for one key) and the JWKS (one fetch at a time).
//!
//! Hand-written on tokio's `watch` channel because the well-kept crates that do this either own
//! the value (`async_singleflight`, quick_cache's placeholders) or pull in a runtime of their own;
//! here callers keep their own storage. Cost: one mutex-guarded `HashMap` entry and one channel per
//! flight; a waiter costs a receiver clone.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;

/// The flights under way, by key; cheap to clone (shared).
pub(crate) struct Flights<K> {
    map: Arc<Mutex<HashMap<K, watch::Receiver<()>>>>,
}

impl<K> Clone for Flights<K> {
    fn clone(&self) -> Self {
        Self {
            map: self.map.clone(),
        }
    }
}

impl<K> Default for Flights<K> {
    fn default() -> Self {
        Self {
            map: Arc::default(),
        }
    }
}

impl<K> fmt::Debug for Flights<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Flights").finish_non_exhaustive()
    }
}

/// What [`Flights::join`] made of a caller.
pub(crate) enum Join<K: Hash + Eq> {
    /// The caller does the work; dropping this wakes the waiters.
    Lead(Leader<K>),
    /// Another caller does it: await [`Waiter::done`].
    Wait(Waiter),
}

/// The one caller doing the work for a key; dropping it ends the flight and wakes the waiters.
pub(crate) struct Leader<K: Hash + Eq> {
    flights: Flights<K>,
    key: K,
    _done: watch::Sender<()>,
}

impl<K: Hash + Eq> Drop for Leader<K> {
    fn drop(&mut self) {
        lock(&self.flights).remove(&self.key);
        // `_done` drops after this: a waiter woken by it finds the flight gone and may lead.
    }
}

/// A caller waiting for a leader.
pub(crate) struct Waiter(watch::Receiver<()>);

impl Waiter {
    /// Resolves when the leader is dropped (done, failed or cancelled).
    pub(crate) async fn done(mut self) {
        // Nothing is ever sent: `changed` returns (an error) when the sender is dropped.
        let _ = self.0.changed().await;
    }
}

fn lock<K>(flights: &Flights<K>) -> std::sync::MutexGuard<'_, HashMap<K, watch::Receiver<()>>> {
    flights.map.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<K: Hash + Eq> Flights<K> {
    /// Leads the flight for `key`, or waits for the one under way.
    pub(crate) fn join<Q>(&self, key: &Q) -> Join<K>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let mut map = lock(self);
        if let Some(rx) = map.get(key) {
            return Join::Wait(Waiter(rx.clone()));
        }
        let (tx, rx) = watch::channel(());
        map.insert(key.to_owned(), rx);
        Join::Lead(Leader {
            flights: self.clone(),
            key: key.to_owned(),
            _done: tx,
        })
    }

    /// Leads the flight for `key` when none is under way; `None` otherwise (for work that one
    /// caller does and the others skip, such as a background refresh).
    pub(crate) fn try_lead<Q>(&self, key: &Q) -> Option<Leader<K>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        match self.join(key) {
            Join::Lead(leader) => Some(leader),
            Join::Wait(_) => None,
        }
    }

    /// Leads the flight for `key` once every flight under way for it has ended (for work that
    /// must not overlap with itself, and must start after any under way).
    #[cfg_attr(not(feature = "auth"), allow(dead_code))]
    pub(crate) async fn lead<Q>(&self, key: &Q) -> Leader<K>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        loop {
            match self.join(key) {
                Join::Lead(leader) => return leader,
                Join::Wait(waiter) => waiter.done().await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_leads_the_others_wait_until_it_is_dropped() {
        let flights = Flights::<String>::default();
        let key = "k";
        let Join::Lead(leader) = flights.join(key) else {
            panic!("the first caller leads");
        };
        let Join::Wait(waiter) = flights.join(key) else {
            panic!("the second caller waits");
        };
        assert!(flights.try_lead(key).is_none(), "a flight is under way");
        assert!(flights.try_lead("other").is_some(), "keys are apart");
        let waited = tokio::spawn(waiter.done());
        tokio::task::yield_now().await;
        assert!(!waited.is_finished(), "the waiter waits for the leader");
        drop(leader);
        waited.await.unwrap();
        assert!(
            matches!(flights.join(key), Join::Lead(_)),
            "the flight ended with its leader"
        );
    }

    #[tokio::test]
    async fn lead_waits_for_the_flight_under_way() {
        let flights = Flights::<()>::default();
        let first = flights.lead(&()).await;
        let second = tokio::spawn({
            let flights = flights.clone();
            async move {
                let _leader = flights.lead(&()).await;
            }
        });
        tokio::task::yield_now().await;
        assert!(!second.is_finished(), "flights never overlap");
        drop(first);
        second.await.unwrap();
        assert!(flights.try_lead(&()).is_some());
    }
}
