//! The multi-instance run's own checks (`scripts/multi-instance` starts the processes):
//!
//! * [`crate::checks`] (`--check-instances A,B`): against two API instances directly, so each request's
//!   instance is known — a per-user quota holds across both (a user alternating between them gets
//!   exactly its quota), a write on one is never served stale by the other (its cache tiers), a
//!   logout on one is refused by the other from the next request on.
//! * [`Kill`] (`--kill-pid PID`): during the goose run through the gateway, `kill -9` of one
//!   instance at a planned moment; afterwards every acknowledged roadmap write is read back, and
//!   the run's failed requests are placed against the kill: in flight on it, sent after it (before
//!   the gateway ejected the instance), or unrelated.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::time::{Duration, Instant};

use reqwest::{Client, Method, StatusCode};
use serde_json::Value;

use crate::observe::Observed;
use crate::plot::Mark;

/// Whether roadmap writes are being recorded (only a run with `--kill-pid` reads them back).
static RECORDING: AtomicBool = AtomicBool::new(false);

/// One roadmap's writes, in the order its owner sent them: each title and whether the API
/// acknowledged it.
#[derive(Debug, Default)]
struct Writes {
    token: String,
    titles: Vec<(String, bool)>,
}

static WRITES: LazyLock<Mutex<HashMap<String, Writes>>> = LazyLock::new(Mutex::default);

/// Records a roadmap write (its create or an update) when a run reads writes back.
pub(crate) fn record_write(id: &str, title: &str, token: &str, acknowledged: bool) {
    if !RECORDING.load(Ordering::Relaxed) {
        return;
    }
    let mut writes = WRITES.lock().unwrap_or_else(PoisonError::into_inner);
    let entry = writes.entry(id.to_owned()).or_default();
    token.clone_into(&mut entry.token);
    entry.titles.push((title.to_owned(), acknowledged));
}

/// Whether `found` may be the roadmap's title: the last acknowledged one, or one sent after it
/// (an update whose answer was lost may have been committed). `None` when nothing was
/// acknowledged (no claim to check).
pub(crate) fn title_allowed(titles: &[(String, bool)], found: &str) -> Option<bool> {
    let last = titles.iter().rposition(|(_, acked)| *acked)?;
    Some(titles[last..].iter().any(|(t, _)| t == found))
}

/// How failed requests fall around the kill, from their start and end (ms on goose's clock).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AroundKill {
    /// Failed requests started before the kill and ended after it.
    pub(crate) in_flight: u64,
    /// Failed requests started after the kill.
    pub(crate) after: u64,
    /// The latest start of those, ms after the kill.
    pub(crate) last_after_ms: u64,
    /// Failed requests that ended before the kill.
    pub(crate) before: u64,
    /// All requests (failed or not) in flight at the kill, through either instance.
    pub(crate) all_in_flight: u64,
}

/// Places every sample against the kill at `kill_ms`.
pub(crate) fn around_kill(observed: &Observed, kill_ms: u64) -> AroundKill {
    let mut out = AroundKill::default();
    for s in &observed.samples {
        let end_ms = s.elapsed_ms.saturating_add(s.micros.div_ceil(1000));
        let spans = s.elapsed_ms <= kill_ms && end_ms >= kill_ms;
        out.all_in_flight += u64::from(spans);
        if s.success {
            continue;
        }
        if spans {
            out.in_flight += 1;
        } else if s.elapsed_ms > kill_ms {
            out.after += 1;
            out.last_after_ms = out.last_after_ms.max(s.elapsed_ms - kill_ms);
        } else {
            out.before += 1;
        }
    }
    out
}

/// A planned `kill -9` of one API instance during the run.
#[derive(Debug)]
pub(crate) struct Kill {
    pid: u32,
    window: Duration,
    /// The gateway's log and the killed instance's `host:port` in it, to read when the gateway
    /// took it out of rotation.
    gateway: Option<(std::path::PathBuf, String)>,
    /// When the kill was sent: on the monotonic clock, and in UNIX microseconds (the log's).
    at: Arc<Mutex<Option<(Instant, i64)>>>,
}

