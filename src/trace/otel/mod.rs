//! OTLP export (HTTP/protobuf) of the trace layer's spans, to an OpenTelemetry collector or any
//! OTLP/HTTP endpoint (Jaeger, Tempo, vendors).
//!
//! [`OtlpExporter`] gives a [`tracing_subscriber::Layer`] ([`OtlpLayer`]) to add to the
//! application's subscriber. It keeps the spans of target `protothrive::trace` — the server span
//! [`TraceLayer`](super::TraceLayer) opens per request and the client span
//! [`TraceClientLayer`](super::TraceClientLayer) opens per outbound call — and sends them in
//! batches to `{endpoint}/v1/traces` with `Content-Type: application/x-protobuf`.
//!
//! What it guarantees:
//! * **The ids on the wire are the exported ids.** A span's trace id, span id and parent span
//!   id are the ones the layers wrote into `traceparent`: the server span's id is the one in the
//!   response's `traceparent`, its parent is the caller's; a client span's id is the one the
//!   downstream service received, its parent is the server span.
//! * **Sampling is the trace layer's.** Only spans whose trace is sampled are exported: the
//!   [`Sampler`](super::Sampler) of [`TraceLayer`](super::TraceLayer) decides, parent-based by
//!   default (an incoming `traceparent` with flags `00` exports nothing) with a configurable
//!   ratio for the traces this service starts.
//! * **Attributes**: every field recorded on the span (the HTTP semantic-convention fields,
//!   `client.address`, `user_agent.original`, body sizes, `request_id`, the auth, rate-limit and
//!   cache decisions) except the id fields and `sampled`; the server span of
//!   [`TraceLayer`](super::TraceLayer) carries neither its span id nor `sampled` as fields, and
//!   the exporter takes its ids and flag from the trace layer as it opens; `otel.kind` gives
//!   the span kind, `otel.status_code = "ERROR"` the status; the name is `{method} {route}`
//!   when the route is known, else the method. Values longer than 4 KiB are cut.
//! * **Bounded memory, never blocking a request**: closed spans go into a bounded queue
//!   (default 2048); when it is full the span is dropped and counted ([`OtlpStats::dropped`]).
//!   Sending happens on a thread of its own. A failed export is retried when the OTLP/HTTP
//!   specification calls it retryable (connection errors, 429, 502, 503, 504), up to
//!   [`max_retries`](OtlpExporterBuilder::max_retries) times with full-jitter backoff and the
//!   collector's `Retry-After`; then the batch is counted as failed and logged.
//! * **Span events**: a `tracing` event inside an exported span (a handler's log line, of any
//!   target) becomes one of its span events — the message as name, the other fields, `level`
//!   and `target` as attributes; at most 128 per span, the rest counted in
//!   `dropped_events_count`.
//! * [`OtlpExporter::flush`] sends what is queued and reports the outcome;
//!   [`OtlpExporter::shutdown`] does the same and stops the thread.
//!
//! Spans exist only if the subscriber lets them: with a global `EnvFilter` that hides target
//! `protothrive::trace` at `INFO` nothing is exported, so put the filter on the log layer
//! (`fmt::layer().with_filter(...)`) rather than on the whole subscriber.
//!
//! Why by hand and not `opentelemetry-otlp` + `tracing-opentelemetry`: the OpenTelemetry SDK
//! owns span ids and sampling — its `IdGenerator` and sampler run when the SDK starts a span,
//! and `tracing-opentelemetry` keeps its span builder private — while here the trace layer has
//! already chosen the ids and sent them in `traceparent` before any exporter sees the span.
//! Making the SDK export *those* ids means smuggling them through a thread-local id generator
//! and a sampler that reads attributes, tied to when `tracing-opentelemetry` (0.34) starts its
//! spans; a change there would silently break the guarantee above. The SDK stack also costs
//! about 47 s of serial compile time on the 2-core CI machine (opentelemetry, opentelemetry_sdk,
//! opentelemetry-proto, opentelemetry-otlp, tracing-opentelemetry, prost and its derive,
//! measured with `cargo build --timings -j1`). What this module needs of it is small: six
//! protobuf messages written by hand (`proto.rs`, 150 lines, tested against `prost`'s
//! decoder) and a batching POST loop on `reqwest`, which the `jwks` feature already uses.
//!
//! Cost: per request, the spans' fields are copied once into a small record (an allocation per
//! text attribute) and moved through a channel; encoding and sending happen off the request
//! path. Nothing is kept for spans that are not sampled.
//!
//! ```no_run
//! use protothrive::trace::otel::OtlpExporter;
//! use tracing_subscriber::layer::SubscriberExt as _;
//! use tracing_subscriber::util::SubscriberInitExt as _;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let exporter = OtlpExporter::builder("http://127.0.0.1:4318")
//!     .service_name("protothrive")
//!     .build()?;
//! tracing_subscriber::registry().with(exporter.layer()).init();
//! // ... serve ...
//! exporter.shutdown().await?; // sends what is still queued
//! # Ok(())
//! # }
//! ```

