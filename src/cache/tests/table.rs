//! A table of exchanges against a scripted origin: each row is the origin's answers by call and
//! a few requests, each with the time before it and what its answer must be. The rows are in
//! `rows_*.rs`, one file per area.

use super::*;

/// What the origin does on one call.
#[derive(Clone, Copy)]
pub(super) enum Answer {
    /// A response: status, header fields, body.
    Res(u16, &'static [(&'static str, &'static str)], &'static str),
    /// The connection closed before an answer (the inner service's error).
    Closed,
}

/// One request of a row and what its answer must be.
pub(super) struct Step {
    method: &'static str,
    headers: &'static [(&'static str, &'static str)],
    wait: u64,
    /// `0`: the inner service's error passes through.
    status: u16,
    cache_status: &'static str,
    body: Option<&'static str>,
    has: &'static [(&'static str, &'static str)],
    lacks: &'static [&'static str],
}

/// `method` with `headers` after `wait` seconds: answered `status` with a `Cache-Status` that
/// starts with `cache_status`.
pub(super) fn step(
    method: &'static str,
    headers: &'static [(&'static str, &'static str)],
    wait: u64,
    status: u16,
    cache_status: &'static str,
) -> Step {
    Step {
        method,
        headers,
        wait,
        status,
        cache_status,
        body: None,
        has: &[],
        lacks: &[],
    }
}

impl Step {
    /// The answer's body is `body`.
    pub(super) fn body(mut self, body: &'static str) -> Self {
        self.body = Some(body);
        self
    }

    /// The answer has these fields with these values.
    pub(super) fn has(mut self, fields: &'static [(&'static str, &'static str)]) -> Self {
        self.has = fields;
        self
    }

    /// The answer lacks these fields.
    pub(super) fn lacks(mut self, names: &'static [&'static str]) -> Self {
        self.lacks = names;
        self
    }
}

/// One behaviour: the origin's answers (the last repeats), the requests, the origin calls made.
pub(super) struct Row {
    name: &'static str,
    answers: &'static [Answer],
    steps: Vec<Step>,
    calls: usize,
    targets: Option<&'static [&'static str]>,
    partitioned: bool,
}

pub(super) fn row(
    name: &'static str,
    answers: &'static [Answer],
    calls: usize,
    steps: Vec<Step>,
) -> Row {
    Row {
        name,
        answers,
        steps,
        calls,
        targets: None,
        partitioned: false,
    }
}

impl Row {
    /// The layer's target list (RFC 9213) instead of the default.
    pub(super) fn targets(mut self, targets: &'static [&'static str]) -> Self {
        self.targets = Some(targets);
        self
    }

    /// The layer partitions by the `x-user` header.
    pub(super) fn partitioned(mut self) -> Self {
        self.partitioned = true;
        self
    }

    async fn run(self) {
        let mut builder = CacheLayer::builder();
        if let Some(t) = self.targets {
            builder = builder.targets(t.iter().copied());
        }
        if self.partitioned {
            builder = builder.partition(by_user);
        }
        let answers = self.answers;
        let f = fixture_with(builder, move |_req, n| {
            match answers[(n - 1).min(answers.len() - 1)] {
                Answer::Res(status, headers, body) => Ok(resp(status, headers, body)),
                Answer::Closed => Err("connection closed".into()),
            }
        });
        let name = self.name;
        for (i, s) in self.steps.iter().enumerate() {
            f.clock.advance(Duration::from_secs(s.wait));
            let mut req = get(s.headers);
            *req.method_mut() = Method::from_bytes(s.method.as_bytes()).unwrap();
            let got = f.svc.clone().oneshot(req).await;
            let at = format!("{name}, request {}", i + 1);
            if s.status == 0 {
                let e = got
                    .err()
                    .unwrap_or_else(|| panic!("{at}: an answer, not the error"));
                assert_eq!(e.to_string(), "connection closed", "{at}");
                continue;
            }
            let (parts, body) = got.unwrap().into_parts();
            let body = body.collect().await.unwrap().to_bytes();
            assert_eq!(parts.status.as_u16(), s.status, "{at}");
            let status = cache_status(&parts.headers);
            assert!(status.starts_with(s.cache_status), "{at}: {status}");
            if let Some(want) = s.body {
                assert_eq!(String::from_utf8_lossy(&body), want, "{at}");
            }
            for (n, v) in s.has {
                let all: Vec<_> = parts.headers.get_all(*n).iter().collect();
                assert!(
                    all.iter().any(|got| got == v),
                    "{at}: {n} is {all:?}, not {v}"
                );
            }
            for n in s.lacks {
                assert!(!parts.headers.contains_key(*n), "{at}: {n} is there");
            }
        }
        assert_eq!(f.seen.calls(), self.calls, "{name}: origin calls");
    }
}

/// Runs every row of a table.
pub(super) async fn run(rows: Vec<Row>) {
    for r in rows {
        r.run().await;
    }
}
