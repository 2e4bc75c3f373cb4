//! Cache-key normalization over arbitrary URIs and `Host` values: never a panic; normalizing a
//! normalized URI changes nothing; the key gives back its URI, method and partition; a partition
//! or `Vary` value can never forge another key's parts.
#![no_main]

use arbitrary::Arbitrary;
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use libfuzzer_sys::fuzz_target;
use protothrive::cache::policy::{CacheKey, normalize_uri_str};

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    uri: &'a str,
    host: Option<&'a str>,
    https: bool,
    partition: Option<&'a str>,
    accept: &'a [u8],
}

fuzz_target!(|input: Input<'_>| {
    let scheme = if input.https { "https" } else { "http" };
    let Some(once) = normalize_uri_str(input.uri, input.host, scheme) else {
        return;
    };
    let twice = normalize_uri_str(&once, None, "ftp");
    assert_eq!(twice.as_deref(), Some(once.as_str()), "{input:?}");
    let scheme_part = &once[..once.find("://").unwrap_or(0)];
    assert_eq!(scheme_part, scheme_part.to_ascii_lowercase());
    let key = CacheKey::new(&Method::GET, &once, input.partition);
    assert_eq!(key.uri(), once);
    assert_eq!(key.method(), "GET");
    assert_eq!(key.partition().is_some(), input.partition.is_some());
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_bytes(input.accept) {
        headers.insert("accept", v);
    }
    let variant = key.with_vary(&[HeaderName::from_static("accept")], &headers);
    assert!(variant.is_variant_of(&key));
    assert_eq!(variant.uri(), once);
    assert_eq!(variant.partition(), key.partition());
    let shared = CacheKey::new(&Method::GET, &once, None);
    assert!(input.partition.is_none() || !variant.is_variant_of(&shared));
});