mod layer;
mod proto;
mod span;
mod worker;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

pub use layer::OtlpLayer;

use crate::clock::{self, SharedClock};
use crate::error::ConfigError;
use proto::Origin;
use worker::{Control, Counters, Target};

/// Configures an [`OtlpExporter`]. From [`OtlpExporter::builder`].
///
/// ```
/// use std::time::Duration;
/// use protothrive::trace::otel::OtlpExporter;
///
/// let builder = OtlpExporter::builder("https://otlp.example.com")
///     .service_name("checkout")
///     .resource_attribute("deployment.environment.name", "production")
///     .header("authorization", "Bearer t0ken")
///     .queue_capacity(4096)
///     .max_batch(256)
///     .interval(Duration::from_secs(2))
///     .timeout(Duration::from_secs(5));
/// # let _ = builder;
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct OtlpExporterBuilder {
    endpoint: String,
    resource: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    queue_capacity: usize,
    max_batch: usize,
    interval: Duration,
    timeout: Duration,
    retry: worker::Retry,
    clock: SharedClock,
}

impl OtlpExporterBuilder {
    /// `service.name` of the resource (default `unknown_service`, as OpenTelemetry's SDKs say).
    pub fn service_name(self, name: impl Into<String>) -> Self {
        self.resource_attribute("service.name", name)
    }

