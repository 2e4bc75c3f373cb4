//! RFC 9111 rules, one table per rule, and the properties of the pure core.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, Request, Response, StatusCode, request, response};
use proptest::prelude::*;

use super::*;

fn req(headers: &[(&str, &str)]) -> request::Parts {
    let mut b = Request::get("/x");
    for (n, v) in headers {
        b = b.header(*n, *v);
    }
    b.body(()).unwrap().into_parts().0
}

fn res(status: u16, headers: &[(&str, &str)]) -> response::Parts {
    let mut b = Response::builder().status(status);
    for (n, v) in headers {
        b = b.header(*n, *v);
    }
    b.body(()).unwrap().into_parts().0
}

fn headers(list: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (n, v) in list {
        h.append(
            http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    h
}

const T0: u64 = 1_700_000_000;
fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

#[test]
fn storable_rules() {
    use NotStorable as N;
    use Scope::{Partition, Shared};
    type Case<'a> = (
        &'a str,
        &'a [(&'a str, &'a str)],
        u16,
        &'a [(&'a str, &'a str)],
        bool,
        Result<Scope, NotStorable>,
    );
    let auth = &[("authorization", "Bearer t")][..];
    let cases: &[Case<'_>] = &[
        (
            "plain max-age",
            &[],
            200,
            &[("cache-control", "max-age=5")],
            false,
            Ok(Shared),
        ),
        ("heuristic 200", &[], 200, &[], false, Ok(Shared)),
        ("heuristic 404", &[], 404, &[], false, Ok(Shared)),
        (
            "302 without freshness",
            &[],
            302,
            &[],
            false,
            Err(N::Status),
        ),
        (
            "302 with max-age",
            &[],
            302,
            &[("cache-control", "max-age=5")],
            false,
            Ok(Shared),
        ),
        (
            "500 with Expires",
            &[],
            500,
            &[("expires", "Tue, 14 Nov 2023 22:13:20 GMT")],
            false,
            Ok(Shared),
        ),
        (
            "206 never",
            &[],
            206,
            &[("cache-control", "max-age=5")],
            false,
            Err(N::Status),
        ),
        (
            "304 never",
            &[],
            304,
            &[("cache-control", "max-age=5")],
            false,
            Err(N::Status),
        ),
        (
            "response no-store",
            &[],
            200,
            &[("cache-control", "no-store, max-age=5")],
            false,
            Err(N::NoStore),
        ),
        (
            "request no-store",
            &[("cache-control", "no-store")],
            200,
            &[("cache-control", "max-age=5")],
            false,
            Err(N::NoStore),
        ),
        (
            "must-understand known status beats no-store",
            &[],
            200,
            &[("cache-control", "no-store, must-understand, max-age=5")],
            false,
            Ok(Shared),
        ),
        (
            "must-understand unknown status",
            &[],
            299,
            &[("cache-control", "no-store, must-understand, max-age=5")],
            false,
            Err(N::Status),
        ),
        (
            "private, shared",
            &[],
            200,
            &[("cache-control", "private, max-age=5")],
            false,
            Err(N::Private),
        ),
        (
            "private, partition",
            &[],
            200,
            &[("cache-control", "private, max-age=5")],
            true,
            Ok(Partition),
        ),
        (
            "partitioned request, no explicit sharing",
            &[],
            200,
            &[("cache-control", "max-age=5")],
            true,
            Ok(Partition),
        ),
        (
            "partitioned request, public",
            &[],
            200,
            &[("cache-control", "public, max-age=5")],
            true,
            Ok(Shared),
        ),
        (
            "partitioned request, s-maxage",
            &[],
            200,
            &[("cache-control", "s-maxage=5")],
            true,
            Ok(Shared),
        ),
        (
            "authorization, plain",
            auth,
            200,
            &[("cache-control", "max-age=5")],
            false,
            Err(N::Authorization),
        ),
        (
            "authorization, public",
            auth,
            200,
            &[("cache-control", "public, max-age=5")],
            false,
            Ok(Shared),
        ),
        (
            "authorization, s-maxage",
            auth,
            200,
            &[("cache-control", "s-maxage=5")],
            false,
            Ok(Shared),
        ),
        (
            "authorization, must-revalidate",
            auth,
            200,
            &[("cache-control", "must-revalidate, max-age=5")],
            false,
            Ok(Shared),
        ),
        (
            "authorization, partition",
            auth,
            200,
            &[("cache-control", "max-age=5")],
            true,
            Ok(Partition),
        ),
        (
            "cookie, plain",
            &[("cookie", "session=a")],
            200,
            &[("cache-control", "max-age=5")],
            false,
            Err(N::Cookie),
        ),
        (
            "cookie, public",
            &[("cookie", "session=a")],
            200,
            &[("cache-control", "public, max-age=5")],
            false,
            Ok(Shared),
        ),
        (
            "cookie, partition",
            &[("cookie", "session=a")],
            200,
            &[("cache-control", "max-age=5")],
            true,
            Ok(Partition),
        ),
        (
            "set-cookie",
            &[],
            200,
            &[
                ("cache-control", "public, max-age=5"),
                ("set-cookie", "a=b"),
            ],
            false,
            Err(N::SetCookie),
        ),
        (
            "set-cookie, partition",
            &[],
            200,
            &[
                ("cache-control", "private, max-age=5"),
                ("set-cookie", "a=b"),
            ],
            true,
            Err(N::SetCookie),
        ),
        (
            "vary star",
            &[],
            200,
            &[("cache-control", "max-age=5"), ("vary", "accept, *")],
            false,
            Err(N::VaryStar),
        ),
        (
            "vary unreadable",
            &[],
            200,
            &[("cache-control", "max-age=5"), ("vary", "a b")],
            false,
            Err(N::VaryStar),
        ),
    ];
    for (name, rq, status, rs, partitioned, want) in cases {
        assert_eq!(
            storable(&req(rq), &res(*status, rs), *partitioned),
            *want,
            "{name}"
        );
    }
    let (post, _) = Request::post("/x").body(()).unwrap().into_parts();
    assert_eq!(
        storable(&post, &res(200, &[("cache-control", "max-age=5")]), false),
        Err(N::Method)
    );
}

#[test]
fn freshness_rules() {
    let date = "Tue, 14 Nov 2023 22:13:20 GMT"; // T0
    let cap = DEFAULT_HEURISTIC_CAP;
    type Case<'a> = (&'a str, u16, &'a [(&'a str, &'a str)], Scope, u64);
    let cases: &[Case<'_>] = &[
        (
            "s-maxage over max-age",
            200,
            &[("cache-control", "max-age=10, s-maxage=20")],
            Scope::Shared,
            20,
        ),
        (
            "s-maxage ignored in a partition",
            200,
            &[("cache-control", "max-age=10, s-maxage=20")],
            Scope::Partition,
            10,
        ),
        (
            "max-age over Expires",
            200,
            &[
                ("cache-control", "max-age=10"),
                ("date", date),
                ("expires", "Tue, 14 Nov 2023 23:13:20 GMT"),
            ],
            Scope::Shared,
            10,
        ),
        (
            "Expires - Date",
            200,
            &[("date", date), ("expires", "Tue, 14 Nov 2023 23:13:20 GMT")],
            Scope::Shared,
            3600,
        ),
        (
            "Expires before Date",
            200,
            &[("date", date), ("expires", "Tue, 14 Nov 2023 21:13:20 GMT")],
            Scope::Shared,
            0,
        ),
        (
            "Expires invalid",
            200,
            &[("date", date), ("expires", "0")],
            Scope::Shared,
            0,
        ),
        (
            "Expires twice",
            200,
            &[
                ("date", date),
                ("expires", "Tue, 14 Nov 2023 23:13:20 GMT"),
                ("expires", "Tue, 14 Nov 2023 23:13:20 GMT"),
            ],
            Scope::Shared,
            0,
        ),
        (
            "Expires without Date uses receipt time",
            200,
            &[("expires", "Tue, 14 Nov 2023 22:23:20 GMT")],
            Scope::Shared,
            600,
        ),
        (
            "heuristic 10%",
            200,
            &[
                ("date", date),
                ("last-modified", "Tue, 14 Nov 2023 21:13:20 GMT"),
            ],
            Scope::Shared,
            360,
        ),
        (
            "heuristic capped",
            200,
            &[
                ("date", date),
                ("last-modified", "Tue, 14 Nov 2000 21:13:20 GMT"),
            ],
            Scope::Shared,
            86_400,
        ),
        (
            "no heuristic for 302",
            302,
            &[
                ("date", date),
                ("last-modified", "Tue, 14 Nov 2023 21:13:20 GMT"),
            ],
            Scope::Shared,
            0,
        ),
        (
            "heuristic for public 302",
            302,
            &[
                ("cache-control", "public"),
                ("date", date),
                ("last-modified", "Tue, 14 Nov 2023 21:13:20 GMT"),
            ],
            Scope::Shared,
            360,
        ),
        ("nothing at all", 200, &[], Scope::Shared, 0),
        (
            "invalid max-age is stale",
            200,
            &[
                ("cache-control", "max-age=x"),
                ("date", date),
                ("expires", "Tue, 14 Nov 2023 23:13:20 GMT"),
            ],
            Scope::Shared,
            0,
        ),
    ];
    for (name, status, h, scope, want) in cases {
        let got = freshness_lifetime(&res(*status, h), *scope, at(T0), cap);
        assert_eq!(got, Duration::from_secs(*want), "{name}");
    }
}

#[test]
fn age_rules() {
    let s = Duration::from_secs;
    let date = "Tue, 14 Nov 2023 22:13:20 GMT"; // T0
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], u64, u64, u64);
    let cases: &[Case<'_>] = &[
        ("nothing", &[], T0, T0, 0),
        ("response delay", &[], T0, T0 + 3, 3),
        ("age plus delay", &[("age", "10")], T0, T0 + 3, 13),
        (
            "apparent age wins",
            &[("date", date), ("age", "1")],
            T0 + 50,
            T0 + 60,
            60,
        ),
        ("date in the future", &[("date", date)], T0 - 60, T0 - 60, 0),
        ("age list: first member", &[("age", "7, 100")], T0, T0, 7),
        ("age invalid: ignored", &[("age", "-5")], T0, T0 + 1, 1),
        (
            "age huge: 2^31",
            &[("age", "999999999999")],
            T0,
            T0,
            1 << 31,
        ),
    ];
    for (name, h, sent, received, want) in cases {
        assert_eq!(
            initial_age(&headers(h), at(*sent), at(*received)),
            s(*want),
            "{name}"
        );
    }
    assert_eq!(current_age(s(5), at(T0), at(T0 + 10)), s(15));
    assert_eq!(current_age(s(5), at(T0), at(T0 - 10)), s(5));
}

