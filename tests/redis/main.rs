//! Tests against real `redis-server` processes, each on its own free loopback port.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cache;
mod cluster;
mod http_cache;
mod purge_replay;
mod rate_limit;
mod revocation;
mod stack;
#[path = "../support/mod.rs"]
mod support;
mod write_through;
