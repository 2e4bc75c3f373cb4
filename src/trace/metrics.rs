//! RED metrics with bounded labels, and the table of every metric the crate emits.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use http::Method;
use metrics::{Counter, Gauge, Histogram};

/// Every metric the crate emits, as `(name, labels, meaning)`: the trace layer's RED metrics
/// and the counters, gauges and histograms of the other layers. A test checks that every metric
/// name in the source is listed here.
///
/// | name | labels | meaning |
/// |---|---|---|
/// | `protothrive_http_requests_total` | method, route, status_class | requests answered (`route`: the matched template, or `unmatched`) |
/// | `protothrive_http_request_duration_seconds` | method, route, status_class | histogram: from the request to the end of the response body, seconds |
/// | `protothrive_http_requests_in_flight` | method, route | requests whose response body has not ended yet (`route`: `unmatched` until routed) |
/// | `protothrive_http_server_errors_total` | route, code | 5xx answers and panics (`code`: the status, or `panic`) |
/// | `protothrive_rate_limit_decisions_total` | limit, decision | rate-limit checks by limit, allowed or denied |
/// | `protothrive_rate_limit_unkeyed_total` | limit | requests a limit could not key (no client IP or principal) |
/// | `protothrive_rate_limit_store_errors_total` | store, policy | remote store failures, by outage policy |
/// | `protothrive_revocation_store_errors_total` | — | shared revocation store failures |
/// | `protothrive_data_cache_total` | result | data cache lookups: `hit`, `l2_hit`, `coalesced`, `miss` |
/// | `protothrive_cache_l2_errors_total` | op | Redis cache tier failures by operation |
/// | `protothrive_cache_purges_unapplied` | — | gauge: purges the Redis cache tier could not apply yet, waiting to be replayed |
/// | `protothrive_breaker_state` | breaker | gauge: 0 closed, 1 open, 2 half-open |
/// | `protothrive_breaker_transitions_total` | breaker, to | circuit breaker state changes |
/// | `protothrive_breaker_rejected_total` | breaker | calls refused by an open breaker |
/// | `protothrive_retries_total` | — | retries sent by the retry layer |
/// | `protothrive_timeouts_total` | — | requests or calls past their deadline |
/// | `protothrive_shed_total` | — | requests shed by the load-shedding layer |
/// | `protothrive_shed_limit` | — | gauge: an adaptive load-shedding limit, when it moves |
/// | `protothrive_fallbacks_total` | reason | answers replaced by the fallback layer |
/// | `protothrive_upstream_healthy` | upstream | gauge: 1 while an upstream instance passes its health checks, 0 while it fails them |
/// | `protothrive_upstream_retries_total` | — | requests retried on another upstream instance |
/// | `protothrive_batch_items` | — | histogram: items per HTTP batch |
/// | `protothrive_batch_loader_size` | loader | histogram: keys per loader batch |
/// | `protothrive_batch_loader_wait_seconds` | loader | histogram: a batch's window, seconds |
/// | `protothrive_batch_loader_duration_seconds` | loader | histogram: a batch function's run, seconds |
/// | `protothrive_batch_loader_failures_total` | loader | loader batches that failed |
///
/// ```
/// assert!(protothrive::trace::METRICS.iter().any(|(name, _, _)| *name == "protothrive_http_requests_total"));
/// ```
pub const METRICS: &[(&str, &str, &str)] = &[
    (
        REQUESTS,
        "method, route, status_class",
        "requests answered (route: the matched template, or unmatched)",
    ),
    (
        DURATION,
        "method, route, status_class",
        "histogram: from the request to the end of the response body, seconds",
    ),
    (
        IN_FLIGHT,
        "method, route",
        "requests whose response body has not ended yet (route: unmatched until routed)",
    ),
    (
        ERRORS,
        "route, code",
        "5xx answers and panics (code: the status, or panic)",
    ),
    (
        "protothrive_rate_limit_decisions_total",
        "limit, decision",
        "rate-limit checks by limit, allowed or denied",
    ),
    (
        "protothrive_rate_limit_unkeyed_total",
        "limit",
        "requests a limit could not key (no client IP or principal)",
    ),
    (
        "protothrive_rate_limit_store_errors_total",
        "store, policy",
        "remote store failures, by outage policy",
    ),
    (
        "protothrive_revocation_store_errors_total",
        "",
        "shared revocation store failures",
    ),
    (
        "protothrive_data_cache_total",
        "result",
        "data cache lookups: hit, l2_hit, coalesced, miss",
    ),
    (
        "protothrive_cache_l2_errors_total",
        "op",
        "Redis cache tier failures by operation",
    ),
    (
        "protothrive_cache_purges_unapplied",
        "",
        "gauge: purges the Redis cache tier could not apply yet, waiting to be replayed",
    ),
    (
        "protothrive_breaker_state",
        "breaker",
        "gauge: 0 closed, 1 open, 2 half-open",
    ),
    (
        "protothrive_breaker_transitions_total",
        "breaker, to",
        "circuit breaker state changes",
    ),
    (
        "protothrive_breaker_rejected_total",
        "breaker",
        "calls refused by an open breaker",
    ),
    (
        "protothrive_retries_total",
        "",
        "retries sent by the retry layer",
    ),
    (
        "protothrive_timeouts_total",
        "",
        "requests or calls past their deadline",
    ),
    (
        "protothrive_shed_total",
        "",
        "requests shed by the load-shedding layer",
    ),
    (
        "protothrive_shed_limit",
        "",
        "gauge: an adaptive load-shedding limit, when it moves",
    ),
    (
        "protothrive_fallbacks_total",
        "reason",
        "answers replaced by the fallback layer",
    ),
    (
        "protothrive_upstream_healthy",
        "upstream",
        "gauge: 1 while an upstream instance passes its health checks, 0 while it fails them",
    ),
    (
        "protothrive_upstream_retries_total",
        "",
        "requests retried on another upstream instance",
    ),
    (
        "protothrive_batch_items",
        "",
        "histogram: items per HTTP batch",
    ),
    (
        "protothrive_batch_loader_size",
        "loader",
        "histogram: keys per loader batch",
    ),
    (
        "protothrive_batch_loader_wait_seconds",
        "loader",
        "histogram: a batch's window, seconds",
    ),
    (
        "protothrive_batch_loader_duration_seconds",
        "loader",
        "histogram: a batch function's run, seconds",
    ),
    (
        "protothrive_batch_loader_failures_total",
        "loader",
        "loader batches that failed",
    ),
];

