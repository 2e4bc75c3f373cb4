//! Rows: a stale entry revalidated or refused when the origin closes the connection (RFC 9111
//! §4.2.4, §5.2.2.2, §5.2.2.4, §5.2.2.8, §5.2.2.10; RFC 5861), and the stored `Age`, `Date`,
//! `Expires` and other fields updated from a 304 (§3.2, §4.3.4).

use super::table::{Answer::*, Step, row, run, step};

const STORED: &str = "protothrive; fwd=uri-miss; fwd-status=200;";
const SIE: &str = "protothrive; fwd=stale; ttl=-1; detail=stale-if-error";

/// Stored, then, `wait` seconds on, the origin's error and not the stored response.
fn refused(wait: u64) -> Vec<Step> {
    vec![
        step("GET", &[], 0, 200, STORED),
        step("GET", &[], wait, 0, ""),
    ]
}

#[tokio::test]
async fn stale_entries_when_the_origin_closes() {
    let answer = |cc: &'static str| -> &'static [super::table::Answer] {
        Box::leak(Box::new([
            Res(
                200,
                Box::leak(Box::new([("cache-control", cc), ("etag", "\"v1\"")])),
                "old",
            ),
            Closed,
        ]))
    };
    run(vec![
        row(
            "stale-if-error answers stale when the connection closes",
            answer("max-age=60, stale-if-error=600"),
            2,
            vec![
                step("GET", &[], 0, 200, STORED),
                step("GET", &[], 61, 200, SIE).body("old"),
            ],
        ),
        row(
            "the request's own stale-if-error too",
            answer("max-age=60"),
            2,
            vec![
                step("GET", &[], 0, 200, STORED),
                step(
                    "GET",
                    &[("cache-control", "stale-if-error=600")],
                    61,
                    200,
                    SIE,
                ),
            ],
        ),
        row(
            "must-revalidate: the error, never the stale entry",
            answer("max-age=60, must-revalidate, stale-if-error=600"),
            2,
            refused(61),
        ),
        row(
            "must-revalidate beats the request's max-stale",
            answer("max-age=60, must-revalidate"),
            2,
            vec![
                step("GET", &[], 0, 200, STORED),
                step("GET", &[("cache-control", "max-stale=600")], 61, 0, ""),
            ],
        ),
        row(
            "must-revalidate beats stale-while-revalidate: revalidated at once",
            answer("max-age=60, must-revalidate, stale-while-revalidate=600"),
            2,
            refused(61),
        ),
        row(
            "must-revalidate with only-if-cached: 504, the origin not asked",
            answer("max-age=60, must-revalidate"),
            1,
            vec![
                step("GET", &[], 0, 200, STORED),
                step(
                    "GET",
                    &[("cache-control", "only-if-cached, max-stale")],
                    61,
                    504,
                    "protothrive; fwd=request; detail=only-if-cached",
                ),
            ],
        ),
        row(
            "proxy-revalidate binds the shared cache",
            answer("max-age=60, proxy-revalidate, stale-if-error=600"),
            2,
            refused(61),
        ),
        row(
            "proxy-revalidate does not bind a user's partition (a private cache)",
            answer("max-age=60, proxy-revalidate, stale-if-error=600"),
            2,
            vec![
                step("GET", &[("x-user", "u1")], 0, 200, STORED),
                step("GET", &[("x-user", "u1")], 61, 200, SIE),
            ],
        )
        .partitioned(),
        row(
            "s-maxage implies proxy-revalidate",
            answer("s-maxage=60, stale-if-error=600"),
            2,
            refused(61),
        ),
        row(
            "no-cache: never served without a successful revalidation",
            answer("max-age=60, no-cache, stale-if-error=600"),
            2,
            refused(1),
        ),
        row(
            "past the stale-if-error window: the error",
            answer("max-age=60, stale-if-error=10"),
            2,
            refused(71),
        ),
    ])
    .await;
}

