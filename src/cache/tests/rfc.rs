//! RFC 9111 behaviours as one table against a scripted origin.

use super::*;

#[tokio::test]
async fn rfc_behaviours() {
    type Case<'a> = (
        &'a str,
        &'a [(&'a str, &'a str)], // response headers
        &'a [(&'a str, &'a str)], // first request headers
        u64,                      // seconds between the requests
        &'a [(&'a str, &'a str)], // second request headers
        usize,                    // origin calls
        &'a str,                  // second Cache-Status starts with
    );
    let cases: &[Case<'_>] = &[
        (
            "fresh hit",
            &[("cache-control", "max-age=60")],
            &[],
            10,
            &[],
            1,
            "protothrive; hit; ttl=50",
        ),
        (
            "stale without validator",
            &[("cache-control", "max-age=60")],
            &[],
            61,
            &[],
            2,
            "protothrive; fwd=stale",
        ),
        (
            "no-store",
            &[("cache-control", "no-store, max-age=60")],
            &[],
            0,
            &[],
            2,
            "protothrive; fwd=uri-miss",
        ),
        (
            "private without partition",
            &[("cache-control", "private, max-age=60")],
            &[],
            0,
            &[],
            2,
            "protothrive; fwd=uri-miss",
        ),
        (
            "request no-store",
            &[("cache-control", "max-age=60")],
            &[("cache-control", "no-store")],
            0,
            &[],
            2,
            "protothrive; fwd=uri-miss",
        ),
        (
            "request no-cache",
            &[("cache-control", "max-age=60")],
            &[],
            0,
            &[("cache-control", "no-cache")],
            2,
            "protothrive; fwd=request",
        ),
        (
            "request max-age=0",
            &[("cache-control", "max-age=60")],
            &[],
            1,
            &[("cache-control", "max-age=0")],
            2,
            "protothrive; fwd=request",
        ),
        (
            "request min-fresh",
            &[("cache-control", "max-age=60")],
            &[],
            50,
            &[("cache-control", "min-fresh=20")],
            2,
            "protothrive; fwd=request",
        ),
        (
            "request max-stale",
            &[("cache-control", "max-age=60")],
            &[],
            70,
            &[("cache-control", "max-stale=20")],
            1,
            "protothrive; hit; ttl=-10",
        ),
        (
            "max-stale vs must-revalidate",
            &[("cache-control", "max-age=60, must-revalidate")],
            &[],
            70,
            &[("cache-control", "max-stale")],
            2,
            "protothrive; fwd=stale",
        ),
        (
            "s-maxage wins for a shared cache",
            &[("cache-control", "max-age=600, s-maxage=10")],
            &[],
            11,
            &[],
            2,
            "protothrive; fwd=stale",
        ),
        (
            "Expires",
            &[("date", DATE), ("expires", "Tue, 14 Nov 2023 22:14:20 GMT")],
            &[],
            59,
            &[],
            1,
            "protothrive; hit; ttl=1",
        ),
        (
            "heuristic",
            &[
                ("date", DATE),
                ("last-modified", "Tue, 14 Nov 2023 12:13:20 GMT"),
            ],
            &[],
            3599,
            &[],
            1,
            "protothrive; hit; ttl=1",
        ),
        (
            "no heuristic for 302",
            &[
                ("date", DATE),
                ("last-modified", "Tue, 14 Nov 2023 12:13:20 GMT"),
                ("location", "/b"),
            ],
            &[],
            0,
            &[],
            2,
            "protothrive; fwd=uri-miss",
        ),
        (
            "Age from upstream counts",
            &[("cache-control", "max-age=60"), ("age", "55")],
            &[],
            6,
            &[],
            2,
            "protothrive; fwd=stale",
        ),
        (
            "authorization, plain",
            &[("cache-control", "max-age=60")],
            &[("authorization", "Bearer a")],
            0,
            &[("authorization", "Bearer a")],
            2,
            "protothrive; fwd=uri-miss",
        ),
        (
            "authorization, public",
            &[("cache-control", "public, max-age=60")],
            &[("authorization", "Bearer a")],
            0,
            &[("authorization", "Bearer b")],
            1,
            "protothrive; hit",
        ),
        (
            "vary, same value",
            &[("cache-control", "max-age=60"), ("vary", "Accept")],
            &[("accept", "text/html")],
            0,
            &[("accept", "text/html")],
            1,
            "protothrive; hit",
        ),
        (
            "vary, other value",
            &[("cache-control", "max-age=60"), ("vary", "Accept")],
            &[("accept", "text/html")],
            0,
            &[("accept", "application/json")],
            2,
            "protothrive; fwd=vary-miss",
        ),
        (
            "vary star",
            &[("cache-control", "max-age=60"), ("vary", "*")],
            &[],
            0,
            &[],
            2,
            "protothrive; fwd=uri-miss",
        ),
        (
            "only-if-cached, stored",
            &[("cache-control", "max-age=60")],
            &[],
            1,
            &[("cache-control", "only-if-cached")],
            1,
            "protothrive; hit",
        ),
        (
            "only-if-cached, stale",
            &[("cache-control", "max-age=60")],
            &[],
            61,
            &[("cache-control", "only-if-cached")],
            1,
            "protothrive; fwd=request; detail=only-if-cached",
        ),
        (
            "500 with max-age",
            &[("cache-control", "max-age=60")],
            &[],
            0,
            &[],
            1,
            "protothrive; hit",
        ),
        (
            "too big",
            &[("cache-control", "max-age=60"), ("x-big", "1")],
            &[],
            0,
            &[],
            2,
            "protothrive; fwd=uri-miss",
        ),
    ];
    for (name, res_h, first, wait, second, calls, status) in cases {
        let res_h: Vec<(String, String)> = res_h
            .iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect();
        let f = fixture_with(CacheLayer::builder().max_body(8), move |req, _| {
            let h: Vec<(&str, &str)> = res_h
                .iter()
                .map(|(a, b)| (a.as_str(), b.as_str()))
                .collect();
            let body = if h.iter().any(|(n, _)| *n == "x-big") {
                "0123456789"
            } else {
                "body"
            };
            let status = if h.iter().any(|(n, _)| *n == "location") {
                302
            } else {
                200
            };
            let _ = req;
            Ok(resp(status, &h, body))
        });
        let (_, h1, _) = send(&f.svc, get(first)).await;
        assert!(!h1.contains_key("surrogate-key"), "{name}");
        f.clock.advance(Duration::from_secs(*wait));
        let (code, h2, _) = send(&f.svc, get(second)).await;
        assert_eq!(f.seen.calls(), *calls, "{name}: origin calls");
        assert!(
            cache_status(&h2).starts_with(status),
            "{name}: {}",
            cache_status(&h2)
        );
        if status.contains("only-if-cached") {
            assert_eq!(code, StatusCode::GATEWAY_TIMEOUT, "{name}");
        }
    }
}