#[test]
fn reuse_rules() {
    use Reuse::*;
    let s = Duration::from_secs;
    type Case<'a> = (&'a str, &'a str, &'a str, Scope, u64, u64, Reuse);
    let no_fallback = Revalidate {
        stale_if_error: false,
    };
    let fallback = Revalidate {
        stale_if_error: true,
    };
    let cases: &[Case<'_>] = &[
        ("fresh", "", "max-age=60", Scope::Shared, 60, 10, Fresh),
        (
            "stale",
            "",
            "max-age=60",
            Scope::Shared,
            60,
            60,
            no_fallback,
        ),
        (
            "request no-cache",
            "no-cache",
            "max-age=60",
            Scope::Shared,
            60,
            1,
            no_fallback,
        ),
        (
            "response no-cache",
            "",
            "no-cache, max-age=60",
            Scope::Shared,
            60,
            1,
            no_fallback,
        ),
        (
            "request max-age exceeded",
            "max-age=5",
            "max-age=60",
            Scope::Shared,
            60,
            6,
            no_fallback,
        ),
        (
            "request max-age=0",
            "max-age=0",
            "max-age=60",
            Scope::Shared,
            60,
            1,
            no_fallback,
        ),
        (
            "request max-age met",
            "max-age=5",
            "max-age=60",
            Scope::Shared,
            60,
            5,
            Fresh,
        ),
        (
            "min-fresh not met",
            "min-fresh=20",
            "max-age=60",
            Scope::Shared,
            60,
            45,
            no_fallback,
        ),
        (
            "min-fresh met",
            "min-fresh=20",
            "max-age=60",
            Scope::Shared,
            60,
            40,
            Fresh,
        ),
        (
            "max-stale any",
            "max-stale",
            "max-age=60",
            Scope::Shared,
            60,
            900,
            StaleAccepted,
        ),
        (
            "max-stale within",
            "max-stale=10",
            "max-age=60",
            Scope::Shared,
            60,
            70,
            StaleAccepted,
        ),
        (
            "max-stale past",
            "max-stale=10",
            "max-age=60",
            Scope::Shared,
            60,
            71,
            no_fallback,
        ),
        (
            "max-stale vs must-revalidate",
            "max-stale",
            "max-age=60, must-revalidate",
            Scope::Shared,
            60,
            61,
            no_fallback,
        ),
        (
            "max-stale vs proxy-revalidate",
            "max-stale",
            "max-age=60, proxy-revalidate",
            Scope::Shared,
            60,
            61,
            no_fallback,
        ),
        (
            "proxy-revalidate in a partition",
            "max-stale",
            "max-age=60, proxy-revalidate",
            Scope::Partition,
            60,
            61,
            StaleAccepted,
        ),
        (
            "s-maxage implies proxy-revalidate",
            "max-stale",
            "s-maxage=60",
            Scope::Shared,
            60,
            61,
            no_fallback,
        ),
        (
            "swr within",
            "",
            "max-age=60, stale-while-revalidate=30",
            Scope::Shared,
            60,
            90,
            StaleWhileRevalidate,
        ),
        (
            "swr past",
            "",
            "max-age=60, stale-while-revalidate=30",
            Scope::Shared,
            60,
            91,
            no_fallback,
        ),
        (
            "swr vs must-revalidate",
            "",
            "max-age=60, stale-while-revalidate=30, must-revalidate",
            Scope::Shared,
            60,
            70,
            no_fallback,
        ),
        (
            "sie within",
            "",
            "max-age=60, stale-if-error=100",
            Scope::Shared,
            60,
            160,
            fallback,
        ),
        (
            "sie past",
            "",
            "max-age=60, stale-if-error=100",
            Scope::Shared,
            60,
            161,
            no_fallback,
        ),
        (
            "sie from the request",
            "stale-if-error=100",
            "max-age=60",
            Scope::Shared,
            60,
            100,
            fallback,
        ),
        (
            "sie vs must-revalidate",
            "",
            "max-age=60, stale-if-error=100, must-revalidate",
            Scope::Shared,
            60,
            70,
            no_fallback,
        ),
        (
            "sie vs response no-cache",
            "",
            "no-cache, stale-if-error=100",
            Scope::Shared,
            0,
            1,
            no_fallback,
        ),
        (
            "sie with request no-cache",
            "no-cache",
            "max-age=60, stale-if-error=100",
            Scope::Shared,
            60,
            1,
            fallback,
        ),
    ];
    for (name, rq, rs, scope, life, age, want) in cases {
        let got = reuse(
            &CacheControl::parse(rq),
            &CacheControl::parse(rs),
            *scope,
            s(*life),
            s(*age),
        );
        assert_eq!(got, *want, "{name}");
    }
}

