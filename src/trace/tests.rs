use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::{Layer, Service, ServiceExt, service_fn};

use super::*;
use crate::error::{Problem, RequestId, TraceId, code};
use crate::identity::Route;

const CALLER: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

/// A service that answers with what it saw: the trace context and ids in its extensions.
fn echo()
-> impl Service<Request<()>, Response = Response<Full<Bytes>>, Error = Infallible, Future = impl Send>
+ Clone {
    service_fn(|req: Request<()>| async move {
        let ctx = TraceContext::of(req.extensions()).unwrap().clone();
        let rid = RequestId::of(req.extensions()).unwrap().as_str().to_owned();
        let tid = TraceId::of(req.extensions()).unwrap().as_str().to_owned();
        let body = serde_json::json!({
            "trace": ctx.trace_id_hex(),
            "parent": ctx.parent_id().map(|p| to_hex(&p)),
            "state": ctx.state().as_str(),
            "rid": rid,
            "tid": tid,
        });
        Ok::<_, Infallible>(Response::new(Full::from(body.to_string())))
    })
}

fn send(layer: &TraceLayer, headers: &[(&str, &str)]) -> (Response<()>, serde_json::Value) {
    let mut req = Request::get("/x");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let rt = rt();
    let res = rt
        .block_on(layer.layer(echo()).oneshot(req.body(()).unwrap()))
        .unwrap();
    let (parts, body) = res.into_parts();
    let bytes = rt.block_on(body.collect()).unwrap().to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap();
    (Response::from_parts(parts, ()), json)
}

fn out_traceparent<B>(res: &Response<B>) -> TraceParent {
    TraceParent::parse(res.headers()["traceparent"].as_bytes()).unwrap()
}