impl Kill {
    /// Starts recording writes and kills `pid` `after` from now.
    pub(crate) fn arm(
        pid: u32,
        after: Duration,
        window: Duration,
        gateway: Option<(std::path::PathBuf, String)>,
    ) -> Self {
        RECORDING.store(true, Ordering::Relaxed);
        let at = Arc::new(Mutex::new(None));
        let slot = Arc::clone(&at);
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let now = (crate::observe::now(), crate::observe::unix_micros_now());
            let killed = std::process::Command::new("kill")
                .args(["-9", &pid.to_string()])
                .status()
                .is_ok_and(|s| s.success());
            eprintln!(
                "loadtest: kill -9 {pid}: {}",
                if killed { "done" } else { "FAILED" }
            );
            if killed {
                *slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(now);
            }
        });
        Self {
            pid,
            window,
            gateway,
            at,
        }
    }

    /// The report's lines, the plot's mark and the failed checks, after the run: the errors
    /// around the kill and the read-back of every acknowledged write through `host`.
    pub(crate) async fn finish(
        &self,
        observed: &Observed,
        host: &str,
    ) -> (String, Option<Mark>, Vec<String>) {
        let mut out = String::from("\nfailover (kill -9 of one API instance mid-run):\n");
        let mut failed = Vec::new();
        let killed = *self.at.lock().unwrap_or_else(PoisonError::into_inner);
        let (Some((killed, killed_us)), Some(origin)) = (killed, observed.origin) else {
            failed.push(format!(
                "process {} was not killed during the run",
                self.pid
            ));
            return (out, None, failed);
        };
        let kill_ms =
            u64::try_from(killed.saturating_duration_since(origin).as_millis()).unwrap_or(u64::MAX);
        let a = around_kill(observed, kill_ms);
        let _ = writeln!(
            out,
            "  killed at {:.1} s; requests in flight then (both instances): {}",
            kill_ms as f64 / 1000.0,
            a.all_in_flight
        );
        let last = if a.after == 0 {
            String::new()
        } else {
            format!(" (the last {} ms after)", a.last_after_ms)
        };
        let _ = writeln!(
            out,
            "  failed requests: {} in flight at the kill, {} sent after it{last}, {} before it",
            a.in_flight, a.after, a.before
        );
        let window_ms = u64::try_from(self.window.as_millis()).unwrap_or(u64::MAX);
        if a.last_after_ms > window_ms {
            failed.push(format!(
                "a request sent {} ms after the kill failed (ejection window {window_ms} ms)",
                a.last_after_ms
            ));
        }
        if let Some((log, authority)) = &self.gateway {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            match ejected_at(&text, authority, killed_us) {
                Some((at_us, how)) => {
                    let ms = (at_us - killed_us) / 1000;
                    let _ = writeln!(
                        out,
                        "  the gateway took it out of rotation {ms} ms after the kill ({how}; window {window_ms} ms)"
                    );
                    if u64::try_from(ms).unwrap_or(u64::MAX) > window_ms {
                        failed.push(format!(
                            "the gateway took {ms} ms to stop sending to the killed instance (window {window_ms} ms)"
                        ));
                    }
                }
                None => failed.push(format!(
                    "{} says nothing of {authority} leaving the rotation",
                    log.display()
                )),
            }
        }
        match read_back(host).await {
            Ok(r) => {
                let _ = writeln!(
                    out,
                    "  acknowledged writes read back: {} roadmaps; {} lost (not in the database); {} served stale by a cache (in the database)",
                    r.checked,
                    r.lost.len(),
                    r.stale.len()
                );
                for l in r.lost.iter().chain(&r.stale).take(6) {
                    let _ = writeln!(out, "    {l}");
                }
                if !r.lost.is_empty() {
                    failed.push(format!("{} acknowledged write(s) lost", r.lost.len()));
                }
                if !r.stale.is_empty() {
                    failed.push(format!(
                        "{} acknowledged write(s) served stale after the run",
                        r.stale.len()
                    ));
                }
                if r.checked == 0 {
                    failed.push("no acknowledged write to read back".to_owned());
                }
            }
            Err(e) => failed.push(format!("read-back: {e}")),
        }
        let mark = Mark {
            at_s: kill_ms as f64 / 1000.0,
            label: format!("kill -9 of an API instance (pid {})", self.pid),
        };
        (out, Some(mark), failed)
    }
}

