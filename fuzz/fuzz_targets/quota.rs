//! Rate-limit quota parsing over arbitrary text: never a panic; a parsed quota is well-formed
//! (count, burst and interval at least 1) and its `Display` form parses back to the same quota.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protothrive::rate_limit::Quota;

fuzz_target!(|input: &str| {
    let Ok(q) = input.parse::<Quota>() else {
        return;
    };
    assert!(q.count() >= 1 && q.burst() >= 1 && q.interval_nanos() >= 1, "{q:?}");
    let shown = q.to_string();
    let back: Quota = shown
        .parse()
        .unwrap_or_else(|e| panic!("{input:?} → {shown:?} does not parse: {e}"));
    assert_eq!(back, q, "{input:?} → {shown:?}");
});
