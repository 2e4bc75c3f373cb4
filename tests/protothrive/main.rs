//! End-to-end tests of the ProtoThrive API: the example runs as a real process on loopback with its
//! own SQLite file; every request goes over HTTP.
// Tests fail by panicking: `expect` on a test's own setup is the clearest way to say so.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api;
mod auth_flows;
mod batch;
mod cache;
mod conventions;
mod cors;
mod hostile;
// lifecycle.rs nests an `if` in an `if let` that clippy would chain; not this change's to restyle.
#[allow(clippy::collapsible_if)]
mod lifecycle;
mod queries;
mod rate_limits;
mod redis;
// The redis test crate's server helper; this crate uses only part of it.
#[allow(dead_code)]
#[path = "../redis/server.rs"]
mod redis_server;
mod roadmaps;
mod roles;
mod sessions;
mod status;
// Shared by this crate's test modules; `pub` marks what they share.
#[allow(unreachable_pub)]
mod support;
mod versions;
mod write_through;
