//! Benchmarks: one module per area, each with its own `criterion_group!` named `benches`.
//!
//! Run with `cargo bench --bench main --features full -- <area>`. To add an area, add its module
//! here and its group to `criterion_main!`.

// A bench whose setup fails should stop loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod auth;
mod batch;
mod cache;
mod client_ip;
mod cors;
mod rate_limit;
mod redis;
mod resilience;
mod stack;
mod trace;
mod upstreams;

/// Reads a response body to the end; its length (so the work cannot be optimised away).
pub(crate) async fn drain<B: http_body::Body>(res: http::Response<B>) -> usize
where
    B::Error: std::fmt::Debug,
{
    use http_body_util::BodyExt as _;
    res.into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
        .len()
}

criterion::criterion_main!(
    auth::benches,
    batch::benches,
    cache::benches,
    client_ip::benches,
    cors::benches,
    rate_limit::benches,
    redis::benches,
    resilience::benches,
    stack::benches,
    trace::benches,
    upstreams::benches
);
