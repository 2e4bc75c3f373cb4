//! `Vary` matching, §4.4 invalidation targets, validation and `Cache-Status` values.

use super::*;

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
