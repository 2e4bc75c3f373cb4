//! Every hostile input of the W3C test suite at its strict level (and oversized ones), each
//! sent to the example with one callback: the trace is kept or restarted, the callback gets a
//! new parent id, `tracestate` is kept (as the expected text) or dropped.

use std::fmt::Write as _;

use serde_json::json;

use super::{Harness, PARENT, TRACE, VALID, traceparent, tracestate};

/// What the callback should carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trace {
    Kept,
    Restarted,
}

struct Case {
    name: &'static str,
    headers: Vec<(&'static str, Vec<u8>)>,
    trace: Trace,
    /// The `tracestate` sent on (`None`: not sent).
    state: Option<String>,
}

fn tp(v: &str) -> (&'static str, Vec<u8>) {
    ("traceparent", v.as_bytes().to_vec())
}

fn ts(v: &str) -> (&'static str, Vec<u8>) {
    ("tracestate", v.as_bytes().to_vec())
}

fn case(
    name: &'static str,
    headers: Vec<(&'static str, Vec<u8>)>,
    trace: Trace,
    state: Option<&str>,
) -> Case {
    Case {
        name,
        headers,
        trace,
        state: state.map(str::to_owned),
    }
}

/// A valid `traceparent` with `tracestate: foo=1`, one field replaced.
fn bad_parent(name: &'static str, value: &str) -> Case {
    case(name, vec![tp(value), ts("foo=1")], Trace::Restarted, None)
}

/// A valid `traceparent` with `tracestate` fields.
fn with_state(name: &'static str, fields: &[&str], state: Option<&str>) -> Case {
    let mut headers = vec![tp(VALID)];
    headers.extend(fields.iter().map(|f| ts(f)));
    case(name, headers, Trace::Kept, state)
}

/// `barNN=NN` for NN in `from..=to`, joined.
fn members_from(from: usize, to: usize) -> String {
    (from..=to)
        .map(|i| format!("bar{i:02}={i:02}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn members(n: usize) -> String {
    members_from(1, n)
}

/// `n` members (30 or more) in four fields, as the W3C suite sends them.
fn four_fields(n: usize) -> [String; 4] {
    [
        members_from(1, 10),
        members_from(11, 20),
        members_from(21, 30),
        members_from(31, n),
    ]
}

fn cases() -> Vec<Case> {
    use Trace::{Kept, Restarted};
    let all_key = "abcdefghijklmnopqrstuvwxyz0123456789_-*/";
    let all_value: String = (0x20u8..=0x7e)
        .filter(|b| *b != b',' && *b != b'=')
        .map(char::from)
        .collect();
    let long_tail = format!("{VALID}-{}", "x".repeat(8000));
    let future_long = format!("cc{}-{}", &VALID[2..], "x".repeat(8000));
    let big_member = format!("{}={}", "k".repeat(256), "v".repeat(256));
    let big_state: Vec<String> = (0..32)
        .map(|i| format!("k{i:0>255}={}", "v".repeat(256)))
        .collect();
    let big_state = big_state.join(",");
    let commas = format!("foo=1{}", ",".repeat(100_000));
    vec![
        case("no traceparent, no tracestate", vec![], Restarted, None),
        case("valid traceparent", vec![tp(VALID)], Kept, None),
        case(
            "tracestate without traceparent",
            vec![ts("foo=1,bar=2")],
            Restarted,
            None,
        ),
        with_state(
            "valid traceparent and tracestate",
            &["foo=1,bar=2"],
            Some("foo=1,bar=2"),
        ),
        bad_parent(
            "trace id bad hex",
            "00-.2345678901234567890123456789012-1234567890123456-01",
        ),
        bad_parent(
            "parent id bad hex",
            "00-12345678901234567890123456789012-123456789012345.-01",
        ),
        bad_parent(
            "flags bad hex",
            "00-12345678901234567890123456789012-1234567890123456-.0",
        ),
        bad_parent(
            "version bad hex",
            ".0-12345678901234567890123456789012-1234567890123456-01",
        ),
        bad_parent(
            "uppercase trace id",
            "00-ABCDEF78901234567890123456789012-1234567890123456-01",
        ),
        bad_parent(
            "uppercase flags",
            "00-12345678901234567890123456789012-1234567890123456-0A",
        ),
        bad_parent(
            "all-zero trace id",
            "00-00000000000000000000000000000000-1234567890123456-01",
        ),
        bad_parent(
            "all-zero parent id",
            "00-12345678901234567890123456789012-0000000000000000-01",
        ),
        bad_parent(
            "trace id 33 digits",
            "00-123456789012345678901234567890123-1234567890123456-01",
        ),
        bad_parent(
            "trace id 31 digits",
            "00-1234567890123456789012345678901-1234567890123456-01",
        ),
        bad_parent(
            "parent id 17 digits",
            "00-12345678901234567890123456789012-12345678901234567-01",
        ),
        bad_parent(
            "parent id 15 digits",
            "00-12345678901234567890123456789012-123456789012345-01",
        ),
        bad_parent(
            "flags 3 digits",
            "00-12345678901234567890123456789012-1234567890123456-001",
        ),
        bad_parent(
            "flags 1 digit",
            "00-12345678901234567890123456789012-1234567890123456-1",
        ),
        bad_parent(
            "version 3 digits",
            "000-12345678901234567890123456789012-1234567890123456-01",
        ),
        bad_parent(
            "version 1 digit",
            "0-12345678901234567890123456789012-1234567890123456-01",
        ),
        bad_parent(
            "version ff",
            "ff-12345678901234567890123456789012-1234567890123456-01",
        ),
        bad_parent(
            "version 00 + `.`",
            "00-12345678901234567890123456789012-1234567890123456-01.",
        ),
        bad_parent(
            "version 00 + `-what-the-future-will-be-like`",
            "00-12345678901234567890123456789012-1234567890123456-01-what-the-future-will-be-like",
        ),
        case(
            "traceparent duplicated (two fields)",
            vec![
                tp("00-12345678901234567890123456789011-1234567890123456-01"),
                tp(VALID),
                ts("foo=1"),
            ],
            Restarted,
            None,
        ),
        case(
            "future version cc, 55 chars",
            vec![tp(&format!("cc{}", &VALID[2..])), ts("foo=1")],
            Kept,
            Some("foo=1"),
        ),
        case(
            "future version cc + `-what-the-future-will-be-like`",
            vec![tp(&format!(
                "cc{}-what-the-future-will-be-like",
                &VALID[2..]
            ))],
            Kept,
            None,
        ),
        bad_parent(
            "future version cc + `.what-the-future`",
            &format!("cc{}.what-the-future", &VALID[2..]),
        ),
        case(
            "traceparent with OWS `\\t 00-… \\t`",
            vec![tp(&format!("\t {VALID} \t"))],
            Kept,
            None,
        ),
        with_state(
            "tracestate over 3 fields",
            &["foo=1,bar=2", "rojo=1,congo=2", "baz=3"],
            Some("foo=1,bar=2,rojo=1,congo=2,baz=3"),
        ),
        with_state("tracestate empty field", &[""], None),
        with_state(
            "tracestate `foo=1` + empty field",
            &["foo=1", ""],
            Some("foo=1"),
        ),
        with_state(
            "tracestate empty field + `foo=1`",
            &["", "foo=1"],
            Some("foo=1"),
        ),
        with_state(
            "tracestate with OWS",
            &["foo=1 \t , \t bar=2, \t baz=3"],
            Some("foo=1,bar=2,baz=3"),
        ),
        with_state(
            "tracestate `\\t foo=1 \\t`",
            &["\t foo=1 \t"],
            Some("foo=1"),
        ),
        with_state("tracestate 32 members", &[&members(32)], Some(&members(32))),
        with_state("tracestate 33 members", &[&members(33)], None),
        with_state(
            "tracestate 32 members in 4 fields",
            &four_fields(32).each_ref().map(String::as_str),
            Some(&members(32)),
        ),
        with_state(
            "tracestate 33 members in 4 fields",
            &four_fields(33).each_ref().map(String::as_str),
            None,
        ),
        with_state("tracestate duplicated key", &["foo=1,foo=2"], None),
        with_state(
            "tracestate same key in two fields",
            &["foo=1", "foo=1"],
            None,
        ),
        with_state(
            "tracestate key 256 chars",
            &["foo=1", &format!("{}=1", "z".repeat(256))],
            Some(&format!("foo=1,{}=1", "z".repeat(256))),
        ),
        with_state(
            "tracestate key 257 chars",
            &["foo=1", &format!("{}=1", "z".repeat(257))],
            None,
        ),
        with_state(
            "tracestate tenant 241 @ system 14",
            &[
                "foo=1",
                &format!("{}@{}=1", "t".repeat(241), "v".repeat(14)),
            ],
            Some(&format!("foo=1,{}@{}=1", "t".repeat(241), "v".repeat(14))),
        ),
        with_state(
            "tracestate tenant 242 chars",
            &["foo=1", &format!("{}@v=1", "t".repeat(242))],
            None,
        ),
        with_state(
            "tracestate system 15 chars",
            &["foo=1", &format!("t@{}=1", "v".repeat(15))],
            None,
        ),
        with_state(
            "tracestate value 256 chars",
            &[&format!("foo={}", "v".repeat(256))],
            Some(&format!("foo={}", "v".repeat(256))),
        ),
        with_state(
            "tracestate value 257 chars",
            &[&format!("foo={}", "v".repeat(257))],
            None,
        ),
        with_state("tracestate value with `=`", &["foo=bar=baz"], None),
        with_state("tracestate empty value", &["foo=,bar=3"], None),
        with_state("tracestate uppercase key", &["FOO=1"], None),
        with_state("tracestate key with `.`", &["foo.bar=1"], None),
        with_state("tracestate key with space", &["foo =1"], None),
        with_state("tracestate `foo@=1`", &["foo@=1,bar=2"], None),
        with_state("tracestate `@foo=1`", &["@foo=1,bar=2"], None),
        with_state("tracestate `foo@@bar=1`", &["foo@@bar=1,bar=2"], None),
        with_state("tracestate `foo@bar@baz=1`", &["foo@bar@baz=1,bar=2"], None),
        with_state(
            "tracestate every allowed character",
            &[
                &format!("{all_key}={all_value}"),
                &format!("{all_key}@a-z0-9_-*/={all_value}"),
            ],
            Some(&format!(
                "{all_key}={all_value},{all_key}@a-z0-9_-*/={all_value}"
            )),
        ),
        case(
            "traceparent 8 KB (version 00 + tail)",
            vec![tp(&long_tail), ts("foo=1")],
            Restarted,
            None,
        ),
        case(
            "traceparent 8 KB (version cc + tail)",
            vec![tp(&future_long), ts("foo=1")],
            Kept,
            Some("foo=1"),
        ),
        with_state(
            "tracestate member 256-char key and value",
            &[&big_member],
            Some(&big_member),
        ),
        with_state(
            "tracestate 16 KB (32 members of 512 chars)",
            &[&big_state],
            Some(&big_state),
        ),
        with_state(
            "tracestate 100 KB (`foo=1` + 100 000 commas)",
            &[&commas],
            Some("foo=1"),
        ),
    ]
}

fn short(v: &[u8]) -> String {
    let text = String::from_utf8_lossy(v);
    if text.len() > 60 {
        format!("{}… ({} bytes)", &text[..40], v.len())
    } else {
        text.into_owned()
    }
}

#[tokio::test]
async fn hostile_inputs_are_continued_or_restarted_as_the_spec_says() {
    let h = Harness::start().await;
    let mut table =
        String::from("| input | traceparent sent on | tracestate sent on |\n|---|---|---|\n");
    let mut failures = Vec::new();
    for c in cases() {
        let out = h.run(&c.headers, 1, json!([])).await;
        assert_eq!(out.status, 200, "{}", c.name);
        assert_eq!(out.callbacks.len(), 1, "{}", c.name);
        let cb = &out.callbacks[0];
        let sent = traceparent(cb);
        let state = tracestate(cb);
        let given: Vec<String> = c
            .headers
            .iter()
            .filter(|(n, _)| *n == "traceparent")
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .collect();
        let trace_ok = match c.trace {
            Trace::Kept => sent.trace_id == TRACE,
            // Restarted: none of the given ids (nor any part of them) is reused.
            Trace::Restarted => {
                given.iter().all(|g| !g.contains(&sent.trace_id)) && sent.trace_id != TRACE
            }
        };
        if !trace_ok || sent.parent_id == PARENT || state != c.state {
            failures.push(format!(
                "{}: trace {:?} expected, sent {sent:?} / tracestate {state:?}, expected {:?}",
                c.name, c.trace, c.state
            ));
        }
        let inputs: Vec<String> = c
            .headers
            .iter()
            .map(|(n, v)| format!("`{n}: {}`", short(v)))
            .collect();
        let kept = if sent.trace_id == TRACE {
            "same trace id"
        } else {
            "new trace id"
        };
        let _ = writeln!(
            table,
            "| {}: {} | {kept}, new parent id, flags {} | {} |",
            c.name,
            if inputs.is_empty() {
                "—".into()
            } else {
                inputs.join(" ")
            },
            sent.flags,
            state.map_or_else(
                || "not sent".to_owned(),
                |s| format!("`{}`", short(s.as_bytes()))
            ),
        );
    }
    println!("{table}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn a_header_block_beyond_the_servers_limit_is_refused_without_callback() {
    let h = Harness::start().await;
    let huge = format!("foo=1{}", ",".repeat(1 << 20));
    let out = h.run(&[tp(VALID), ts(&huge)], 1, json!([])).await;
    assert_eq!(out.status, 431);
    assert!(out.callbacks.is_empty());
}
