//! Integration tests of `protothrive::auth`: a table of good and bad tokens, key loading, JWKS
//! rotation against a key server on loopback, the layers over real HTTP, API keys, revocation, the
//! verified-token cache, the token issuer, and property tests.
//!
//! Run with: `cargo test --all-features --test auth`
// Tests fail by panicking: `unwrap` on a test's own setup is the clearest way to say so.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod apikeys;
mod discovery;
mod http;
mod issue;
mod jwks;
mod key_config;
mod key_server;
mod keys;
mod layer;
mod props;
mod revocation;
mod rows_claims;
mod rows_header;
mod stack;
#[allow(dead_code, unreachable_pub)]
#[path = "../support/stack.rs"]
mod stack_support;
mod table;
