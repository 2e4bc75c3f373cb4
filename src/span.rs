//! The trace layer's request span, as the layers inside it reach it to record their decisions.

/// Whether no subscriber takes INFO, the level of the request span: tracing's global level hint,
/// one load. Then there is no request span to record on, and nothing to build for one.
pub(crate) fn off() -> bool {
    tracing::level_filters::LevelFilter::current() < tracing::Level::INFO
}

/// The current span, when it may be the trace layer's request span; `None` at once when
/// [`off`], before the thread's current span is looked up.
#[cfg(any(feature = "auth", feature = "rate-limit", feature = "resilience"))]
pub(crate) fn request_span() -> Option<tracing::Span> {
    if off() {
        return None;
    }
    let span = tracing::Span::current();
    (!span.is_disabled()).then_some(span)
}
