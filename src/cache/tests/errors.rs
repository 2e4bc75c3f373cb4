//! What fails: the inner service's errors pass through as they are; the cache's own failures (a
//! body that breaks while buffered, `only-if-cached` with nothing to give) are problem responses.

use std::convert::Infallible;

use super::*;
use crate::error::{RequestId, code};

/// An error of the inner service that is neither boxed nor `std::error::Error`.
#[derive(Debug, Clone, PartialEq)]
struct Down(usize);

#[tokio::test]
async fn the_inner_service_error_passes_through_as_the_same_value() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let inner = service_fn(move |_req: Request<()>| {
        let n = c.fetch_add(1, Ordering::SeqCst) + 1;
        async move {
            match n {
                1 => Ok(resp(200, &[("cache-control", "max-age=60")], "good")),
                _ => Err(Down(n)),
            }
        }
    });
    let clock = ManualClock::default();
    let svc = CacheLayer::builder()
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap()
        .layer(inner);
    let ok = svc.clone().oneshot(get(&[])).await.unwrap();
    assert_eq!(ok.status(), 200);
    clock.advance(Duration::from_secs(61));
    let other = || Request::get("/other").header("host", "api.example.com");
    // Revalidating a stale entry, a miss, a `HEAD`, and an unsafe method: each is the origin's
    // own error, typed `Down`.
    let cases: [(&str, Request<()>, Down); 4] = [
        ("revalidation", get(&[]), Down(2)),
        ("miss", other().body(()).unwrap(), Down(3)),
        ("head", other().method("HEAD").body(()).unwrap(), Down(4)),
        ("post", other().method("POST").body(()).unwrap(), Down(5)),
    ];
    for (name, req, want) in cases {
        let e: Down = svc.clone().oneshot(req).await.unwrap_err();
        assert_eq!(e, want, "{name}");
    }
}

/// A body that sends `"par"`, then fails.
struct Breaks(bool);

impl http_body::Body for Breaks {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let first = std::mem::replace(&mut self.0, false);
        std::task::Poll::Ready(Some(if first {
            Ok(http_body::Frame::data(Bytes::from_static(b"par")))
        } else {
            Err(std::io::Error::other("connection reset"))
        }))
    }
}

#[tokio::test]
async fn a_body_that_fails_while_buffered_is_a_502_problem_and_is_not_stored() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let inner = service_fn(move |_req: Request<()>| {
        c.fetch_add(1, Ordering::SeqCst);
        async {
            Ok::<_, Infallible>(
                Response::builder()
                    .header("cache-control", "max-age=60")
                    .body(Breaks(true))
                    .unwrap(),
            )
        }
    });
    let layer = CacheLayer::builder().build().unwrap();
    let svc = layer.layer(inner);
    for n in 1..=2 {
        let mut req = get(&[]);
        req.extensions_mut().insert(RequestId::new("req-7"));
        let res = svc.clone().oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(res.headers()["content-type"], "application/problem+json");
        assert_eq!(
            cache_status(res.headers()),
            "protothrive; fwd=uri-miss; fwd-status=200; detail=body-error"
        );
        let body = res.into_body().collect().await.unwrap().to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["code"], code::CACHE_UPSTREAM_BODY);
        assert_eq!(json["code"], "CACHE-502");
        assert_eq!(json["status"], 502);
        assert_eq!(json["request_id"], "req-7");
        assert_eq!(calls.load(Ordering::SeqCst), n);
    }
    assert_eq!(layer.handle().stats().stored, 0);
}

#[tokio::test]
async fn only_if_cached_with_nothing_stored_is_a_504_problem() {
    let f = fixture(|_, _| Ok(resp(200, &[("cache-control", "max-age=60")], "x")));
    let (status, headers, body) = send(&f.svc, get(&[("cache-control", "only-if-cached")])).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(
        cache_status(&headers),
        "protothrive; fwd=request; detail=only-if-cached"
    );
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["code"], code::CACHE_ONLY_IF_CACHED);
    assert_eq!(json["code"], "CACHE-504");
    assert_eq!(f.seen.calls(), 0);
}
