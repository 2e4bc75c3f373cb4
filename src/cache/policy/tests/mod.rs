//! RFC 9111 rules, one table per rule, and the properties of the pure core.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, Request, Response, StatusCode, request, response};
use proptest::prelude::*;

use super::*;

fn req(headers: &[(&str, &str)]) -> request::Parts {
    let mut b = Request::get("/x");
    for (n, v) in headers {
        b = b.header(*n, *v);
    }
    b.body(()).unwrap().into_parts().0
}

fn res(status: u16, headers: &[(&str, &str)]) -> response::Parts {
    let mut b = Response::builder().status(status);
    for (n, v) in headers {
        b = b.header(*n, *v);
    }
    b.body(()).unwrap().into_parts().0
}

fn headers(list: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (n, v) in list {
        h.append(
            http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    h
}

const T0: u64 = 1_700_000_000;
fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

pub(super) mod control;
mod freshness;
mod properties;
mod reuse;
mod storable;
mod vary_and_purge;
