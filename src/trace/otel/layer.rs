use std::sync::Arc;
use std::time::UNIX_EPOCH;

use tokio::sync::mpsc;
use tracing::span::{Attributes, Id, Record};
use tracing::{Subscriber, span};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use super::span::{EventRecord, SpanRecord};
use super::worker::Counters;
use crate::clock::SharedClock;

/// The target of the spans [`TraceLayer`](crate::trace::TraceLayer) and
/// [`TraceClientLayer`](crate::trace::TraceClientLayer) open.
const TARGET: &str = "protothrive::trace";

/// The `tracing_subscriber::Layer` of an [`OtlpExporter`](super::OtlpExporter): keeps the
/// sampled spans of target `protothrive::trace` and queues them for export when they close.
/// An event inside such a span (a log line of a handler, of any target) becomes one of its span
/// events; other spans and events go by untouched.
///
/// ```
/// use protothrive::trace::otel::OtlpExporter;
/// use tracing_subscriber::layer::SubscriberExt as _;
///
/// let exporter = OtlpExporter::builder("http://127.0.0.1:4318").build()?;
/// let subscriber = tracing_subscriber::registry().with(exporter.layer());
/// tracing::subscriber::with_default(subscriber, || {
///     // A span of another target is not exported.
///     tracing::info_span!("work").in_scope(|| {});
/// });
/// assert_eq!(exporter.stats().dropped, 0);
/// # Ok::<(), protothrive::error::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct OtlpLayer {
    queue: mpsc::Sender<SpanRecord>,
    counters: Arc<Counters>,
    clock: SharedClock,
}

impl OtlpLayer {
    pub(super) fn new(
        queue: mpsc::Sender<SpanRecord>,
        counters: Arc<Counters>,
        clock: SharedClock,
    ) -> Self {
        Self {
            queue,
            counters,
            clock,
        }
    }

    fn now_unix_nanos(&self) -> u64 {
        let since = self
            .clock
            .now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
    }
}

impl<S> Layer<S> for OtlpLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if attrs.metadata().target() != TARGET {
            return;
        }
        let mut record = SpanRecord::new(attrs.metadata().name(), self.now_unix_nanos());
        // The trace layer's server span: its ids and sampled flag are not fields.
        if let Some(o) = crate::trace::current::opened() {
            record.trace_id = o.trace_id;
            record.span_id = o.span_id;
            record.parent_id = o.parent_id;
            record.sampled = o.sampled;
        }
        attrs.record(&mut record);
        // The sampling decision is made before the span opens: nothing is kept for the rest.
        if !record.sampled {
            return;
        }
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(record);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id)
            && let Some(record) = span.extensions_mut().get_mut::<SpanRecord>()
        {
            values.record(record);
        }
    }

    fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
        // The nearest enclosing span that is exported, from the event's own span outwards.
        let Some(scope) = ctx.event_scope(event) else {
            return;
        };
        for span in scope {
            let mut extensions = span.extensions_mut();
            if let Some(record) = extensions.get_mut::<SpanRecord>() {
                record.push_event(EventRecord::new(event, self.now_unix_nanos()));
                return;
            }
        }
    }

    fn on_close(&self, id: span::Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else {
            return;
        };
        let Some(mut record) = span.extensions_mut().remove::<SpanRecord>() else {
            return;
        };
        if !record.exportable() {
            return;
        }
        record.end_unix_nanos = self.now_unix_nanos().max(record.start_unix_nanos);
        if self.queue.try_send(record).is_err() {
            Counters::add(&self.counters.dropped, 1);
        }
    }
}