#[test]
fn an_incoming_trace_is_continued_with_a_new_span() {
    let (res, seen) = send(
        &TraceLayer::new(),
        &[("traceparent", CALLER), ("tracestate", "congo=t61rcWkgMzE")],
    );
    assert_eq!(seen["trace"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(seen["tid"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(seen["parent"], "00f067aa0ba902b7");
    assert_eq!(seen["state"], "congo=t61rcWkgMzE");
    let out = out_traceparent(&res);
    assert_eq!(to_hex(&out.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_ne!(to_hex(&out.parent_id), "00f067aa0ba902b7");
    assert!(out.sampled());
}

#[test]
fn hostile_trace_headers_restart_the_trace_and_drop_tracestate() {
    for bad in [
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        "garbage",
    ] {
        let (res, seen) = send(
            &TraceLayer::new(),
            &[("traceparent", bad), ("tracestate", "foo=1")],
        );
        assert_ne!(seen["trace"], "4bf92f3577b34da6a3ce929d0e0e4736", "{bad}");
        assert_eq!(seen["parent"], serde_json::Value::Null, "{bad}");
        assert_eq!(seen["state"], "", "{bad}");
        let out = out_traceparent(&res);
        assert_eq!(out.flags & RANDOM, RANDOM, "a new trace id is random");
    }
    // Sent twice.
    let (_, seen) = send(
        &TraceLayer::new(),
        &[("traceparent", CALLER), ("traceparent", CALLER)],
    );
    assert_ne!(seen["trace"], "4bf92f3577b34da6a3ce929d0e0e4736");
}

#[test]
fn untrusted_incoming_traces_are_restarted() {
    let (_, seen) = send(
        &TraceLayer::new().trust_incoming_trace(false),
        &[("traceparent", CALLER)],
    );
    assert_ne!(seen["trace"], "4bf92f3577b34da6a3ce929d0e0e4736");
}

#[test]
fn request_ids_are_kept_when_sane_and_echoed() {
    let (res, seen) = send(&TraceLayer::new(), &[("x-request-id", "abc-123")]);
    assert_eq!(seen["rid"], "abc-123");
    assert_eq!(res.headers()["x-request-id"], "abc-123");
    let (res, seen) = send(&TraceLayer::new(), &[("x-request-id", "a b")]);
    assert_eq!(seen["rid"].as_str().unwrap().len(), 32);
    assert_eq!(res.headers()["x-request-id"], seen["rid"].as_str().unwrap());
    let (_, seen) = send(
        &TraceLayer::new().trust_request_id(false),
        &[("x-request-id", "abc-123")],
    );
    assert_ne!(seen["rid"], "abc-123");
}

#[test]
fn sampling_follows_the_caller_or_the_ratio() {
    let unsampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
    let (res, _) = send(&TraceLayer::new(), &[("traceparent", unsampled)]);
    assert!(!out_traceparent(&res).sampled());
    let never = TraceLayer::new().sampler(Sampler::parent_based(0.0));
    assert!(!out_traceparent(&send(&never, &[]).0).sampled());
    assert!(out_traceparent(&send(&never, &[("traceparent", CALLER)]).0).sampled());
    let ratio = TraceLayer::new().sampler(Sampler::ratio(0.0));
    assert!(!out_traceparent(&send(&ratio, &[("traceparent", CALLER)]).0).sampled());
}

/// The JSON body `svc` answers a request carrying request id `rid` and the caller's trace.
fn problem_from<S>(svc: S, rid: &str) -> serde_json::Value
where
    S: Service<Request<()>, Response = Response<TraceBody<Full<Bytes>>>, Error = Infallible>,
{
    let rt = rt();
    let req = Request::get("/")
        .header("x-request-id", rid)
        .header("traceparent", CALLER)
        .body(())
        .unwrap();
    let res = rt.block_on(svc.oneshot(req)).unwrap();
    let body = rt.block_on(res.into_body().collect()).unwrap().to_bytes();
    serde_json::from_slice(&body).unwrap()
}

#[test]
fn a_problem_rendered_in_a_handler_carries_the_ids() {
    let svc = TraceLayer::new().layer(service_fn(|_req: Request<()>| async {
        // No request extensions at hand: the ids come from the request being served.
        let res = Problem::new(StatusCode::NOT_FOUND, code::NOT_FOUND)
            .render_for(&http::Extensions::new());
        Ok::<_, Infallible>(res.map(Full::new))
    }));
    let json = problem_from(svc, "rid-7");
    assert_eq!(json["request_id"], "rid-7");
    assert_eq!(json["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    // Outside the request, nothing is current any more.
    assert!(current().is_none());
}

#[test]
fn a_panic_becomes_a_500_problem_and_the_count_returns_to_zero() {
    let layer = TraceLayer::new();
    let in_flight = layer.in_flight();
    let svc = layer.layer(service_fn(|req: Request<()>| async move {
        if req.uri().path() == "/boom" {
            panic!("handler bug");
        }
        Ok::<_, Infallible>(Response::new(Full::<Bytes>::default()))
    }));
    let rt = rt();
    let req = Request::get("/boom")
        .header("x-request-id", "rid-9")
        .body(())
        .unwrap();
    let res = rt.block_on(svc.clone().oneshot(req)).unwrap();
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let body = rt.block_on(res.into_body().collect()).unwrap().to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["code"], code::INTERNAL);
    assert_eq!(json["request_id"], "rid-9");
    assert_eq!(in_flight.get(), 0);
    // The service still answers afterwards.
    let res = rt
        .block_on(svc.oneshot(Request::get("/").body(()).unwrap()))
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

#[test]
fn in_flight_lasts_until_the_body_ends_or_is_dropped() {
    let layer = TraceLayer::new();
    let in_flight = layer.in_flight();
    let svc = layer.layer(service_fn(|_req: Request<()>| async {
        Ok::<_, Infallible>(Response::new(Full::from("hello")))
    }));
    let rt = rt();
    let res = rt.block_on(svc.clone().oneshot(Request::new(()))).unwrap();
    assert_eq!(in_flight.get(), 1, "the head is out, the body is not");
    let body = rt.block_on(res.into_body().collect()).unwrap().to_bytes();
    assert_eq!(body, "hello");
    assert_eq!(in_flight.get(), 0);

    let res = rt.block_on(svc.clone().oneshot(Request::new(()))).unwrap();
    assert_eq!(in_flight.get(), 1);
    drop(res);
    assert_eq!(in_flight.get(), 0, "a client that goes away ends it too");

    // A future dropped before it answers (the connection closed mid-request).
    let mut svc = svc;
    let fut = svc.call(Request::new(()));
    assert_eq!(in_flight.get(), 1);
    drop(fut);
    assert_eq!(in_flight.get(), 0);
}

fn render_metrics(run: impl FnOnce()) -> String {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    ::metrics::with_local_recorder(&recorder, run);
    handle.render()
}

#[test]
fn metric_labels_stay_bounded_whatever_paths_clients_send() {
    use rand_paths::paths;
    let text = render_metrics(|| {
        let layer = TraceLayer::new();
        let svc = layer.layer(
            MatchedRouteLayer.layer(service_fn(|req: Request<()>| async move {
                let status = if req.uri().path().len().is_multiple_of(2) {
                    404
                } else {
                    200
                };
                let res = Response::builder()
                    .status(status)
                    .body(Full::<Bytes>::default());
                Ok::<_, Infallible>(res.unwrap())
            })),
        );
        let rt = rt();
        for path in paths(10_000) {
            let req = Request::get(path.as_str()).body(()).unwrap();
            let res = rt.block_on(svc.clone().oneshot(req)).unwrap();
            drop(res);
        }
        let mut req = Request::get("/users/42").body(()).unwrap();
        req.extensions_mut().insert(Route::new("/users/{id}"));
        drop(rt.block_on(svc.oneshot(req)).unwrap());
    });
    let series: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("protothrive_http_requests_total{"))
        .collect();
    assert!(series.len() <= 3, "{series:#?}");
    assert!(
        text.contains(
            r#"protothrive_http_requests_total{method="GET",route="unmatched",status_class="2xx"}"#
        ),
        "{text}"
    );
    assert!(text.contains(r#"route="/users/{id}""#), "{text}");
    assert!(!text.contains("/p/"), "no raw path is a label");
}

/// Random paths, deterministic per run.
mod rand_paths {
    pub(super) fn paths(n: usize) -> Vec<String> {
        (0..n)
            .map(|i| {
                let id = crate::trace::to_hex(&crate::trace::new_span_id());
                format!("/p/{i}/{}", &id[..(i % 16) + 1])
            })
            .collect()
    }
}

#[test]
fn in_flight_counts_on_unmatched_until_routed_then_on_the_route() {
    use std::sync::{Arc, Mutex};
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let gauge = |text: &str, route: &str| -> Option<f64> {
        let series =
            format!(r#"protothrive_http_requests_in_flight{{method="GET",route="{route}"}} "#);
        text.lines()
            .find_map(|l| l.strip_prefix(series.as_str()))
            .map(|v| v.parse().unwrap())
    };
    // What the gauges read while the handler runs, and once the head is out.
    let seen: Arc<Mutex<Option<String>>> = Arc::default();
    ::metrics::with_local_recorder(&recorder, || {
        let inside = seen.clone();
        let h = handle.clone();
        // A router between the trace layer and the route: the route is named after the trace
        // layer has seen the request.
        let router = tower::util::MapRequestLayer::new(|mut req: Request<()>| {
            req.extensions_mut().insert(Route::new("/users/{id}"));
            req
        });
        let svc = TraceLayer::new().layer(router.layer(MatchedRouteLayer.layer(service_fn(
            move |_req: Request<()>| {
                *inside.lock().unwrap() = Some(h.render());
                async { Ok::<_, Infallible>(Response::new(Full::from("hi"))) }
            },
        ))));
        let rt = rt();
        let req = Request::get("/users/42").body(()).unwrap();
        let res = rt.block_on(svc.oneshot(req)).unwrap();
        let text = handle.render();
        assert_eq!(gauge(&text, "/users/{id}"), Some(1.0), "{text}");
        assert_eq!(gauge(&text, "unmatched"), Some(0.0), "{text}");
        drop(res);
    });
    let during = seen.lock().unwrap().clone().unwrap();
    assert_eq!(gauge(&during, "/users/{id}"), Some(1.0), "{during}");
    assert_eq!(gauge(&during, "unmatched"), Some(0.0), "{during}");
    let after = handle.render();
    assert_eq!(gauge(&after, "/users/{id}"), Some(0.0), "{after}");
    assert_eq!(gauge(&after, "unmatched"), Some(0.0), "{after}");
}

#[test]
fn a_route_matched_before_the_trace_layer_counts_from_the_start() {
    // Behind axum's `Router::layer` the route is in the request when the trace layer sees it:
    // no `MatchedRouteLayer`, and `unmatched` is never counted.
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    ::metrics::with_local_recorder(&recorder, || {
        let h = handle.clone();
        let svc = TraceLayer::new().layer(service_fn(move |_req: Request<()>| {
            let during = h.render();
            async move { Ok::<_, Infallible>(Response::new(Full::from(during))) }
        }));
        let mut req = Request::get("/users/42").body(()).unwrap();
        req.extensions_mut().insert(Route::new("/users/{id}"));
        let res = rt().block_on(svc.oneshot(req)).unwrap();
        let during = String::from_utf8(
            rt().block_on(res.into_body().collect())
                .unwrap()
                .to_bytes()
                .to_vec(),
        )
        .unwrap();
        let in_flight =
            r#"protothrive_http_requests_in_flight{method="GET",route="/users/{id}"} 1"#;
        assert!(during.contains(in_flight), "{during}");
        assert!(!during.contains("unmatched"), "{during}");
    });
    let after = handle.render();
    assert!(
        after.contains(
            r#"protothrive_http_requests_total{method="GET",route="/users/{id}",status_class="2xx"} 1"#
        ),
        "{after}"
    );
    assert!(!after.contains("unmatched"), "{after}");
}

#[test]
fn one_service_counts_each_route_it_serves_on_that_route() {
    // Under `Router::layer` a route's service (cloned per request) keeps its route's handles;
    // a service that serves several routes still counts each request on its own route.
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    ::metrics::with_local_recorder(&recorder, || {
        let svc = TraceLayer::new().layer(service_fn(|_req: Request<()>| async {
            Ok::<_, Infallible>(Response::new(Full::from("ok")))
        }));
        for route in ["/a", "/b", "/a", "/b", "/b"] {
            let mut req = Request::get(route).body(()).unwrap();
            req.extensions_mut().insert(Route::new(route));
            let res = rt().block_on(svc.clone().oneshot(req)).unwrap();
            rt().block_on(res.into_body().collect()).unwrap();
        }
    });
    let text = handle.render();
    for (route, n) in [("/a", 2), ("/b", 3)] {
        let line = format!(
            r#"protothrive_http_requests_total{{method="GET",route="{route}",status_class="2xx"}} {n}"#
        );
        assert!(text.contains(&line), "{line} in {text}");
    }
}

#[test]
fn the_ids_and_the_context_travel_in_one_extension_that_problems_read() {
    // A request-id layer outside the trace layer: both write the same one extension.
    let layers = tower::ServiceBuilder::new()
        .layer(crate::request_id::RequestIdLayer::new())
        .layer(TraceLayer::new());
    let svc = layers.service(service_fn(|req: Request<()>| async move {
        assert_eq!(req.extensions().len(), 1, "one extension for every id");
        assert!(crate::identity::RequestContext::get(req.extensions()).is_some());
        assert!(TraceContext::of(req.extensions()).is_some());
        // A problem rendered from the request's extensions (not from `current`).
        let problem = Problem::new(StatusCode::BAD_REQUEST, code::BAD_REQUEST);
        let ids = problem.clone().with_ids_from(req.extensions()).to_json();
        let res = problem.render_for(req.extensions());
        assert_eq!(ids["request_id"], "rid-9");
        Ok::<_, Infallible>(res.map(Full::new))
    }));
    let json = problem_from(svc, "rid-9");
    assert_eq!(json["request_id"], "rid-9");
    assert_eq!(json["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
}

#[test]
fn a_forwarded_request_carries_the_outbound_calls_context() {
    // A proxy hands the incoming request (and its context) to an outbound client.
    let server = TraceContext::root(true);
    let mut req = Request::new(());
    crate::identity::RequestContext::get_mut(req.extensions_mut()).trace = Some(server.clone());
    let client = TraceClientLayer::new().layer(service_fn(|req: Request<()>| async move {
        let seen = TraceContext::of(req.extensions()).unwrap().clone();
        let sent = TraceParent::parse(req.headers()["traceparent"].as_bytes()).unwrap();
        Ok::<_, Infallible>(Response::new((seen, sent)))
    }));
    let (seen, sent) = rt().block_on(client.oneshot(req)).unwrap().into_body();
    assert_eq!(
        seen.parent_id(),
        Some(server.span_id()),
        "a child of the server span"
    );
    assert_eq!(
        sent.parent_id,
        seen.span_id(),
        "the call's span is what went out"
    );
}