/// RFC 9211 §2: a `Cache-Status` the response already has (a cache nearer the origin) keeps its
/// members, this cache's goes after them — on a forwarded response, stored or passed through, and
/// on hits of a stored one; with none, this cache's member alone.
#[tokio::test]
async fn a_named_cache_writes_its_name_in_every_member_it_adds() {
    let f = fixture_with(CacheLayer::builder().name("edge"), |_, _| {
        Ok(resp(200, &[("cache-control", "max-age=60")], "body"))
    });
    let (_, h, _) = send(&f.svc, get(&[])).await;
    assert_eq!(
        cache_status(&h),
        "edge; fwd=uri-miss; fwd-status=200; ttl=60; stored"
    );
    let (_, h, _) = send(&f.svc, get(&[])).await;
    assert_eq!(cache_status(&h), "edge; hit; ttl=60");
    let (_, h, _) = send(
        &f.svc,
        get(&[("cache-control", "only-if-cached, max-age=0")]),
    )
    .await;
    assert!(
        cache_status(&h).starts_with("edge; "),
        "{}",
        cache_status(&h)
    );
}

#[tokio::test]
async fn cache_status_appends_to_the_members_of_caches_nearer_the_origin() {
    let upstream = |cc: &'static str| {
        fixture(move |_, n| {
            let member = if n == 1 {
                "api; fwd=uri-miss; stored"
            } else {
                "api; hit"
            };
            Ok(resp(
                200,
                &[
                    ("cache-control", cc),
                    ("cache-status", member),
                    ("etag", "\"v1\""),
                ],
                "body",
            ))
        })
    };
    let f = upstream("max-age=60");
    let (_, h, _) = send(&f.svc, get(&[])).await;
    assert_eq!(
        cache_status(&h),
        "api; fwd=uri-miss; stored, protothrive; fwd=uri-miss; fwd-status=200; ttl=60; stored"
    );
    assert_eq!(
        h.get_all("cache-status").iter().count(),
        1,
        "one field line"
    );
    f.clock.advance(Duration::from_secs(10));
    let (_, h, _) = send(&f.svc, get(&[])).await;
    assert_eq!(
        cache_status(&h),
        "api; fwd=uri-miss; stored, protothrive; hit; ttl=50",
        "a hit keeps the member stored with the response"
    );
    f.clock.advance(Duration::from_secs(60));
    let (_, h, _) = send(&f.svc, get(&[])).await;
    assert_eq!(
        cache_status(&h),
        "api; hit, protothrive; fwd=stale; fwd-status=200; ttl=60; stored"
    );
    assert_eq!(f.seen.calls(), 2);

    let f = upstream("private, max-age=60");
    let (_, h, _) = send(&f.svc, get(&[])).await;
    assert_eq!(
        cache_status(&h),
        "api; fwd=uri-miss; stored, protothrive; fwd=uri-miss; fwd-status=200"
    );

    // Two field lines from the origin: one list, in their order, then this cache's member.
    let f = fixture(|_, _| {
        let mut res = resp(200, &[("cache-control", "no-store")], "body");
        for member in ["edge; hit", "api; fwd=miss"] {
            res.headers_mut()
                .append("cache-status", http::HeaderValue::from_static(member));
        }
        Ok(res)
    });
    let (_, h, _) = send(&f.svc, get(&[])).await;
    assert_eq!(
        cache_status(&h),
        "edge; hit, api; fwd=miss, protothrive; fwd=uri-miss; fwd-status=200"
    );

    let f = fixture(|_, _| Ok(resp(200, &[("cache-control", "max-age=60")], "body")));
    let (_, h, _) = send(&f.svc, get(&[])).await;
    assert_eq!(
        cache_status(&h),
        "protothrive; fwd=uri-miss; fwd-status=200; ttl=60; stored"
    );
}
