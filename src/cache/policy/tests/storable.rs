//! What a shared cache may store (RFC 9111 §3, §3.5).

use super::*;

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
