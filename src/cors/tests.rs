use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use http::header::VARY;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use proptest::prelude::*;
use tower_layer::Layer;
use tower_service::Service;

use super::*;
use crate::error::ConfigError;
use crate::response::ResponseBody;

/// The inner service: answers with the status in `x-status` (default 200) and its own `Vary`, and
/// counts calls in a response header, so a test sees whether a request got through.
// `service_fn` hands the request over by value.
#[allow(clippy::needless_pass_by_value)]
fn app(req: Request<()>) -> std::future::Ready<Result<Response<String>, Infallible>> {
    let status = req
        .headers()
        .get("x-status")
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .unwrap_or(200);
    let mut res = Response::new(format!("app {}", req.method()));
    *res.status_mut() = StatusCode::from_u16(status).unwrap();
    res.headers_mut()
        .insert("x-reached", "yes".parse().unwrap());
    if req.headers().contains_key("x-app-vary") {
        res.headers_mut()
            .insert(VARY, "Accept-Encoding".parse().unwrap());
    }
    std::future::ready(Ok(res))
}

fn call(layer: &CorsLayer, req: Request<()>) -> Response<ResponseBody<String>> {
    let mut svc = layer.layer(tower::service_fn(app));
    let mut fut = pin!(svc.call(req));
    match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(Ok(res)) => res,
        _ => panic!("the test service is always ready"),
    }
}

fn layer() -> CorsLayer {
    CorsLayer::builder()
        .allow_origin(AllowOrigin::list([
            "https://app.example.com",
            "https://*.example.org",
            "http://localhost:5173",
        ]))
        .allow_methods([Method::GET, Method::PUT, Method::DELETE])
        .allow_headers(["authorization", "content-type"])
        .allow_credentials(true)
        .build()
        .unwrap()
}

fn req(method: Method, headers: &[(&str, &str)]) -> Request<()> {
    let mut b = Request::builder().method(method).uri("/api/x");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(()).unwrap()
}

fn h<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).map(|v| v.to_str().unwrap())
}

#[test]
fn preflights_table() {
    // (headers, status, reached the app, allow-origin)
    type Case<'a> = (&'a [(&'a str, &'a str)], u16, bool, Option<&'a str>);
    let cases: &[Case<'_>] = &[
        (
            &[
                ("origin", "https://app.example.com"),
                ("access-control-request-method", "PUT"),
            ],
            204,
            false,
            Some("https://app.example.com"),
        ),
        (
            &[
                ("origin", "https://app.example.com"),
                ("access-control-request-method", "PUT"),
                (
                    "access-control-request-headers",
                    "Authorization, content-type",
                ),
            ],
            204,
            false,
            Some("https://app.example.com"),
        ),
        (
            &[
                ("origin", "https://eu.example.org"),
                ("access-control-request-method", "DELETE"),
            ],
            204,
            false,
            Some("https://eu.example.org"),
        ),
        // Safelisted methods need no listing.
        (
            &[
                ("origin", "https://app.example.com"),
                ("access-control-request-method", "POST"),
            ],
            204,
            false,
            Some("https://app.example.com"),
        ),
        // Disallowed origin, method, header: 403, never the app.
        (
            &[
                ("origin", "https://evil.example"),
                ("access-control-request-method", "GET"),
            ],
            403,
            false,
            None,
        ),
        (
            &[
                ("origin", "https://example.org.evil.net"),
                ("access-control-request-method", "GET"),
            ],
            403,
            false,
            None,
        ),
        (
            &[
                ("origin", "https://app.example.com"),
                ("access-control-request-method", "PATCH"),
            ],
            403,
            false,
            None,
        ),
        (
            &[
                ("origin", "https://app.example.com"),
                ("access-control-request-method", "put"),
            ],
            403,
            false,
            None,
        ),
        (
            &[
                ("origin", "https://app.example.com"),
                ("access-control-request-method", "PUT"),
                ("access-control-request-headers", "x-secret"),
            ],
            403,
            false,
            None,
        ),
        (
            &[
                ("origin", "https://app.example.com"),
                ("access-control-request-method", "PUT"),
                ("access-control-request-headers", "content-type, x-secret"),
            ],
            403,
            false,
            None,
        ),
        (
            &[("access-control-request-method", "PUT")],
            403,
            false,
            None,
        ),
        (
            &[("origin", "null"), ("access-control-request-method", "GET")],
            403,
            false,
            None,
        ),
        (
            &[
                ("origin", "https://app.example.com, https://eu.example.org"),
                ("access-control-request-method", "GET"),
            ],
            403,
            false,
            None,
        ),
        // OPTIONS without Access-Control-Request-Method is the application's.
        (
            &[("origin", "https://app.example.com")],
            200,
            true,
            Some("https://app.example.com"),
        ),
        (&[], 200, true, None),
    ];
    let layer = layer();
    for (i, (headers, status, reached, allow)) in cases.iter().enumerate() {
        let res = call(&layer, req(Method::OPTIONS, headers));
        let hs = res.headers();
        assert_eq!(res.status(), *status, "case {i}");
        assert_eq!(hs.contains_key("x-reached"), *reached, "case {i}");
        assert_eq!(h(hs, "access-control-allow-origin"), *allow, "case {i}");
        if *status == 403 {
            assert_eq!(
                h(hs, "content-type"),
                Some("application/problem+json"),
                "case {i}"
            );
        }
        if *status == 204 {
            assert_eq!(
                h(hs, "access-control-allow-methods"),
                Some("GET, PUT, DELETE")
            );
            assert_eq!(
                h(hs, "access-control-allow-headers"),
                Some("authorization, content-type")
            );
            assert_eq!(h(hs, "access-control-max-age"), Some("600"));
            assert_eq!(h(hs, "access-control-allow-credentials"), Some("true"));
        }
        if !*reached {
            assert_eq!(
                h(hs, "vary"),
                Some("Origin, Access-Control-Request-Method, Access-Control-Request-Headers"),
                "case {i}"
            );
        }
    }
}