#[test]
fn vary_rules() {
    let n = |s: &str| http::HeaderName::from_bytes(s.as_bytes()).unwrap();
    assert_eq!(vary(&headers(&[])), Vary::None);
    assert_eq!(vary(&headers(&[("vary", " , ")])), Vary::None);
    assert_eq!(vary(&headers(&[("vary", "*")])), Vary::Star);
    let names = vec![n("accept-encoding")];
    type Case<'a> = (
        &'a str,
        &'a [(&'a str, &'a str)],
        &'a [(&'a str, &'a str)],
        bool,
    );
    let cases: &[Case<'_>] = &[
        ("both absent", &[], &[], true),
        ("absent vs empty", &[], &[("accept-encoding", "")], true),
        (
            "equal",
            &[("accept-encoding", "gzip")],
            &[("accept-encoding", "gzip")],
            true,
        ),
        (
            "whitespace",
            &[("accept-encoding", "gzip,br")],
            &[("accept-encoding", " gzip ,  br ")],
            true,
        ),
        (
            "two lines vs one",
            &[("accept-encoding", "gzip"), ("accept-encoding", "br")],
            &[("accept-encoding", "gzip, br")],
            true,
        ),
        (
            "order matters",
            &[("accept-encoding", "gzip, br")],
            &[("accept-encoding", "br, gzip")],
            false,
        ),
        (
            "different",
            &[("accept-encoding", "gzip")],
            &[("accept-encoding", "br")],
            false,
        ),
        (
            "present vs absent",
            &[("accept-encoding", "gzip")],
            &[],
            false,
        ),
        (
            "inner space kept",
            &[("accept-encoding", "a b")],
            &[("accept-encoding", "ab")],
            false,
        ),
    ];
    for (name, a, b, want) in cases {
        assert_eq!(
            vary_matches(&names, &headers(a), &headers(b)),
            *want,
            "{name}"
        );
    }
}