    /// A resource attribute (`service.version`, `deployment.environment.name`, ...); a key
    /// given twice keeps the last value.
    pub fn resource_attribute(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        let (key, value) = (key.into(), value.into());
        match self.resource.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.resource.push((key, value)),
        }
        self
    }

    /// A header sent with every export (a vendor's API key, `authorization`).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Closed spans waiting to be sent, at most (default 2048); more are dropped and counted.
    pub fn queue_capacity(mut self, spans: usize) -> Self {
        self.queue_capacity = spans;
        self
    }

    /// Spans per export request, at most (default 512).
    pub fn max_batch(mut self, spans: usize) -> Self {
        self.max_batch = spans;
        self
    }

    /// How often a partial batch is sent (default 5 s).
    pub fn interval(mut self, every: Duration) -> Self {
        self.interval = every;
        self
    }

    /// Timeout of one export request (default 10 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How many times a failed export is retried (default 3), for what the OTLP/HTTP
    /// specification calls retryable: a connection error or timeout, 429, 502, 503 and 504.
    /// Other answers, and the last failure, lose the batch (counted in [`OtlpStats::failed`]).
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.retry.max = retries;
        self
    }

    /// The waits between retries: full-jitter exponential backoff from `base`, at most `cap`
    /// (default 100 ms and 5 s); a collector's `Retry-After` is honoured up to `cap`. Retrying
    /// happens on the exporter's thread; spans closed meanwhile wait in the queue.
    pub fn retry_backoff(mut self, base: Duration, cap: Duration) -> Self {
        self.retry.base = base;
        self.retry.cap = cap.max(base);
        self
    }

    /// The clock spans are timestamped with (default: the system clock).
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Checks the settings and starts the sending thread.
    ///
    /// # Errors
    /// [`ConfigError`] when the endpoint is not an `http`/`https` URL, a header is invalid, a
    /// size or duration is zero, or the thread or its runtime cannot be started.
    ///
    /// ```
    /// use protothrive::trace::otel::OtlpExporter;
    /// let err = OtlpExporter::builder("127.0.0.1:4318").build().unwrap_err();
    /// assert!(err.message().contains("http://"));
    /// let err = OtlpExporter::builder("http://c:4318").max_batch(0).build().unwrap_err();
    /// assert_eq!(err.message(), "the OTLP queue capacity and batch size must be at least 1");
    /// ```
    pub fn build(self) -> Result<OtlpExporter, ConfigError> {
        let url = traces_url(&self.endpoint)?;
        if self.queue_capacity == 0 || self.max_batch == 0 {
            return Err(ConfigError::new(
                "the OTLP queue capacity and batch size must be at least 1",
            ));
        }
        if self.interval.is_zero() || self.timeout.is_zero() {
            return Err(ConfigError::new(
                "the OTLP export interval and timeout must be longer than zero",
            ));
        }
        let mut headers = http::HeaderMap::new();
        for (name, value) in &self.headers {
            let name = http::HeaderName::try_from(name.as_str())
                .map_err(|_| ConfigError::new(format!("`{name}` is not a header name")))?;
            let value = http::HeaderValue::try_from(value.as_str()).map_err(|_| {
                ConfigError::new(format!(
                    "the value of header `{name}` is not a header value"
                ))
            })?;
            headers.append(name, value);
        }
        let client = reqwest::Client::builder()
            .timeout(self.timeout)
            .build()
            .map_err(|e| ConfigError::new(format!("cannot build the OTLP HTTP client: {e}")))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ConfigError::new(format!("cannot start the OTLP runtime: {e}")))?;

        let mut resource = self.resource;
        if !resource.iter().any(|(k, _)| k == "service.name") {
            resource.push(("service.name".into(), "unknown_service".into()));
        }
        let counters = Arc::new(Counters::default());
        let (span_tx, span_rx) = mpsc::channel(self.queue_capacity);
        let (control_tx, control_rx) = mpsc::unbounded_channel();
        let target = Target {
            url,
            headers,
            client,
            origin: Origin {
                resource,
                scope_name: env!("CARGO_PKG_NAME"),
                scope_version: env!("CARGO_PKG_VERSION"),
            },
            max_batch: self.max_batch,
            interval: self.interval,
            retry: self.retry,
            clock: self.clock.clone(),
            counters: counters.clone(),
        };
        std::thread::Builder::new()
            .name("protothrive-otlp".into())
            .spawn(move || runtime.block_on(worker::run(target, span_rx, control_rx)))
            .map_err(|e| ConfigError::new(format!("cannot start the OTLP thread: {e}")))?;
        Ok(OtlpExporter {
            layer: OtlpLayer::new(span_tx, counters.clone(), self.clock),
            control: control_tx,
            counters,
        })
    }
}

/// `{endpoint}/v1/traces`, as OpenTelemetry's `OTEL_EXPORTER_OTLP_ENDPOINT` is read.
fn traces_url(endpoint: &str) -> Result<reqwest::Url, ConfigError> {
    let bad = |why: String| {
        ConfigError::new(format!(
            "the OTLP endpoint `{endpoint}` {why}; give a base URL such as http://127.0.0.1:4318"
        ))
    };
    let base = reqwest::Url::parse(endpoint).map_err(|e| bad(format!("is invalid ({e})")))?;
    if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
        return Err(bad("is not an http:// or https:// URL".into()));
    }
    let path = format!("{}/v1/traces", base.path().trim_end_matches('/'));
    let mut url = base;
    url.set_path(&path);
    Ok(url)
}

/// Sends the trace layer's spans with OTLP/HTTP: its [`layer`](Self::layer) goes into the
/// `tracing` subscriber; [`flush`](Self::flush) and [`shutdown`](Self::shutdown) send what is
/// queued. See the [module docs](self).
///
/// Dropping it without [`shutdown`](Self::shutdown) still sends what is queued, without
/// waiting.
#[derive(Debug)]
pub struct OtlpExporter {
    layer: OtlpLayer,
    control: mpsc::UnboundedSender<Control>,
    counters: Arc<Counters>,
}

