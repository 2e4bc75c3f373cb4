//! W3C Trace Context, Level 1 and 2: `traceparent` and `tracestate`, parsed and formatted.
//!
//! A pure parser and formatter (no I/O, no allocation for `traceparent`), written to the letter
//! of the specification and of its test suite at its strictest level:
//!
//! * `traceparent` version `00` is exactly 55 characters of lowercase hex and dashes; a higher
//!   version is read by its first four fields when it is at least 55 characters and the flags are
//!   followed by the end or a dash; version `ff`, uppercase or bad hex, an all-zero trace id or
//!   parent id are refused. Optional whitespace around the value is ignored.
//! * A `traceparent` sent twice (two header fields) is invalid: the trace restarts and
//!   `tracestate` is not read at all (the spec forbids parsing it after a failed `traceparent`).
//! * `tracestate` fields are joined in order, members trimmed of optional whitespace, empty
//!   members skipped; a key is a simple key (up to 256 characters) or `tenant@system` (241 and
//!   14), a value 1 to 256 printable characters without `,` or `=` and not ending in a space. An
//!   invalid member, a duplicated key or more than 32 members make the whole `tracestate`
//!   invalid: it is dropped, as the W3C test suite expects at its strict level.
//! * Flags: `sampled` (bit 0) and, from Level 2, `random` (bit 1: the right 7 bytes of the trace
//!   id are random). Other bits are reserved and written as zero.
//!
//! New ids come from [`new_trace_id`](super::new_trace_id) and
//! [`new_span_id`](super::new_span_id).

use std::fmt;

use http::{HeaderMap, HeaderName, HeaderValue};

use super::ids::encode_hex;

/// `traceparent`.
pub static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
/// `tracestate`.
pub static TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// The `sampled` trace flag: the caller may have recorded its part of the trace.
pub const SAMPLED: u8 = 0x01;
/// The `random` trace flag (Level 2): the right 7 bytes of the trace id are random.
pub const RANDOM: u8 = 0x02;
/// The flags this version defines; the others are written as zero.
const KNOWN_FLAGS: u8 = SAMPLED | RANDOM;

/// The most members a `tracestate` may have.
pub const MAX_MEMBERS: usize = 32;

/// Why a `traceparent` or `tracestate` was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseError {
    /// Not the `version-traceid-parentid-flags` shape (length, dashes, version `ff`).
    Shape,
    /// A field that is not lowercase hex.
    Hex,
    /// An all-zero trace id or parent id.
    Zero,
    /// A `tracestate` member whose key or value breaks the grammar.
    Member,
    /// A `tracestate` key present twice.
    DuplicateKey,
    /// More than [`MAX_MEMBERS`] `tracestate` members.
    TooManyMembers,
    /// `traceparent` sent in more than one header field.
    Duplicated,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Shape => "not the version-traceid-parentid-flags shape",
            Self::Hex => "not lowercase hex",
            Self::Zero => "an all-zero id",
            Self::Member => "a tracestate member breaks the grammar",
            Self::DuplicateKey => "a tracestate key is duplicated",
            Self::TooManyMembers => "more than 32 tracestate members",
            Self::Duplicated => "traceparent sent more than once",
        })
    }
}

impl std::error::Error for ParseError {}

/// A parsed `traceparent`: who called, in which trace, with which flags.
///
/// ```
/// use protothrive::trace::TraceParent;
///
/// let tp = TraceParent::parse(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")?;
/// assert!(tp.sampled());
/// assert_eq!(tp.to_string(), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
///
/// // A future version is read by its first four fields and written back as version 00.
/// let tp = TraceParent::parse(b"cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-more")?;
/// assert_eq!(tp.to_string(), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
///
/// let zero = TraceParent::parse(b"00-00000000000000000000000000000000-00f067aa0ba902b7-01");
/// assert_eq!(zero, Err(protothrive::trace::ParseError::Zero));
/// # Ok::<(), protothrive::trace::ParseError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceParent {
    /// The trace id (never all zero).
    pub trace_id: [u8; 16],
    /// The caller's span id, the parent of the next span (never all zero).
    pub parent_id: [u8; 8],
    /// The trace flags as received (only [`SAMPLED`] and [`RANDOM`] are written back).
    pub flags: u8,
}

