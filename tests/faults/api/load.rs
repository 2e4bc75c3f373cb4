//! Steady load on the ProtoThrive API: an open model (request `n` leaves at `n / rate` seconds,
//! whether or not the earlier ones were answered, so a slow server is not offered less), each
//! answer kept as a [`Sample`]; and the figures read from the samples.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

/// What one request of the load does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// `POST /agent/run` on the user's roadmap (a write: the run is recorded).
    Run,
    /// `POST /roadmaps` with a title of its own (a write).
    Write,
    /// `GET /roadmaps?limit=5` (cached; the cache's L2 is Redis when there is one).
    Read,
    /// `GET /auth/me` (the token's revocation is checked in Redis when there is one).
    Me,
}

/// One request and its answer.
#[derive(Debug, Clone)]
pub struct Sample {
    pub kind: Kind,
    /// When it was sent, from the start of the load.
    pub at: Duration,
    pub latency: Duration,
    /// 0: no answer at all (a transport error or the client's own timeout).
    pub status: u16,
    /// The problem's `code`, for a non-2xx answer.
    pub code: String,
    /// Whether the answer was `application/problem+json`.
    pub problem: bool,
    pub retry_after: Option<String>,
    /// The roadmap title (a write) or prompt (a run) of its own the request carried.
    pub title: String,
    /// The id a 201 answered with.
    pub id: Option<String>,
}

impl Sample {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// `201 Created` for a write: the API acknowledged it.
    pub fn acknowledged(&self) -> bool {
        self.status == 201
    }
}

/// Who the load is sent as, and where.
#[derive(Debug)]
pub struct Target {
    pub base: String,
    pub token: String,
    /// A roadmap of the user's, for agent runs.
    pub roadmap: String,
    pub http: reqwest::Client,
}

/// Sends `rate` requests a second for `total`, cycling through `mix`; the samples in the order
/// the requests were sent.
pub async fn drive(
    target: Arc<Target>,
    rate: f64,
    mix: &'static [Kind],
    total: Duration,
) -> Vec<Sample> {
    let start = Instant::now();
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let count = (total.as_secs_f64() * rate) as usize;
    let mut pending = Vec::with_capacity(count);
    for n in 0..count {
        let at = Duration::from_secs_f64(n as f64 / rate);
        tokio::time::sleep_until(start + at).await;
        let kind = mix[n % mix.len()];
        let title = format!("fault-{}-{n}", &tag[..12]);
        pending.push(tokio::spawn(one(target.clone(), kind, title, start)));
    }
    let mut samples = Vec::with_capacity(count);
    for p in pending {
        samples.push(p.await.expect("a request task"));
    }
    samples
}

async fn one(t: Arc<Target>, kind: Kind, title: String, start: Instant) -> Sample {
    let url = |path: &str| format!("{}/api/v1{path}", t.base);
    let req = match kind {
        Kind::Run => t.http.post(url("/agent/run")).json(&json!({
            "roadmap_id": t.roadmap, "task_type": "plan", "prompt": title, "budget_usd": 1.0,
        })),
        Kind::Write => t.http.post(url("/roadmaps")).json(&json!({
            "title": title, "description": "written under a fault",
            "json_graph": r#"{"nodes":[{"id":"a"}],"edges":[]}"#,
        })),
        Kind::Read => t.http.get(url("/roadmaps?limit=5")),
        Kind::Me => t.http.get(url("/auth/me")),
    };
    let sent = Instant::now();
    let answer = req.bearer_auth(&t.token).send().await;
    let mut sample = Sample {
        kind,
        at: sent - start,
        latency: Duration::ZERO,
        status: 0,
        code: String::new(),
        problem: false,
        retry_after: None,
        title,
        id: None,
    };
    if let Ok(res) = answer {
        sample.status = res.status().as_u16();
        let header = |name: &str| {
            res.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        sample.problem =
            header("content-type").is_some_and(|c| c.starts_with("application/problem+json"));
        sample.retry_after = header("retry-after");
        let body: Value = res.json().await.unwrap_or(Value::Null);
        sample.code = body["code"].as_str().unwrap_or_default().to_owned();
        let data = &body["data"];
        sample.id = data["run"]["id"]
            .as_str()
            .or_else(|| data["id"].as_str())
            .map(str::to_owned);
    }
    sample.latency = sent.elapsed();
    sample
}

/// The nearest-rank 99th percentile.
pub fn p99(latencies: impl IntoIterator<Item = Duration>) -> Duration {
    let mut all: Vec<Duration> = latencies.into_iter().collect();
    if all.is_empty() {
        return Duration::ZERO;
    }
    all.sort_unstable();
    all[(all.len() * 99).div_ceil(100) - 1]
}

/// When the API was back after the fault cleared at `cleared`: the earliest send time after
/// which every answer is a 2xx and their p99 is within `threshold` (with at least `tail` of
/// traffic after it, so a lone last request proves nothing); `None` if it never was.
pub fn recovered(
    samples: &[Sample],
    cleared: Duration,
    threshold: Duration,
    tail: Duration,
) -> Option<Duration> {
    let after: Vec<&Sample> = samples.iter().filter(|s| s.at >= cleared).collect();
    let end = after.last()?.at;
    (0..after.len())
        .take_while(|&i| after[i].at + tail <= end)
        .find(|&i| {
            let rest = &after[i..];
            rest.iter().all(|s| s.ok()) && p99(rest.iter().map(|s| s.latency)) <= threshold
        })
        .map(|i| after[i].at.saturating_sub(cleared))
}

/// `status code × count`, for the record: `201 × 40, 503 SRV-503 × 12`.
pub fn tally<'a>(samples: impl IntoIterator<Item = &'a Sample>) -> String {
    let mut counts = std::collections::BTreeMap::<(u16, &str), usize>::new();
    for s in samples {
        *counts.entry((s.status, s.code.as_str())).or_default() += 1;
    }
    counts
        .iter()
        .map(|((status, code), n)| {
            if code.is_empty() {
                format!("{status} × {n}")
            } else {
                format!("{status} {code} × {n}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at_ms: u64, latency_ms: u64, status: u16) -> Sample {
        Sample {
            kind: Kind::Read,
            at: Duration::from_millis(at_ms),
            latency: Duration::from_millis(latency_ms),
            status,
            code: String::new(),
            problem: false,
            retry_after: None,
            title: String::new(),
            id: None,
        }
    }

    #[test]
    fn p99_is_the_nearest_rank() {
        let ms = Duration::from_millis;
        assert_eq!(p99((1..=100).map(ms)), ms(99));
        assert_eq!(p99((1..=10).map(ms)), ms(10));
        assert_eq!(p99([]), Duration::ZERO);
    }

    #[test]
    fn recovery_starts_after_the_last_error_or_slow_answer() {
        let ms = Duration::from_millis;
        let mut samples = vec![sample(0, 5, 200), sample(1000, 900, 503)];
        samples.extend((0..30).map(|i| sample(1100 + i * 100, if i == 3 { 800 } else { 5 }, 200)));
        assert_eq!(
            recovered(&samples, ms(1000), ms(50), ms(1000)),
            Some(ms(500))
        );
        assert_eq!(recovered(&samples, ms(1000), ms(50), ms(5000)), None);
        assert_eq!(tally(&samples[..2]), "200 × 1, 503 × 1");
    }
}