pub(super) const REQUESTS: &str = "protothrive_http_requests_total";
pub(super) const DURATION: &str = "protothrive_http_request_duration_seconds";
pub(super) const IN_FLIGHT: &str = "protothrive_http_requests_in_flight";
pub(super) const ERRORS: &str = "protothrive_http_server_errors_total";

/// The label of a request no route matched.
pub(super) const UNMATCHED: &str = "unmatched";
/// The label of routes beyond [`MAX_ROUTES`].
const OTHER: &str = "other";
/// Distinct route labels kept; more is a bug in the route labelling, not traffic.
const MAX_ROUTES: usize = 512;

const METHODS: [&str; 10] = [
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE", "_OTHER",
];
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// The method's index in [`METHODS`] (`_OTHER` for extension methods, as the semantic
/// conventions say, so a client cannot invent label values).
pub(super) fn method_index(m: &Method) -> usize {
    match *m {
        Method::GET => 0,
        Method::HEAD => 1,
        Method::POST => 2,
        Method::PUT => 3,
        Method::PATCH => 4,
        Method::DELETE => 5,
        Method::OPTIONS => 6,
        Method::CONNECT => 7,
        Method::TRACE => 8,
        _ => 9,
    }
}

pub(super) fn method_label(index: usize) -> &'static str {
    METHODS[index.min(METHODS.len() - 1)]
}

fn class_index(status: u16) -> usize {
    usize::from((status / 100).clamp(1, 5) - 1)
}

type Pair = (Counter, Histogram);

/// The handles of one route label: one pair per method and status class, and one in-flight
/// gauge per method, made on first use.
pub(super) struct RouteHandles {
    label: String,
    pairs: [OnceLock<Pair>; METHODS.len() * CLASSES.len()],
    in_flight: [OnceLock<Gauge>; METHODS.len()],
}

impl std::fmt::Debug for RouteHandles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteHandles")
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

