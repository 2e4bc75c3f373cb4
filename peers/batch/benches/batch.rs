//! `peers/batch`: protothrive's `Loader` beside async-graphql's `DataLoader` and the
//! `dataloader` crate's cached `Loader`, on one batch function — each key doubled in place, so
//! what is measured is the loaders' own work — on a current-thread tokio runtime. Each
//! iteration is one request: a new loader, then N concurrent loads of distinct keys joined (one
//! batch call). Throughput is per load, so criterion's time per element is the cost of one load,
//! batch call included.
//!
//! * `peers/batch/direct/N`: the batch function called once with the N keys (the floor).
//! * `peers/batch/protothrive/N`: its defaults (a window of one task yield, per-request cache).
//! * `peers/batch/async-graphql/N`: `DataLoader::with_cache` (a per-request `HashMapCache`),
//!   its window set to zero instead of its default 1 ms (which would be all the figure shows),
//!   `tokio::spawn` as its spawner.
//! * `peers/batch/dataloader/N`: `dataloader::cached::Loader`, its defaults (ten yields).
//!
//! Outside the workspace (async-graphql's crates take minutes to build):
//! `cargo bench --manifest-path peers/batch/Cargo.toml`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use async_graphql::dataloader::{DataLoader, HashMapCache};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use futures_util::future::join_all;
use protothrive::batch::{BatchFn, LoaderFactory};

/// Doubles its keys.
#[derive(Clone, Copy)]
struct Double;

fn double(keys: &[u64]) -> HashMap<u64, u64> {
    keys.iter().map(|&k| (k, k * 2)).collect()
}

impl BatchFn for Double {
    type Key = u64;
    type Value = u64;
    type Error = ();
    async fn load(&self, keys: &[u64]) -> Result<HashMap<u64, u64>, ()> {
        Ok(double(keys))
    }
}

impl async_graphql::dataloader::Loader<u64> for Double {
    type Value = u64;
    type Error = Infallible;
    async fn load(&self, keys: &[u64]) -> Result<HashMap<u64, u64>, Infallible> {
        Ok(double(keys))
    }
}

impl dataloader::BatchFn<u64, u64> for Double {
    async fn load(&mut self, keys: &[u64]) -> HashMap<u64, u64> {
        double(keys)
    }
}

fn graphql() -> DataLoader<Double, HashMapCache> {
    DataLoader::with_cache(Double, tokio::spawn, HashMapCache::default()).delay(Duration::ZERO)
}

fn load(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let ours = LoaderFactory::new(Double);
    // All three answer every key with its double, in one batch.
    let want: Vec<u64> = (0..10).map(|k| k * 2).collect();
    rt.block_on(async {
        let l = ours.loader();
        let got = join_all((0..10).map(|k| l.load(k))).await;
        assert_eq!(got, want.iter().map(|&v| Ok(Some(v))).collect::<Vec<_>>());
        let l = graphql();
        let got = join_all((0..10).map(|k| l.load_one(k))).await;
        assert_eq!(got, want.iter().map(|&v| Ok(Some(v))).collect::<Vec<_>>());
        let l = dataloader::cached::Loader::new(Double);
        assert_eq!(join_all((0..10).map(|k| l.load(k))).await, want);
    });

    let mut g = c.benchmark_group("peers/batch");
    for n in [1u64, 10, 100] {
        g.throughput(Throughput::Elements(n));
        let keys: Vec<u64> = (0..n).collect();
        g.bench_with_input(BenchmarkId::new("direct", n), &keys, |b, keys| {
            b.iter(|| double(keys).len());
        });
        g.bench_with_input(BenchmarkId::new("protothrive", n), &n, |b, &n| {
            b.iter(|| {
                rt.block_on(async {
                    let l = ours.loader();
                    join_all((0..n).map(|k| l.load(k))).await.len()
                })
            });
        });
        g.bench_with_input(BenchmarkId::new("async-graphql", n), &n, |b, &n| {
            b.iter(|| {
                rt.block_on(async {
                    let l = graphql();
                    join_all((0..n).map(|k| l.load_one(k))).await.len()
                })
            });
        });
        g.bench_with_input(BenchmarkId::new("dataloader", n), &n, |b, &n| {
            b.iter(|| {
                rt.block_on(async {
                    let l = dataloader::cached::Loader::new(Double);
                    join_all((0..n).map(|k| l.load(k))).await.len()
                })
            });
        });
    }
    g.finish();
}

criterion_group!(benches, load);
criterion_main!(benches);