impl TraceParent {
    /// Parses one `traceparent` field value.
    ///
    /// # Errors
    /// [`ParseError`] when the value is not a valid `traceparent` of version 00 or later.
    pub fn parse(value: &[u8]) -> Result<Self, ParseError> {
        let v = trim_ows(value);
        if v.len() < 55 || v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
            return Err(ParseError::Shape);
        }
        let version = hex_byte(v[0], v[1]).ok_or(ParseError::Hex)?;
        match version {
            0xff => return Err(ParseError::Shape),
            0 if v.len() != 55 => return Err(ParseError::Shape),
            _ if v.len() > 55 && v[55] != b'-' => return Err(ParseError::Shape),
            _ => {}
        }
        let mut trace_id = [0u8; 16];
        decode_hex(&v[3..35], &mut trace_id)?;
        let mut parent_id = [0u8; 8];
        decode_hex(&v[36..52], &mut parent_id)?;
        let flags = hex_byte(v[53], v[54]).ok_or(ParseError::Hex)?;
        if trace_id == [0; 16] || parent_id == [0; 8] {
            return Err(ParseError::Zero);
        }
        Ok(Self {
            trace_id,
            parent_id,
            flags,
        })
    }

    /// Whether the caller sampled this trace.
    #[must_use]
    pub fn sampled(&self) -> bool {
        self.flags & SAMPLED != 0
    }

    /// The value as version 00 writes it: 55 ASCII bytes.
    ///
    /// ```
    /// use protothrive::trace::TraceParent;
    /// let tp = TraceParent { trace_id: [0xab; 16], parent_id: [1; 8], flags: 0xff };
    /// // Reserved flags are written as zero.
    /// assert_eq!(&tp.encode()[50..], b"01-03");
    /// ```
    #[must_use]
    pub fn encode(&self) -> [u8; 55] {
        let mut out = [b'-'; 55];
        out[0] = b'0';
        out[1] = b'0';
        encode_hex(&self.trace_id, &mut out[3..35]);
        encode_hex(&self.parent_id, &mut out[36..52]);
        encode_hex(&[self.flags & KNOWN_FLAGS], &mut out[53..55]);
        out
    }

    /// The value as a header value.
    #[must_use]
    pub fn to_header_value(&self) -> HeaderValue {
        let encoded = self.encode();
        // Hex digits and dashes only.
        HeaderValue::from_bytes(&encoded).unwrap_or_else(|_| HeaderValue::from_static(""))
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(std::str::from_utf8(&self.encode()).map_err(|_| fmt::Error)?)
    }
}

/// A valid `tracestate`: vendor members, in order, at most [`MAX_MEMBERS`], keys unique.
///
/// Kept as its normalised header text (members joined by `,`, no optional whitespace), so an
/// empty one costs nothing and a present one is one allocation.
///
/// ```
/// use protothrive::trace::TraceState;
///
/// let ts = TraceState::parse([&b"rojo=00f067aa0ba902b7 , "[..], b"congo=t61rcWkgMzE"])?;
/// assert_eq!(ts.get("congo"), Some("t61rcWkgMzE"));
/// assert_eq!(ts.as_str(), "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE");
///
/// // Our own entry goes first; the old one with the same key goes away.
/// let ts = ts.with("congo", "ours")?;
/// assert_eq!(ts.as_str(), "congo=ours,rojo=00f067aa0ba902b7");
///
/// let twice = TraceState::parse([&b"foo=1,foo=2"[..]]);
/// assert_eq!(twice.err(), Some(protothrive::trace::ParseError::DuplicateKey));
/// # Ok::<(), protothrive::trace::ParseError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct TraceState(String);

impl TraceState {
    /// Parses the `tracestate` field values in the order received.
    ///
    /// # Errors
    /// [`ParseError`] when a member breaks the grammar, a key repeats, or there are more than
    /// 32 members; the caller then drops the whole `tracestate`.
    pub fn parse<'a>(fields: impl IntoIterator<Item = &'a [u8]>) -> Result<Self, ParseError> {
        let mut out = String::new();
        let mut count = 0usize;
        for field in fields {
            for member in field.split(|&b| b == b',') {
                let member = trim_ows(member);
                if member.is_empty() {
                    continue;
                }
                let (key, value) = split_member(member)?;
                count += 1;
                if count > MAX_MEMBERS {
                    return Err(ParseError::TooManyMembers);
                }
                if Self::find(&out, key).is_some() {
                    return Err(ParseError::DuplicateKey);
                }
                if !out.is_empty() {
                    out.push(',');
                }
                // Both halves are ASCII: checked by `split_member`.
                out.push_str(std::str::from_utf8(key).map_err(|_| ParseError::Member)?);
                out.push('=');
                out.push_str(std::str::from_utf8(value).map_err(|_| ParseError::Member)?);
            }
        }
        Ok(Self(out))
    }

    /// Whether there is no member.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The normalised header text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The members in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0
            .split(',')
            .filter(|m| !m.is_empty())
            .filter_map(|m| m.split_once('='))
    }

    /// The value of `key`, if present.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&str> {
        self.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// This state with `key=value` first and any older entry for `key` removed (the mutation
    /// the spec asks of a vendor that continues a trace). The last member goes when that would
    /// make 33.
    ///
    /// # Errors
    /// [`ParseError::Member`] when `key` or `value` breaks the grammar.
    pub fn with(&self, key: &str, value: &str) -> Result<Self, ParseError> {
        if !valid_key(key.as_bytes()) || !valid_value(value.as_bytes()) {
            return Err(ParseError::Member);
        }
        let mut out = String::with_capacity(self.0.len() + key.len() + value.len() + 2);
        out.push_str(key);
        out.push('=');
        out.push_str(value);
        for (k, v) in self.iter().filter(|(k, _)| *k != key).take(MAX_MEMBERS - 1) {
            out.push(',');
            out.push_str(k);
            out.push('=');
            out.push_str(v);
        }
        Ok(Self(out))
    }

    /// The header value, or `None` when empty (an empty `tracestate` is not sent).
    #[must_use]
    pub fn to_header_value(&self) -> Option<HeaderValue> {
        if self.0.is_empty() {
            return None;
        }
        HeaderValue::from_str(&self.0).ok()
    }

    fn find<'s>(text: &'s str, key: &[u8]) -> Option<&'s str> {
        text.split(',')
            .filter_map(|m| m.split_once('='))
            .find(|(k, _)| k.as_bytes() == key)
            .map(|(_, v)| v)
    }
}

