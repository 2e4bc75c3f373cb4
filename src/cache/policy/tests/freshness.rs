//! Freshness lifetime and age (RFC 9111 §4.2).

use super::*;

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
