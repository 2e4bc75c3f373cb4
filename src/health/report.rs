//! What the probes answer: liveness, and the readiness report with one entry per check.

use std::borrow::Cow;
use std::time::Duration;

use http::StatusCode;
use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

/// What the liveness probe says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Liveness {
    /// Always `alive`.
    pub status: &'static str,
    /// Whole seconds since the [`Health`](super::Health) was built.
    pub uptime_seconds: u64,
}

/// The overall readiness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Status {
    /// Every check is up.
    Ready,
    /// Every required check is up, some optional one is not.
    Degraded,
    /// A required check is down or timed out.
    NotReady,
}

/// One check's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum CheckState {
    /// Answered `Ok` in time.
    Up,
    /// Answered an error (or panicked).
    Down,
    /// Did not answer within its timeout.
    Timeout,
}

/// One check in a [`Report`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    /// The check's name.
    pub name: Cow<'static, str>,
    /// Its state.
    pub state: CheckState,
    /// Whether it is required (else optional).
    pub required: bool,
    /// How long it took, on the injected clock.
    pub latency: Duration,
    /// Why it is not up, secrets redacted (`None` when up or when errors are hidden).
    pub error: Option<String>,
}

/// A readiness report; serialises as
/// `{"status": "degraded", "checks": {"redis": {"state": "timeout", "required": false,
/// "latency_ms": 100, "error": "..."}}}`, checks in the order they were registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub(super) status: Status,
    pub(super) checks: Vec<CheckReport>,
}

impl Report {
    /// The overall status.
    #[must_use]
    pub fn status(&self) -> Status {
        self.status
    }

    /// `200` when ready or degraded, `503` when not ready.
    #[must_use]
    pub fn http_status(&self) -> StatusCode {
        match self.status {
            Status::Ready | Status::Degraded => StatusCode::OK,
            Status::NotReady => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Every check, in registration order.
    #[must_use]
    pub fn checks(&self) -> &[CheckReport] {
        &self.checks
    }

    /// The check named `name`.
    #[must_use]
    pub fn check(&self, name: &str) -> Option<&CheckReport> {
        self.checks.iter().find(|c| c.name == name)
    }

    /// The report as JSON.
    #[must_use]
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

impl Serialize for Report {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct Checks<'a>(&'a [CheckReport]);
        impl Serialize for Checks<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut map = s.serialize_map(Some(self.0.len()))?;
                for c in self.0 {
                    map.serialize_entry(&c.name, c)?;
                }
                map.end()
            }
        }
        let mut map = s.serialize_map(Some(2))?;
        map.serialize_entry("status", &self.status)?;
        map.serialize_entry("checks", &Checks(&self.checks))?;
        map.end()
    }
}

impl Serialize for CheckReport {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("state", &self.state)?;
        map.serialize_entry("required", &self.required)?;
        map.serialize_entry("latency_ms", &self.latency.as_millis())?;
        if let Some(e) = &self.error {
            map.serialize_entry("error", e)?;
        }
        map.end()
    }
}

/// The longest error message a report carries.
pub(super) const MAX_ERROR: usize = 200;

/// `message` without URL userinfo nor `password=`-style values, cut at [`MAX_ERROR`] characters.
pub(super) fn redact(message: &str) -> String {
    let mut out = String::with_capacity(message.len().min(MAX_ERROR + 3));
    let mut rest = message;
    while !rest.is_empty() {
        // The next secret: a URL's `user:pass@`, or the value after `password=` and its kin.
        let url = rest.find("://").map(|i| (i + 3, Secret::Userinfo));
        let key = SECRET_KEYS
            .iter()
            .filter_map(|k| find_ascii_ci(rest, k).map(|i| (i + k.len(), Secret::Value)))
            .min_by_key(|(i, _)| *i);
        let next = match (url, key) {
            (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
            (a, b) => a.or(b),
        };
        let Some((at, kind)) = next else {
            out.push_str(rest);
            break;
        };
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let end = rest
            .find(|c: char| c.is_whitespace() || matches!(c, '/' | ',' | ';' | ')' | '"' | '\''))
            .unwrap_or(rest.len());
        match kind {
            Secret::Userinfo => {
                if let Some(at) = rest[..end].rfind('@') {
                    out.push_str("***");
                    rest = &rest[at..];
                }
            }
            Secret::Value => {
                if end > 0 {
                    out.push_str("***");
                }
                rest = &rest[end..];
            }
        }
    }
    match out.char_indices().nth(MAX_ERROR) {
        Some((cut, _)) => {
            out.truncate(cut);
            out.push('…');
            out
        }
        None => out,
    }
}

#[derive(Debug, Clone, Copy)]
enum Secret {
    Userinfo,
    Value,
}

const SECRET_KEYS: [&str; 5] = ["password=", "pwd=", "secret=", "token=", "key="];

/// The byte index of `needle` (ASCII) in `haystack`, ignoring ASCII case.
fn find_ascii_ci(haystack: &str, needle: &str) -> Option<usize> {
    haystack
        .as_bytes()
        .windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}
