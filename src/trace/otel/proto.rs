//! The OTLP trace messages this exporter sends, written straight to protobuf bytes: an
//! `ExportTraceServiceRequest` with one `ResourceSpans`, one `ScopeSpans` and the batch's spans
//! (field numbers from `opentelemetry/proto/{collector/trace,trace,common,resource}/v1/*.proto`).

use super::span::{Kind, SpanRecord, Status, Value};

/// `Span.flags`: the parent-is-remote bit is known.
const HAS_IS_REMOTE: u32 = 0x100;
/// `Span.flags`: the parent lives in another process.
const IS_REMOTE: u32 = 0x200;
/// W3C `sampled` flag (the low byte of `Span.flags` holds the trace flags).
const SAMPLED: u32 = 0x01;

const VARINT: u32 = 0;
const FIXED64: u32 = 1;
const LEN: u32 = 2;
const FIXED32: u32 = 5;

/// Who sends: the resource attributes (`service.name`, ...) and the instrumentation scope.
#[derive(Debug, Clone)]
pub(super) struct Origin {
    pub(super) resource: Vec<(String, String)>,
    pub(super) scope_name: &'static str,
    pub(super) scope_version: &'static str,
}

/// One `ExportTraceServiceRequest` carrying `spans`.
pub(super) fn export_request(origin: &Origin, spans: &[SpanRecord]) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + spans.len() * 512);
    // ExportTraceServiceRequest.resource_spans = 1
    nested(&mut out, 1, |out| {
        // ResourceSpans.resource = 1
        nested(out, 1, |out| {
            for (k, v) in &origin.resource {
                // Resource.attributes = 1
                key_value(out, 1, k, &Value::Str(v.clone()));
            }
        });
        // ResourceSpans.scope_spans = 2
        nested(out, 2, |out| {
            // ScopeSpans.scope = 1: InstrumentationScope { name = 1, version = 2 }
            nested(out, 1, |out| {
                string(out, 1, origin.scope_name);
                string(out, 2, origin.scope_version);
            });
            for span in spans {
                // ScopeSpans.spans = 2
                nested(out, 2, |out| span_message(out, span));
            }
        });
    });
    out
}

fn span_message(out: &mut Vec<u8>, s: &SpanRecord) {
    bytes(out, 1, &s.trace_id);
    bytes(out, 2, &s.span_id);
    if let Some(parent) = &s.parent_id {
        bytes(out, 4, parent);
    }
    string(out, 5, &s.name());
    let kind = match s.kind {
        Kind::Internal => 1,
        Kind::Server => 2,
        Kind::Client => 3,
    };
    uint(out, 6, kind);
    fixed64(out, 7, s.start_unix_nanos);
    fixed64(out, 8, s.end_unix_nanos);
    for (k, v) in &s.attributes {
        key_value(out, 9, k, v);
    }
    for e in &s.events {
        // Span.events = 11: Event { time_unix_nano = 1, name = 2, attributes = 3,
        // dropped_attributes_count = 4 }
        nested(out, 11, |out| {
            fixed64(out, 1, e.time_unix_nanos);
            string(out, 2, &e.name);
            for (k, v) in &e.attributes {
                key_value(out, 3, k, v);
            }
            uint(out, 4, u64::from(e.dropped_attributes));
        });
    }
    // Span.dropped_events_count = 12
    uint(out, 12, u64::from(s.dropped_events));
    let code = match s.status {
        Status::Unset => 0,
        Status::Ok => 1,
        Status::Error => 2,
    };
    if code != 0 {
        // Status { message = 2, code = 3 }
        nested(out, 15, |out| uint(out, 3, code));
    }
    let remote = match (s.kind, s.parent_id) {
        // A server span's parent is the caller, in another process.
        (Kind::Server, Some(_)) => HAS_IS_REMOTE | IS_REMOTE,
        _ => HAS_IS_REMOTE,
    };
    fixed32(out, 16, SAMPLED | remote);
}

/// `KeyValue { key = 1, value = 2: AnyValue }` as field `field` of the enclosing message.
fn key_value(out: &mut Vec<u8>, field: u32, k: &str, v: &Value) {
    nested(out, field, |out| {
        string(out, 1, k);
        nested(out, 2, |out| match v {
            // A oneof member is written even when it is the default value.
            Value::Str(s) => {
                tag(out, 1, LEN);
                varint(out, s.len() as u64);
                out.extend_from_slice(s.as_bytes());
            }
            Value::Bool(b) => {
                tag(out, 2, VARINT);
                varint(out, u64::from(*b));
            }
            Value::Int(i) => {
                tag(out, 3, VARINT);
                // int64: two's complement, ten bytes when negative.
                varint(out, *i as u64);
            }
            Value::Float(f) => {
                tag(out, 4, FIXED64);
                out.extend_from_slice(&f.to_bits().to_le_bytes());
            }
        });
    });
}

