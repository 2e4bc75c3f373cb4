use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use futures_util::FutureExt as _;
use proptest::prelude::*;

use super::{BatchFn, BatchTask, LoaderFactory};

/// Doubles its keys, has no value for multiples of 3, fails any batch holding a key ≥ 1000, and
/// records every batch it saw.
#[derive(Default)]
pub(super) struct Doubler {
    batches: Mutex<Vec<Vec<u32>>>,
}

fn direct(k: u32) -> Option<u64> {
    (!k.is_multiple_of(3)).then_some(u64::from(k) * 2)
}

impl BatchFn for Doubler {
    type Key = u32;
    type Value = u64;
    type Error = String;
    async fn load(&self, keys: &[u32]) -> Result<HashMap<u32, u64>, String> {
        self.batches.lock().unwrap().push(keys.to_vec());
        tokio::task::yield_now().await;
        if let Some(bad) = keys.iter().find(|&&k| k >= 1000) {
            return Err(format!("key {bad} broke the batch"));
        }
        Ok(keys
            .iter()
            .filter_map(|&k| direct(k).map(|v| (k, v)))
            .collect())
    }
}

pub(super) fn batches(f: &LoaderFactory<Doubler>) -> Vec<Vec<u32>> {
    f.batch_fn().batches.lock().unwrap().clone()
}

#[tokio::test]
async fn loads_started_together_are_one_deduplicated_batch() {
    let factory = LoaderFactory::new(Doubler::default());
    let loader = factory.loader();
    let got = loader.load_many([1, 2, 3, 1, 2]).await;
    assert_eq!(
        got,
        vec![Ok(Some(2)), Ok(Some(4)), Ok(None), Ok(Some(2)), Ok(Some(4))]
    );
    assert_eq!(batches(&factory), vec![vec![1, 2, 3]]);
    // The per-request cache answers again, found or not, without a call.
    assert_eq!(loader.load(3).await, Ok(None));
    assert_eq!(loader.load(2).await, Ok(Some(4)));
    assert_eq!(batches(&factory).len(), 1);
    // A new loader (a new request) starts empty.
    assert_eq!(factory.loader().load(2).await, Ok(Some(4)));
    assert_eq!(batches(&factory).len(), 2);
}

#[tokio::test]
async fn a_full_batch_is_sent_at_once_and_the_rest_follows() {
    let factory = LoaderFactory::new(Doubler::default()).max_batch_size(2);
    let got = factory.loader().load_many([1, 2, 4, 5, 7]).await;
    assert_eq!(got, [1, 2, 4, 5, 7].map(|k| Ok(direct(k))).to_vec());
    assert_eq!(batches(&factory), vec![vec![1, 2], vec![4, 5], vec![7]]);
}

#[tokio::test]
async fn a_failed_batch_fails_its_callers_and_not_later_ones() {
    let factory = LoaderFactory::new(Doubler::default());
    let loader = factory.loader();
    let got = loader.load_many([1, 1000]).await;
    let err = Err("key 1000 broke the batch".to_owned());
    assert_eq!(got, vec![err.clone(), err]);
    // Nothing of the failed batch was cached: key 1 is asked again, alone, and found.
    assert_eq!(loader.load(1).await, Ok(Some(2)));
    assert_eq!(batches(&factory), vec![vec![1, 1000], vec![1]]);
}

#[tokio::test]
async fn without_the_cache_a_key_is_asked_again_and_forget_and_prime_work() {
    let factory = LoaderFactory::new(Doubler::default()).cache(false);
    let loader = factory.loader();
    assert_eq!(loader.load(1).await, Ok(Some(2)));
    assert_eq!(loader.load(1).await, Ok(Some(2)));
    assert_eq!(batches(&factory).len(), 2);

    let factory = LoaderFactory::new(Doubler::default());
    let loader = factory.loader();
    loader.prime(5, Some(99));
    assert_eq!(loader.load(5).await, Ok(Some(99)));
    loader.forget(&5);
    assert_eq!(loader.load(5).await, Ok(Some(10)));
    assert_eq!(batches(&factory), vec![vec![5]]);
}

#[tokio::test(start_paused = true)]
async fn a_max_wait_gathers_loads_that_arrive_later() {
    let factory = LoaderFactory::new(Doubler::default()).max_wait(Duration::from_millis(5));
    let loader = factory.loader();
    let late = loader.clone();
    let (a, b) = tokio::join!(loader.load(1), async {
        tokio::time::sleep(Duration::from_millis(2)).await;
        late.load(2).await
    });
    assert_eq!((a, b), (Ok(Some(2)), Ok(Some(4))));
    assert_eq!(batches(&factory), vec![vec![1, 2]]);
}

#[tokio::test]
async fn loads_from_spawned_tasks_share_the_in_flight_batch() {
    let factory = LoaderFactory::new(Doubler::default()).yields(3);
    let loader = factory.loader();
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let l = loader.clone();
            tokio::spawn(async move { l.load(i % 4).await })
        })
        .collect();
    for (i, t) in tasks.into_iter().enumerate() {
        assert_eq!(t.await.unwrap(), Ok(direct(i as u32 % 4)));
    }
    let seen: Vec<u32> = batches(&factory).concat();
    let distinct: HashSet<u32> = seen.iter().copied().collect();
    assert_eq!(seen.len(), distinct.len(), "each key asked once: {seen:?}");
}

