//! The trace propagation example driven as the W3C Trace Context test harness drives a service
//! (strict level): the example on a loopback port, a recording "harness" server it calls back,
//! and for each hostile `traceparent`/`tracestate` what the example sent on — trace id kept or
//! restarted, a new parent id per callback, `tracestate` kept or dropped.
//!
//! `cargo test --test trace -- --nocapture` prints the table of hostile inputs and what was sent.

#![allow(clippy::unwrap_used, clippy::expect_used)]

// The example compiled in: its unit tests run here (the example target is not tested).
#[allow(dead_code)]
#[path = "../../examples/trace_propagation.rs"]
mod example;
#[path = "../support/mod.rs"]
mod support;

mod hostile;

use std::collections::HashSet;

use serde_json::{Value, json};
use support::{Received, Recorder};

/// The trace id and parent id the valid inputs carry.
const TRACE: &str = "12345678901234567890123456789012";
const PARENT: &str = "1234567890123456";
const VALID: &str = "00-12345678901234567890123456789012-1234567890123456-01";

/// The example and a harness to call back.
struct Harness {
    service: String,
    recorder: Recorder,
    client: reqwest::Client,
}

/// What the service answered and the callbacks it made.
struct Outcome {
    status: u16,
    response_traceparent: Option<String>,
    callbacks: Vec<Received>,
}

impl Harness {
    async fn start() -> Self {
        let service = support::serve(example::app()).await;
        Self {
            service: format!("http://{service}/test"),
            recorder: Recorder::start().await,
            client: reqwest::Client::new(),
        }
    }

    /// Sends `headers` (raw bytes, repeated names kept as separate fields) and asks for
    /// `count` callbacks with `arguments` as each one's body.
    async fn run(&self, headers: &[(&str, Vec<u8>)], count: usize, arguments: Value) -> Outcome {
        let callbacks: Vec<Value> = (0..count)
            .map(|i| json!({"url": self.recorder.url(&i.to_string()), "arguments": arguments}))
            .collect();
        let mut req = self.client.post(&self.service).json(&callbacks);
        let mut map = reqwest::header::HeaderMap::new();
        for (name, value) in headers {
            map.append(
                reqwest::header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                reqwest::header::HeaderValue::from_bytes(value).unwrap(),
            );
        }
        req = req.headers(map);
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let response_traceparent = res
            .headers()
            .get("traceparent")
            .map(|v| v.to_str().unwrap().to_owned());
        res.bytes().await.unwrap();
        Outcome {
            status,
            response_traceparent,
            callbacks: self.recorder.take(),
        }
    }
}

/// A `traceparent` as the harness reads it: exactly one field, version 00, lowercase hex.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Sent {
    trace_id: String,
    parent_id: String,
    flags: String,
}

fn traceparent(cb: &Received) -> Sent {
    let all = cb.all("traceparent");
    assert_eq!(all.len(), 1, "one traceparent expected: {all:?}");
    let v = &all[0];
    let parts: Vec<&str> = v.split('-').collect();
    let lower_hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    assert!(
        parts.len() == 4
            && parts[0] == "00"
            && lower_hex(parts[1], 32)
            && lower_hex(parts[2], 16)
            && lower_hex(parts[3], 2),
        "not a version 00 traceparent: {v:?}"
    );
    assert_ne!(parts[1], "0".repeat(32));
    assert_ne!(parts[2], "0".repeat(16));
    Sent {
        trace_id: parts[1].to_owned(),
        parent_id: parts[2].to_owned(),
        flags: parts[3].to_owned(),
    }
}

/// The `tracestate` sent on: `None` when absent, else the fields joined.
fn tracestate(cb: &Received) -> Option<String> {
    let all = cb.all("tracestate");
    (!all.is_empty()).then(|| all.join(","))
}

fn ids(outcome: &Outcome) -> (HashSet<String>, HashSet<String>) {
    let sent: Vec<Sent> = outcome.callbacks.iter().map(traceparent).collect();
    (
        sent.iter().map(|s| s.trace_id.clone()).collect(),
        sent.iter().map(|s| s.parent_id.clone()).collect(),
    )
}

#[tokio::test]
async fn three_callbacks_share_the_callers_trace_with_three_new_parent_ids() {
    let h = Harness::start().await;
    let out = h.run(&[("traceparent", VALID.into())], 3, json!([])).await;
    assert_eq!(out.status, 200);
    assert_eq!(
        out.callbacks
            .iter()
            .map(|c| c.path.as_str())
            .collect::<Vec<_>>(),
        ["/0", "/1", "/2"],
        "callbacks in order"
    );
    let (traces, parents) = ids(&out);
    assert_eq!(traces, HashSet::from([TRACE.to_owned()]));
    assert_eq!(parents.len(), 3, "{parents:?}");
    assert!(!parents.contains(PARENT));
    // Each callback is a child of the server span the response names, not the server span.
    let answered = out.response_traceparent.unwrap();
    assert!(answered.starts_with(&format!("00-{TRACE}-")), "{answered}");
    let server_span = &answered[36..52];
    assert_ne!(server_span, PARENT);
    assert!(!parents.contains(server_span));
}

#[tokio::test]
async fn three_callbacks_without_a_caller_share_one_new_trace() {
    let h = Harness::start().await;
    let out = h.run(&[], 3, json!([])).await;
    let (traces, parents) = ids(&out);
    assert_eq!(traces.len(), 1, "{traces:?}");
    assert_eq!(parents.len(), 3, "{parents:?}");
    // A trace this service starts is sampled and its id random (Level 2 flags 03).
    assert!(out.callbacks.iter().all(|c| traceparent(c).flags == "03"));
}

#[tokio::test]
async fn three_callbacks_after_an_all_zero_trace_id_share_one_new_trace() {
    let h = Harness::start().await;
    let zero = "00-00000000000000000000000000000000-1234567890123456-01";
    let out = h.run(&[("traceparent", zero.into())], 3, json!([])).await;
    let (traces, parents) = ids(&out);
    assert_eq!(traces.len(), 1);
    assert!(!traces.contains(&"0".repeat(32)) && !traces.contains(TRACE));
    assert_eq!(parents.len(), 3);
}

#[tokio::test]
async fn arguments_are_each_callbacks_json_body() {
    let h = Harness::start().await;
    let args = json!([{"url": "http://127.0.0.1:1/x", "arguments": []}, 7, "x"]);
    let out = h.run(&[], 2, args.clone()).await;
    assert_eq!(out.status, 200);
    for cb in &out.callbacks {
        assert_eq!(cb.headers["content-type"], "application/json");
        assert_eq!(serde_json::from_slice::<Value>(&cb.body).unwrap(), args);
    }
}

#[tokio::test]
async fn a_callback_that_cannot_be_made_is_a_502_problem_after_the_ones_before() {
    let h = Harness::start().await;
    let body = json!([
        {"url": h.recorder.url("0"), "arguments": []},
        {"url": "not a url", "arguments": []},
        {"url": h.recorder.url("2"), "arguments": []},
    ]);
    let res = h.client.post(&h.service).json(&body).send().await.unwrap();
    assert_eq!(res.status(), 502);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let problem: Value = res.json().await.unwrap();
    assert_eq!(problem["code"], "CALLBACK-502");
    let paths: Vec<String> = h.recorder.take().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, ["/0"]);
}