impl RouteHandles {
    fn new(label: &str) -> Self {
        Self {
            label: label.to_owned(),
            pairs: std::array::from_fn(|_| OnceLock::new()),
            in_flight: std::array::from_fn(|_| OnceLock::new()),
        }
    }

    /// The route label.
    pub(super) fn label(&self) -> &str {
        &self.label
    }

    /// The in-flight gauge of `method` on this route.
    pub(super) fn in_flight(&self, method: usize) -> &Gauge {
        self.in_flight[method].get_or_init(|| {
            metrics::gauge!(IN_FLIGHT, "method" => method_label(method), "route" => self.label.clone())
        })
    }

    /// Counts one answered request.
    pub(super) fn record(&self, method: usize, status: u16, seconds: f64) {
        let class = class_index(status);
        let (count, duration) = self.pairs[method * CLASSES.len() + class].get_or_init(|| {
            let labels = [
                ("method", method_label(method).to_owned()),
                ("route", self.label.clone()),
                ("status_class", CLASSES[class].to_owned()),
            ];
            (
                metrics::counter!(REQUESTS, &labels),
                metrics::histogram!(DURATION, &labels),
            )
        });
        count.increment(1);
        duration.record(seconds);
    }
}

/// Metric handles resolved once per label set, so a request costs a map lookup under a read
/// lock and two atomic updates, not a label allocation and a registry lookup. The map is keyed
/// by foldhash (a fraction of SipHash's cost on short keys): its keys are the application's
/// route templates, never text a client chooses. Handles are
/// resolved against the recorder installed when a label set is first seen: install the
/// recorder before serving.
pub(super) struct Red {
    routes: RwLock<HashMap<String, Arc<RouteHandles>, foldhash::fast::RandomState>>,
    /// Requests before routing, and those no route matched.
    unmatched: Arc<RouteHandles>,
}

impl Default for Red {
    fn default() -> Self {
        Self {
            routes: RwLock::default(),
            unmatched: Arc::new(RouteHandles::new(UNMATCHED)),
        }
    }
}

impl std::fmt::Debug for Red {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Red").finish_non_exhaustive()
    }
}

impl Red {
    /// The handles of requests not routed (yet).
    pub(super) fn unmatched(&self) -> &Arc<RouteHandles> {
        &self.unmatched
    }

    /// The handles of `route` (`other` past [`MAX_ROUTES`] labels).
    pub(super) fn handles(&self, route: &str) -> Arc<RouteHandles> {
        if route == UNMATCHED {
            return self.unmatched.clone();
        }
        if let Ok(map) = self.routes.read() {
            let full = map.len() >= MAX_ROUTES;
            if let Some(h) = map
                .get(route)
                .or_else(|| full.then(|| map.get(OTHER)).flatten())
            {
                return h.clone();
            }
        }
        let Ok(mut map) = self.routes.write() else {
            return self.unmatched.clone();
        };
        let key = if map.len() >= MAX_ROUTES && !map.contains_key(route) {
            OTHER
        } else {
            route
        };
        map.entry(key.to_owned())
            .or_insert_with(|| Arc::new(RouteHandles::new(key)))
            .clone()
    }
}

/// Counts a 5xx answer or a panic by route and code.
pub(super) fn count_error(route: &str, code: &str) {
    metrics::counter!(ERRORS, "route" => route.to_owned(), "code" => code.to_owned()).increment(1);
}

#[cfg(test)]
mod tests {
    /// Every `protothrive_*` metric name written in the crate's source is in [`super::METRICS`].
    #[test]
    fn the_table_lists_every_metric_the_source_emits() {
        fn walk(dir: &std::path::Path, names: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(&path, names);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&path).unwrap();
                    for part in text.split("\"protothrive_").skip(1) {
                        let name: String = part
                            .chars()
                            .take_while(|c| {
                                c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_'
                            })
                            .collect();
                        if !name.is_empty() && part[name.len()..].starts_with('"') {
                            names.push(format!("protothrive_{name}"));
                        }
                    }
                }
            }
        }
        let mut names = Vec::new();
        walk(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut names,
        );
        assert!(names.len() >= 20, "{names:?}");
        for name in names {
            assert!(
                super::METRICS.iter().any(|(n, _, _)| *n == name),
                "{name} is emitted but not in trace::METRICS"
            );
        }
    }
}
