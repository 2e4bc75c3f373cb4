use proptest::prelude::*;

use super::*;
use crate::trace::{new_trace_id, to_hex};

const TRACE: &str = "12345678901234567890123456789012";
const VALID: &str = "00-12345678901234567890123456789012-1234567890123456-01";

fn parse(v: &str) -> Result<TraceParent, ParseError> {
    TraceParent::parse(v.as_bytes())
}

fn state(fields: &[&str]) -> Result<TraceState, ParseError> {
    TraceState::parse(fields.iter().map(|f| f.as_bytes()))
}

#[test]
fn version_00_is_strict() {
    let tp = parse(VALID).unwrap();
    assert_eq!(to_hex(&tp.trace_id), TRACE);
    assert_eq!(to_hex(&tp.parent_id), "1234567890123456");
    assert_eq!(tp.flags, 1);
    for bad in [
        "00-12345678901234567890123456789012-1234567890123456-01.",
        "00-12345678901234567890123456789012-1234567890123456-01-",
        "00-1234567890123456789012345678901.-1234567890123456-01",
        "00-123456789012345678901234567890123-1234567890123456-01",
        "00-1234567890123456789012345678901-1234567890123456-01",
        "00-12345678901234567890123456789012-123456789012345.-01",
        "00-12345678901234567890123456789012-12345678901234567-01",
        "00-12345678901234567890123456789012-123456789012345-01",
        "00-12345678901234567890123456789012-1234567890123456-.0",
        "00-12345678901234567890123456789012-1234567890123456-001",
        "00-12345678901234567890123456789012-1234567890123456-1",
        "00-ABCDEF78901234567890123456789012-1234567890123456-01",
        "0-12345678901234567890123456789012-1234567890123456-01",
        "",
    ] {
        assert!(
            matches!(parse(bad), Err(ParseError::Shape | ParseError::Hex)),
            "{bad:?}: {:?}",
            parse(bad)
        );
    }
    assert_eq!(
        parse("00-00000000000000000000000000000000-1234567890123456-01"),
        Err(ParseError::Zero)
    );
    assert_eq!(
        parse("00-12345678901234567890123456789012-0000000000000000-01"),
        Err(ParseError::Zero)
    );
}

#[test]
fn future_versions_are_read_by_their_first_four_fields() {
    let tp = parse(
        "cc-12345678901234567890123456789012-1234567890123456-01-what-the-future-will-be-like",
    )
    .unwrap();
    assert_eq!(to_hex(&tp.trace_id), TRACE);
    assert_eq!(tp.to_string(), VALID);
    assert_eq!(
        parse("cc-12345678901234567890123456789012-1234567890123456-01").map(|t| t.to_string()),
        Ok(VALID.to_owned())
    );
    assert_eq!(
        parse(
            "cc-12345678901234567890123456789012-1234567890123456-01.what-the-future-will-be-like"
        ),
        Err(ParseError::Shape)
    );
    assert_eq!(
        parse("ff-12345678901234567890123456789012-1234567890123456-01"),
        Err(ParseError::Shape)
    );
    assert_eq!(
        parse("cc-12345678901234567890123456789012-1234567890123456"),
        Err(ParseError::Shape)
    );
}

#[test]
fn optional_whitespace_around_traceparent_is_ignored() {
    for v in [
        " 00-12345678901234567890123456789012-1234567890123456-01",
        "\t00-12345678901234567890123456789012-1234567890123456-01",
        "00-12345678901234567890123456789012-1234567890123456-01 ",
        "\t 00-12345678901234567890123456789012-1234567890123456-01 \t",
    ] {
        assert_eq!(to_hex(&parse(v).unwrap().trace_id), TRACE, "{v:?}");
    }
}

#[test]
fn reserved_flags_are_written_as_zero_and_random_is_kept() {
    let tp = parse("00-12345678901234567890123456789012-1234567890123456-ff").unwrap();
    assert_eq!(tp.flags, 0xff);
    assert!(tp.to_string().ends_with("-03"));
    let tp = parse("00-12345678901234567890123456789012-1234567890123456-02").unwrap();
    assert!(!tp.sampled());
    assert!(tp.to_string().ends_with("-02"));
}

