//! End-to-end tests of the ProtoThrive API: the example runs as a real process on loopback with its
//! own SQLite file; every request goes over HTTP.

mod lifecycle;
mod support;