#[test]
fn invalidation_rules() {
    type Case<'a> = (
        &'a str,
        &'a str,
        &'a str,
        u16,
        &'a [(&'a str, &'a str)],
        &'a [&'a str],
    );
    let host = &[("host", "api.example.com")][..];
    let cases: &[Case<'_>] = &[
        ("GET never", "GET", "/a", 200, &[], &[]),
        ("POST 201", "POST", "/a", 201, &[], &["/a"]),
        ("DELETE 204", "DELETE", "/a/1", 204, &[], &["/a/1"]),
        ("PUT 404 error", "PUT", "/a", 404, &[], &[]),
        ("PATCH 500 error", "PATCH", "/a", 500, &[], &[]),
        (
            "POST 303 + Location path",
            "POST",
            "/a",
            303,
            &[("location", "/b?x=1")],
            &["/a", "/b?x=1"],
        ),
        (
            "relative Location",
            "POST",
            "/a/b",
            201,
            &[("location", "c")],
            &["/a/b", "/a/c"],
        ),
        (
            "same-origin absolute",
            "POST",
            "/a",
            201,
            &[("content-location", "https://API.example.com:443/c")],
            &["/a", "/c"],
        ),
        (
            "cross-origin ignored",
            "POST",
            "/a",
            201,
            &[("location", "https://evil.example/a2")],
            &["/a"],
        ),
        (
            "bad Location ignored",
            "POST",
            "/a",
            201,
            &[("location", "http://[::1")],
            &["/a"],
        ),
    ];
    for (name, method, uri, status, h, want) in cases {
        let mut b = Request::builder().method(*method).uri(*uri);
        for (n, v) in host {
            b = b.header(*n, *v);
        }
        let (parts, ()) = b.body(()).unwrap().into_parts();
        let got: Vec<String> =
            invalidation_targets(&parts, StatusCode::from_u16(*status).unwrap(), &headers(h))
                .iter()
                .map(ToString::to_string)
                .collect();
        assert_eq!(got, *want, "{name}");
    }
}