#[test]
fn refused_preflight_is_a_cors_problem() {
    let res = call(
        &layer(),
        req(
            Method::OPTIONS,
            &[
                ("origin", "https://evil.example"),
                ("access-control-request-method", "GET"),
            ],
        ),
    );
    let body = match http_body_util::BodyExt::collect(res.into_body()).now_or_never() {
        Some(Ok(c)) => c.to_bytes(),
        _ => panic!("body"),
    };
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["code"], "CORS-403");
}

trait NowOrNever: Future + Sized {
    fn now_or_never(self) -> Option<Self::Output> {
        let mut fut = pin!(self);
        match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(v) => Some(v),
            Poll::Pending => None,
        }
    }
}
impl<F: Future> NowOrNever for F {}

#[test]
fn actual_responses_table() {
    // (headers, allow-origin, vary)
    type Case<'a> = (&'a [(&'a str, &'a str)], Option<&'a str>, &'a str);
    let cases: &[Case<'_>] = &[
        (
            &[("origin", "https://app.example.com")],
            Some("https://app.example.com"),
            "Origin",
        ),
        (
            &[("origin", "HTTPS://APP.EXAMPLE.COM:443")],
            Some("HTTPS://APP.EXAMPLE.COM:443"),
            "Origin",
        ),
        (&[("origin", "https://evil.example")], None, "Origin"),
        (&[], None, "Origin"),
        (
            &[("origin", "https://app.example.com"), ("x-app-vary", "1")],
            Some("https://app.example.com"),
            "Accept-Encoding, Origin",
        ),
        (
            &[("origin", "https://app.example.com"), ("x-status", "401")],
            Some("https://app.example.com"),
            "Origin",
        ),
        (
            &[("origin", "https://app.example.com"), ("x-status", "403")],
            Some("https://app.example.com"),
            "Origin",
        ),
        (
            &[("origin", "https://app.example.com"), ("x-status", "429")],
            Some("https://app.example.com"),
            "Origin",
        ),
        (
            &[("origin", "https://app.example.com"), ("x-status", "503")],
            Some("https://app.example.com"),
            "Origin",
        ),
        (&[("origin", "https://a.example.com")], None, "Origin"),
        (&[("origin", "null")], None, "Origin"),
    ];
    let layer = layer();
    for (i, (headers, allow, vary)) in cases.iter().enumerate() {
        for method in [Method::GET, Method::PUT] {
            let res = call(&layer, req(method.clone(), headers));
            let hs = res.headers();
            assert!(hs.contains_key("x-reached"), "case {i}");
            assert_eq!(h(hs, "access-control-allow-origin"), *allow, "case {i}");
            assert_eq!(h(hs, "vary"), Some(*vary), "case {i}");
            assert_eq!(hs.get_all(VARY).iter().count(), 1, "case {i}");
            let cred = allow.map(|_| "true");
            assert_eq!(h(hs, "access-control-allow-credentials"), cred, "case {i}");
            let expose = allow.map(|_| "x-request-id, ratelimit, ratelimit-policy, retry-after, api-version, deprecation, sunset, link");
            assert_eq!(h(hs, "access-control-expose-headers"), expose, "case {i}");
        }
    }
}

