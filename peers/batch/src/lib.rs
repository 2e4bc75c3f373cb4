//! Benchmarks only: see `benches/batch.rs`.
