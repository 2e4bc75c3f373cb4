//! New trace and span ids, and their hex form.
//!
//! Ids come from a per-thread generator (wyrand, seeded once per thread from the process's hash
//! keys): no system call and no lock per id, unlike a UUID from the operating system's random
//! source. They are unpredictable enough to spread traces, not secrets.

use std::cell::Cell;
use std::hash::BuildHasher;

/// A new trace id: 128 random bits, never all zero (the `random` flag may be set for it).
///
/// ```
/// let (a, b) = (protothrive::trace::new_trace_id(), protothrive::trace::new_trace_id());
/// assert_ne!(a, [0; 16]);
/// assert_ne!(a, b);
/// ```
#[must_use]
pub fn new_trace_id() -> [u8; 16] {
    loop {
        let id = (u128::from(next_u64()) << 64 | u128::from(next_u64())).to_be_bytes();
        if id != [0; 16] {
            return id;
        }
    }
}

/// A new span id: 64 random bits, never all zero.
///
/// ```
/// assert_ne!(protothrive::trace::new_span_id(), [0; 8]);
/// ```
#[must_use]
pub fn new_span_id() -> [u8; 8] {
    loop {
        let id = next_u64().to_be_bytes();
        if id != [0; 8] {
            return id;
        }
    }
}

/// Lowercase hex of `bytes`.
///
/// ```
/// assert_eq!(protothrive::trace::to_hex(&[0x0a, 0xff]), "0aff");
/// ```
#[must_use]
pub fn to_hex(bytes: &[u8]) -> String {
    let mut out = vec![0u8; bytes.len() * 2];
    encode_hex(bytes, &mut out);
    // Hex digits only: always UTF-8, so this moves the buffer without a copy.
    String::from_utf8(out).unwrap_or_default()
}

thread_local! {
    static RNG: Cell<u64> = Cell::new(seed());
}

fn seed() -> u64 {
    static STATE: std::sync::OnceLock<std::collections::hash_map::RandomState> =
        std::sync::OnceLock::new();
    let state = STATE.get_or_init(std::collections::hash_map::RandomState::new);
    state.hash_one(std::thread::current().id())
}

/// wyrand: one addition and one 128-bit multiplication per 64 bits.
fn next_u64() -> u64 {
    RNG.with(|s| {
        let x = s.get().wrapping_add(0xa076_1d64_78bd_642f);
        s.set(x);
        let t = u128::from(x) * u128::from(x ^ 0xe703_7ed1_a0b4_28db);
        // Folding the 128-bit product: its two halves.
        #[allow(clippy::cast_possible_truncation)]
        let folded = (t >> 64) as u64 ^ t as u64;
        folded
    })
}

pub(crate) use crate::headers::encode_hex;