#[test]
fn validation_rules() {
    let stored = headers(&[
        ("etag", "\"v1\""),
        ("last-modified", "Tue, 14 Nov 2023 21:13:20 GMT"),
    ]);
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], bool);
    let cases: &[Case<'_>] = &[
        ("no conditional", &[], false),
        ("inm match", &[("if-none-match", "\"v1\"")], true),
        ("inm weak match", &[("if-none-match", "W/\"v1\"")], true),
        ("inm star", &[("if-none-match", "*")], true),
        (
            "inm miss beats ims",
            &[
                ("if-none-match", "\"v2\""),
                ("if-modified-since", "Tue, 14 Nov 2023 22:13:20 GMT"),
            ],
            false,
        ),
        (
            "ims after",
            &[("if-modified-since", "Tue, 14 Nov 2023 22:13:20 GMT")],
            true,
        ),
        (
            "ims equal",
            &[("if-modified-since", "Tue, 14 Nov 2023 21:13:20 GMT")],
            true,
        ),
        (
            "ims before",
            &[("if-modified-since", "Tue, 14 Nov 2023 20:13:20 GMT")],
            false,
        ),
        ("ims garbage", &[("if-modified-since", "yesterday")], false),
    ];
    for (name, h, want) in cases {
        assert_eq!(not_modified(&headers(h), &stored), *want, "{name}");
    }
    assert!(validates(&stored, &headers(&[("etag", "W/\"v1\"")])));
    assert!(!validates(&stored, &headers(&[("etag", "\"v2\"")])));
    assert!(validates(&stored, &headers(&[])));
    let mut merged = headers(&[("etag", "\"v1\""), ("x-a", "1"), ("content-length", "3")]);
    merge_not_modified(
        &mut merged,
        &headers(&[
            ("x-a", "2"),
            ("x-a", "3"),
            ("connection", "x-b"),
            ("x-b", "hop"),
            ("content-length", "0"),
        ]),
    );
    assert_eq!(merged.get_all("x-a").iter().collect::<Vec<_>>(), ["2", "3"]);
    assert!(!merged.contains_key("x-b"));
    assert_eq!(merged["content-length"], "3");
}

