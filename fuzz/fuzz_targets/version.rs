//! API version negotiation over arbitrary paths, `API-Version` and `Accept` values: never a panic;
//! a negotiated version is always a supported one and the rewritten path stays under the prefix.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use protothrive::gateway::negotiate_version;

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    path: &'a str,
    header: Option<&'a str>,
    accept: Option<&'a str>,
}

fuzz_target!(|input: Input<'_>| {
    let supported = [1, 2];
    if let Some(Ok((version, path))) =
        negotiate_version("/api", input.path, input.header, input.accept, "protothrive", &supported, 1)
    {
        assert!(supported.contains(&version.0));
        assert!(path.starts_with("/api"), "{path}");
        assert!(path.len() <= input.path.len());
    }
});