impl fmt::Display for TraceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a request carries: its caller's `traceparent` (when valid and sent once) and the
/// `tracestate` that comes with it (empty when `traceparent` is absent or invalid, or when
/// `tracestate` itself is invalid).
///
/// ```
/// use http::HeaderMap;
/// use protothrive::trace::Incoming;
///
/// let mut h = HeaderMap::new();
/// h.append("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".parse()?);
/// h.append("tracestate", "a=1".parse()?);
/// h.append("tracestate", "b=2".parse()?);
/// let inc = Incoming::from_headers(&h);
/// assert!(inc.parent.is_some());
/// assert_eq!(inc.state.as_str(), "a=1,b=2");
///
/// // Sent twice: the trace restarts, tracestate is not even read.
/// h.append("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".parse()?);
/// let inc = Incoming::from_headers(&h);
/// assert!(inc.parent.is_none() && inc.state.is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Incoming {
    /// The caller's trace position.
    pub parent: Option<TraceParent>,
    /// The vendors' state that comes with it.
    pub state: TraceState,
    /// Why `traceparent` or `tracestate` was dropped, when one was sent and refused.
    pub refused: Option<ParseError>,
}

impl Incoming {
    /// Reads `traceparent` and `tracestate` from request headers.
    #[must_use]
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let mut parents = headers.get_all(&TRACEPARENT).iter();
        let Some(first) = parents.next() else {
            return Self::default();
        };
        let parent = if parents.next().is_some() {
            Err(ParseError::Duplicated)
        } else {
            TraceParent::parse(first.as_bytes())
        };
        let parent = match parent {
            Ok(p) => p,
            Err(e) => {
                return Self {
                    refused: Some(e),
                    ..Self::default()
                };
            }
        };
        match TraceState::parse(
            headers
                .get_all(&TRACESTATE)
                .iter()
                .map(HeaderValue::as_bytes),
        ) {
            Ok(state) => Self {
                parent: Some(parent),
                state,
                refused: None,
            },
            Err(e) => Self {
                parent: Some(parent),
                state: TraceState::default(),
                refused: Some(e),
            },
        }
    }
}

fn trim_ows(v: &[u8]) -> &[u8] {
    let start = v.iter().position(|b| !matches!(b, b' ' | b'\t'));
    let end = v.iter().rposition(|b| !matches!(b, b' ' | b'\t'));
    match (start, end) {
        (Some(s), Some(e)) => &v[s..=e],
        _ => &[],
    }
}

fn hex_byte(hi: u8, lo: u8) -> Option<u8> {
    let mut out = [0u8; 1];
    crate::headers::decode_hex(&[hi, lo], &mut out).then_some(out[0])
}

/// `src` (lowercase hex) into `out`, or [`ParseError::Hex`].
fn decode_hex(src: &[u8], out: &mut [u8]) -> Result<(), ParseError> {
    crate::headers::decode_hex(src, out)
        .then_some(())
        .ok_or(ParseError::Hex)
}

fn split_member(member: &[u8]) -> Result<(&[u8], &[u8]), ParseError> {
    let eq = member
        .iter()
        .position(|&b| b == b'=')
        .ok_or(ParseError::Member)?;
    let (key, value) = (&member[..eq], &member[eq + 1..]);
    if valid_key(key) && valid_value(value) {
        Ok((key, value))
    } else {
        Err(ParseError::Member)
    }
}

fn key_char(b: u8) -> bool {
    matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'*' | b'/')
}

/// `simple-key` (up to 256) or `tenant-id@system-id` (up to 241 and 14).
fn valid_key(key: &[u8]) -> bool {
    let starts = |part: &[u8]| {
        part.first()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    match key.iter().position(|&b| b == b'@') {
        None => key.len() <= 256 && starts(key) && key.iter().all(|&b| key_char(b)),
        Some(at) => {
            let (tenant, system) = (&key[..at], &key[at + 1..]);
            tenant.len() <= 241
                && system.len() <= 14
                && starts(tenant)
                && system.first().is_some_and(u8::is_ascii_lowercase)
                && tenant.iter().all(|&b| key_char(b))
                && system.iter().all(|&b| key_char(b))
        }
    }
}

/// 1 to 256 of `0x20..=0x7e` except `,` and `=`, not ending in a space.
fn valid_value(value: &[u8]) -> bool {
    !value.is_empty()
        && value.len() <= 256
        && value.last() != Some(&b' ')
        && value
            .iter()
            .all(|&b| (0x20..=0x7e).contains(&b) && b != b',' && b != b'=')
}

#[cfg(test)]
#[path = "context_tests.rs"]
mod tests;
