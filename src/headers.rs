//! Small header helpers shared by the layers: comma-separated lists, `Vary` merging, preflight
//! detection and header values built without a spare allocation, written once.

// Each helper serves some of the layers; with only some features on, some go unused.
#![cfg_attr(
    not(all(
        feature = "cors",
        feature = "cache",
        feature = "rate-limit",
        feature = "gateway"
    )),
    allow(dead_code)
)]

use std::fmt;
use std::sync::LazyLock;

use bytes::Bytes;
use http::header::{ACCESS_CONTROL_REQUEST_METHOD, VARY};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request};

/// Numbers below this are slices of one shared buffer of their digits, built on first use.
const SMALL: u64 = 4096;
/// Each number's slot in that buffer: room for the 4 digits of the largest.
const SLOT: usize = 4;

static DIGITS: LazyLock<Bytes> = LazyLock::new(|| {
    let mut all = Vec::with_capacity(SLOT * 4096);
    let mut digits = itoa::Buffer::new();
    for n in 0..SMALL {
        all.extend_from_slice(digits.format(n).as_bytes());
        all.resize(all.len().next_multiple_of(SLOT), b' ');
    }
    Bytes::from(all)
});

/// `n` as a header value (`Age`, `Retry-After`, `Max-Age`): below 4096, a slice of a buffer
/// shared by all of them (no allocation); above, `HeaderValue::from(n)`.
pub(crate) fn number(n: u64) -> HeaderValue {
    if let Ok(i) = usize::try_from(n)
        && n < SMALL
    {
        let len = match n {
            0..10 => 1,
            10..100 => 2,
            100..1000 => 3,
            _ => 4,
        };
        if let Ok(v) = HeaderValue::from_maybe_shared(DIGITS.slice(i * SLOT..i * SLOT + len)) {
            return v;
        }
    }
    HeaderValue::from(n)
}

/// The size of each per-thread buffer [`shared_copy`] hands out slices of.
const CHUNK: usize = 2048;
/// Longer values get a buffer of their own.
const CHUNK_VALUE_MAX: usize = CHUNK / 8;

thread_local! {
    static CHUNK_BUF: std::cell::RefCell<bytes::BytesMut> =
        std::cell::RefCell::new(bytes::BytesMut::new());
}

/// `bytes` copied into the current thread's buffer of per-request header values, as a slice
/// that keeps that buffer alive: values of up to 256 bytes made on one thread share one
/// 2 KiB allocation (about one per 40 requests of the full stack, where each value had its
/// own). `bytes::BytesMut::split` does the sharing; a value outlives its request only where a
/// response is stored, and then holds at most one buffer.
pub(crate) fn shared_copy(bytes: &[u8]) -> Bytes {
    if bytes.len() > CHUNK_VALUE_MAX {
        return Bytes::copy_from_slice(bytes);
    }
    CHUNK_BUF
        .try_with(|buf| {
            let mut buf = buf.borrow_mut();
            if buf.capacity() < bytes.len() {
                *buf = bytes::BytesMut::with_capacity(CHUNK);
            }
            buf.extend_from_slice(bytes);
            buf.split().freeze()
        })
        .unwrap_or_else(|_| Bytes::copy_from_slice(bytes))
}

/// A header value written piece by piece on the stack, then copied once into a slice of the
/// thread's shared buffer ([`shared_copy`]): no allocation of its own, where a `String` turned
/// into a value costs two (the string, then the shared buffer `Bytes` makes of a vector with
/// spare room). Longer values spill to the heap.
pub(crate) struct ValueBuf {
    stack: [u8; 128],
    len: usize,
    spill: Vec<u8>,
}

impl ValueBuf {
    pub(crate) fn new() -> Self {
        Self {
            stack: [0; 128],
            len: 0,
            spill: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, bytes: &[u8]) -> &mut Self {
        if self.spill.is_empty() && self.len + bytes.len() <= self.stack.len() {
            self.stack[self.len..self.len + bytes.len()].copy_from_slice(bytes);
            self.len += bytes.len();
        } else {
            if self.spill.is_empty() {
                self.spill.extend_from_slice(&self.stack[..self.len]);
            }
            self.spill.extend_from_slice(bytes);
        }
        self
    }

    /// `n` in decimal, through `itoa` (not `core::fmt`).
    pub(crate) fn push_int(&mut self, n: impl itoa::Integer) -> &mut Self {
        self.push(itoa::Buffer::new().format(n).as_bytes())
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        if self.spill.is_empty() {
            &self.stack[..self.len]
        } else {
            &self.spill
        }
    }

    /// The value; `None` when a byte pushed is not allowed in a header value.
    pub(crate) fn value(&self) -> Option<HeaderValue> {
        HeaderValue::from_maybe_shared(shared_copy(self.as_bytes())).ok()
    }
}

impl fmt::Write for ValueBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.push(s.as_bytes());
        Ok(())
    }
}

