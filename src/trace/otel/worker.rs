//! The sending side: a thread of its own with a one-thread tokio runtime that batches the spans
//! the layer queues and POSTs them, and answers flush and shutdown requests.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::ExportError;
use super::proto::{Origin, export_request};
use super::span::SpanRecord;
use crate::backoff::{backoff, random_u64, retry_after};
use crate::clock::SharedClock;

/// The exporter's counters, shared by the layer, the worker and the handle.
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) exported: AtomicU64,
    pub(super) dropped: AtomicU64,
    pub(super) failed: AtomicU64,
    pub(super) retried: AtomicU64,
}

impl Counters {
    pub(super) fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// What the handle asks of the worker.
#[derive(Debug)]
pub(super) enum Control {
    /// Send everything queued now; answer when done.
    Flush(oneshot::Sender<Result<(), ExportError>>),
    /// Send everything queued now, answer, and stop.
    Shutdown(oneshot::Sender<Result<(), ExportError>>),
}

/// Where and how to send.
#[derive(Debug)]
pub(super) struct Target {
    pub(super) url: reqwest::Url,
    pub(super) headers: http::HeaderMap,
    pub(super) client: reqwest::Client,
    pub(super) origin: Origin,
    pub(super) max_batch: usize,
    pub(super) interval: Duration,
    pub(super) retry: Retry,
    pub(super) clock: SharedClock,
    pub(super) counters: Arc<Counters>,
}

/// How a failed export is retried: at most `max` more times, after a full-jitter exponential
/// wait between `base` and `cap` (or the collector's `Retry-After`, capped the same way).
#[derive(Debug, Clone, Copy)]
pub(super) struct Retry {
    pub(super) max: u32,
    pub(super) base: Duration,
    pub(super) cap: Duration,
}

/// Runs until shut down (or until the handle is dropped): batches of at most `max_batch` spans,
/// sent when full, every `interval`, and on flush.
pub(super) async fn run(
    target: Target,
    mut spans: mpsc::Receiver<SpanRecord>,
    mut control: mpsc::UnboundedReceiver<Control>,
) {
    let mut batch = Vec::with_capacity(target.max_batch);
    let mut tick = tokio::time::interval(target.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut layers_gone = false;
    loop {
        tokio::select! {
            biased;
            c = control.recv() => {
                let (reply, last) = match c {
                    Some(Control::Flush(reply)) => (Some(reply), false),
                    Some(Control::Shutdown(reply)) => (Some(reply), true),
                    // Every handle dropped: send what is left and stop.
                    None => (None, true),
                };
                if last {
                    // Spans closed from now on are refused (and counted as dropped).
                    spans.close();
                }
                while let Ok(s) = spans.try_recv() {
                    batch.push(s);
                }
                let result = send_all(&target, &mut batch).await;
                if let Some(reply) = reply {
                    let _ = reply.send(result);
                }
                if last {
                    return;
                }
            }
            s = spans.recv(), if !layers_gone => match s {
                Some(s) => {
                    batch.push(s);
                    if batch.len() >= target.max_batch {
                        let _ = send_all(&target, &mut batch).await;
                    }
                }
                None => layers_gone = true,
            },
            _ = tick.tick() => {
                if !batch.is_empty() {
                    let _ = send_all(&target, &mut batch).await;
                }
            }
        }
    }
}

/// Sends `batch` in requests of at most `max_batch` spans; empties it whatever happens.
async fn send_all(target: &Target, batch: &mut Vec<SpanRecord>) -> Result<(), ExportError> {
    let mut result = Ok(());
    for chunk in batch.chunks(target.max_batch.max(1)) {
        if let Err(e) = send(target, chunk).await {
            Counters::add(&target.counters.failed, chunk.len());
            tracing::warn!(
                target: "protothrive::trace::otel",
                spans = chunk.len(),
                error = %e,
                "OTLP export failed; the spans are lost"
            );
            result = Err(e);
        } else {
            Counters::add(&target.counters.exported, chunk.len());
        }
    }
    batch.clear();
    result
}

/// Sends one export request, retrying what the OTLP/HTTP specification calls retryable: a
/// connection error or timeout, and the statuses 429, 502, 503 and 504.
async fn send(target: &Target, spans: &[SpanRecord]) -> Result<(), ExportError> {
    let body = bytes::Bytes::from(export_request(&target.origin, spans));
    let mut retry = 0;
    loop {
        let failure = match post(target, body.clone()).await {
            Ok(()) => return Ok(()),
            Err(f) => f,
        };
        if !failure.retryable || retry >= target.retry.max {
            return Err(failure.error);
        }
        let r = target.retry;
        let wait = backoff(retry, r.base, r.cap, random_u64())
            .max(failure.retry_after.unwrap_or_default().min(r.cap));
        retry += 1;
        Counters::add(&target.counters.retried, 1);
        tokio::time::sleep(wait).await;
    }
}

/// A failed export request.
struct Failure {
    error: ExportError,
    retryable: bool,
    retry_after: Option<Duration>,
}

async fn post(target: &Target, body: bytes::Bytes) -> Result<(), Failure> {
    let res = target
        .client
        .post(target.url.clone())
        .headers(target.headers.clone())
        .header(http::header::CONTENT_TYPE, "application/x-protobuf")
        .body(body)
        .send()
        .await
        .map_err(|e| Failure {
            error: ExportError::new(format!("POST {}: {e}", target.url)),
            retryable: e.is_connect() || e.is_timeout() || e.is_request(),
            retry_after: None,
        })?;
    let status = res.status();
    if status.is_success() {
        return Ok(());
    }
    Err(Failure {
        error: ExportError::new(format!(
            "POST {}: the collector answered {status}",
            target.url
        )),
        retryable: matches!(status.as_u16(), 429 | 502 | 503 | 504),
        retry_after: retry_after(res.headers(), &target.clock),
    })
}
