//! Rows: `HEAD` updating or invalidating the stored `GET` (RFC 9111 §4.3.5), and `Range`
//! requests answered from a stored complete `200` (RFC 9110 §14, §13.1.5).

use super::table::{Answer, Answer::*, Step, row, run, step};

const STORED: &str = "protothrive; fwd=uri-miss; fwd-status=200;";
const HIT: &str = "protothrive; hit";
const TEN: &str = "0123456789";
/// A stored `200` of ten bytes with both validators, strong `Last-Modified` (a day before `Date`).
const FULL: &[(&str, &str)] = &[
    ("cache-control", "max-age=60"),
    ("etag", "\"v1\""),
    ("date", super::DATE),
    ("last-modified", "Mon, 13 Nov 2023 22:13:20 GMT"),
];

/// A stored `GET` response, fresh for ten seconds.
const STORED_GET: Answer = Res(
    200,
    &[
        ("cache-control", "max-age=10"),
        ("etag", "\"v1\""),
        ("x-v", "1"),
    ],
    "body",
);
/// The complete `200` ranges are cut from.
const FULL_200: Answer = Res(200, FULL, TEN);

/// Stored, a `HEAD` once stale, then a `GET` that finds nothing stored.
fn invalidated_by_head() -> Vec<Step> {
    vec![
        step("GET", &[], 0, 200, STORED),
        step(
            "HEAD",
            &[],
            11,
            200,
            "protothrive; fwd=stale; fwd-status=200",
        ),
        step("GET", &[], 0, 200, "protothrive; fwd=uri-miss"),
    ]
}

#[tokio::test]
async fn head_updates_or_invalidates_the_stored_get() {
    run(vec![
        row(
            "a fresh GET answers HEAD without the origin",
            &[STORED_GET],
            1,
            vec![
                step("GET", &[], 0, 200, STORED),
                step("HEAD", &[], 1, 200, HIT).body("").has(&[("x-v", "1")]),
            ],
        ),
        row(
            "a HEAD 200 with the stored validator and length updates the stored GET",
            &[
                STORED_GET,
                Res(
                    200,
                    &[
                        ("cache-control", "max-age=100"),
                        ("etag", "\"v1\""),
                        ("x-v", "2"),
                        ("content-length", "4"),
                    ],
                    "",
                ),
            ],
            2,
            vec![
                step("GET", &[], 0, 200, STORED),
                step(
                    "HEAD",
                    &[],
                    11,
                    200,
                    "protothrive; fwd=stale; fwd-status=200; stored",
                ),
                step("GET", &[], 50, 200, "protothrive; hit; ttl=50")
                    .body("body")
                    .has(&[("x-v", "2"), ("cache-control", "max-age=100")]),
            ],
        ),
        row(
            "a HEAD the client asks to revalidate (no-cache) updates it too",
            &[
                STORED_GET,
                Res(
                    200,
                    &[
                        ("cache-control", "max-age=100"),
                        ("etag", "\"v1\""),
                        ("x-v", "2"),
                    ],
                    "",
                ),
            ],
            2,
            vec![
                step("GET", &[], 0, 200, STORED),
                step(
                    "HEAD",
                    &[("cache-control", "no-cache")],
                    1,
                    200,
                    "protothrive; fwd=request",
                ),
                step("GET", &[], 1, 200, "protothrive; hit; ttl=99").has(&[("x-v", "2")]),
            ],
        ),
        row(
            "a HEAD 200 with another ETag invalidates the stored GET",
            &[
                STORED_GET,
                Res(
                    200,
                    &[("cache-control", "max-age=100"), ("etag", "\"v2\"")],
                    "",
                ),
            ],
            3,
            vec![
                step("GET", &[], 0, 200, STORED),
                step(
                    "HEAD",
                    &[],
                    11,
                    200,
                    "protothrive; fwd=stale; fwd-status=200",
                ),
                step("GET", &[], 0, 200, "protothrive; fwd=uri-miss"),
            ],
        ),
        row(
            "a HEAD 200 of another length invalidates the stored GET",
            &[
                STORED_GET,
                Res(
                    200,
                    &[
                        ("cache-control", "max-age=100"),
                        ("etag", "\"v1\""),
                        ("content-length", "99"),
                    ],
                    "",
                ),
            ],
            3,
            invalidated_by_head(),
        ),
        row(
            "a HEAD 200 without a validator invalidates the stored GET",
            &[
                STORED_GET,
                Res(200, &[("cache-control", "max-age=100")], ""),
            ],
            3,
            invalidated_by_head(),
        ),
        row(
            "a HEAD 200 that forbids storing takes the stored GET away",
            &[
                STORED_GET,
                Res(
                    200,
                    &[("cache-control", "no-store"), ("etag", "\"v1\"")],
                    "",
                ),
            ],
            3,
            invalidated_by_head(),
        ),
        row(
            "a HEAD answered otherwise than 200 leaves the stored GET as it was",
            &[STORED_GET, Res(404, &[("etag", "\"v9\"")], "")],
            3,
            vec![
                step("GET", &[], 0, 200, STORED),
                step(
                    "HEAD",
                    &[],
                    11,
                    404,
                    "protothrive; fwd=stale; fwd-status=404",
                ),
                step("GET", &[], 0, 404, "protothrive; fwd=stale"),
            ],
        ),
    ])
    .await;
}