#[test]
fn two_origin_headers_are_refused() {
    let mut r = req(Method::GET, &[("origin", "https://app.example.com")]);
    r.headers_mut()
        .append("origin", "https://app.example.com".parse().unwrap());
    let res = call(&layer(), r);
    assert!(res.headers().get("access-control-allow-origin").is_none());
}

#[test]
fn wildcard_origin_without_credentials() {
    let layer = CorsLayer::builder()
        .allow_origin(AllowOrigin::any())
        .build()
        .unwrap();
    let res = call(
        &layer,
        req(Method::GET, &[("origin", "https://anyone.example")]),
    );
    assert_eq!(h(res.headers(), "access-control-allow-origin"), Some("*"));
    assert_eq!(h(res.headers(), "vary"), None);
    assert_eq!(h(res.headers(), "access-control-allow-credentials"), None);
}

#[test]
fn private_network_access_only_when_configured() {
    let pna = [
        ("origin", "https://app.example.com"),
        ("access-control-request-method", "GET"),
        ("access-control-request-private-network", "true"),
    ];
    let off = call(&layer(), req(Method::OPTIONS, &pna));
    assert_eq!(off.status(), 204);
    assert!(
        off.headers()
            .get("access-control-allow-private-network")
            .is_none()
    );
    let on_layer = CorsLayer::builder()
        .allow_origin("https://app.example.com")
        .allow_private_network(true)
        .build()
        .unwrap();
    let on = call(&on_layer, req(Method::OPTIONS, &pna));
    assert_eq!(
        h(on.headers(), "access-control-allow-private-network"),
        Some("true")
    );
    assert!(
        h(on.headers(), "vary")
            .unwrap()
            .ends_with("Access-Control-Request-Private-Network")
    );
}

#[test]
fn build_errors_table() {
    let base = || CorsLayer::builder().allow_origin("https://app.example.com");
    let cred = |w: &str| {
        format!(
            "CORS: credentials cannot be combined with {w} (browsers refuse `*` with credentials, \
             and a mirrored origin lets every site read every user's data); list exact values"
        )
    };
    let expose = |h: &str| {
        format!("CORS: never expose `{h}` to other origins; remove it from expose_headers")
    };
    let cases: Vec<(&str, CorsLayerBuilder, String)> = vec![
        (
            "no origin",
            CorsLayer::builder(),
            "CORS: set allow_origin (an exact origin, a list, a pattern or a predicate)".to_owned(),
        ),
        (
            "any + credentials",
            CorsLayer::builder()
                .allow_origin(AllowOrigin::any())
                .allow_credentials(true),
            cred("an origin wildcard or a mirrored origin"),
        ),
        (
            "mirror + credentials",
            CorsLayer::builder()
                .allow_origin(AllowOrigin::mirror_request())
                .allow_credentials(true),
            cred("an origin wildcard or a mirrored origin"),
        ),
        (
            "any method + credentials",
            base().allow_any_method().allow_credentials(true),
            cred("allow_any_method"),
        ),
        (
            "any header + credentials",
            base().allow_any_header().allow_credentials(true),
            cred("allow_any_header"),
        ),
        (
            "star header + credentials",
            base().allow_headers(["*"]).allow_credentials(true),
            cred("allow_any_header"),
        ),
        (
            "any expose + credentials",
            base().expose_any_header().allow_credentials(true),
            cred("expose_any_header"),
        ),
        (
            "star expose + credentials",
            base().expose_headers(["*"]).allow_credentials(true),
            cred("expose_any_header"),
        ),
        (
            "expose set-cookie",
            base().expose_headers(["x-request-id", "Set-Cookie"]),
            expose("set-cookie"),
        ),
        (
            "expose authorization",
            base().expose_headers(["authorization"]),
            expose("authorization"),
        ),
        (
            "bad header",
            base().allow_headers(["bad header"]),
            "CORS: `bad header` is not a header name".to_owned(),
        ),
        (
            "bad origin",
            CorsLayer::builder().allow_origin("https://app.example.com/"),
            "CORS: `https://app.example.com/` is not an origin; write `scheme://host[:port]` with \
             no path or trailing slash, such as https://app.example.com"
                .to_owned(),
        ),
        (
            "star in list",
            CorsLayer::builder().allow_origin(AllowOrigin::list(["*"])),
            "CORS: `*` in an origin list; use AllowOrigin::any() (never with credentials)"
                .to_owned(),
        ),
    ];
    for (what, builder, message) in cases {
        let err = builder.build().err();
        assert_eq!(
            err.as_ref().map(ConfigError::message),
            Some(&*message),
            "{what}"
        );
    }
    // Wildcards without credentials, and a mirrored origin, are fine.
    let _any = CorsLayer::builder()
        .allow_origin(AllowOrigin::any())
        .allow_any_header()
        .allow_any_method()
        .expose_any_header()
        .build()
        .unwrap();
    let _mirror = CorsLayer::builder()
        .allow_origin(AllowOrigin::mirror_request())
        .build()
        .unwrap();
}

