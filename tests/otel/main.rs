//! OTLP export end to end: a request through `TraceLayer` whose service makes two outbound
//! calls through `TraceClientLayer` to a loopback server; the exporter sends the spans to a
//! loopback OTLP/HTTP receiver, which decodes them with `prost`. The spans must carry the ids
//! that went over the wire in `traceparent`.

// A failed setup is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod events;
mod fields;
mod loopback;
mod otlp;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt as _, Empty, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use proptest::prelude::*;
use protothrive::identity::Route;
use protothrive::trace::otel::OtlpExporter;
use protothrive::trace::{MatchedRouteLayer, Sampler, TraceClientLayer, TraceLayer};
use tower::{Layer as _, ServiceExt as _, service_fn};
use tracing_subscriber::layer::SubscriberExt as _;

use loopback::{Downstream, Receiver};
use otlp::Value;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER: &str = "00f067aa0ba902b7";

/// An exporter that sends only when flushed (its interval is an hour) and retries twice at
/// once (a millisecond or two apart).
fn exporter(receiver: &Receiver) -> OtlpExporter {
    OtlpExporter::builder(&receiver.endpoint)
        .service_name("otel-test")
        .interval(Duration::from_secs(3600))
        .max_retries(2)
        .retry_backoff(Duration::from_millis(1), Duration::from_millis(2))
        .build()
        .unwrap()
}

