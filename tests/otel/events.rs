//! `tracing` events inside an exported request span, exported as its span events.

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt as _, Empty, Full};
use protothrive::trace::TraceLayer;
use tower::{Layer as _, ServiceExt as _, service_fn};

use crate::otlp::{Value, attribute};
use crate::{BoxError, Setup, flush_until};

#[tokio::test]
async fn events_inside_a_request_are_span_events_of_its_server_span() {
    let mut t = Setup::start().await;
    let handler = service_fn(|_req: Request<Empty<Bytes>>| async {
        tracing::info!(user = 42, "loaded the user");
        // In a span of the application's own: still an event of the request span.
        tracing::info_span!("db").in_scope(|| {
            tracing::warn!(target: "app::db", rows = 0_u64, "slow query");
        });
        for i in 0..130 {
            tracing::debug!(i, "noise");
        }
        Ok::<_, BoxError>(Response::new(Full::from("ok")))
    });
    let res = TraceLayer::new()
        .layer(handler)
        .oneshot(Request::get("/").body(Empty::new()).unwrap())
        .await
        .unwrap();
    res.into_body().collect().await.unwrap();
    flush_until(&t.exporter, 1).await;

    let spans = t.receiver.spans();
    let server = spans.iter().find(|s| s.kind == 2).expect("a server span");
    assert_eq!(server.events.len(), 128, "at most 128 events are kept");
    assert_eq!(server.dropped_events_count, 132 - 128);

    let first = &server.events[0];
    assert_eq!(first.name, "loaded the user");
    assert!(first.time_unix_nano >= server.start_time_unix_nano);
    assert!(first.time_unix_nano <= server.end_time_unix_nano);
    let attr = |e: &crate::otlp::Event, k: &str| attribute(&e.attributes, k).cloned();
    assert_eq!(attr(first, "level"), Some(Value::String("INFO".into())));
    assert_eq!(
        attr(first, "target"),
        Some(Value::String("otel::events".into()))
    );
    assert_eq!(attr(first, "user"), Some(Value::Int(42)));
    assert_eq!(attr(first, "message"), None, "the message is the name");

    let second = &server.events[1];
    assert_eq!(second.name, "slow query");
    assert_eq!(attr(second, "level"), Some(Value::String("WARN".into())));
    assert_eq!(
        attr(second, "target"),
        Some(Value::String("app::db".into()))
    );
    assert_eq!(attr(second, "rows"), Some(Value::Int(0)));
    assert_eq!(server.events[2].name, "noise");
}
