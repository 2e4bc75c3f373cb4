//! The cache's parsers of targeted fields and ranges over arbitrary input: up to 8
//! `CDN-Cache-Control` lines (RFC 9213, Structured Field dictionaries of RFC 8941) beside a
//! `Cache-Control` line into `Directives::of`, the first line alone into
//! `CacheControl::parse_targeted`, a `Range` value and a length into `byte_range`, an `If-Range`
//! value against a stored validator into `if_range_holds`. Never a panic; a targeted field that
//! governs formats to a valid field value that both parsers read back as the same directives; a
//! field that does not govern leaves `Cache-Control`'s directives; a line that is not ASCII never
//! parses; a range span lies within the representation; no `If-Range` always holds, a weak tag
//! never does.
#![no_main]

use http::header::{CACHE_CONTROL, ETAG, IF_RANGE, LAST_MODIFIED};
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use protothrive::cache::policy::{
    ByteRange, CDN_CACHE_CONTROL, CacheControl, Directives, byte_range, if_range_holds,
};

#[derive(arbitrary::Arbitrary, Debug)]
struct Input<'a> {
    targeted: Vec<&'a [u8]>,
    cache_control: Option<&'a [u8]>,
    range: &'a str,
    len: u16,
    if_range: Option<&'a [u8]>,
    validator: &'a [u8],
}

/// Formats `cc` and checks both parsers read it back alike.
fn round_trip(cc: &CacheControl) {
    let formatted = cc.to_string();
    assert!(HeaderValue::from_str(&formatted).is_ok(), "{formatted:?}");
    match CacheControl::parse_targeted(&formatted) {
        Some(again) => assert_eq!(&again, cc, "{formatted:?}"),
        None => assert!(cc.is_empty(), "{formatted:?}"),
    }
    assert_eq!(&CacheControl::parse(&formatted), cc, "{formatted:?}");
}

fuzz_target!(|input: Input<'_>| {
    let mut headers = HeaderMap::new();
    for line in input.targeted.iter().take(8) {
        if let Ok(v) = HeaderValue::from_bytes(line) {
            headers.append(&CDN_CACHE_CONTROL, v);
        }
    }
    if let Some(v) = input
        .cache_control
        .and_then(|b| HeaderValue::from_bytes(b).ok())
    {
        headers.insert(CACHE_CONTROL, v);
    }
    let directives = Directives::of(&headers, &[CDN_CACHE_CONTROL.clone()]);
    if directives.field.is_some() {
        round_trip(&directives.cc);
    } else {
        assert_eq!(directives.cc, CacheControl::from_headers(&headers));
    }
    if let Some(first) = input.targeted.first() {
        if let Some(cc) = CacheControl::parse_targeted(first) {
            round_trip(&cc);
        }
        if !first.is_ascii() {
            assert_eq!(CacheControl::parse_targeted(first), None);
        }
    }

    let len = u64::from(input.len);
    if let ByteRange::Span(first, last) = byte_range(input.range, len) {
        assert!(first <= last && last < len, "{:?} {len}", input.range);
    }

    let mut stored = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_bytes(input.validator) {
        stored.insert(ETAG, v.clone());
        stored.insert(LAST_MODIFIED, v);
    }
    let mut req = HeaderMap::new();
    if let Some(v) = input.if_range.and_then(|b| HeaderValue::from_bytes(b).ok()) {
        req.insert(IF_RANGE, v);
    }
    let holds = if_range_holds(&req, &stored);
    match req.get(IF_RANGE) {
        None => assert!(holds),
        Some(v) if v.as_bytes().trim_ascii_start().starts_with(b"W/") => assert!(!holds),
        Some(_) => {}
    }
});
