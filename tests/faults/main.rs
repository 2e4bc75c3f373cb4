//! The resilience layers under real faults: a TCP fault proxy (`tests/support/fault.rs`)
//! between an outbound client stack and a real HTTP server, and between the Redis stores and a
//! real `redis-server`. For each fault, under steady load: no 500s, every non-2xx answer is a
//! documented problem, the breaker opens within its window, the backend sees no more than the
//! offered load plus the retry budget, no POST is retried, and one probe closes the breaker once
//! the fault clears.
//!
//! `api` does the same to the ProtoThrive API as a whole, a real process under steady load.
//!
//! The breaker and the budget run on a manual clock (the open wait is skipped by advancing it);
//! the per-attempt timeouts are real tokio timers, as the faults are real sockets.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../support/mod.rs"]
mod support;

// Shared by the API fault tests' modules; `pub` marks what they share.
#[allow(unreachable_pub)]
mod api;
mod outbound;
mod redis_store;