#[tokio::test]
async fn a_304_updates_the_stored_fields() {
    run(vec![
        row(
            "the 304's Age counts from now on",
            &[
                Res(
                    200,
                    &[("cache-control", "max-age=60"), ("etag", "\"v1\"")],
                    "a",
                ),
                Res(304, &[("etag", "\"v1\""), ("age", "20")], ""),
            ],
            2,
            vec![
                step("GET", &[], 0, 200, STORED),
                step(
                    "GET",
                    &[],
                    61,
                    200,
                    "protothrive; fwd=stale; fwd-status=304; ttl=40; stored",
                )
                .has(&[("age", "20")]),
                step("GET", &[], 10, 200, "protothrive; hit; ttl=30").has(&[("age", "30")]),
            ],
        ),
        row(
            "the stored Age goes when the 304 has none",
            &[
                Res(
                    200,
                    &[
                        ("cache-control", "max-age=100"),
                        ("etag", "\"v1\""),
                        ("age", "50"),
                    ],
                    "a",
                ),
                Res(304, &[("etag", "\"v1\"")], ""),
            ],
            2,
            vec![
                step(
                    "GET",
                    &[],
                    0,
                    200,
                    "protothrive; fwd=uri-miss; fwd-status=200; ttl=50; stored",
                ),
                step(
                    "GET",
                    &[],
                    51,
                    200,
                    "protothrive; fwd=stale; fwd-status=304; ttl=100; stored",
                )
                .has(&[("age", "0")]),
            ],
        ),
        row(
            "the 304's Date and Expires replace the stored ones",
            &[
                Res(
                    200,
                    &[
                        ("date", super::DATE),
                        ("expires", "Tue, 14 Nov 2023 22:14:20 GMT"),
                        ("etag", "\"v1\""),
                    ],
                    "a",
                ),
                Res(
                    304,
                    &[
                        ("etag", "\"v1\""),
                        ("date", "Tue, 14 Nov 2023 22:14:21 GMT"),
                        ("expires", "Tue, 14 Nov 2023 22:16:21 GMT"),
                    ],
                    "",
                ),
            ],
            2,
            vec![
                step(
                    "GET",
                    &[],
                    0,
                    200,
                    "protothrive; fwd=uri-miss; fwd-status=200; ttl=60; stored",
                ),
                step(
                    "GET",
                    &[],
                    61,
                    200,
                    "protothrive; fwd=stale; fwd-status=304; ttl=120; stored",
                )
                .has(&[
                    ("date", "Tue, 14 Nov 2023 22:14:21 GMT"),
                    ("expires", "Tue, 14 Nov 2023 22:16:21 GMT"),
                ]),
            ],
        ),
        row(
            "a 304 without Date: the time it arrived, not the stored Date",
            &[
                Res(
                    200,
                    &[
                        ("date", super::DATE),
                        ("cache-control", "max-age=60"),
                        ("etag", "\"v1\""),
                    ],
                    "a",
                ),
                Res(304, &[("etag", "\"v1\"")], ""),
            ],
            2,
            vec![
                step("GET", &[], 0, 200, STORED),
                step(
                    "GET",
                    &[],
                    61,
                    200,
                    "protothrive; fwd=stale; fwd-status=304; ttl=60; stored",
                )
                .has(&[("date", "Tue, 14 Nov 2023 22:14:21 GMT")]),
            ],
        ),
        row(
            "a 304 without freshness keeps the stored Expires, against its own Date",
            &[
                Res(
                    200,
                    &[
                        ("date", super::DATE),
                        ("expires", "Tue, 14 Nov 2023 22:15:20 GMT"),
                        ("etag", "\"v1\""),
                    ],
                    "a",
                ),
                Res(
                    304,
                    &[
                        ("etag", "\"v1\""),
                        ("date", "Tue, 14 Nov 2023 22:14:21 GMT"),
                    ],
                    "",
                ),
            ],
            2,
            vec![
                step("GET", &[], 0, 200, STORED),
                step(
                    "GET",
                    &[],
                    121,
                    200,
                    "protothrive; fwd=stale; fwd-status=304; ttl=-1",
                ),
            ],
        ),
        row(
            "Content-Length is not updated; the stored body stays",
            &[
                Res(
                    200,
                    &[
                        ("cache-control", "max-age=60"),
                        ("etag", "\"v1\""),
                        ("content-length", "1"),
                    ],
                    "a",
                ),
                Res(
                    304,
                    &[("etag", "\"v1\""), ("content-length", "0"), ("x-new", "1")],
                    "",
                ),
            ],
            2,
            vec![
                step("GET", &[], 0, 200, STORED),
                step(
                    "GET",
                    &[],
                    61,
                    200,
                    "protothrive; fwd=stale; fwd-status=304",
                )
                .body("a")
                .has(&[("content-length", "1"), ("x-new", "1")]),
            ],
        ),
        row(
            "a 304 with another Last-Modified is about another representation",
            &[
                Res(
                    200,
                    &[
                        ("cache-control", "max-age=60"),
                        ("last-modified", "Mon, 13 Nov 2023 22:13:20 GMT"),
                    ],
                    "a",
                ),
                Res(
                    304,
                    &[("last-modified", "Tue, 14 Nov 2023 12:13:20 GMT")],
                    "",
                ),
                Res(200, &[("cache-control", "max-age=60")], "b"),
            ],
            3,
            vec![
                step("GET", &[], 0, 200, STORED),
                step(
                    "GET",
                    &[],
                    61,
                    200,
                    "protothrive; fwd=stale; fwd-status=200",
                )
                .body("b"),
            ],
        ),
    ])
    .await;
}