#[tokio::test]
async fn range_from_a_stored_complete_200() {
    let range = |v: &'static str| -> &'static [(&'static str, &'static str)] {
        Box::leak(Box::new([("range", v)]))
    };
    run(vec![
        row(
            "one range: 206 with its Content-Range",
            &[FULL_200],
            1,
            vec![
                step("GET", &[], 0, 200, STORED),
                step("GET", range("bytes=2-4"), 1, 206, HIT)
                    .body("234")
                    .has(&[
                        ("content-range", "bytes 2-4/10"),
                        ("content-length", "3"),
                        ("etag", "\"v1\""),
                    ]),
                step("GET", range("bytes=-3"), 0, 206, HIT)
                    .body("789")
                    .has(&[("content-range", "bytes 7-9/10")]),
                step("GET", range("bytes=5-"), 0, 206, HIT).body("56789"),
                step("GET", range("bytes=8-100"), 0, 206, HIT)
                    .body("89")
                    .has(&[("content-range", "bytes 8-9/10")]),
                step("GET", range("bytes=-20"), 0, 206, HIT).body(TEN),
                step("GET", range("bytes=0-1, 2-3, 1-2"), 0, 206, HIT).body("0123"),
            ],
        ),
        row(
            "no range within it: 416 with the length",
            &[FULL_200],
            1,
            vec![
                step("GET", &[], 0, 200, STORED),
                step("GET", range("bytes=10-"), 1, 416, HIT).has(&[
                    ("content-range", "bytes */10"),
                    ("content-type", "application/problem+json"),
                ]),
                step("GET", range("bytes=20-30, 40-"), 0, 416, HIT),
            ],
        ),
        row(
            "a Range to ignore: the whole 200",
            &[FULL_200],
            1,
            vec![
                step("GET", &[], 0, 200, STORED),
                step("GET", range("bytes=4-2"), 1, 200, HIT)
                    .body(TEN)
                    .lacks(&["content-range"]),
                step("GET", range("items=0-1"), 0, 200, HIT).body(TEN),
                step("GET", range("bytes=0-1, 5-6"), 0, 200, HIT).body(TEN),
                step("GET", range("bytes=x-1"), 0, 200, HIT).body(TEN),
            ],
        ),
        row(
            "If-Range: the strong ETag or the strong Last-Modified holds; else the whole 200",
            &[FULL_200],
            1,
            vec![
                step("GET", &[], 0, 200, STORED),
                step(
                    "GET",
                    &[("range", "bytes=0-0"), ("if-range", "\"v1\"")],
                    1,
                    206,
                    HIT,
                )
                .body("0"),
                step(
                    "GET",
                    &[("range", "bytes=0-0"), ("if-range", "\"v0\"")],
                    0,
                    200,
                    HIT,
                )
                .body(TEN),
                step(
                    "GET",
                    &[("range", "bytes=0-0"), ("if-range", "W/\"v1\"")],
                    0,
                    200,
                    HIT,
                )
                .body(TEN),
                step(
                    "GET",
                    &[
                        ("range", "bytes=0-0"),
                        ("if-range", "Mon, 13 Nov 2023 22:13:20 GMT"),
                    ],
                    0,
                    206,
                    HIT,
                )
                .body("0"),
                step(
                    "GET",
                    &[
                        ("range", "bytes=0-0"),
                        ("if-range", "Mon, 13 Nov 2023 22:13:21 GMT"),
                    ],
                    0,
                    200,
                    HIT,
                )
                .body(TEN),
            ],
        ),
        row(
            "a matching If-None-Match comes before Range: 304",
            &[FULL_200],
            1,
            vec![
                step("GET", &[], 0, 200, STORED),
                step(
                    "GET",
                    &[("range", "bytes=0-0"), ("if-none-match", "\"v1\"")],
                    1,
                    304,
                    HIT,
                )
                .lacks(&["content-range"]),
            ],
        ),
        row(
            "HEAD ignores Range",
            &[FULL_200],
            1,
            vec![
                step("GET", &[], 0, 200, STORED),
                step("HEAD", range("bytes=0-0"), 1, 200, HIT)
                    .body("")
                    .lacks(&["content-range"]),
            ],
        ),
        row(
            "a Range miss goes to the origin as it is; its 206 is never stored, nor served whole",
            &[
                Res(
                    206,
                    &[
                        ("cache-control", "max-age=60"),
                        ("content-range", "bytes 2-4/10"),
                    ],
                    "234",
                ),
                FULL_200,
            ],
            2,
            vec![
                step(
                    "GET",
                    range("bytes=2-4"),
                    0,
                    206,
                    "protothrive; fwd=uri-miss",
                )
                .body("234"),
                step("GET", &[], 1, 200, STORED).body(TEN),
                step("GET", range("bytes=2-4"), 1, 206, HIT).body("234"),
            ],
        ),
        row(
            "a 206 to a plain GET is not stored",
            &[Res(
                206,
                &[
                    ("cache-control", "max-age=60"),
                    ("content-range", "bytes 0-1/10"),
                ],
                "01",
            )],
            2,
            vec![
                step("GET", &[], 0, 206, "protothrive; fwd=uri-miss"),
                step("GET", &[], 1, 206, "protothrive; fwd=uri-miss"),
            ],
        ),
        row(
            "a Range on a stale entry goes to the origin, which answers it",
            &[
                FULL_200,
                Res(206, &[("content-range", "bytes 0-0/10")], "0"),
            ],
            2,
            vec![
                step("GET", &[], 0, 200, STORED),
                step("GET", range("bytes=0-0"), 61, 206, "protothrive; fwd=stale").body("0"),
            ],
        ),
        row(
            "only a stored 200 is cut: a stored 404 answers whole",
            &[Res(404, &[("cache-control", "max-age=60")], "missing")],
            1,
            vec![
                step(
                    "GET",
                    &[],
                    0,
                    404,
                    "protothrive; fwd=uri-miss; fwd-status=404;",
                ),
                step("GET", range("bytes=0-1"), 1, 404, HIT).body("missing"),
            ],
        ),
    ])
    .await;
}
