//! The trace layer's request span, field by field, as a `tracing` layer records it.

use std::convert::Infallible;

use http::{Request, Response};
use http_body_util::{BodyExt as _, Full};
use protothrive::identity::Route;
use protothrive::trace::{MatchedRouteLayer, TraceLayer};
use tower::{Layer as _, ServiceExt as _, service_fn};
use tracing_subscriber::layer::SubscriberExt as _;

use crate::{CALLER, TRACE};

/// Collects the fields recorded on spans, by span name.
mod capture {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing_subscriber::layer::{Context, Layer};
    use tracing_subscriber::registry::LookupSpan;

    pub(super) type Fields = Arc<Mutex<Vec<(String, BTreeMap<String, String>)>>>;

    pub(super) struct Capture(pub(super) Fields);

    struct Visitor<'a>(&'a mut BTreeMap<String, String>);

    impl Visit for Visitor<'_> {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            self.0.insert(
                field.name().to_owned(),
                format!("{value:?}").trim_matches('"').to_owned(),
            );
        }
        fn record_str(&mut self, field: &Field, value: &str) {
            self.0.insert(field.name().to_owned(), value.to_owned());
        }
    }

    impl<S: tracing::Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
        fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
            let mut fields = BTreeMap::new();
            attrs.record(&mut Visitor(&mut fields));
            if let Some(span) = ctx.span(id) {
                span.extensions_mut().insert(fields);
            }
        }
        fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
            if let Some(span) = ctx.span(id)
                && let Some(fields) = span.extensions_mut().get_mut::<BTreeMap<String, String>>()
            {
                values.record(&mut Visitor(fields));
            }
        }
        fn on_close(&self, id: Id, ctx: Context<'_, S>) {
            if let Some(span) = ctx.span(&id) {
                let fields = span
                    .extensions_mut()
                    .remove::<BTreeMap<String, String>>()
                    .unwrap_or_default();
                self.0
                    .lock()
                    .unwrap()
                    .push((span.name().to_owned(), fields));
            }
        }
    }
}

#[tokio::test]
async fn the_span_has_the_semantic_convention_fields_and_closes_with_the_body() {
    let _serial = crate::SUBSCRIBED.lock().await;
    let fields = capture::Fields::default();
    let subscriber = tracing_subscriber::registry().with(capture::Capture(fields.clone()));
    {
        let _guard = crate::subscribe(subscriber);
        // The client address as the stack resolves it: ClientIpLayer writes it into the
        // request context, where the span must find it.
        let svc = protothrive::client_ip::ClientIpLayer::new().layer(TraceLayer::new().layer(
            MatchedRouteLayer.layer(service_fn(|_req: Request<()>| async {
                Ok::<_, Infallible>(Response::new(Full::from("hello")))
            })),
        ));
        let mut req = Request::get("/users/42?secret=1")
            .header("user-agent", "probe/1.0")
            .header("traceparent", format!("00-{TRACE}-{CALLER}-01"))
            .header("x-request-id", "rid-1")
            .body(())
            .unwrap();
        req.extensions_mut().insert(Route::new("/users/{id}"));
        req.extensions_mut()
            .insert("192.0.2.7:40000".parse::<std::net::SocketAddr>().unwrap());
        let res = svc.oneshot(req).await.unwrap();
        assert!(
            fields.lock().unwrap().is_empty(),
            "open until the body ends"
        );
        res.into_body().collect().await.unwrap();
    }
    let spans = fields.lock().unwrap();
    let (name, f) = &spans[0];
    assert_eq!(name, "request");
    let get = |k: &str| f.get(k).map(String::as_str);
    assert_eq!(get("otel.kind"), Some("server"));
    assert_eq!(get("http.request.method"), Some("GET"));
    assert_eq!(get("http.route"), Some("/users/{id}"));
    assert_eq!(get("http.response.status_code"), Some("200"));
    assert_eq!(get("http.response.body.size"), Some("5"));
    assert_eq!(get("client.address"), Some("192.0.2.7"));
    assert_eq!(get("user_agent.original"), Some("probe/1.0"));
    assert_eq!(get("trace_id"), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
    assert_eq!(get("parent_span_id"), Some("00f067aa0ba902b7"));
    assert_eq!(get("request_id"), Some("rid-1"));
    assert!(
        !f.values().any(|v| v.contains("secret")),
        "no raw path or query: {f:?}"
    );
}
