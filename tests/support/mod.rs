//! Helpers shared by test crates: include with `#[path = "../support/mod.rs"] mod support;`.

#![allow(dead_code, unreachable_pub)]

pub mod fault;
