//! W3C Trace Context parsing over hostile `traceparent` / `tracestate` header lines.
//!
//! Invariants: no panic; a parsed `traceparent` holds exactly the lowercase hex it was given,
//! never an all-zero id, and formats back to 55 bytes that parse to the same ids (flags masked
//! to the known `0x03`); a parsed `tracestate` has at most 32 members with unique keys and its
//! text parses back to the same state; `Incoming::from_headers` never keeps a state without a
//! parent, refuses a duplicated `traceparent`, and agrees with the two parsers; a context
//! continued from it and injected into outbound headers reads back as its child.
#![no_main]

use std::collections::HashSet;
use std::fmt;

use arbitrary::Arbitrary;
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use protothrive::trace::{
    Incoming, ParseError, TRACEPARENT, TRACESTATE, TraceContext, TraceParent, TraceState, to_hex,
};

#[derive(Arbitrary)]
struct Input {
    parents: Vec<Vec<ParentPiece>>,
    states: Vec<Vec<StatePiece>>,
}

/// `traceparent` text, in pieces near the grammar so the fuzzer reaches the deep checks.
#[derive(Arbitrary, Debug)]
enum ParentPiece {
    Raw(Vec<u8>),
    /// A well-formed value of any version, flags and ids (zero ids included), with a tail.
    Fields {
        version: u8,
        trace_id: [u8; 16],
        parent_id: [u8; 8],
        flags: u8,
        upper: bool,
    },
    Dash,
    Ows,
}

/// `tracestate` text: members near the grammar, separators and optional whitespace.
#[derive(Arbitrary, Debug)]
enum StatePiece {
    Raw(Vec<u8>),
    Member { key: Key, value: Vec<u8> },
    Long { key_len: u16, value_len: u16 },
    Comma,
    Ows,
}

#[derive(Arbitrary, Debug)]
enum Key {
    Simple(u8),
    Tenant(u8, u8),
    Raw(Vec<u8>),
}

impl ParentPiece {
    fn render(&self, out: &mut Vec<u8>) {
        match self {
            Self::Raw(bytes) => out.extend_from_slice(bytes),
            Self::Fields {
                version,
                trace_id,
                parent_id,
                flags,
                upper,
            } => {
                let text = format!(
                    "{}-{}-{}-{}",
                    to_hex(&[*version]),
                    to_hex(trace_id),
                    to_hex(parent_id),
                    to_hex(&[*flags])
                );
                let text = if *upper {
                    text.to_ascii_uppercase()
                } else {
                    text
                };
                out.extend_from_slice(text.as_bytes());
            }
            Self::Dash => out.push(b'-'),
            Self::Ows => out.extend_from_slice(b" \t"),
        }
    }
}

impl StatePiece {
    fn render(&self, out: &mut Vec<u8>) {
        match self {
            Self::Raw(bytes) => out.extend_from_slice(bytes),
            Self::Member { key, value } => {
                match key {
                    Key::Simple(n) => out.extend_from_slice(format!("k{n}").as_bytes()),
                    Key::Tenant(t, s) => out.extend_from_slice(format!("{t}@s{s}").as_bytes()),
                    Key::Raw(bytes) => out.extend_from_slice(bytes),
                }
                out.push(b'=');
                out.extend_from_slice(value);
            }
            Self::Long { key_len, value_len } => {
                let key_len = usize::from(*key_len % 300).max(1);
                let value_len = usize::from(*value_len % 300);
                out.extend(std::iter::repeat_n(b'k', key_len));
                out.push(b'=');
                out.extend(std::iter::repeat_n(b'v', value_len));
            }
            Self::Comma => out.push(b','),
            Self::Ows => out.push(b' '),
        }
    }
}

fn render<P>(lines: &[Vec<P>], piece: impl Fn(&P, &mut Vec<u8>)) -> Vec<Vec<u8>> {
    lines
        .iter()
        .take(8)
        .map(|line| {
            let mut out = Vec::new();
            line.iter().for_each(|p| piece(p, &mut out));
            out
        })
        .collect()
}

/// Prints a reproducer: the header lines as byte strings.
impl fmt::Debug for Input {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |lines: Vec<Vec<u8>>| -> Vec<String> {
            lines
                .iter()
                .map(|l| format!("b\"{}\"", l.escape_ascii()))
                .collect()
        };
        f.debug_struct("Input")
            .field(
                "traceparent",
                &show(render(&self.parents, ParentPiece::render)),
            )
            .field(
                "tracestate",
                &show(render(&self.states, StatePiece::render)),
            )
            .finish()
    }
}

fn trim(v: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| matches!(b, b' ' | b'\t');
    let start = v.iter().position(|b| !is_ows(b)).unwrap_or(v.len());
    let end = v.iter().rposition(|b| !is_ows(b)).map_or(start, |e| e + 1);
    &v[start..end.max(start)]
}

