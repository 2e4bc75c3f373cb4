//! The request's span: its fields, and when each is recorded.
//!
//! A formatting subscriber (`tracing_subscriber::fmt`) formats every recorded field into the
//! span's text, and each `record` call is one more lookup and formatting pass. So the span gets
//! all that is known on arrival when it is created — the ids and the method as values that cost
//! nothing until formatted, and what the request carries (user agent, client address, body
//! size), absent values skipped — and the response's fields (status, route, body size) in one
//! `record` when the body ends. With no subscriber taking INFO, none of it is looked up.
//! Values a subscriber may print unquoted are given as `Display` (a string's `Debug` escapes it
//! character by character); the user agent, which a client writes freely, keeps its quotes and
//! escapes.

use std::sync::OnceLock;

use http::Request;
use tracing::Span;
use tracing::field::{Empty, Field, display};

use super::TraceContext;
use crate::error::{RequestId, TraceId};
use crate::identity::ClientIp;

/// The request's span, with every field known on arrival given at creation: the ids as values
/// that cost nothing until a subscriber formats them (hex written on demand, no quotes to
/// escape), and what the request carries (user agent, client address, body size), absent values
/// skipped. A formatting subscriber thus formats them in one pass, where a `record` per field
/// would cost a lookup and a formatting pass apiece; with no subscriber taking INFO, the request
/// is not even read.
pub(super) fn request<B>(
    req: &Request<B>,
    ctx: &TraceContext,
    trace: &TraceId,
    rid: &RequestId,
    method: usize,
) -> Span {
    // With no subscriber taking INFO (none at all, most often) the span would be disabled:
    // tracing's global level hint says so in one load, before any field value is built.
    if crate::span::off() {
        return Span::none();
    }
    let header = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
    let size = header(http::header::CONTENT_LENGTH).and_then(|v| v.parse::<u64>().ok());
    let agent = header(http::header::USER_AGENT);
    let client = ClientIp::of(req.extensions()).map(|ClientIp(ip)| display(ip));
    // The span's own id and the sampled flag are no fields: the OTLP exporter takes them (and
    // the other ids) from the span opening. An absent value (`None`) records nothing.
    let span = super::current::opening(ctx, || {
        tracing::info_span!(
            target: "protothrive::trace",
            "request",
            otel.kind = display(Plain("server")),
            otel.status_code = Empty,
            http.request.method = display(Plain(super::metrics::method_label(method))),
            http.route = Empty,
            http.response.status_code = Empty,
            http.request.body.size = size,
            http.response.body.size = Empty,
            client.address = client,
            user_agent.original = agent,
            trace_id = display(Id(trace)),
            parent_span_id = ctx.parent_id.map(|p| display(Hex(p))),
            request_id = display(Id(rid)),
            error.type = Empty,
            auth.outcome = Empty,
            rate_limit.decision = Empty,
            rate_limit.key = Empty,
            cache.status = Empty,
            breaker.state = Empty,
        )
    });
    // A disabled span still logs its entries and exits through the `log` crate when
    // tracing's `log` feature is on: none at all costs nothing.
    if span.is_disabled() {
        return Span::none();
    }
    span
}

/// Text written as it is: a `&str`'s own `Display` pads (and its `Debug` escapes) first.
pub(super) struct Plain<'a>(pub(super) &'a str);

impl std::fmt::Display for Plain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// An id's text, read only when formatted (a header-borne id checks its bytes on reading).
struct Id<'a, T>(&'a T);

impl std::fmt::Display for Id<'_, TraceId> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.as_str())
    }
}

impl std::fmt::Display for Id<'_, RequestId> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.as_str())
    }
}

/// A span id as 16 lowercase hex digits, written when formatted.
struct Hex([u8; 8]);

impl std::fmt::Display for Hex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut out = [0u8; 16];
        super::ids::encode_hex(&self.0, &mut out);
        f.write_str(std::str::from_utf8(&out).map_err(|_| std::fmt::Error)?)
    }
}

/// The fields of the request span recorded after its creation, looked up by name once: one
/// callsite makes every request span, so they are the same for all.
pub(super) struct Later {
    pub(super) set: &'static tracing::field::FieldSet,
    pub(super) status: Field,
    pub(super) route: Field,
    pub(super) response_size: Field,
}

impl Later {
    /// The fields of `span`, a request span (`None` for a disabled one).
    pub(super) fn of(span: &Span) -> Option<&'static Self> {
        static LATER: OnceLock<Option<Later>> = OnceLock::new();
        let meta = span.metadata()?;
        let later = LATER
            .get_or_init(|| {
                let set = meta.fields();
                Some(Self {
                    set,
                    status: set.field("http.response.status_code")?,
                    route: set.field("http.route")?,
                    response_size: set.field("http.response.body.size")?,
                })
            })
            .as_ref()?;
        // Only a span of that callsite takes them.
        (later.status.callsite() == meta.callsite()).then_some(later)
    }
}