#[test]
fn tracestate_members_are_joined_trimmed_and_checked() {
    let ts = state(&["foo=1 \t , \t bar=2, \t baz=3"]).unwrap();
    assert_eq!(ts.as_str(), "foo=1,bar=2,baz=3");
    let ts = state(&["foo=1,bar=2", "rojo=1,congo=2", "baz=3"]).unwrap();
    assert_eq!(ts.as_str(), "foo=1,bar=2,rojo=1,congo=2,baz=3");
    // Empty fields and members are skipped.
    assert_eq!(state(&["", "foo=1", ""]).unwrap().as_str(), "foo=1");
    assert_eq!(state(&[" , ,foo=1"]).unwrap().as_str(), "foo=1");
    // A value keeps its leading spaces.
    assert_eq!(state(&["foo= 1"]).unwrap().get("foo"), Some(" 1"));
    for bad in [
        "foo =1",
        "FOO=1",
        "foo.bar=1",
        "foo@=1,bar=2",
        "@foo=1,bar=2",
        "foo@@bar=1,bar=2",
        "foo@bar@baz=1,bar=2",
        "foo=bar=baz",
        "foo=,bar=3",
        "foo=1\t2",
        "=1",
    ] {
        assert_eq!(state(&[bad]), Err(ParseError::Member), "{bad:?}");
    }
    assert_eq!(state(&["foo=1,foo=2"]), Err(ParseError::DuplicateKey));
    assert_eq!(state(&["foo=1", "foo=1"]), Err(ParseError::DuplicateKey));
}

