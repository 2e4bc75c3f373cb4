//! `batch`: our `Loader` beside the `dataloader` crate's cached `Loader` (0.18, tokio) on one
//! batch function — each key doubled in place, so what is measured is the loaders' own work — on
//! a current-thread tokio runtime. Each iteration is one request: a new loader, then N concurrent
//! loads of distinct keys joined (one batch call). Throughput is per load, so criterion's time per
//! element is the cost of one load, batch call included.
//!
//! * `batch/load/direct/N`: the batch function called once with the N keys (the floor).
//! * `batch/load/ours/N`: our loader, its defaults (window of one task yield).
//! * `batch/load/dataloader/N`: `dataloader::cached::Loader`, its defaults (ten yields).
//! * `batch/hit/...`: one load of a key the loader already holds (the per-request cache);
//!   `batch/hit/block_on` is the runtime's own cost of running a ready future, in every figure.
//!
//! async-graphql's `DataLoader` is compared in `peers/batch` (a crate outside the workspace, so
//! its parser, derive, value, pest, multer, ... crates — minutes to compile — are never built by
//! `./scripts/test`): `cargo bench --manifest-path peers/batch/Cargo.toml`.

use std::collections::HashMap;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, Throughput, criterion_group};
use futures_util::future::join_all;
use protothrive::batch::{BatchFn, LoaderFactory};

/// Doubles its keys.
#[derive(Clone, Copy)]
pub(crate) struct Double;

pub(crate) fn double(keys: &[u64]) -> HashMap<u64, u64> {
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

impl dataloader::BatchFn<u64, u64> for Double {
    async fn load(&mut self, keys: &[u64]) -> HashMap<u64, u64> {
        double(keys)
    }
}

type Theirs = dataloader::cached::Loader<u64, u64, Double>;

fn load(c: &mut Criterion) {
    loads(c, "batch/load", |_, _, _| {});
    hits(c);
}

/// The group `name`: for N = 1, 10 and 100 concurrent loads, `direct`, `ours`, `dataloader`,
/// and whatever `more` adds for each N (another crate's loader, on the same runtime).
pub(crate) fn loads(
    c: &mut Criterion,
    name: &str,
    mut more: impl FnMut(&mut BenchmarkGroup<'_, WallTime>, &tokio::runtime::Runtime, u64),
) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let ours = LoaderFactory::new(Double);
    // Both answer every key with its double.
    let check: Vec<u64> = (0..10).map(|k| k * 2).collect();
    let got = rt.block_on(async {
        let l = ours.loader();
        join_all((0..10).map(|k| l.load(k))).await
    });
    assert_eq!(got, check.iter().map(|&v| Ok(Some(v))).collect::<Vec<_>>());
    let got = rt.block_on(async {
        let l = Theirs::new(Double);
        join_all((0..10).map(|k| l.load(k))).await
    });
    assert_eq!(got, check);

    let mut g = c.benchmark_group(name);
    for n in [1u64, 10, 100] {
        g.throughput(Throughput::Elements(n));
        let keys: Vec<u64> = (0..n).collect();
        g.bench_with_input(BenchmarkId::new("direct", n), &keys, |b, keys| {
            b.iter(|| double(keys).len());
        });
        g.bench_with_input(BenchmarkId::new("ours", n), &n, |b, &n| {
            b.iter(|| {
                rt.block_on(async {
                    let l = ours.loader();
                    join_all((0..n).map(|k| l.load(k))).await.len()
                })
            });
        });
        g.bench_with_input(BenchmarkId::new("dataloader", n), &n, |b, &n| {
            b.iter(|| {
                rt.block_on(async {
                    let l = Theirs::new(Double);
                    join_all((0..n).map(|k| l.load(k))).await.len()
                })
            });
        });
        more(&mut g, &rt, n);
    }
    g.finish();
}

fn hits(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let ours = LoaderFactory::new(Double);
    let mut g = c.benchmark_group("batch/hit");
    let our_loader = ours.loader();
    let their_loader = Theirs::new(Double);
    rt.block_on(async {
        assert_eq!(our_loader.load(7).await, Ok(Some(14)));
        assert_eq!(their_loader.load(7).await, 14);
    });
    g.bench_function("block_on", |b| {
        b.iter(|| rt.block_on(std::future::ready(7)));
    });
    g.bench_function("ours", |b| b.iter(|| rt.block_on(our_loader.load(7))));
    g.bench_function("dataloader", |b| {
        b.iter(|| rt.block_on(their_loader.load(7)));
    });
    g.finish();
}

criterion_group!(benches, load);
