//! Benchmarks: one module per area, each with its own `criterion_group!` named `benches`.
//!
//! Run with `cargo bench --bench main --features full -- <area>`. To add an area, add its module
//! here and its group to `criterion_main!`.

mod client_ip;

criterion::criterion_main!(client_ip::benches);