/// The reference matcher: plain string operations on normalised text, no shared code.
fn reference(allowed: &[&str], origin: &str) -> bool {
    fn norm(s: &str) -> Option<(String, String, String)> {
        let (scheme, rest) = s.split_once("://")?;
        let (host, port) = match rest.rsplit_once(':') {
            Some((_, p)) if p.is_empty() || p.starts_with('0') => return None,
            Some((h, p)) if !rest.ends_with(']') => (h, p.to_owned()),
            _ => (rest, String::new()),
        };
        let scheme = scheme.to_lowercase();
        let port = match (scheme.as_str(), port.as_str()) {
            ("https", "443") | ("http", "80") => String::new(),
            _ => port,
        };
        let host = host.to_lowercase();
        let ok_host = !host.is_empty()
            && host
                .split('.')
                .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
        let ok_port = port.is_empty() || port.parse::<u16>().is_ok() && port.len() <= 5;
        (ok_host && ok_port && scheme.chars().all(|c| c.is_ascii_alphabetic()))
            .then_some((scheme, host, port))
    }
    let Some((s, h, p)) = norm(origin) else {
        return false;
    };
    allowed.iter().any(|a| {
        if let Some((ascheme, rest)) = a.split_once("://*.") {
            let Some((s2, suffix, p2)) = norm(&format!("{ascheme}://{rest}")) else {
                return false;
            };
            s == s2 && p == p2 && h.ends_with(&format!(".{suffix}"))
        } else {
            norm(a) == Some((s.clone(), h.clone(), p.clone()))
        }
    })
}

fn origin_strategy() -> impl Strategy<Value = String> {
    let scheme = prop::sample::select(vec!["https", "http", "HTTPS", "ftp"]);
    let label = prop::sample::select(vec![
        "a",
        "app",
        "eu",
        "example",
        "EXAMPLE",
        "evil",
        "com",
        "org",
        "net",
        "evilexample",
        "x-y",
        "1",
    ]);
    let host = prop::collection::vec(label, 1..5).prop_map(|l| l.join("."));
    let port = prop::sample::select(vec![
        "", ":443", ":80", ":8443", ":5173", ":0443", ":", ":99999",
    ]);
    let tail = prop::sample::select(vec!["", "", "", "/", "/x", ",https://app.example.com"]);
    (scheme, host, port, tail).prop_map(|(s, h, p, t)| format!("{s}://{h}{p}{t}"))
}

proptest! {
    #[test]
    fn matching_agrees_with_the_reference(origin in origin_strategy()) {
        let allowed = ["https://app.example.com", "https://*.example.org", "http://*.example.com:8443", "http://evil.net:5173"];
        let ours = AllowOrigin::list(allowed).matches(&origin);
        prop_assert_eq!(ours, reference(&allowed, &origin), "{}", origin);
    }
}

#[test]
fn a_byte_equal_origin_matches_without_parsing_and_nothing_else_changes() {
    let allow = AllowOrigin::list(["https://App.Example.com:8443", "http://[::1]:3000"]);
    for (origin, want) in [
        ("https://app.example.com:8443", true),
        ("https://APP.example.com:8443", true),
        ("https://app.example.com:8443/", false),
        ("https://app.example.com", false),
        ("http://app.example.com:8443", false),
        ("http://[::1]:3000", true),
        ("http://::1:3000", false),
    ] {
        assert_eq!(allow.matches(origin), want, "{origin}");
    }
}