/// A page's keys loaded with `load_many` are one batch even with no window at all and another
/// worker free to run the batch task the moment it is spawned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_many_queues_its_keys_at_once_whatever_the_scheduler() {
    for round in 0..50u32 {
        let factory = LoaderFactory::new(Doubler::default()).yields(0);
        let keys: Vec<u32> = (0..200).map(|k| k + round).collect();
        let got = factory.loader().load_many(keys.iter().copied()).await;
        assert_eq!(got, keys.iter().map(|&k| Ok(direct(k))).collect::<Vec<_>>());
        assert_eq!(batches(&factory), vec![keys], "round {round}");
    }
}

tokio::task_local! {
    static REQUEST: u32;
}

/// Reports the `REQUEST` task-local its batch runs in.
struct WhichRequest;

impl BatchFn for WhichRequest {
    type Key = u8;
    type Value = u32;
    type Error = ();
    async fn load(&self, keys: &[u8]) -> Result<HashMap<u8, u32>, ()> {
        let request = REQUEST.try_with(|r| *r).unwrap_or(0);
        Ok(keys.iter().map(|&k| (k, request)).collect())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_runs_in_the_task_of_the_load_that_opened_it() {
    let plain = LoaderFactory::new(WhichRequest);
    let (seven, eight) = (plain.loader(), plain.loader());
    let (a, b) = tokio::join!(
        REQUEST.scope(7, seven.load(1)),
        REQUEST.scope(8, eight.load_many([1, 2])),
    );
    assert_eq!(a, Ok(Some(7)));
    assert_eq!(b, vec![Ok(Some(8)), Ok(Some(8))]);
    // A full batch (sent at once, without a window) runs in the load that filled it.
    let full = plain.clone().max_batch_size(1).loader();
    assert_eq!(REQUEST.scope(9, full.load(3)).await, Ok(Some(9)));
}

/// A loader whose opening load is dropped once its window is open; `load(2)` joined that window.
async fn hand_off(factory: &LoaderFactory<WhichRequest>) -> Result<Option<u32>, ()> {
    let loader = factory.loader();
    let mut opener = Box::pin(REQUEST.scope(7, loader.load(1)));
    assert_eq!((&mut opener).now_or_never(), None, "the window is open");
    let other = loader.load(2);
    drop(opener);
    tokio::time::timeout(Duration::from_secs(10), other)
        .await
        .expect("the batch was handed on, not dropped")
}

#[tokio::test]
async fn a_dropped_opening_load_hands_its_batch_on_in_the_carried_context() {
    let plain = LoaderFactory::new(WhichRequest);
    assert_eq!(
        hand_off(&plain).await,
        Ok(Some(0)),
        "a spawned task inherits no task-local"
    );
    let carried = plain.carry(|| {
        let request = REQUEST.try_with(|r| *r).ok();
        Box::new(move |task: BatchTask| -> BatchTask {
            match request {
                Some(r) => Box::pin(REQUEST.scope(r, task)),
                None => task,
            }
        })
    });
    assert_eq!(hand_off(&carried).await, Ok(Some(7)));
}

/// A full batch that takes the keys of an open window answers the window's opening load too
/// (found, failed, with and without the cache).
#[tokio::test]
async fn a_window_taken_by_a_full_batch_answers_the_load_that_opened_it() {
    for cache in [true, false] {
        let factory = LoaderFactory::new(Doubler::default())
            .max_batch_size(2)
            .cache(cache);
        let loader = factory.loader();
        let got = tokio::join!(loader.load(1), loader.load(2), loader.load(4));
        assert_eq!(got, (Ok(Some(2)), Ok(Some(4)), Ok(Some(8))));
        let err = Err("key 1000 broke the batch".to_owned());
        let failed = tokio::join!(loader.load(5), loader.load(1000));
        assert_eq!(failed, (err.clone(), err));
        assert_eq!(batches(&factory), vec![vec![1, 2], vec![4], vec![5, 1000]]);
    }
}

proptest! {
    /// Any interleaving of loads (tasks of keys with yields between them, any batch size and
    /// window) gives every caller what a direct lookup gives, and no batch holds a key twice.
    #[test]
    fn any_interleaving_matches_direct_lookup(
        tasks in prop::collection::vec(prop::collection::vec((0u32..20, 0u8..3), 1..6), 1..8),
        max in 1usize..6,
        yields in 0u32..3,
        cache in any::<bool>(),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let factory = LoaderFactory::new(Doubler::default())
            .max_batch_size(max)
            .yields(yields)
            .cache(cache);
        let loader = factory.loader();
        let results = rt.block_on(async {
            let handles: Vec<_> = tasks
                .iter()
                .cloned()
                .map(|steps| {
                    let l = loader.clone();
                    tokio::spawn(async move {
                        let mut out = Vec::new();
                        for (k, pause) in steps {
                            for _ in 0..pause {
                                tokio::task::yield_now().await;
                            }
                            out.push((k, l.load(k).await));
                        }
                        out
                    })
                })
                .collect();
            let mut all = Vec::new();
            for h in handles {
                all.extend(h.await.unwrap());
            }
            all
        });
        for (k, got) in results {
            prop_assert_eq!(got, Ok(direct(k)));
        }
        for batch in batches(&factory) {
            let distinct: HashSet<u32> = batch.iter().copied().collect();
            prop_assert_eq!(distinct.len(), batch.len(), "duplicate key in {:?}", batch);
            prop_assert!(batch.len() <= max);
        }
    }
}