/// (exported, dropped, failed)
fn counts(exporter: &OtlpExporter) -> (u64, u64, u64) {
    let s = exporter.stats();
    (s.exported, s.dropped, s.failed)
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// The (trace id, span id, flags) of a `traceparent`.
fn parts(traceparent: &str) -> (String, String, String) {
    let p: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(p.len(), 4, "{traceparent}");
    (p[1].to_owned(), p[2].to_owned(), p[3].to_owned())
}

/// Flushes until `n` spans in all have been exported, within five seconds. A span is handed to
/// the exporter when its last handle drops; a parent also waits for its children to close, so
/// the server span of a request can reach the exporter a little after its response was read.
async fn flush_until(exporter: &OtlpExporter, n: u64) {
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            exporter.flush().await.unwrap();
            if exporter.stats().exported >= n {
                return;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{n} spans exported within 5 s: {:?}", exporter.stats()));
}

/// A receiver, a downstream service, an exporter to the receiver, and this thread's subscriber
/// with the exporter's layer.
struct Setup {
    receiver: Receiver,
    down: Downstream,
    exporter: OtlpExporter,
    _guard: tracing::subscriber::DefaultGuard,
    // Last: released once the subscriber is gone.
    _serial: tokio::sync::MutexGuard<'static, ()>,
}

/// One test at a time holds a subscriber. Scoped subscribers set and dropped on parallel test
/// threads race in `tracing`'s per-callsite interest cache: a callsite first hit while another
/// thread's dispatcher comes or goes can be cached as "never", and the trace layer's request
/// span is then silently disabled for everyone.
static SUBSCRIBED: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Sets `subscriber` as this thread's default and recomputes every callsite's interest for it.
fn subscribe(
    subscriber: impl tracing::Subscriber + Send + Sync + 'static,
) -> tracing::subscriber::DefaultGuard {
    let guard = tracing::subscriber::set_default(subscriber);
    tracing::callsite::rebuild_interest_cache();
    guard
}

impl Setup {
    async fn start() -> Self {
        let serial = SUBSCRIBED.lock().await;
        let receiver = Receiver::start().await;
        let down = Downstream::start().await;
        let exporter = exporter(&receiver);
        let _guard = subscribe(tracing_subscriber::registry().with(exporter.layer()));
        Self {
            receiver,
            down,
            exporter,
            _guard,
            _serial: serial,
        }
    }
}

/// Serves one `GET /items/42` (route `/items/{id}`) whose handler calls `/ok` then `/fail` on
/// `down`; returns the response's `traceparent` once the body has been read to the end (which
/// closes the server span).
async fn serve_one(down: SocketAddr, sampler: Sampler, traceparent: Option<&str>) -> String {
    let http = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let client = TraceClientLayer::new().layer(http);
    let handler = service_fn(move |_req: Request<Empty<Bytes>>| {
        let client = client.clone();
        async move {
            let mut statuses = Vec::new();
            for path in ["/ok", "/fail"] {
                let call = Request::get(format!("http://{down}{path}")).body(Empty::new())?;
                statuses.push(client.clone().oneshot(call).await?.status().as_u16());
            }
            Ok::<_, BoxError>(Response::new(Full::from(format!("{statuses:?}"))))
        }
    });
    let svc = TraceLayer::new()
        .sampler(sampler)
        .layer(MatchedRouteLayer.layer(handler));
    let mut req = Request::get("/items/42").header("user-agent", "otel-test/1");
    if let Some(tp) = traceparent {
        req = req.header("traceparent", tp);
    }
    let mut req = req.body(Empty::new()).unwrap();
    req.extensions_mut().insert(Route::new("/items/{id}"));
    let res = svc.oneshot(req).await.unwrap();
    let out = res.headers()["traceparent"].to_str().unwrap().to_owned();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "[200, 500]");
    out
}

/// [`serve_one`] continuing the caller's sampled trace.
async fn serve_sampled(t: &Setup) -> String {
    serve_one(
        t.down.addr,
        Sampler::default(),
        Some(&format!("00-{TRACE}-{CALLER}-01")),
    )
    .await
}

#[tokio::test]
async fn server_and_client_spans_carry_the_ids_sent_on_the_wire() {
    let mut t = Setup::start().await;

    let incoming = format!("00-{TRACE}-{CALLER}-01");
    let answered = serve_one(t.down.addr, Sampler::default(), Some(&incoming)).await;
    flush_until(&t.exporter, 3).await;

    // The export request itself: path, content type, resource and scope.
    let received = t.receiver.next().await;
    assert_eq!(received.path, "/v1/traces");
    assert_eq!(received.content_type, "application/x-protobuf");
    let rs = &received.request.resource_spans[0];
    assert_eq!(
        otlp::attribute(&rs.resource.as_ref().unwrap().attributes, "service.name"),
        Some(&Value::String("otel-test".into()))
    );
    let scope = rs.scope_spans[0].scope.as_ref().unwrap();
    assert_eq!(scope.name, "protothrive");
    let mut spans = rs.scope_spans[0].spans.clone();
    spans.extend(t.receiver.spans());
    assert_eq!(spans.len(), 3, "{spans:#?}");
    assert_eq!(counts(&t.exporter), (3, 0, 0));

    // One trace: the caller's.
    for s in &spans {
        assert_eq!(s.trace_id, hex(TRACE));
        assert!(s.start_time_unix_nano > 0 && s.start_time_unix_nano <= s.end_time_unix_nano);
        assert_eq!(s.flags & 0xff, 0x01, "sampled");
        for id_field in ["trace_id", "span_id", "parent_span_id", "sampled"] {
            assert_eq!(s.attr(id_field), None, "{id_field} is not an attribute");
        }
    }

    // The server span: the caller's child, with the id the response's traceparent carries.
    let server = spans.iter().find(|s| s.kind == 2).expect("a server span");
    let (trace, span, flags) = parts(&answered);
    assert_eq!((trace.as_str(), flags.as_str()), (TRACE, "01"));
    assert_eq!(server.span_id, hex(&span));
    assert_eq!(server.parent_span_id, hex(CALLER));
    assert_eq!(server.flags & 0x300, 0x300, "the parent is remote");
    assert_eq!(server.name, "GET /items/{id}");
    assert_eq!(server.status, None);
    for (key, value) in [
        ("http.request.method", Value::String("GET".into())),
        ("http.route", Value::String("/items/{id}".into())),
        ("http.response.status_code", Value::Int(200)),
        ("http.response.body.size", Value::Int(10)),
        ("user_agent.original", Value::String("otel-test/1".into())),
    ] {
        assert_eq!(server.attr(key), Some(&value), "{key}");
    }
    match server.attr("request_id") {
        Some(Value::String(id)) => assert_eq!(id.len(), 32),
        other => panic!("request_id: {other:?}"),
    }

    // Each client span: the server span's child, with the id the downstream service received.
    for (path, status, error) in [("/ok", 200, false), ("/fail", 500, true)] {
        let (trace, sent, _) = parts(&t.down.traceparent_of(path));
        assert_eq!(trace, TRACE);
        let client = spans
            .iter()
            .find(|s| s.span_id == hex(&sent))
            .unwrap_or_else(|| panic!("the span of the call to {path}"));
        assert_eq!(client.kind, 3, "{path}");
        assert_eq!(client.parent_span_id, server.span_id, "{path}");
        assert_eq!(client.flags & 0x300, 0x100, "a local parent");
        assert_eq!(client.name, "GET");
        assert_eq!(client.attr("url.path"), Some(&Value::String(path.into())));
        assert_eq!(
            client.attr("http.response.status_code"),
            Some(&Value::Int(status))
        );
        assert_eq!(
            client.status.as_ref().map(|s| s.code),
            error.then_some(2),
            "{path}: status ERROR on a 500 only"
        );
    }
}

#[tokio::test]
async fn an_unsampled_caller_exports_nothing() {
    let mut t = Setup::start().await;

    let unsampled = "00-11111111111111111111111111111111-2222222222222222-00";
    let answered = serve_one(t.down.addr, Sampler::default(), Some(unsampled)).await;
    // The decision travels on: the response and both calls say "not sampled".
    assert!(answered.ends_with("-00"), "{answered}");
    assert!(t.down.traceparent_of("/ok").ends_with("-00"));
    t.exporter.flush().await.unwrap();
    assert_eq!(t.receiver.spans().len(), 0);
    assert_eq!(counts(&t.exporter), (0, 0, 0));

    // A sampled request afterwards is exported alone.
    serve_sampled(&t).await;
    flush_until(&t.exporter, 3).await;
    let spans = t.receiver.spans();
    assert_eq!(spans.len(), 3);
    assert!(spans.iter().all(|s| s.trace_id == hex(TRACE)));
}

#[tokio::test]
async fn traces_this_service_starts_follow_the_configured_ratio() {
    let mut t = Setup::start().await;

    let answered = serve_one(t.down.addr, Sampler::parent_based(0.0), None).await;
    assert!(answered.ends_with("-02"), "random, not sampled: {answered}");
    t.exporter.flush().await.unwrap();
    assert_eq!(t.receiver.spans().len(), 0);

    let answered = serve_one(t.down.addr, Sampler::parent_based(1.0), None).await;
    flush_until(&t.exporter, 3).await;
    let spans = t.receiver.spans();
    assert_eq!(spans.len(), 3);
    let (trace, span, _) = parts(&answered);
    let server = spans.iter().find(|s| s.kind == 2).unwrap();
    assert_eq!(
        (server.trace_id.clone(), server.span_id.clone()),
        (hex(&trace), hex(&span))
    );
    assert!(server.parent_span_id.is_empty(), "a root");
    assert_eq!(server.flags & 0x300, 0x100, "no remote parent");

    // A sampled caller wins over a zero ratio (parent-based).
    serve_one(
        t.down.addr,
        Sampler::parent_based(0.0),
        Some(&format!("00-{TRACE}-{CALLER}-01")),
    )
    .await;
    flush_until(&t.exporter, 6).await;
    assert_eq!(t.receiver.spans().len(), 3);
}

/// Flushes until `n` spans in all have failed, within five seconds (see [`flush_until`]).
/// Each failure must name `status`. A flush may find nothing queued yet (the spans of one
/// request can reach the exporter in two batches): that one answers `Ok` and the loop goes on.
async fn flush_until_failed(exporter: &OtlpExporter, n: u64, status: &str) {
    tokio::time::timeout(Duration::from_secs(5), async {
        while exporter.stats().failed < n {
            match exporter.flush().await {
                Err(err) => assert!(err.message().contains(status), "{err}"),
                Ok(()) => tokio::task::yield_now().await,
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{n} spans failed within 5 s: {:?}", exporter.stats()));
}

#[tokio::test]
async fn a_failing_collector_is_retried_then_reported_and_counted() {
    let mut t = Setup::start().await;
    t.receiver.answer_with(503);
    serve_sampled(&t).await;
    flush_until_failed(&t.exporter, 3, "503").await;
    // The spans may reach the exporter in one batch or two: each batch is sent, then retried
    // twice with the same spans.
    let requests = t.receiver.requests();
    assert_eq!(requests.len() % 3, 0, "{requests:#?}");
    for tries in requests.chunks(3) {
        assert_eq!(tries[0], tries[1]);
        assert_eq!(tries[1], tries[2]);
    }
    let batches = requests.len() as u64 / 3;
    assert_eq!(requests.iter().map(Vec::len).sum::<usize>(), 3 * 3);
    assert_eq!(counts(&t.exporter), (0, 0, 3));
    assert_eq!(t.exporter.stats().retried, 2 * batches);
}

#[tokio::test]
async fn a_collector_that_recovers_gets_the_batch_on_a_retry() {
    let mut t = Setup::start().await;
    t.receiver.answer_next(&[503, 429]);
    serve_sampled(&t).await;
    flush_until(&t.exporter, 3).await;
    // The first batch is answered 503, 429, then accepted: the same spans three times.
    let requests = t.receiver.requests();
    assert!(requests.len() >= 3, "{requests:#?}");
    assert_eq!(requests[0], requests[1]);
    assert_eq!(requests[1], requests[2]);
    assert_eq!(counts(&t.exporter), (3, 0, 0));
    assert_eq!(t.exporter.stats().retried, 2);
}

#[tokio::test]
async fn a_refused_batch_is_not_retried() {
    let mut t = Setup::start().await;
    t.receiver.answer_with(400);
    serve_sampled(&t).await;
    flush_until_failed(&t.exporter, 3, "400").await;
    assert_eq!(t.receiver.spans().len(), 3, "each sent once");
    assert_eq!(counts(&t.exporter), (0, 0, 3));
    assert_eq!(t.exporter.stats().retried, 0);
}

#[tokio::test]
async fn shutdown_sends_what_is_queued_then_drops_and_counts() {
    let mut t = Setup::start().await;
    let sampled = format!("00-{TRACE}-{CALLER}-01");
    serve_one(t.down.addr, Sampler::default(), Some(&sampled)).await;
    t.exporter.shutdown().await.unwrap();
    assert_eq!(t.receiver.spans().len(), 3);

    serve_one(t.down.addr, Sampler::default(), Some(&sampled)).await;
    assert_eq!(counts(&t.exporter), (3, 3, 0));
    let err = t.exporter.flush().await.unwrap_err();
    assert!(err.to_string().contains("has stopped"), "{err}");
}

/// Text longer than the exporter's 4 KiB limit, cut at a character boundary.
fn cut(s: &str) -> String {
    let mut end = s.len().min(4096);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Whatever values a span's fields hold, the receiver decodes the same values.
    #[test]
    fn field_values_arrive_as_recorded(
        text in prop_oneof![".{0,40}", "\\PC{4090,4100}"],
        int in any::<i64>(),
        big in any::<u64>(),
        flag in any::<bool>(),
        float in any::<f64>(),
        span_id in any::<u64>().prop_filter("not zero", |v| *v != 0),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let _serial = SUBSCRIBED.lock().await;
            let mut receiver = Receiver::start().await;
            let exporter = exporter(&receiver);
            let subscriber = tracing_subscriber::registry().with(exporter.layer());
            let span_hex = format!("{span_id:016x}");
            let guard = subscribe(subscriber);
            {
                let _span = tracing::info_span!(
                    target: "protothrive::trace",
                    "request",
                    otel.kind = "server",
                    trace_id = TRACE,
                    span_id = span_hex.as_str(),
                    sampled = true,
                    text = text.as_str(),
                    int,
                    big,
                    flag,
                    float,
                );
            }
            drop(guard);
            exporter.flush().await.unwrap();
            let spans = receiver.spans();
            prop_assert_eq!(spans.len(), 1);
            let s = &spans[0];
            prop_assert_eq!(&s.span_id, &span_id.to_be_bytes().to_vec());
            prop_assert_eq!(&s.name, "request");
            prop_assert_eq!(s.attr("text"), Some(&Value::String(cut(&text))));
            prop_assert_eq!(s.attr("int"), Some(&Value::Int(int)));
            let big_value = i64::try_from(big).map_or_else(|_| Value::String(big.to_string()), Value::Int);
            prop_assert_eq!(s.attr("big"), Some(&big_value));
            prop_assert_eq!(s.attr("flag"), Some(&Value::Bool(flag)));
            match s.attr("float") {
                Some(Value::Double(f)) => prop_assert_eq!(f.to_bits(), float.to_bits()),
                other => prop_assert!(false, "float: {:?}", other),
            }
            Ok(())
        })?;
    }
}
