//! End-to-end tests of the ProtoThrive API: the example's app runs in this process
//! (`tests/support/example.rs`), served on a loopback port with its own SQLite file — or, with
//! `PROTOTHRIVE_TEST_DATABASE=postgres`, its own database on a throw-away PostgreSQL server
//! (`tests/support/postgres.rs`) — and every request goes over HTTP. Tests where the process is the point (shutdown, `kill -9`, two
//! instances on one Redis) run the example's binary (`tests/support/process.rs`).
// Tests fail by panicking: `expect` on a test's own setup is the clearest way to say so.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api;
mod auth_flows;
mod batch;
mod caching;
mod conventions;
mod cors;
mod hostile;
// lifecycle.rs nests an `if` in an `if let` that clippy would chain; not this change's to restyle.
#[allow(clippy::collapsible_if)]
mod lifecycle;
mod openapi;
mod queries;
mod rate_limits;
mod redis;
mod roadmaps;
mod roles;
mod sessions;
mod status;
#[path = "../support/mod.rs"]
mod support;
// The example compiled in; its modules name each other `crate::…`, so they are named here. Its
// unit tests run here, once: the example target is not tested (`test = true` is off).
#[path = "../support/example.rs"]
mod example;
#[allow(unused_imports)]
use example::api::{
    agent, app, cache, config, db, http, loaders, passwords, revocations, routes, state,
};
mod versions;
mod write_through;
