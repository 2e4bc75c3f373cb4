//! `Cache-Control` parsing over arbitrary field lines: never a panic; parse → format → parse gives
//! the same directives; the formatted value is a valid header value; a line that says `no-store`
//! reads as `no-store`.
#![no_main]

use http::HeaderMap;
use http::header::CACHE_CONTROL;
use libfuzzer_sys::fuzz_target;
use protothrive::cache::policy::CacheControl;

fuzz_target!(|lines: Vec<&[u8]>| {
    let mut headers = HeaderMap::new();
    for line in lines.iter().take(8) {
        if let Ok(v) = http::HeaderValue::from_bytes(line) {
            headers.append(CACHE_CONTROL, v);
        }
    }
    let once = CacheControl::from_headers(&headers);
    let formatted = once.to_string();
    assert!(
        http::HeaderValue::from_str(&formatted).is_ok(),
        "{formatted:?}"
    );
    let twice = CacheControl::parse(&formatted);
    assert_eq!(once, twice, "{formatted:?}");
    if let Some(first) = lines.first()
        && let Ok(s) = std::str::from_utf8(first)
    {
        let alone = CacheControl::parse(s);
        assert_eq!(CacheControl::parse(&alone.to_string()), alone);
        if s.trim().eq_ignore_ascii_case("no-store") {
            assert!(alone.no_store);
        }
    }
});
