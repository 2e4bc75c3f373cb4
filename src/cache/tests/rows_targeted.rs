//! Rows: targeted cache control (RFC 9213), what is never stored (1xx, `Set-Cookie`) and the
//! fields a qualified `no-cache`/`private` lists (RFC 9111 §5.2.2.4, §5.2.2.7).

use super::table::{Answer::*, Step, row, run, step};

const STORED: &str = "protothrive; fwd=uri-miss; fwd-status=200;";
const MISS: &str = "protothrive; fwd=uri-miss";
const HIT: &str = "protothrive; hit";

/// Two requests, both sent to the origin: nothing was stored.
fn never_stored() -> Vec<Step> {
    vec![
        step("GET", &[], 0, 200, MISS),
        step("GET", &[], 1, 200, MISS),
    ]
}

#[tokio::test]
async fn targeted_cache_control() {
    run(vec![
        row(
            "CDN-Cache-Control governs storage; Cache-Control still reaches the client",
            &[Res(
                200,
                &[
                    ("cache-control", "no-store"),
                    ("cdn-cache-control", "max-age=60"),
                ],
                "a",
            )],
            1,
            vec![
                step("GET", &[], 0, 200, STORED).has(&[("cache-control", "no-store")]),
                step("GET", &[], 30, 200, "protothrive; hit; ttl=30")
                    .body("a")
                    .has(&[
                        ("cache-control", "no-store"),
                        ("cdn-cache-control", "max-age=60"),
                    ]),
            ],
        ),
        row(
            "its no-store wins over Cache-Control's max-age",
            &[Res(
                200,
                &[
                    ("cache-control", "max-age=60"),
                    ("cdn-cache-control", "no-store"),
                ],
                "a",
            )],
            2,
            never_stored(),
        ),
        row(
            "its max-age counts the Age the origin gave",
            &[Res(
                200,
                &[("cdn-cache-control", "max-age=60"), ("age", "50")],
                "a",
            )],
            2,
            vec![
                step("GET", &[], 0, 200, STORED),
                step("GET", &[], 9, 200, "protothrive; hit; ttl=1"),
                step("GET", &[], 2, 200, "protothrive; fwd=stale"),
            ],
        ),
        row(
            "Expires does not count under a targeted field",
            &[Res(
                200,
                &[
                    ("date", super::DATE),
                    ("expires", "Tue, 14 Nov 2023 23:13:20 GMT"),
                    ("cdn-cache-control", "must-revalidate"),
                ],
                "a",
            )],
            2,
            never_stored(),
        ),
        row(
            "its private keeps it out of the shared cache",
            &[Res(
                200,
                &[
                    ("cache-control", "public, max-age=60"),
                    ("cdn-cache-control", "private"),
                ],
                "a",
            )],
            2,
            never_stored(),
        ),
        row(
            "its s-maxage is a shared cache's",
            &[Res(
                200,
                &[("cdn-cache-control", "max-age=600, s-maxage=10")],
                "a",
            )],
            2,
            vec![
                step("GET", &[], 0, 200, STORED),
                step("GET", &[], 11, 200, "protothrive; fwd=stale"),
            ],
        ),
        row(
            "its no-cache revalidates every time",
            &[
                Res(
                    200,
                    &[
                        ("cdn-cache-control", "max-age=60, no-cache"),
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
                    1,
                    200,
                    "protothrive; fwd=request; fwd-status=304",
                )
                .body("a"),
            ],
        ),
        row(
            "its must-revalidate refuses stale-if-error when the origin closes",
            &[
                Res(
                    200,
                    &[
                        ("cache-control", "max-age=600, stale-if-error=600"),
                        (
                            "cdn-cache-control",
                            "max-age=60, must-revalidate, stale-if-error=600",
                        ),
                    ],
                    "a",
                ),
                Closed,
            ],
            2,
            vec![
                step("GET", &[], 0, 200, STORED),
                step("GET", &[], 61, 0, ""),
            ],
        ),
        row(
            "an invalid dictionary is ignored whole: Cache-Control governs",
            &[Res(
                200,
                &[
                    ("cache-control", "max-age=60"),
                    ("cdn-cache-control", "Max-Age=0"),
                ],
                "a",
            )],
            1,
            vec![
                step("GET", &[], 0, 200, STORED),
                step("GET", &[], 30, 200, "protothrive; hit; ttl=30"),
            ],
        ),
        row(
            "an empty field is ignored: Cache-Control governs",
            &[Res(
                200,
                &[("cache-control", "no-store"), ("cdn-cache-control", "")],
                "a",
            )],
            2,
            never_stored(),
        ),
        row(
            "a Decimal max-age reads as 0",
            &[Res(
                200,
                &[
                    ("cache-control", "max-age=60"),
                    ("cdn-cache-control", "max-age=1.5"),
                ],
                "a",
            )],
            2,
            never_stored(),
        ),
        row(
            "the product field first on the list wins over CDN-Cache-Control",
            &[Res(
                200,
                &[
                    ("protothrive-cache-control", "no-store"),
                    ("cdn-cache-control", "max-age=60"),
                ],
                "a",
            )],
            2,
            never_stored(),
        )
        .targets(&["Protothrive-Cache-Control", "CDN-Cache-Control"]),
        row(
            "the product field governs over Cache-Control",
            &[Res(
                200,
                &[
                    ("cache-control", "no-store"),
                    ("protothrive-cache-control", "max-age=60"),
                ],
                "a",
            )],
            1,
            vec![
                step("GET", &[], 0, 200, STORED),
                step("GET", &[], 1, 200, HIT),
            ],
        )
        .targets(&["Protothrive-Cache-Control", "CDN-Cache-Control"]),
        row(
            "a field off the list changes nothing",
            &[Res(
                200,
                &[
                    ("cache-control", "no-store"),
                    ("protothrive-cache-control", "max-age=60"),
                ],
                "a",
            )],
            2,
            vec![
                step("GET", &[], 0, 200, MISS),
                step("GET", &[], 1, 200, MISS).has(&[("protothrive-cache-control", "max-age=60")]),
            ],
        ),
        row(
            "an empty target list turns targeting off",
            &[Res(
                200,
                &[
                    ("cache-control", "no-store"),
                    ("cdn-cache-control", "max-age=60"),
                ],
                "a",
            )],
            2,
            never_stored(),
        )
        .targets(&[]),
    ])
    .await;
}

#[tokio::test]
async fn never_stored_and_listed_fields() {
    run(vec![
        row(
            "an interim 103 is never stored",
            &[Res(
                103,
                &[("cache-control", "max-age=60"), ("link", "</a.css>")],
                "",
            )],
            2,
            vec![
                step("GET", &[], 0, 103, MISS),
                step("GET", &[], 1, 103, MISS),
            ],
        ),
        row(
            "an interim 100 is never stored",
            &[Res(100, &[("cache-control", "public, max-age=60")], "")],
            2,
            vec![
                step("GET", &[], 0, 100, MISS),
                step("GET", &[], 1, 100, MISS),
            ],
        ),
        row(
            "Set-Cookie: not stored; the fetching client gets it, and so does the next",
            &[Res(
                200,
                &[("cache-control", "max-age=60"), ("set-cookie", "a=1")],
                "a",
            )],
            2,
            vec![
                step("GET", &[], 0, 200, MISS).has(&[("set-cookie", "a=1")]),
                step("GET", &[], 1, 200, MISS).has(&[("set-cookie", "a=1")]),
            ],
        ),
        row(
            "Set-Cookie listed in private=: stored without it",
            &[Res(
                200,
                &[
                    ("cache-control", "max-age=60, private=\"Set-Cookie\""),
                    ("set-cookie", "a=1"),
                ],
                "a",
            )],
            1,
            vec![
                step("GET", &[], 0, 200, STORED).has(&[("set-cookie", "a=1")]),
                step("GET", &[], 1, 200, HIT)
                    .body("a")
                    .lacks(&["set-cookie"]),
            ],
        ),
        row(
            "Set-Cookie listed in no-cache=: stored without it",
            &[Res(
                200,
                &[
                    ("cache-control", "max-age=60, no-cache=\"set-cookie\""),
                    ("set-cookie", "a=1"),
                ],
                "a",
            )],
            1,
            vec![
                step("GET", &[], 0, 200, STORED).has(&[("set-cookie", "a=1")]),
                step("GET", &[], 1, 200, HIT).lacks(&["set-cookie"]),
            ],
        ),
        row(
            "no-cache=\"x-token\": reused without revalidation, without the field",
            &[Res(
                200,
                &[
                    ("cache-control", "max-age=60, no-cache=\"x-token\""),
                    ("x-token", "t1"),
                    ("x-other", "o"),
                ],
                "a",
            )],
            1,
            vec![
                step("GET", &[], 0, 200, STORED).has(&[("x-token", "t1"), ("x-other", "o")]),
                step("GET", &[], 1, 200, HIT)
                    .has(&[("x-other", "o")])
                    .lacks(&["x-token"]),
            ],
        ),
        row(
            "private=\"x-user-data\": shared without the field",
            &[Res(
                200,
                &[
                    ("cache-control", "max-age=60, private=\"x-user-data\""),
                    ("x-user-data", "u1"),
                ],
                "a",
            )],
            1,
            vec![
                step("GET", &[], 0, 200, STORED).has(&[("x-user-data", "u1")]),
                step("GET", &[], 1, 200, HIT).lacks(&["x-user-data"]),
            ],
        ),
        row(
            "private=\"x-user-data\" in a user's partition: kept for that user only",
            &[Res(
                200,
                &[
                    ("cache-control", "max-age=60, private=\"x-user-data\""),
                    ("x-user-data", "u1"),
                ],
                "a",
            )],
            2,
            vec![
                step("GET", &[("x-user", "u1")], 0, 200, STORED),
                step("GET", &[("x-user", "u1")], 1, 200, HIT).has(&[("x-user-data", "u1")]),
                step("GET", &[("x-user", "u2")], 1, 200, MISS),
            ],
        )
        .partitioned(),
        row(
            "an unqualified no-cache still revalidates",
            &[
                Res(
                    200,
                    &[
                        ("cache-control", "max-age=60, no-cache"),
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
                    1,
                    200,
                    "protothrive; fwd=request; fwd-status=304",
                ),
            ],
        ),
        row(
            "a listed field a 304 brings reaches this client, not the next",
            &[
                Res(
                    200,
                    &[("cache-control", "max-age=60"), ("etag", "\"v1\"")],
                    "a",
                ),
                Res(
                    304,
                    &[
                        ("etag", "\"v1\""),
                        ("cache-control", "max-age=60, no-cache=\"x-token\""),
                        ("x-token", "t2"),
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
                    61,
                    200,
                    "protothrive; fwd=stale; fwd-status=304",
                )
                .has(&[("x-token", "t2")]),
                step("GET", &[], 1, 200, HIT).body("a").lacks(&["x-token"]),
            ],
        ),
    ])
    .await;
}
