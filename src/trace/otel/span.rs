//! One span as the exporter keeps it between open and close: the trace layer's own ids (read
//! back from its `trace_id` / `span_id` / `parent_span_id` fields), kind and status from the
//! `otel.*` fields, every other field as an attribute.

use std::fmt;

use tracing::field::{Field, Visit};

use crate::trace::context::decode_hex;

/// Longer attribute values are cut (at a character boundary): a `User-Agent` or a path is
/// client input, and a batch stays bounded.
pub(super) const MAX_VALUE_LEN: usize = 4096;

/// OTLP span kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Internal,
    Server,
    Client,
}

/// OTLP status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Status {
    Unset,
    Ok,
    Error,
}

/// An attribute value.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Value {
    Str(String),
    Bool(bool),
    Int(i64),
    Float(f64),
}

/// A span of target `protothrive::trace`, filled by its fields as they are recorded.
#[derive(Debug, Clone)]
pub(super) struct SpanRecord {
    pub(super) span_name: &'static str,
    pub(super) trace_id: [u8; 16],
    pub(super) span_id: [u8; 8],
    pub(super) parent_id: Option<[u8; 8]>,
    pub(super) sampled: bool,
    pub(super) kind: Kind,
    pub(super) status: Status,
    pub(super) start_unix_nanos: u64,
    pub(super) end_unix_nanos: u64,
    pub(super) attributes: Vec<(&'static str, Value)>,
}

impl SpanRecord {
    pub(super) fn new(span_name: &'static str, start_unix_nanos: u64) -> Self {
        Self {
            span_name,
            trace_id: [0; 16],
            span_id: [0; 8],
            parent_id: None,
            sampled: false,
            kind: Kind::Internal,
            status: Status::Unset,
            start_unix_nanos,
            end_unix_nanos: start_unix_nanos,
            attributes: Vec::new(),
        }
    }

    /// Whether the span can be exported: sampled, and with the ids of a real span.
    pub(super) fn exportable(&self) -> bool {
        self.sampled && self.trace_id != [0; 16] && self.span_id != [0; 8]
    }

    /// The semantic conventions' name: `{method} {route}` when the route is known, else the
    /// method, else the `tracing` span's name.
    pub(super) fn name(&self) -> String {
        match (
            self.attribute("http.request.method"),
            self.attribute("http.route"),
        ) {
            (Some(Value::Str(m)), Some(Value::Str(r))) => format!("{m} {r}"),
            (Some(Value::Str(m)), _) => m.clone(),
            _ => self.span_name.to_owned(),
        }
    }

    pub(super) fn attribute(&self, key: &str) -> Option<&Value> {
        self.attributes
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
    }

    fn set(&mut self, key: &'static str, value: Value) {
        match self.attributes.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.attributes.push((key, value)),
        }
    }

    fn text(&mut self, field: &Field, mut value: String) {
        match field.name() {
            "trace_id" => self.trace_id = hex(&value).unwrap_or([0; 16]),
            "span_id" => self.span_id = hex(&value).unwrap_or([0; 8]),
            "parent_span_id" => self.parent_id = hex(&value),
            "otel.kind" => {
                self.kind = match value.to_ascii_lowercase().as_str() {
                    "server" => Kind::Server,
                    "client" => Kind::Client,
                    _ => Kind::Internal,
                };
            }
            "otel.status_code" => {
                self.status = match value.to_ascii_uppercase().as_str() {
                    "ERROR" => Status::Error,
                    "OK" => Status::Ok,
                    _ => Status::Unset,
                };
            }
            name => {
                if value.len() > MAX_VALUE_LEN {
                    let mut cut = MAX_VALUE_LEN;
                    while !value.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    value.truncate(cut);
                }
                self.set(name, Value::Str(value));
            }
        }
    }
}

/// `N` bytes from `2N` lowercase hex digits.
fn hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let mut out = [0u8; N];
    (text.len() == 2 * N && decode_hex(text.as_bytes(), &mut out).is_ok()).then_some(out)
}

impl Visit for SpanRecord {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.text(field, value.to_owned());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        match field.name() {
            "sampled" => self.sampled = value,
            name => self.set(name, Value::Bool(value)),
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.set(field.name(), Value::Int(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        match i64::try_from(value) {
            Ok(v) => self.set(field.name(), Value::Int(v)),
            // Beyond int64: kept exact as text.
            Err(_) => self.set(field.name(), Value::Str(value.to_string())),
        }
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.set(field.name(), Value::Float(value));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.text(field, value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.text(field, format!("{value:?}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_ids_of_the_right_length_only() {
        assert_eq!(hex::<2>("0aff"), Some([0x0a, 0xff]));
        assert_eq!(hex::<2>("0af"), None);
        assert_eq!(hex::<2>("0aff00"), None);
        assert_eq!(hex::<2>("0AFF"), None);
        assert_eq!(hex::<2>("0agg"), None);
    }

    #[test]
    fn names_follow_the_semantic_conventions() {
        let mut s = SpanRecord::new("request", 0);
        assert_eq!(s.name(), "request");
        s.set("http.request.method", Value::Str("GET".into()));
        assert_eq!(s.name(), "GET");
        s.set("http.route", Value::Str("/users/{id}".into()));
        assert_eq!(s.name(), "GET /users/{id}");
    }

    #[test]
    fn a_field_recorded_twice_keeps_its_last_value() {
        let mut s = SpanRecord::new("request", 0);
        s.set("k", Value::Int(1));
        s.set("k", Value::Int(2));
        assert_eq!(s.attributes, [("k", Value::Int(2))]);
    }
}