#[test]
fn tracestate_limits_are_the_specs() {
    let members = |n: usize| {
        (1..=n)
            .map(|i| format!("bar{i:02}={i:02}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    assert_eq!(state(&[&members(32)]).unwrap().iter().count(), 32);
    assert_eq!(state(&[&members(33)]), Err(ParseError::TooManyMembers));
    let z256 = format!("{}=1", "z".repeat(256));
    assert_eq!(
        state(&["foo=1", &z256]).unwrap().get(&"z".repeat(256)),
        Some("1")
    );
    let z257 = format!("{}=1", "z".repeat(257));
    assert_eq!(state(&["foo=1", &z257]).err(), Some(ParseError::Member));
    let tenant = format!("{}@{}=1", "t".repeat(241), "v".repeat(14));
    assert_eq!(state(&["foo=1", &tenant]).unwrap().iter().count(), 2);
    let tenant = format!("{}@v=1", "t".repeat(242));
    assert_eq!(state(&["foo=1", &tenant]).err(), Some(ParseError::Member));
    let system = format!("t@{}=1", "v".repeat(15));
    assert_eq!(state(&["foo=1", &system]).err(), Some(ParseError::Member));
    let value = format!("foo={}", "v".repeat(256));
    assert_eq!(
        state(&[&value]).unwrap().get("foo").map(str::len),
        Some(256)
    );
    let value = format!("foo={}", "v".repeat(257));
    assert_eq!(state(&[&value]).err(), Some(ParseError::Member));
}

#[test]
fn every_allowed_character_is_kept() {
    let key: String = ('a'..='z').chain('0'..='9').chain("_-*/".chars()).collect();
    let value: String = (0x20u8..=0x7e)
        .filter(|b| *b != b',' && *b != b'=')
        .map(char::from)
        .collect();
    let ts = state(&[&format!("{key}={value}")]).unwrap();
    assert_eq!(ts.get(&key), Some(value.as_str()));
    let vendor = format!("{key}@a-z0-9_-*/");
    let ts = state(&[&format!("{vendor}={value}")]).unwrap();
    assert_eq!(ts.get(&vendor), Some(value.as_str()));
}

#[test]
fn incoming_drops_tracestate_with_a_bad_traceparent() {
    let mut h = HeaderMap::new();
    h.insert(&TRACEPARENT, HeaderValue::from_static("00-xyz"));
    h.insert(&TRACESTATE, HeaderValue::from_static("foo=1"));
    let inc = Incoming::from_headers(&h);
    assert_eq!(inc.parent, None);
    assert!(inc.state.is_empty());
    assert_eq!(inc.refused, Some(ParseError::Shape));
    // A bad tracestate does not affect traceparent.
    h.insert(&TRACEPARENT, HeaderValue::from_static(VALID));
    h.insert(&TRACESTATE, HeaderValue::from_static("foo=1,foo=2"));
    let inc = Incoming::from_headers(&h);
    assert_eq!(
        inc.parent,
        Some(TraceParent::parse(VALID.as_bytes()).unwrap())
    );
    assert!(inc.state.is_empty());
    assert_eq!(inc.refused, Some(ParseError::DuplicateKey));
    // Header names are case-insensitive by construction of `HeaderMap`.
    assert_eq!(
        Incoming::from_headers(&HeaderMap::new()),
        Incoming::default()
    );
}

#[test]
fn with_moves_our_entry_first_and_keeps_32() {
    let many = (1..=32)
        .map(|i| format!("k{i}=v"))
        .collect::<Vec<_>>()
        .join(",");
    let ts = state(&[&many]).unwrap().with("ours", "1").unwrap();
    assert_eq!(ts.iter().count(), 32);
    assert_eq!(ts.iter().next(), Some(("ours", "1")));
    assert_eq!(ts.get("k32"), None);
    assert_eq!(
        state(&["a=1,b=2"])
            .unwrap()
            .with("b", "3")
            .unwrap()
            .as_str(),
        "b=3,a=1"
    );
    assert_eq!(
        TraceState::default().with("A", "1"),
        Err(ParseError::Member)
    );
}

#[test]
fn new_ids_are_distinct_across_threads() {
    let ids: Vec<[u8; 16]> = (0..4)
        .map(|_| std::thread::spawn(new_trace_id))
        .map(|h| h.join().unwrap())
        .collect();
    let mut unique = ids.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), ids.len());
}

fn any_parent() -> impl Strategy<Value = TraceParent> {
    (any::<[u8; 16]>(), any::<[u8; 8]>(), any::<u8>())
        .prop_filter("non-zero ids", |(t, p, _)| *t != [0; 16] && *p != [0; 8])
        .prop_map(|(trace_id, parent_id, flags)| TraceParent {
            trace_id,
            parent_id,
            flags,
        })
}

proptest! {
    #[test]
    fn traceparent_round_trips(tp in any_parent()) {
        let back = TraceParent::parse(&tp.encode()).unwrap();
        prop_assert_eq!(back, TraceParent { flags: tp.flags & 3, ..tp });
    }

    #[test]
    fn any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..120)) {
        let _ = TraceParent::parse(&bytes);
        let _ = TraceState::parse([bytes.as_slice()]);
    }

    #[test]
    fn near_valid_traceparents_never_panic(i in 0usize..55, b in any::<u8>(), extra in "[-a-z0-9]{0,8}") {
        let mut v = VALID.as_bytes().to_vec();
        v[i] = b;
        v.extend_from_slice(extra.as_bytes());
        if let Ok(tp) = TraceParent::parse(&v) {
            prop_assert_eq!(TraceParent::parse(&tp.encode()), Ok(TraceParent { flags: tp.flags & 3, ..tp }));
        }
    }

    #[test]
    fn tracestate_round_trips(members in proptest::collection::btree_map("[a-z][a-z0-9_*/-]{0,10}", "[!-+\\--<>-~]{1,12}", 0..32)) {
        let text = members.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" , ");
        let ts = TraceState::parse([text.as_bytes()]).unwrap();
        prop_assert_eq!(ts.iter().count(), members.len());
        for (k, v) in &members {
            prop_assert_eq!(ts.get(k), Some(v.as_str()));
        }
        prop_assert_eq!(TraceState::parse([ts.as_str().as_bytes()]).unwrap(), ts);
    }
}

/// The parser's wrappers (the version and flags pairs, the id runs) read every byte pair as the
/// crate's hex decoder does — which `headers` checks against lowercase hex on every pair.
#[test]
fn hex_pairs_decode_exactly_the_lowercase_digits() {
    for pair in (0..=u16::MAX).map(u16::to_be_bytes) {
        let mut byte = [0u8; 1];
        let decoded = crate::headers::decode_hex(&pair, &mut byte).then_some(byte[0]);
        let mut out = [0u8; 1];
        let got = super::decode_hex(&pair, &mut out).ok().map(|()| out[0]);
        assert_eq!(got, decoded, "{pair:?}");
        assert_eq!(super::hex_byte(pair[0], pair[1]), decoded, "{pair:?}");
        assert_eq!(
            decoded.is_some(),
            pair.iter().all(|b| b"0123456789abcdef".contains(b))
        );
    }
}