/// UNIX microseconds of an RFC 3339 UTC timestamp as `tracing-subscriber` writes them
/// (`2026-12-07T00:44:27.640953Z`; fewer fraction digits allowed), or `None`.
pub(crate) fn unix_micros(ts: &str) -> Option<i64> {
    let (date, time) = ts.strip_suffix('Z')?.split_once('T')?;
    let mut d = date.splitn(3, '-').map(str::parse::<i64>);
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let (hms, fraction) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.splitn(3, ':').map(str::parse::<i64>);
    let (h, min, sec) = (t.next()?.ok()?, t.next()?.ok()?, t.next()?.ok()?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || fraction.len() > 9 {
        return None;
    }
    let digits: String = fraction.chars().chain("000000".chars()).take(6).collect();
    let micros: i64 = digits.parse().ok()?;
    // Days from the civil date (H. Hinnant's algorithm), March-based years.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + h) * 60 + min) * 60_000_000 + sec * 1_000_000 + micros)
}

/// When the gateway took the instance at `authority` out of rotation, from its log: the first
/// line at or after `since_us` that ejects it (its breaker opened: passive health) or drops it
/// (its health checks failed: active health), with which.
pub(crate) fn ejected_at(log: &str, authority: &str, since_us: i64) -> Option<(i64, &'static str)> {
    log.lines().find_map(|line| {
        if !line.contains(authority) {
            return None;
        }
        let how = if line.contains("fails its health checks") {
            "failed health checks"
        } else if line.contains("circuit breaker state changed")
            && (line.contains("to=\"open\"") || line.contains("to=open"))
        {
            "ejected after failures in a row"
        } else {
            return None;
        };
        // The first word, without the colour codes a terminal log may carry.
        let word = line.split_whitespace().next()?;
        let start = word.find(|c: char| c.is_ascii_digit())?;
        let stamp: String = word[start..]
            .chars()
            .take_while(|c| c.is_ascii_digit() || "-T:.Z".contains(*c))
            .collect();
        let at = unix_micros(&stamp)?;
        (at >= since_us).then_some((at, how))
    })
}

/// What the read-back found.
#[derive(Debug, Default)]
struct ReadBack {
    /// Roadmaps with an acknowledged write.
    checked: usize,
    /// Acknowledged writes the database does not have (a `no-cache` read misses them too).
    lost: Vec<String>,
    /// Acknowledged writes a cache answered an older version of while the database has them.
    stale: Vec<String>,
}

/// Reads every recorded roadmap back through `host`, as a client would; a read that misses the
/// last acknowledged write is read again with `Cache-Control: no-cache` (the API's cache then
/// asks the database) to tell a lost write from a stale cache entry.
async fn read_back(host: &str) -> Result<ReadBack, String> {
    let writes = std::mem::take(&mut *WRITES.lock().unwrap_or_else(PoisonError::into_inner));
    let client = client()?;
    let base = host.trim_end_matches('/');
    let mut out = ReadBack::default();
    for (id, w) in &writes {
        if title_allowed(&w.titles, "").is_none() {
            continue;
        }
        out.checked += 1;
        let url = format!("{base}/api/v1/roadmaps/{id}");
        let (status, body) = call(&client, Method::GET, &url, Some(&w.token), None).await?;
        let title = body["data"]["title"].as_str().unwrap_or_default();
        if status == StatusCode::OK && title_allowed(&w.titles, title) == Some(true) {
            continue;
        }
        let fresh = client
            .get(&url)
            .bearer_auth(&w.token)
            .header("cache-control", "no-cache")
            .send()
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        let fresh_status = fresh.status();
        let fresh: Value =
            serde_json::from_str(&fresh.text().await.unwrap_or_default()).unwrap_or(Value::Null);
        let fresh_title = fresh["data"]["title"].as_str().unwrap_or_default();
        let acked: Vec<&str> = w
            .titles
            .iter()
            .filter(|t| t.1)
            .map(|t| t.0.as_str())
            .collect();
        let line = format!(
            "{id}: {status} {title:?}, no-cache {fresh_status} {fresh_title:?}; acknowledged {acked:?}"
        );
        if fresh_status == StatusCode::OK && title_allowed(&w.titles, fresh_title) == Some(true) {
            out.stale.push(line);
        } else {
            out.lost.push(line);
        }
    }
    Ok(out)
}

pub(crate) fn client() -> Result<Client, String> {
    Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| format!("http client: {e}"))
}

