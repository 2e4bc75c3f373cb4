//! Revalidation with 304 merges, clients' own conditionals, `stale-while-revalidate` and `stale-if-error`.

use super::*;

#[tokio::test]
async fn revalidates_with_etag_and_merges_the_304() {
    let f = fixture(|req, n| {
        if n > 1 {
            assert_eq!(req.headers()["if-none-match"], "\"v1\"");
            return Ok(resp(
                304,
                &[
                    ("etag", "\"v1\""),
                    ("cache-control", "max-age=120"),
                    ("x-new", "yes"),
                ],
                "",
            ));
        }
        Ok(resp(
            200,
            &[
                ("etag", "\"v1\""),
                ("cache-control", "max-age=60"),
                ("content-type", "text/plain"),
            ],
            "hello",
        ))
    });
    send(&f.svc, get(&[])).await;
    f.clock.advance(Duration::from_secs(61));
    let (code, h, body) = send(&f.svc, get(&[])).await;
    assert_eq!((code, &body[..]), (StatusCode::OK, &b"hello"[..]));
    assert_eq!(
        cache_status(&h),
        "protothrive; fwd=stale; fwd-status=304; ttl=120; stored"
    );
    assert_eq!(h["x-new"], "yes");
    assert_eq!(h["content-type"], "text/plain");
    f.clock.advance(Duration::from_secs(100));
    let (_, h, _) = send(&f.svc, get(&[])).await;
    assert_eq!(cache_status(&h), "protothrive; hit; ttl=20");
    assert_eq!(f.seen.calls(), 2);
}

/// A 304 that says `no-store` (or `private`, unpartitioned) is merged into the answer but not
/// stored: the next request goes to the origin again instead of reusing the merged entry.
#[tokio::test]
async fn a_304_that_forbids_storing_is_not_stored() {
    for forbids in ["no-store, max-age=120", "private, max-age=120"] {
        let f = fixture(move |_req, n| {
            if n > 1 {
                return Ok(resp(
                    304,
                    &[("etag", "\"v1\""), ("cache-control", forbids)],
                    "",
                ));
            }
            Ok(resp(
                200,
                &[("etag", "\"v1\""), ("cache-control", "max-age=60")],
                "hello",
            ))
        });
        send(&f.svc, get(&[])).await;
        f.clock.advance(Duration::from_secs(61));
        let (code, h, body) = send(&f.svc, get(&[])).await;
        assert_eq!(
            (code, &body[..]),
            (StatusCode::OK, &b"hello"[..]),
            "{forbids}"
        );
        assert_eq!(h["cache-control"], forbids);
        let status = cache_status(&h);
        assert!(!status.contains("stored"), "{forbids}: {status}");
        f.clock.advance(Duration::from_secs(1));
        send(&f.svc, get(&[])).await;
        assert_eq!(
            f.seen.calls(),
            3,
            "{forbids}: the third request reached the origin"
        );
    }
}

#[tokio::test]
async fn answers_the_clients_own_conditionals_with_304() {
    let f = fixture(|_, _| {
        Ok(resp(
            200,
            &[
                ("etag", "W/\"v1\""),
                ("cache-control", "max-age=60"),
                ("last-modified", "Tue, 14 Nov 2023 12:13:20 GMT"),
            ],
            "hello",
        ))
    });
    // The miss itself: the client's conditional is kept from the origin and answered here.
    let (code, _, _) = send(&f.svc, get(&[("if-none-match", "\"v1\"")])).await;
    assert_eq!(code, StatusCode::NOT_MODIFIED);
    assert!(!f.seen.last().contains_key("if-none-match"));
    let (code, h, body) = send(&f.svc, get(&[("if-none-match", "\"v0\", W/\"v1\"")])).await;
    assert_eq!(code, StatusCode::NOT_MODIFIED);
    assert!(body.is_empty());
    assert_eq!(h["etag"], "W/\"v1\"");
    let (code, _, _) = send(&f.svc, get(&[("if-modified-since", DATE)])).await;
    assert_eq!(code, StatusCode::NOT_MODIFIED);
    let (code, _, body) = send(&f.svc, get(&[("if-none-match", "\"v2\"")])).await;
    assert_eq!((code, &body[..]), (StatusCode::OK, &b"hello"[..]));
    assert_eq!(f.seen.calls(), 1);
}

#[tokio::test]
async fn stale_while_revalidate_serves_stale_and_refreshes_once() {
    let f = fixture(|_, n| {
        Ok(resp(
            200,
            &[("cache-control", "max-age=60, stale-while-revalidate=30")],
            &format!("v{n}"),
        ))
    });
    send(&f.svc, get(&[])).await;
    f.clock.advance(Duration::from_secs(70));
    for _ in 0..3 {
        let (_, h, body) = send(&f.svc, get(&[])).await;
        assert_eq!(&body[..], b"v1");
        assert_eq!(
            cache_status(&h),
            "protothrive; hit; ttl=-10; detail=stale-while-revalidate"
        );
    }
    for _ in 0..50 {
        if f.seen.calls() == 2 && f.handle.stats().stored == 2 {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(f.seen.calls(), 2, "one background refresh");
    let (_, h, body) = send(&f.svc, get(&[])).await;
    assert_eq!(&body[..], b"v2");
    assert!(
        cache_status(&h).starts_with("protothrive; hit"),
        "{}",
        cache_status(&h)
    );
}

#[tokio::test]
async fn stale_if_error_serves_stale_on_errors_and_5xx() {
    let f = fixture(|_, n| match n {
        1 => Ok(resp(
            200,
            &[("cache-control", "max-age=60, stale-if-error=100")],
            "good",
        )),
        2 => Err("origin down".into()),
        _ => Ok(resp(503, &[], "busy")),
    });
    send(&f.svc, get(&[])).await;
    f.clock.advance(Duration::from_secs(61));
    let (code, h, body) = send(&f.svc, get(&[])).await;
    assert_eq!((code, &body[..]), (StatusCode::OK, &b"good"[..]));
    assert_eq!(
        cache_status(&h),
        "protothrive; fwd=stale; ttl=-1; detail=stale-if-error"
    );
    let (code, h, body) = send(&f.svc, get(&[])).await;
    assert_eq!((code, &body[..]), (StatusCode::OK, &b"good"[..]));
    assert!(cache_status(&h).contains("fwd-status=503"));
    f.clock.advance(Duration::from_secs(100));
    let (code, _, _) = send(&f.svc, get(&[])).await;
    assert_eq!(
        code,
        StatusCode::SERVICE_UNAVAILABLE,
        "past the window the error goes through"
    );
}

#[tokio::test]
async fn stale_if_error_never_overrides_must_revalidate() {
    let f = fixture(|_, n| match n {
        1 => Ok(resp(
            200,
            &[(
                "cache-control",
                "max-age=60, stale-if-error=100, must-revalidate",
            )],
            "good",
        )),
        _ => Err("origin down".into()),
    });
    send(&f.svc, get(&[])).await;
    f.clock.advance(Duration::from_secs(61));
    let e = f.svc.clone().oneshot(get(&[])).await.unwrap_err();
    assert_eq!(e.to_string(), "origin down");
}