fn check_parent(line: &[u8]) -> Result<TraceParent, ParseError> {
    let tp = TraceParent::parse(line)?;
    let v = trim(line);
    assert!(v.len() >= 55 && &v[..2] != b"ff", "{:?}", v.escape_ascii());
    if &v[..2] == b"00" {
        assert_eq!(v.len(), 55);
    }
    assert_eq!(&v[3..35], to_hex(&tp.trace_id).as_bytes());
    assert_eq!(&v[36..52], to_hex(&tp.parent_id).as_bytes());
    assert_eq!(&v[53..55], to_hex(&[tp.flags]).as_bytes());
    assert_ne!(tp.trace_id, [0; 16]);
    assert_ne!(tp.parent_id, [0; 8]);
    let encoded = tp.encode();
    assert_eq!(encoded.len(), 55);
    let back = TraceParent::parse(&encoded)
        .unwrap_or_else(|e| panic!("{tp:?} encodes to {encoded:?}, which fails: {e}"));
    assert_eq!(
        back,
        TraceParent {
            flags: tp.flags & 0x03,
            ..tp
        }
    );
    Ok(tp)
}

fn check_state(lines: &[Vec<u8>]) -> Result<TraceState, ParseError> {
    let ts = TraceState::parse(lines.iter().map(Vec::as_slice))?;
    let members: Vec<(&str, &str)> = ts.iter().collect();
    assert!(members.len() <= 32, "{} members", members.len());
    let keys: HashSet<&str> = members.iter().map(|(k, _)| *k).collect();
    assert_eq!(
        keys.len(),
        members.len(),
        "duplicate keys in {:?}",
        ts.as_str()
    );
    for (k, v) in &members {
        assert!(!k.is_empty() && k.len() <= 256 && !v.is_empty() && v.len() <= 256);
    }
    let back = TraceState::parse([ts.as_str().as_bytes()])
        .unwrap_or_else(|e| panic!("{:?} does not parse back: {e}", ts.as_str()));
    assert_eq!(back, ts);
    assert_eq!(ts.to_header_value().is_none(), ts.is_empty());
    // A vendor's own entry goes first, and the state stays within the limits.
    let ours = ts
        .with("fuzz", "1")
        .unwrap_or_else(|e| panic!("a valid entry refused: {e}"));
    assert_eq!(ours.iter().next(), Some(("fuzz", "1")));
    assert!(ours.iter().count() <= 32);
    assert_eq!(TraceState::parse([ours.as_str().as_bytes()]), Ok(ours));
    Ok(ts)
}

fuzz_target!(|input: Input| {
    let parents = render(&input.parents, ParentPiece::render);
    let states = render(&input.states, StatePiece::render);
    let parsed: Vec<_> = parents
        .iter()
        .map(Vec::as_slice)
        .map(check_parent)
        .collect();
    let state = check_state(&states);

    let mut headers = HeaderMap::new();
    let mut sent_parents = Vec::new();
    for (line, parsed) in parents.iter().zip(&parsed) {
        if let Ok(v) = HeaderValue::from_bytes(line) {
            headers.append(&TRACEPARENT, v);
            sent_parents.push(*parsed);
        }
    }
    let mut sent_states = Vec::new();
    for line in &states {
        if let Ok(v) = HeaderValue::from_bytes(line) {
            headers.append(&TRACESTATE, v);
            sent_states.push(line.clone());
        }
    }
    let inc = Incoming::from_headers(&headers);
    if inc.parent.is_none() {
        assert!(inc.state.is_empty(), "a state without a parent: {inc:?}");
    }
    match sent_parents.as_slice() {
        [] => assert_eq!(inc, Incoming::default()),
        [one] => assert_eq!(inc.parent, one.ok()),
        _ => assert_eq!(
            (inc.parent, inc.refused),
            (None, Some(ParseError::Duplicated))
        ),
    }
    let Some(parent) = inc.parent else {
        return;
    };
    let expected = if sent_states.len() == states.len() {
        state.unwrap_or_default()
    } else {
        TraceState::parse(sent_states.iter().map(Vec::as_slice)).unwrap_or_default()
    };
    assert_eq!(inc.state, expected);

    // Continued and sent on: the next hop reads the same trace, our span as its parent.
    let ctx = TraceContext::continue_from(parent, inc.state.clone());
    let call = ctx.child();
    let mut out = HeaderMap::new();
    call.inject(&mut out);
    let next = Incoming::from_headers(&out);
    let Some(next_parent) = next.parent else {
        panic!("our own traceparent refused: {out:?}");
    };
    assert_eq!(next_parent.trace_id, parent.trace_id);
    assert_eq!(next_parent.parent_id, call.span_id());
    assert_eq!(next_parent.flags, parent.flags & 0x03);
    assert_eq!(next.state, inc.state);
});