#[test]
fn cache_status_values() {
    assert_eq!(
        CacheStatus::forward(Forward::VaryMiss).to_string(),
        "protothrive; fwd=vary-miss"
    );
    assert_eq!(
        CacheStatus::hit(Some(-5))
            .detail("stale-if-error")
            .to_string(),
        "protothrive; hit; ttl=-5; detail=stale-if-error"
    );
    assert_eq!(
        CacheStatus::forward(Forward::UriMiss)
            .collapsed(true)
            .to_string(),
        "protothrive; fwd=uri-miss; collapsed"
    );
    assert_eq!(age_value(Duration::from_secs(u64::MAX)), "2147483648");
}

proptest! {
    /// A response answered `Fresh` is never older than its lifetime (and never past a request's
    /// `max-age`), whatever the directives.
    #[test]
    fn fresh_never_outlives_its_lifetime(
        res_cc in "(max-age=[0-9]{1,3}|s-maxage=[0-9]{1,3}|no-cache|must-revalidate|stale-while-revalidate=[0-9]{1,3}|immutable|public)(, (max-age=[0-9]{1,3}|stale-if-error=[0-9]{1,2}|proxy-revalidate)){0,2}",
        req_cc in "(|max-age=[0-9]{1,3}|min-fresh=[0-9]{1,2}|max-stale=[0-9]{1,2}|no-cache)",
        partition in any::<bool>(),
        age in 0u64..2000,
        extra_age in 0u64..200,
        received_offset in 0u64..10,
    ) {
        let scope = if partition { Scope::Partition } else { Scope::Shared };
        let parts = res(200, &[("cache-control", res_cc.as_str())]);
        let received = at(T0 + received_offset);
        let life = freshness_lifetime(&parts, scope, received, DEFAULT_HEURISTIC_CAP);
        let req = CacheControl::parse(&req_cc);
        let now_age = current_age(Duration::from_secs(age), received, received + Duration::from_secs(extra_age));
        if reuse(&req, &CacheControl::parse(&res_cc), scope, life, now_age) == Reuse::Fresh {
            prop_assert!(now_age < life);
            if let Some(m) = req.max_age {
                prop_assert!(now_age <= Duration::from_secs(u64::from(m)));
            }
            prop_assert!(!req.no_cache && !CacheControl::parse(&res_cc).no_cache);
        }
    }

    /// `no-store` in a response (without `must-understand`) or a request is never storable.
    #[test]
    fn no_store_is_never_storable(
        other in "(public|private|max-age=[0-9]{1,4}|s-maxage=9|must-revalidate|NO-STORE|no-cache)",
        status in prop_oneof![Just(200u16), Just(203), Just(301), Just(404), Just(500)],
        on_request in any::<bool>(),
        partitioned in any::<bool>(),
        auth in any::<bool>(),
    ) {
        let cc = format!("{other}, no-store");
        let mut rq: Vec<(&str, &str)> = Vec::new();
        let mut rs: Vec<(&str, &str)> = vec![("cache-control", "max-age=60")];
        if on_request { rq.push(("cache-control", cc.as_str())); } else { rs.push(("cache-control", cc.as_str())); }
        if auth { rq.push(("authorization", "Bearer x")); }
        prop_assert_eq!(
            storable(&req(&rq), &res(status, &rs), partitioned),
            Err(NotStorable::NoStore)
        );
    }
}