impl OtlpExporter {
    /// A builder for the OTLP/HTTP endpoint at `endpoint` (a base URL such as
    /// `http://127.0.0.1:4318`; spans go to `{endpoint}/v1/traces`).
    pub fn builder(endpoint: impl Into<String>) -> OtlpExporterBuilder {
        OtlpExporterBuilder {
            endpoint: endpoint.into(),
            resource: Vec::new(),
            headers: Vec::new(),
            queue_capacity: 2048,
            max_batch: 512,
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(10),
            retry: worker::Retry {
                max: 3,
                base: Duration::from_millis(100),
                cap: Duration::from_secs(5),
            },
            clock: clock::system(),
        }
    }

    /// The layer to add to the subscriber (it may be taken more than once: every copy feeds
    /// this exporter).
    pub fn layer(&self) -> OtlpLayer {
        self.layer.clone()
    }

    /// Sends every span closed before this call.
    ///
    /// # Errors
    /// [`ExportError`] when an export request failed (the spans are counted in
    /// [`OtlpStats::failed`]) or the exporter has stopped.
    pub async fn flush(&self) -> Result<(), ExportError> {
        self.ask(Control::Flush).await
    }

    /// Sends every span closed before this call and stops the sending thread; spans closed
    /// later are dropped and counted.
    ///
    /// # Errors
    /// As [`flush`](Self::flush).
    pub async fn shutdown(&self) -> Result<(), ExportError> {
        self.ask(Control::Shutdown).await
    }

    async fn ask(
        &self,
        control: fn(oneshot::Sender<Result<(), ExportError>>) -> Control,
    ) -> Result<(), ExportError> {
        let (tx, rx) = oneshot::channel();
        let stopped = || ExportError::new("the OTLP exporter has stopped".into());
        self.control.send(control(tx)).map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }

    /// The counts so far.
    #[must_use]
    pub fn stats(&self) -> OtlpStats {
        let c = &self.counters;
        OtlpStats {
            exported: c.exported.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            retried: c.retried.load(Ordering::Relaxed),
        }
    }
}

/// What became of the spans handed to an [`OtlpExporter`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct OtlpStats {
    /// Accepted by the endpoint (a 2xx answer).
    pub exported: u64,
    /// Dropped because the queue was full or the exporter had stopped.
    pub dropped: u64,
    /// Lost in an export request that failed, retries included.
    pub failed: u64,
    /// Export requests retried (one per retry, whatever the number of spans in them).
    pub retried: u64,
}

/// An export that did not reach the endpoint, or an exporter that has stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportError {
    message: String,
}

impl ExportError {
    fn new(message: String) -> Self {
        Self { message }
    }

    /// What went wrong.
    #[must_use]
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ExportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OTLP export: {}", self.message)
    }
}

impl std::error::Error for ExportError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_traces_path_is_appended_to_the_base_url() {
        for (base, url) in [
            ("http://127.0.0.1:4318", "http://127.0.0.1:4318/v1/traces"),
            ("http://127.0.0.1:4318/", "http://127.0.0.1:4318/v1/traces"),
            (
                "https://otlp.example.com/otlp",
                "https://otlp.example.com/otlp/v1/traces",
            ),
            (
                "https://otlp.example.com/otlp/",
                "https://otlp.example.com/otlp/v1/traces",
            ),
        ] {
            assert_eq!(traces_url(base).unwrap().as_str(), url, "{base}");
        }
    }

    #[test]
    fn bad_settings_are_build_errors() {
        for (builder, says) in [
            (OtlpExporter::builder("localhost:4318"), "http://"),
            (OtlpExporter::builder("ftp://c/"), "http://"),
            (OtlpExporter::builder("not a url"), "invalid"),
            (
                OtlpExporter::builder("http://c").queue_capacity(0),
                "at least 1",
            ),
            (
                OtlpExporter::builder("http://c").interval(Duration::ZERO),
                "zero",
            ),
            (
                OtlpExporter::builder("http://c").header("bad name", "v"),
                "header name",
            ),
            (
                OtlpExporter::builder("http://c").header("x-key", "a\nb"),
                "header value",
            ),
        ] {
            let err = builder.build().unwrap_err();
            assert!(err.message().contains(says), "{err}");
        }
    }

    #[test]
    fn the_service_name_is_a_resource_attribute_set_once() {
        let b = OtlpExporter::builder("http://c")
            .service_name("a")
            .service_name("b");
        assert_eq!(b.resource, [("service.name".to_owned(), "b".to_owned())]);
    }
}