/// A fixed set of header names, checked against a request's names without comparing most of
/// them: a name whose length no member has is out at once (one bit test).
#[derive(Debug, Clone, Default)]
pub(crate) struct NameSet {
    names: Vec<HeaderName>,
    /// Bit `n` set: a member is `n` bytes long (63 and longer share bit 63).
    lengths: u64,
}

impl NameSet {
    pub(crate) fn new(names: Vec<HeaderName>) -> Self {
        let lengths = names.iter().fold(0, |m, n| m | Self::bit(n));
        Self { names, lengths }
    }

    fn bit(name: &HeaderName) -> u64 {
        1 << name.as_str().len().min(63)
    }

    pub(crate) fn contains(&self, name: &HeaderName) -> bool {
        self.lengths & Self::bit(name) != 0 && self.names.iter().any(|n| n == name)
    }

    /// Whether `headers` has a field of any of the names.
    pub(crate) fn any_in(&self, headers: &HeaderMap) -> bool {
        headers.keys().any(|k| self.contains(k))
    }

    pub(crate) fn iter(&self) -> std::slice::Iter<'_, HeaderName> {
        self.names.iter()
    }
}

/// The items of every `name` field of `headers` read as one comma-separated list (RFC 9110
/// §5.3), trimmed, empty items dropped; a value that is not visible ASCII is skipped.
pub(crate) fn comma_items<'a>(
    headers: &'a HeaderMap,
    name: &'a HeaderName,
) -> impl Iterator<Item = &'a str> + 'a {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// The requested method of a CORS preflight: a preflight is `OPTIONS` *with*
/// `Access-Control-Request-Method` (Fetch §3.2.2); any other `OPTIONS` is the application's.
pub(crate) fn preflight_method<B>(req: &Request<B>) -> Option<&HeaderValue> {
    if req.method() == Method::OPTIONS {
        req.headers().get(ACCESS_CONTROL_REQUEST_METHOD)
    } else {
        None
    }
}

/// Whether `req` is a CORS preflight (see [`preflight_method`]).
pub(crate) fn is_preflight<B>(req: &Request<B>) -> bool {
    preflight_method(req).is_some()
}

/// Adds `names` to the response's `Vary`, merged with what is there: no name twice (compared
/// case-insensitively), `*` absorbs everything, the application's own entries are kept.
pub(crate) fn append_vary(headers: &mut HeaderMap, names: &[&str]) {
    let mut current: Vec<String> = comma_items(headers, &VARY).map(str::to_owned).collect();
    if current.iter().any(|s| s == "*") {
        return;
    }
    let before = current.len();
    for name in names {
        if !current.iter().any(|c| c.eq_ignore_ascii_case(name)) {
            current.push((*name).to_owned());
        }
    }
    if current.len() == before && headers.get_all(VARY).iter().count() <= 1 {
        return;
    }
    if let Ok(value) = HeaderValue::from_str(&current.join(", ")) {
        headers.insert(VARY, value);
    }
}

/// Whether `b` is a `tchar` of an HTTP token (RFC 9110 §5.6.2).
#[cfg_attr(not(any(feature = "cors", feature = "cache")), allow(dead_code))]
pub(crate) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Whether `s` is an HTTP token (RFC 9110 §5.6.2): one or more `tchar`s.
#[cfg_attr(not(feature = "cors"), allow(dead_code))]
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_tchar)
}

/// Whether `s` is a structured field token (RFC 8941 §3.3.4): a letter or `*`, then `tchar`s,
/// `:` and `/`.
#[cfg_attr(not(feature = "cache"), allow(dead_code))]
pub(crate) fn is_sf_token(s: &str) -> bool {
    let mut b = s.bytes();
    b.next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == b'*')
        && b.all(|c| is_tchar(c) || c == b':' || c == b'/')
}

/// The two lowercase hex digits of every byte value.
static HEX_PAIRS: [[u8; 2]; 256] = hex_pairs();

const fn hex_pairs() -> [[u8; 2]; 256] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut pairs = [[0u8; 2]; 256];
    let mut i = 0;
    while i < 256 {
        pairs[i] = [DIGITS[i >> 4], DIGITS[i & 0xf]];
        i += 1;
    }
    pairs
}

