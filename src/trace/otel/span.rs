//! One span as the exporter keeps it between open and close: the trace layer's own ids (read
//! back from its `trace_id` / `span_id` / `parent_span_id` fields), kind and status from the
//! `otel.*` fields, every other field as an attribute.

use std::fmt;

use tracing::field::{Field, Visit};

/// Longer attribute values are cut (at a character boundary): a `User-Agent` or a path is
/// client input, and a batch stays bounded.
pub(super) const MAX_VALUE_LEN: usize = 4096;

/// Events kept per span, at most; later ones are counted as dropped (OTLP's
/// `dropped_events_count`), as the SDKs' default span limits do.
pub(super) const MAX_EVENTS: usize = 128;

/// Attributes kept per event, at most.
pub(super) const MAX_EVENT_ATTRIBUTES: usize = 32;

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
    pub(super) events: Vec<EventRecord>,
    pub(super) dropped_events: u32,
}

/// A `tracing` event inside an exported span, as an OTLP span event: its message is the name,
/// its other fields, `level` and `target` the attributes.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct EventRecord {
    pub(super) name: String,
    pub(super) time_unix_nanos: u64,
    pub(super) attributes: Vec<(&'static str, Value)>,
    pub(super) dropped_attributes: u32,
}

impl EventRecord {
    pub(super) fn new(event: &tracing::Event<'_>, time_unix_nanos: u64) -> Self {
        let meta = event.metadata();
        let mut record = Self {
            name: String::new(),
            time_unix_nanos,
            attributes: vec![
                ("level", Value::Str(meta.level().as_str().to_owned())),
                ("target", Value::Str(meta.target().to_owned())),
            ],
            dropped_attributes: 0,
        };
        event.record(&mut record);
        if record.name.is_empty() {
            record.name = meta.name().to_owned();
        }
        record
    }

    fn add(&mut self, field: &Field, value: Value) {
        if field.name() == "message" {
            if let Value::Str(text) = value {
                self.name = text;
            }
        } else if self.attributes.len() < MAX_EVENT_ATTRIBUTES {
            self.attributes.push((field.name(), value));
        } else {
            self.dropped_attributes += 1;
        }
    }
}

/// `value` cut to [`MAX_VALUE_LEN`] at a character boundary.
fn bounded(mut value: String) -> String {
    if value.len() > MAX_VALUE_LEN {
        let mut cut = MAX_VALUE_LEN;
        while !value.is_char_boundary(cut) {
            cut -= 1;
        }
        value.truncate(cut);
    }
    value
}

/// Both records take every kind of field the same way; only where a value goes differs.
trait Sink {
    fn put(&mut self, field: &Field, value: Value);
}

impl Sink for EventRecord {
    fn put(&mut self, field: &Field, value: Value) {
        self.add(field, value);
    }
}

impl SpanRecord {
    /// Keeps `event`, or counts it as dropped past [`MAX_EVENTS`].
    pub(super) fn push_event(&mut self, event: EventRecord) {
        if self.events.len() < MAX_EVENTS {
            self.events.push(event);
        } else {
            self.dropped_events = self.dropped_events.saturating_add(1);
        }
    }

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
            events: Vec::new(),
            dropped_events: 0,
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

    fn text(&mut self, field: &Field, value: String) {
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
            name => self.set(name, Value::Str(bounded(value))),
        }
    }
}

impl Sink for SpanRecord {
    fn put(&mut self, field: &Field, value: Value) {
        match (field.name(), value) {
            (_, Value::Str(text)) => self.text(field, text),
            ("sampled", Value::Bool(b)) => self.sampled = b,
            (name, value) => self.set(name, value),
        }
    }
}

/// `N` bytes from `2N` lowercase hex digits.
fn hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let mut out = [0u8; N];
    (text.len() == 2 * N && crate::headers::decode_hex(text.as_bytes(), &mut out)).then_some(out)
}

/// `Visit` for a [`Sink`] (a blanket impl of a foreign trait is not allowed).
macro_rules! visit_by_sink {
    ($t:ty) => {
        impl Visit for $t {
            fn record_str(&mut self, field: &Field, value: &str) {
                self.put(field, Value::Str(bounded(value.to_owned())));
            }

            fn record_bool(&mut self, field: &Field, value: bool) {
                self.put(field, Value::Bool(value));
            }

            fn record_i64(&mut self, field: &Field, value: i64) {
                self.put(field, Value::Int(value));
            }

            fn record_u64(&mut self, field: &Field, value: u64) {
                match i64::try_from(value) {
                    Ok(v) => self.put(field, Value::Int(v)),
                    // Beyond int64: kept exact as text.
                    Err(_) => self.put(field, Value::Str(value.to_string())),
                }
            }

            fn record_f64(&mut self, field: &Field, value: f64) {
                self.put(field, Value::Float(value));
            }

            fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
                self.put(field, Value::Str(bounded(value.to_string())));
            }

            fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
                self.put(field, Value::Str(bounded(format!("{value:?}"))));
            }
        }
    };
}

visit_by_sink!(SpanRecord);
visit_by_sink!(EventRecord);

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