/// A length-delimited field whose content `f` writes: the content goes in place, then its
/// length is inserted in front of it (one move of the content per nesting level).
fn nested(out: &mut Vec<u8>, field: u32, f: impl FnOnce(&mut Vec<u8>)) {
    tag(out, field, LEN);
    let start = out.len();
    f(out);
    let mut len = Vec::with_capacity(10);
    varint(&mut len, (out.len() - start) as u64);
    out.splice(start..start, len);
}

fn tag(out: &mut Vec<u8>, field: u32, wire: u32) {
    varint(out, u64::from(field << 3 | wire));
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        // The low seven bits, with the continuation bit.
        out.push((v & 0x7f) as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn uint(out: &mut Vec<u8>, field: u32, v: u64) {
    if v != 0 {
        tag(out, field, VARINT);
        varint(out, v);
    }
}

fn fixed64(out: &mut Vec<u8>, field: u32, v: u64) {
    tag(out, field, FIXED64);
    out.extend_from_slice(&v.to_le_bytes());
}

fn fixed32(out: &mut Vec<u8>, field: u32, v: u32) {
    tag(out, field, FIXED32);
    out.extend_from_slice(&v.to_le_bytes());
}

fn bytes(out: &mut Vec<u8>, field: u32, v: &[u8]) {
    if !v.is_empty() {
        tag(out, field, LEN);
        varint(out, v.len() as u64);
        out.extend_from_slice(v);
    }
}

fn string(out: &mut Vec<u8>, field: u32, v: &str) {
    bytes(out, field, v.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let mut out = Vec::new();
        f(&mut out);
        out
    }

    #[test]
    fn varints_as_the_protobuf_encoding_guide_writes_them() {
        assert_eq!(v(|o| varint(o, 0)), [0x00]);
        assert_eq!(v(|o| varint(o, 1)), [0x01]);
        assert_eq!(v(|o| varint(o, 150)), [0x96, 0x01]);
        assert_eq!(v(|o| varint(o, 300)), [0xac, 0x02]);
        assert_eq!(
            v(|o| varint(o, u64::MAX)),
            [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]
        );
        // int64 -1 takes ten bytes.
        assert_eq!(v(|o| varint(o, -1i64 as u64)).len(), 10);
    }

    #[test]
    fn a_key_value_and_its_any_value() {
        // KeyValue { key: "a", value: AnyValue { string_value: "b" } } as field 9.
        assert_eq!(
            v(|o| key_value(o, 9, "a", &Value::Str("b".into()))),
            [0x4a, 0x08, 0x0a, 0x01, b'a', 0x12, 0x03, 0x0a, 0x01, b'b']
        );
        // An empty string and `false` are still written (oneof presence).
        assert_eq!(
            v(|o| key_value(o, 1, "", &Value::Str(String::new()))),
            [0x0a, 0x04, 0x12, 0x02, 0x0a, 0x00]
        );
        assert_eq!(
            v(|o| key_value(o, 1, "b", &Value::Bool(false))),
            [0x0a, 0x07, 0x0a, 0x01, b'b', 0x12, 0x02, 0x10, 0x00]
        );
        assert_eq!(
            v(|o| key_value(o, 1, "n", &Value::Int(150))),
            [0x0a, 0x08, 0x0a, 0x01, b'n', 0x12, 0x03, 0x18, 0x96, 0x01]
        );
    }

    #[test]
    fn a_long_nested_message_gets_a_two_byte_length() {
        let out = v(|o| nested(o, 1, |o| bytes(o, 1, &[7u8; 200])));
        // tag, length 203 (0xcb 0x01), inner tag, inner length 200 (0xc8 0x01), content.
        assert_eq!(&out[..5], [0x0a, 0xcb, 0x01, 0x0a, 0xc8]);
        assert_eq!(out.len(), 3 + 3 + 200);
    }

    #[test]
    fn fixed_width_fields_are_little_endian() {
        assert_eq!(v(|o| fixed64(o, 7, 1)), [0x39, 1, 0, 0, 0, 0, 0, 0, 0]);
        // Field 16 needs a two-byte tag.
        assert_eq!(v(|o| fixed32(o, 16, 0x301)), [0x85, 0x01, 0x01, 0x03, 0, 0]);
    }
}