/// Lowercase hex of `bytes` into `out` (twice as long): one table read per byte (request, trace
/// and span ids).
pub(crate) fn encode_hex(bytes: &[u8], out: &mut [u8]) {
    for (b, pair) in bytes.iter().zip(out.chunks_exact_mut(2)) {
        pair.copy_from_slice(&HEX_PAIRS[usize::from(*b)]);
    }
}

/// Each byte's value as a lowercase hex digit, `0xff` for every other byte (uppercase too: the
/// ids read here — W3C trace context — are lowercase by their spec).
#[cfg(feature = "trace")]
static HEX_VALUES: [u8; 256] = {
    let mut t = [0xff; 256];
    let mut i = 0;
    while i < 16 {
        t[b"0123456789abcdef"[i] as usize] = i as u8;
        i += 1;
    }
    t
};

/// Decodes `src` (pairs of lowercase hex digits) into `out`; `false` when any digit is not one.
/// One table read per digit, every digit checked once at the end rather than branched on: a
/// valid one is below 16, an invalid one `0xff`. The inverse of [`encode_hex`].
#[cfg(feature = "trace")]
pub(crate) fn decode_hex(src: &[u8], out: &mut [u8]) -> bool {
    let mut seen = 0u8;
    for (pair, byte) in src.chunks_exact(2).zip(out.iter_mut()) {
        let (hi, lo) = (
            HEX_VALUES[usize::from(pair[0])],
            HEX_VALUES[usize::from(pair[1])],
        );
        seen |= hi | lo;
        *byte = hi << 4 | lo;
    }
    seen < 16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_two_lowercase_digits_per_byte() {
        let bytes: Vec<u8> = (0..=255).collect();
        let mut out = vec![0u8; 512];
        super::encode_hex(&bytes, &mut out);
        let expected: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(out, expected.into_bytes());
    }

    /// Every pair of bytes decodes as lowercase hex reads it, and nothing else decodes.
    #[cfg(feature = "trace")]
    #[test]
    fn hex_pairs_decode_exactly_the_lowercase_digits() {
        let digit = |b: u8| match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            _ => None,
        };
        for hi in 0..=255u8 {
            for lo in 0..=255u8 {
                let want = digit(hi).zip(digit(lo)).map(|(h, l)| h << 4 | l);
                let mut out = [0u8; 1];
                let got = decode_hex(&[hi, lo], &mut out).then_some(out[0]);
                assert_eq!(got, want, "{hi:#04x} {lo:#04x}");
            }
        }
    }

    #[cfg(feature = "trace")]
    proptest::proptest! {
        /// A run of pairs decodes only when every digit is lowercase hex, to the bytes they
        /// spell: one digit anywhere replaced by a byte that is not one makes the whole run
        /// fail. Decoding what `encode_hex` wrote gives the bytes back.
        #[test]
        fn hex_runs_decode_as_their_pairs(
            src in "[0-9a-f]{32}",
            bad in proptest::option::of((0..32usize, "[A-FG-Zg-z. -]")),
        ) {
            let mut bytes = src.clone().into_bytes();
            if let Some((at, b)) = &bad {
                bytes[*at] = b.as_bytes()[0];
            }
            let mut out = [0u8; 16];
            let got = decode_hex(&bytes, &mut out).then_some(out);
            let want = bad.is_none().then(|| {
                let mut w = [0u8; 16];
                for (i, byte) in w.iter_mut().enumerate() {
                    *byte = u8::from_str_radix(&src[2 * i..2 * i + 2], 16).unwrap();
                }
                w
            });
            proptest::prop_assert_eq!(got, want);
            if let Some(w) = want {
                let mut hex = [0u8; 32];
                encode_hex(&w, &mut hex);
                proptest::prop_assert_eq!(&hex[..], src.as_bytes());
            }
        }
    }

    #[test]
    fn comma_items_read_every_field_as_one_list() {
        let mut h = HeaderMap::new();
        h.append(VARY, HeaderValue::from_static(" a, ,b"));
        h.append(VARY, HeaderValue::from_static("c"));
        h.append(VARY, HeaderValue::from_bytes(b"\xffx").unwrap());
        assert_eq!(comma_items(&h, &VARY).collect::<Vec<_>>(), ["a", "b", "c"]);
    }

    #[test]
    fn only_options_with_a_requested_method_is_a_preflight() {
        let r = |m: Method, acrm: bool| {
            let mut b = Request::builder().method(m);
            if acrm {
                b = b.header(ACCESS_CONTROL_REQUEST_METHOD, "GET");
            }
            is_preflight(&b.body(()).unwrap())
        };
        assert!(r(Method::OPTIONS, true));
        assert!(!r(Method::OPTIONS, false));
        assert!(!r(Method::GET, true));
    }

    fn vary(h: &HeaderMap) -> Vec<&str> {
        h.get_all(VARY)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect()
    }

    #[test]
    fn merges_without_duplicates() {
        let mut h = HeaderMap::new();
        append_vary(&mut h, &["Origin"]);
        assert_eq!(vary(&h), ["Origin"]);
        h.append(VARY, HeaderValue::from_static("accept-encoding"));
        append_vary(&mut h, &["origin", "Accept"]);
        assert_eq!(vary(&h), ["Origin, accept-encoding, Accept"]);
    }

    #[test]
    fn numbers_come_from_the_table_or_are_formatted() {
        for n in (0..4200).chain([86_400, u64::MAX]) {
            assert_eq!(number(n), HeaderValue::from(n), "{n}");
        }
    }

    #[test]
    fn a_value_buffer_spills_past_its_stack_room() {
        let mut b = ValueBuf::new();
        b.push(b"protothrive; hit; ttl=").push_int(5);
        assert_eq!(b.value().unwrap(), "protothrive; hit; ttl=5");
        let long = "x".repeat(200);
        let mut b = ValueBuf::new();
        b.push(b"ab").push(long.as_bytes()).push_int(7);
        assert_eq!(
            b.value().unwrap().as_bytes(),
            format!("ab{long}7").as_bytes()
        );
        assert!(ValueBuf::new().push(b"a\nb").value().is_none());
    }

    #[test]
    fn shared_copies_are_slices_of_one_buffer_until_it_is_full() {
        let copies: Vec<Bytes> = (0..CHUNK)
            .map(|i| shared_copy(&[b'0' + (i % 10) as u8; 7]))
            .collect();
        for (i, c) in copies.iter().enumerate() {
            assert_eq!(
                &c[..],
                &[b'0' + (i % 10) as u8; 7],
                "copy {i} kept its bytes"
            );
        }
        // Each copy starts where the one before ends, but where a buffer was full.
        let adjacent = copies
            .windows(2)
            .filter(|w| w[0].as_ptr() as usize + 7 == w[1].as_ptr() as usize)
            .count();
        let buffers = CHUNK * 7 / CHUNK + 1;
        assert!(adjacent >= CHUNK - 1 - buffers, "{adjacent} adjacent");
        let long = vec![b'x'; CHUNK_VALUE_MAX + 1];
        assert_eq!(&shared_copy(&long)[..], &long[..]);
    }

    #[test]
    fn a_name_set_finds_its_members_whatever_their_length() {
        let set = NameSet::new(vec![
            HeaderName::from_static("x-host"),
            http::header::FORWARDED,
            HeaderName::from_bytes(&[b'x'; 80]).unwrap(),
        ]);
        assert!(set.contains(&HeaderName::from_static("x-host")));
        assert!(set.contains(&http::header::FORWARDED));
        assert!(set.contains(&HeaderName::from_bytes(&[b'x'; 80]).unwrap()));
        // Same length as a member, or sharing the long names' bit: compared, and out.
        assert!(!set.contains(&http::header::ACCEPT));
        assert!(!set.contains(&HeaderName::from_bytes(&[b'y'; 70]).unwrap()));
        assert!(!set.contains(&http::header::HOST));
        let mut h = HeaderMap::new();
        h.insert(http::header::HOST, HeaderValue::from_static("a"));
        assert!(!set.any_in(&h));
        h.insert("x-host", HeaderValue::from_static("b"));
        assert!(set.any_in(&h));
    }

    #[test]
    fn tokens_and_structured_field_tokens() {
        assert!(is_token("max-age") && is_token("!#$%&'*+-.^_`|~09Az"));
        assert!(!is_token("") && !is_token("a b") && !is_token("a/b") && !is_token("é"));
        assert!(is_sf_token("protothrive") && is_sf_token("*edge:1/a") && is_sf_token("a"));
        assert!(!is_sf_token("") && !is_sf_token("1abc") && !is_sf_token("-x"));
        assert!(!is_sf_token("my cache") && !is_sf_token("a;b") && !is_sf_token("a,b"));
    }

    #[test]
    fn star_absorbs_everything() {
        let mut h = HeaderMap::new();
        h.insert(VARY, HeaderValue::from_static("*"));
        append_vary(&mut h, &["Origin"]);
        assert_eq!(vary(&h), ["*"]);
    }
}
