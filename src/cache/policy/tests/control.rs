//! `Cache-Control` parsing and formatting (RFC 9111 §5.2): the table, and properties.

use http::HeaderName;
use http::header::CACHE_CONTROL;
use proptest::prelude::*;

use super::*;

#[test]
fn table() {
    let cases: &[(&str, &str)] = &[
        ("", ""),
        ("max-age=60", "max-age=60"),
        ("MAX-AGE=60, Max-Age=60", "max-age=60"),
        ("max-age=60, max-age=30", "max-age=0"),
        ("max-age", "max-age=0"),
        ("max-age=-1", "max-age=0"),
        ("max-age=1.5", "max-age=0"),
        ("max-age=\"60\"", "max-age=60"),
        ("max-age=99999999999999999999", "max-age=2147483648"),
        ("s-maxage=abc", "s-maxage=0"),
        (
            "no-cache=\"Set-Cookie, Foo\", private=\"x\"",
            "no-cache=\"foo, set-cookie\", private=\"x\"",
        ),
        ("no-cache=foo, no-cache=\"a,, Foo\"", "no-cache=\"a, foo\""),
        ("no-cache=\"a\", no-cache", "no-cache"),
        ("no-cache, private=\"a\"", "no-cache, private=\"a\""),
        ("no-cache=\"\", private=\"a b\"", "no-cache, private"),
        ("private=\"x\", private=\"unterminated", "private"),
        ("public,,, no-store", "no-store, public"),
        ("  no-transform ;bad, immutable", "immutable"),
        ("no-store;x, public x, max-age=6 0", "no-store, max-age=0"),
        ("max-stale", "max-stale"),
        ("max-stale=10, max-stale", "max-stale=10"),
        ("max-stale=10, max-stale=5", "max-stale=5"),
        ("max-stale=x", "max-stale=0"),
        ("min-fresh=5, min-fresh=9, min-fresh=x", "min-fresh=9"),
        (
            "stale-while-revalidate=30, stale-while-revalidate=10",
            "stale-while-revalidate=10",
        ),
        ("stale-if-error=oops", "stale-if-error=0"),
        ("foo=\"a, max-age=9\", max-age=3", "max-age=3"),
        ("ext=\"unterminated, max-age=3", ""),
        (
            "only-if-cached, must-understand, proxy-revalidate",
            "proxy-revalidate, must-understand, only-if-cached",
        ),
        ("must-revalidate=\"\\\"\"", "must-revalidate"),
    ];
    for (input, want) in cases {
        assert_eq!(CacheControl::parse(input).to_string(), *want, "{input:?}");
    }
}

/// Found by the `cache_control` fuzz target: a quoted-pair escaping a non-ASCII character.
#[test]
fn quoted_pair_before_a_multibyte_character() {
    let s = "mI=\"5\\\u{e8}\u{3e3}\\\\WW=W";
    let once = CacheControl::parse(s);
    assert_eq!(CacheControl::parse(&once.to_string()), once);
    assert!(CacheControl::parse("no-cache=\"\\\u{e8}\", max-age=5").no_cache);
}

#[test]
fn several_lines_and_bad_bytes() {
    let mut h = HeaderMap::new();
    h.append(CACHE_CONTROL, "public".parse().unwrap());
    h.append(CACHE_CONTROL, "max-age=5".parse().unwrap());
    assert_eq!(
        CacheControl::from_headers(&h).to_string(),
        "public, max-age=5"
    );
    h.append(
        CACHE_CONTROL,
        http::HeaderValue::from_bytes(b"\xff").unwrap(),
    );
    let cc = CacheControl::from_headers(&h);
    assert!(cc.no_store && cc.no_cache);
    assert_eq!(cc.max_age, Some(0));
}

/// A sorted set of field names, as a qualified `no-cache`/`private` keeps them.
pub(in crate::cache) fn fields() -> impl Strategy<Value = Vec<HeaderName>> {
    proptest::collection::btree_set("[a-z][a-z0-9-]{0,6}", 0..3).prop_map(|names| {
        names
            .iter()
            .map(|n| HeaderName::from_bytes(n.as_bytes()).unwrap())
            .collect()
    })
}

pub(in crate::cache) fn any_cc() -> impl Strategy<Value = CacheControl> {
    let secs = || proptest::option::of(prop_oneof![0..100u32, Just(MAX_DELTA_SECONDS)]);
    (
        proptest::collection::vec(any::<bool>(), 10),
        (secs(), secs(), secs(), secs(), secs()),
        proptest::option::of(prop_oneof![
            Just(MaxStale::Any),
            (0..100u32).prop_map(MaxStale::Seconds)
        ]),
        (fields(), fields()),
    )
        .prop_map(|(b, (ma, sm, mf, swr, sie), ms, (ncf, pf))| CacheControl {
            no_store: b[0],
            no_cache: b[1],
            // A list is moot beside its unqualified directive.
            no_cache_fields: if b[1] { Vec::new() } else { ncf },
            private: b[2],
            private_fields: if b[2] { Vec::new() } else { pf },
            public: b[3],
            must_revalidate: b[4],
            proxy_revalidate: b[5],
            must_understand: b[6],
            no_transform: b[7],
            immutable: b[8],
            only_if_cached: b[9],
            max_age: ma,
            s_maxage: sm,
            max_stale: ms,
            min_fresh: mf,
            stale_while_revalidate: swr,
            stale_if_error: sie,
        })
}

proptest! {
    #[test]
    fn value_format_parse_round_trip(cc in any_cc()) {
        prop_assert_eq!(CacheControl::parse(&cc.to_string()), cc);
    }

    #[test]
    fn string_parse_format_parse_is_stable(s in "[ -~]{0,80}") {
        let once = CacheControl::parse(&s);
        prop_assert_eq!(CacheControl::parse(&once.to_string()), once);
    }

    #[test]
    fn directive_soup_is_stable(parts in proptest::collection::vec(
        prop_oneof![
            Just("max-age=10".to_owned()), Just("max-age=\"7\"".to_owned()), Just("MAX-age".to_owned()),
            Just("s-maxage=3".to_owned()), Just("no-cache=\"a,b\"".to_owned()), Just("private".to_owned()),
            Just("max-stale".to_owned()), Just("max-stale=4".to_owned()), Just("min-fresh=x".to_owned()),
            Just("stale-if-error=9".to_owned()), Just("x=\"\\\"".to_owned()), "[a-z=\", ]{0,8}",
        ], 0..8)) {
        let s = parts.join(", ");
        let once = CacheControl::parse(&s);
        prop_assert_eq!(CacheControl::parse(&once.to_string()), once);
    }
}
