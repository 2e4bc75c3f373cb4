//! `peers/batch`: protothrive's `Loader` beside async-graphql's `DataLoader` and the
//! `dataloader` crate's cached `Loader` in one group — the library's own `batch/load` group
//! (`benches/batch.rs`: the same batch function, iteration and loaders) with async-graphql added.
//!
//! * `peers/batch/async-graphql/N`: `DataLoader::with_cache` (a per-request `HashMapCache`),
//!   its window set to zero instead of its default 1 ms (which would be all the figure shows),
//!   `tokio::spawn` as its spawner.
//!
//! Outside the workspace (async-graphql's crates take minutes to build):
//! `cargo bench --manifest-path peers/batch/Cargo.toml`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use async_graphql::dataloader::{DataLoader, HashMapCache};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use futures_util::future::join_all;

// The library's batch bench, compiled here: its `Double` and its group.
#[allow(dead_code)]
#[path = "../../../benches/batch.rs"]
mod batch;

use batch::{Double, double};

impl async_graphql::dataloader::Loader<u64> for Double {
    type Value = u64;
    type Error = Infallible;
    async fn load(&self, keys: &[u64]) -> Result<HashMap<u64, u64>, Infallible> {
        Ok(double(keys))
    }
}

fn graphql() -> DataLoader<Double, HashMapCache> {
    DataLoader::with_cache(Double, tokio::spawn, HashMapCache::default()).delay(Duration::ZERO)
}

fn load(c: &mut Criterion) {
    batch::loads(c, "peers/batch", |g, rt, n| {
        let want: Vec<_> = (0..n).map(|k| Ok(Some(k * 2))).collect();
        assert_eq!(
            rt.block_on(async {
                let l = graphql();
                join_all((0..n).map(|k| l.load_one(k))).await
            }),
            want
        );
        g.bench_with_input(BenchmarkId::new("async-graphql", n), &n, |b, &n| {
            b.iter(|| {
                rt.block_on(async {
                    let l = graphql();
                    join_all((0..n).map(|k| l.load_one(k))).await.len()
                })
            });
        });
    });
}

criterion_group!(benches, load);
criterion_main!(benches);