/// One request: the status and the JSON body (`Null` when there is none).
pub(crate) async fn call(
    client: &Client,
    method: Method,
    url: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Result<(StatusCode, Value), String> {
    let mut request = client.request(method, url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let response = request.send().await.map_err(|e| format!("{url}: {e}"))?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::Sample;

    fn titles(list: &[(&str, bool)]) -> Vec<(String, bool)> {
        list.iter().map(|(t, a)| ((*t).to_owned(), *a)).collect()
    }

    #[test]
    fn the_last_acknowledged_title_or_a_later_attempt() {
        let t = titles(&[("a", true), ("b", true), ("c", false)]);
        assert_eq!(title_allowed(&t, "b"), Some(true));
        assert_eq!(
            title_allowed(&t, "c"),
            Some(true),
            "sent after, answer lost"
        );
        assert_eq!(
            title_allowed(&t, "a"),
            Some(false),
            "an acknowledged write lost"
        );
        assert_eq!(title_allowed(&titles(&[("x", false)]), "x"), None);
        assert_eq!(title_allowed(&[], ""), None);
    }

    #[test]
    fn log_timestamps_and_the_ejection_line() {
        assert_eq!(
            unix_micros("2026-12-07T00:44:27.640953Z"),
            Some(1_796_604_267_640_953)
        );
        assert_eq!(
            unix_micros("2000-02-29T23:59:59Z"),
            Some(951_868_799_000_000)
        );
        assert_eq!(unix_micros("1970-01-01T00:00:00.5Z"), Some(500_000));
        for bad in [
            "",
            "2026-12-07",
            "2026-13-01T00:00:00Z",
            "x-y-zT1:2:3Z",
            "2026-12-07T00:00:00",
        ] {
            assert_eq!(unix_micros(bad), None, "{bad}");
        }
        let log = "2026-12-07T00:00:01.000000Z  WARN m: upstream fails its health checks upstream=http://127.0.0.1:9/\n\
                   2026-12-07T00:00:02.000000Z  INFO b: circuit breaker state changed breaker=upstream http://127.0.0.1:8/ from=\"closed\" to=\"open\"\n\
                   2026-12-07T00:00:03.000000Z  WARN m: upstream fails its health checks upstream=http://127.0.0.1:8/";
        let t0 = unix_micros("2026-12-07T00:00:00Z").unwrap_or_default();
        assert_eq!(
            ejected_at(log, "127.0.0.1:8/", t0),
            Some((t0 + 2_000_000, "ejected after failures in a row"))
        );
        assert_eq!(
            ejected_at(log, "127.0.0.1:8/", t0 + 2_500_000),
            Some((t0 + 3_000_000, "failed health checks")),
            "only after the kill"
        );
        assert_eq!(ejected_at(log, "127.0.0.1:7/", t0), None);
    }

    #[test]
    fn failures_are_placed_against_the_kill() {
        let mut observed = Observed::default();
        let s = |elapsed_ms, micros, success| Sample {
            elapsed_ms,
            micros,
            success,
            name: 0,
        };
        observed.samples = vec![
            s(100, 1_000, false),  // before
            s(990, 20_000, false), // in flight at 1000
            s(995, 20_000, true),  // in flight, fine
            s(1_200, 500, false),  // after, 200 ms
            s(1_050, 500, false),  // after, 50 ms
            s(3_000, 500, true),
        ];
        assert_eq!(
            around_kill(&observed, 1_000),
            AroundKill {
                in_flight: 1,
                after: 2,
                last_after_ms: 200,
                before: 1,
                all_in_flight: 2
            }
        );
    }
}
