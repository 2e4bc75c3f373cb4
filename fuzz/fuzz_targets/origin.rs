//! Origin parsing and matching over arbitrary `Origin` values and configured entries, and the CORS
//! layer over arbitrary preflights: never a panic; a match is always one well-formed serialized
//! origin (or a listed `null`); a pattern match is always whole labels under the suffix, same scheme
//! and port; matching ignores the case of scheme and host; a refused preflight never reaches the app.
#![no_main]

use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use arbitrary::Arbitrary;
use http::{Method, Request, Response};
use libfuzzer_sys::fuzz_target;
use protothrive::cors::{AllowOrigin, CorsLayer, is_serialized_origin};
use tower::{Layer, Service, service_fn};

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    origin: &'a str,
    entry: &'a str,
    request_method: &'a str,
    request_headers: &'a str,
}

const LIST: [&str; 4] = [
    "https://app.example.com",
    "https://*.example.org",
    "http://localhost:5173",
    "http://*.example.net:8443",
];

fuzz_target!(|input: Input<'_>| {
    let list = AllowOrigin::list(LIST);
    let matched = list.matches(input.origin);
    if matched {
        assert!(is_serialized_origin(input.origin), "{:?}", input.origin);
        assert!(!input.origin.contains(','));
        let lower = input.origin.to_ascii_lowercase();
        let (scheme, rest) = lower.split_once("://").unwrap();
        let host_port = rest;
        let ok = LIST.iter().any(|e| {
            let (es, erest) = e.split_once("://").unwrap();
            if let Some(suffix) = erest.strip_prefix("*.") {
                es == scheme
                    && (host_port.ends_with(&format!(".{suffix}"))
                        || (!suffix.contains(':')
                            && es == "https"
                            && host_port.ends_with(&format!(".{suffix}:443"))))
            } else {
                es == scheme
                    && (host_port == erest
                        || (es == "https" && host_port == format!("{erest}:443"))
                        || (es == "http" && host_port == format!("{erest}:80")))
            }
        });
        assert!(ok, "{:?}", input.origin);
    }
    if input.origin != "null" {
        assert_eq!(matched, list.matches(&input.origin.to_ascii_uppercase()));
    }

    // An arbitrary configured entry: never a panic, and a match still needs a well-formed origin.
    let custom = AllowOrigin::list([input.entry]);
    if custom.matches(input.origin) {
        assert!(input.origin == "null" || is_serialized_origin(input.origin));
    }

    // The layer: a refused preflight never reaches the inner service.
    let Ok(layer) = CorsLayer::builder()
        .allow_origin(AllowOrigin::list(LIST))
        .allow_methods([Method::GET, Method::PUT])
        .allow_headers(["authorization", "content-type"])
        .allow_credentials(true)
        .build()
    else {
        panic!("valid configuration refused");
    };
    let mut req = Request::options("/x");
    for (name, value) in [
        ("origin", input.origin),
        ("access-control-request-method", input.request_method),
        ("access-control-request-headers", input.request_headers),
    ] {
        req = req.header(name, value);
    }
    let Ok(req) = req.body(()) else { return };
    let mut svc = layer.layer(service_fn(|_req: Request<()>| async {
        Ok::<_, Infallible>(Response::new(String::from("reached")))
    }));
    let mut fut = pin!(svc.call(req));
    let Poll::Ready(Ok(res)) = fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) else {
        panic!("the layer answers a preflight at once");
    };
    assert!(
        res.status() == 204 || res.status() == 403,
        "{}",
        res.status()
    );
    if res.status() == 204 {
        assert!(matched);
    }
});
