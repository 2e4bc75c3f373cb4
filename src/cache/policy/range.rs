//! Reading `Range` and `If-Range` (RFC 9110 §14, §13.1.5) for a range request answered from a
//! stored complete `200`: one range is a `206` with its `Content-Range`, none within the
//! representation a `416` problem, an `If-Range` that does not hold the whole `200`.
//!
//! Several ranges are merged where they overlap or touch; when they still make more than one
//! span, the whole `200` is the answer (RFC 9110 §14.2 lets a server ignore `Range`), never a
//! `multipart/byteranges` body. A stored response is only ever a complete one (a `206` is never
//! stored), so no part is ever served as the whole.

use std::time::Duration;

use http::header::{DATE, ETAG, IF_RANGE, LAST_MODIFIED};
use http::{HeaderMap, HeaderValue};

/// What a `Range` header asks of a representation (RFC 9110 §14.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// Answer with the whole representation: no `Range`, another unit, an invalid or empty
    /// set, or ranges that make more than one span.
    Whole,
    /// The bytes `first..=last`.
    Span(u64, u64),
    /// No range starts within the representation (a `416`).
    Unsatisfiable,
}

/// Reads a `Range` value against a representation of `len` bytes (RFC 9110 §14.1.1, §14.1.2):
/// `bytes=` ranges `first-[last]` and suffixes `-n`, with overlapping or adjacent ranges merged.
///
/// ```
/// use protothrive::cache::policy::{byte_range, ByteRange};
///
/// assert_eq!(byte_range("bytes=0-4", 10), ByteRange::Span(0, 4));
/// assert_eq!(byte_range("bytes=-3", 10), ByteRange::Span(7, 9));
/// assert_eq!(byte_range("bytes=5-", 10), ByteRange::Span(5, 9));
/// assert_eq!(byte_range("bytes=0-1, 2-3", 10), ByteRange::Span(0, 3));
/// assert_eq!(byte_range("bytes=0-1, 5-6", 10), ByteRange::Whole);
/// assert_eq!(byte_range("bytes=10-", 10), ByteRange::Unsatisfiable);
/// assert_eq!(byte_range("bytes=4-2", 10), ByteRange::Whole); // invalid: ignored
/// assert_eq!(byte_range("items=0-1", 10), ByteRange::Whole);
/// ```
#[must_use]
pub fn byte_range(value: &str, len: u64) -> ByteRange {
    let Some((unit, set)) = value.split_once('=') else {
        return ByteRange::Whole;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return ByteRange::Whole;
    }
    let digits = |s: &str| {
        let s = s.trim();
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse::<u64>().ok())?
    };
    let mut spans: Vec<(u64, u64)> = Vec::new();
    let mut specs = 0;
    for spec in set.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        specs += 1;
        let Some((first, last)) = spec.split_once('-') else {
            return ByteRange::Whole;
        };
        let span = if first.trim().is_empty() {
            let Some(suffix) = digits(last) else {
                return ByteRange::Whole;
            };
            (suffix > 0 && len > 0).then(|| (len.saturating_sub(suffix), len - 1))
        } else {
            let Some(first) = digits(first) else {
                return ByteRange::Whole;
            };
            let last = if last.trim().is_empty() {
                u64::MAX
            } else {
                match digits(last) {
                    Some(l) if l >= first => l,
                    _ => return ByteRange::Whole,
                }
            };
            (first < len).then(|| (first, last.min(len - 1)))
        };
        spans.extend(span);
    }
    if specs == 0 {
        return ByteRange::Whole;
    }
    spans.sort_unstable();
    let mut merged = spans.iter().copied();
    let Some(mut whole) = merged.next() else {
        return ByteRange::Unsatisfiable;
    };
    for (first, last) in merged {
        if first > whole.1.saturating_add(1) {
            return ByteRange::Whole;
        }
        whole.1 = whole.1.max(last);
    }
    ByteRange::Span(whole.0, whole.1)
}

/// Whether the request's `If-Range` (RFC 9110 §13.1.5) holds for a stored response with these
/// headers: absent; or a strong entity tag equal to the stored strong `ETag`; or a date equal to
/// the stored `Last-Modified` when that is a strong validator (a second or more before `Date`,
/// §8.8.2.2). When it does not hold, `Range` is ignored and the whole response is the answer.
///
/// ```
/// use http::{HeaderMap, HeaderValue};
/// use protothrive::cache::policy::if_range_holds;
///
/// let mut stored = HeaderMap::new();
/// stored.insert("etag", "\"v1\"".parse().unwrap());
/// let mut req = HeaderMap::new();
/// assert!(if_range_holds(&req, &stored));
/// req.insert("if-range", "\"v1\"".parse().unwrap());
/// assert!(if_range_holds(&req, &stored));
/// req.insert("if-range", "W/\"v1\"".parse().unwrap());
/// assert!(!if_range_holds(&req, &stored), "a weak tag never holds");
/// ```
#[must_use]
pub fn if_range_holds(req: &HeaderMap, stored: &HeaderMap) -> bool {
    let mut lines = req.get_all(IF_RANGE).iter();
    let Some(value) = lines.next() else {
        return true;
    };
    if lines.next().is_some() {
        return false;
    }
    let Ok(value) = value.to_str().map(str::trim) else {
        return false;
    };
    let text = |name| stored.get(name).and_then(|v: &HeaderValue| v.to_str().ok());
    if value.starts_with('"') || value.starts_with("W/") {
        let strong = |t: &str| t.starts_with('"') && t.len() >= 2 && t.ends_with('"');
        return strong(value) && text(ETAG).is_some_and(|e| strong(e.trim()) && e.trim() == value);
    }
    let date = |s: &str| httpdate::parse_http_date(s).ok();
    let (Some(asked), Some(modified)) = (date(value), text(LAST_MODIFIED).and_then(date)) else {
        return false;
    };
    let dated = text(DATE)
        .and_then(date)
        .is_some_and(|d| modified + Duration::from_secs(1) <= d);
    asked == modified && dated
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any text: a span lies within the representation; nothing panics.
        #[test]
        fn a_span_is_within_the_representation(s in "[ -~]{0,40}", len in 0..50u64) {
            if let ByteRange::Span(first, last) = byte_range(&s, len) {
                prop_assert!(first <= last && last < len, "{s:?} {len}");
            }
        }

        /// A well-formed range reads as the bytes it names, clipped to the representation.
        #[test]
        fn a_range_reads_as_its_bytes(first in 0..60u64, extra in 0..60u64, len in 1..50u64) {
            let last = first + extra;
            let want = if first < len {
                ByteRange::Span(first, last.min(len - 1))
            } else {
                ByteRange::Unsatisfiable
            };
            prop_assert_eq!(byte_range(&format!("bytes={first}-{last}"), len), want);
            prop_assert_eq!(byte_range(&format!("Bytes = {first}-"), len), match want {
                ByteRange::Span(f, _) => ByteRange::Span(f, len - 1),
                other => other,
            });
            let suffix = byte_range(&format!("bytes=-{}", extra + 1), len);
            prop_assert_eq!(suffix, ByteRange::Span(len.saturating_sub(extra + 1), len - 1));
        }
    }
}
