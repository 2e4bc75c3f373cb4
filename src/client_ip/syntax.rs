//! Byte-level parsing of forwarding headers: list elements split off from the right, `Forwarded`
//! pairs, and node addresses. Pure; nothing here allocates.
//!
//! Hand-written rather than borrowed from a crate such as `forwarded-header-value` because the walk
//! must read *right to left* and stop after a byte budget: a header a client padded with megabytes
//! of junk on the left costs nothing, and a client's unbalanced `"` on the left cannot swallow the
//! well-formed element a trusted proxy appended on the right.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The syntax of one forwarding header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Syntax {
    /// `X-Forwarded-For: 203.0.113.7, 10.0.0.1`
    XForwardedFor,
    /// `Forwarded: for=203.0.113.7;proto=https, for="[2001:db8::1]:443"` (RFC 7239 §4)
    Forwarded,
}

/// The element could not be read; the walk stops before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Malformed;

/// The element would take the walk past its byte budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TooLarge;

impl Syntax {
    /// The address one list element names: the whole element for `X-Forwarded-For`, the `for=`
    /// parameter of a `Forwarded` element.
    pub(crate) fn address(self, element: &[u8]) -> Result<IpAddr, Malformed> {
        match self {
            Self::XForwardedFor => node(element),
            Self::Forwarded => forwarded_for(element),
        }
    }
}

/// Splits the list elements of one header line off its end, right to left (RFC 9110 §5.6.1).
#[derive(Debug)]
pub(crate) struct RevElements<'a> {
    rest: Option<&'a [u8]>,
    quotes: bool,
}

impl<'a> RevElements<'a> {
    pub(crate) fn new(line: &'a [u8], syntax: Syntax) -> Self {
        Self {
            rest: Some(line),
            quotes: syntax == Syntax::Forwarded,
        }
    }

    /// The next element from the right, looking at no more than `limit` bytes to find it.
    ///
    /// Commas inside quoted strings do not split. Reading a quoted string backwards is exact: inside
    /// one, every `\` starts a quoted-pair, so a `"` preceded by an odd run of `\` is escaped.
    pub(crate) fn next(&mut self, limit: usize) -> Option<Result<&'a [u8], TooLarge>> {
        let line = self.rest?;
        let floor = line.len().saturating_sub(limit);
        let mut end = line.len();
        loop {
            let window = &line[floor..end];
            let hit = if self.quotes {
                window.iter().rposition(|&b| b == b',' || b == b'"')
            } else {
                window.iter().rposition(|&b| b == b',')
            };
            let Some(at) = hit.map(|p| floor + p) else {
                break;
            };
            if line[at] == b',' {
                self.rest = Some(&line[..at]);
                return Some(Ok(&line[at + 1..]));
            }
            // A closing quote: jump to the quote that opens it.
            match opening_quote(line, at, floor) {
                Some(open) => end = open,
                None => break,
            }
        }
        self.rest = None;
        Some(if floor == 0 { Ok(line) } else { Err(TooLarge) })
    }
}

/// The `"` (at or after `floor`) that opens the quoted string closed by the `"` at `close`.
fn opening_quote(line: &[u8], close: usize, floor: usize) -> Option<usize> {
    let mut end = close;
    while let Some(p) = line[floor..end].iter().rposition(|&b| b == b'"') {
        let quote = floor + p;
        if backslashes_before(line, quote, floor).is_multiple_of(2) {
            return Some(quote);
        }
        end = quote;
    }
    None
}

fn backslashes_before(line: &[u8], mut i: usize, floor: usize) -> usize {
    let mut n = 0;
    while i > floor && line[i - 1] == b'\\' {
        n += 1;
        i -= 1;
    }
    n
}

/// Strips optional whitespace (SP / HTAB) from both ends.
pub(crate) fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// A node (RFC 7239 §6): `192.0.2.1`, `192.0.2.1:8080`, `[2001:db8::1]`, `[2001:db8::1]:443`, with
/// an optional obfuscated port (`:_abc`). Also a bare IPv6 address, which some proxies write in
/// `X-Forwarded-For`. `unknown` and obfuscated identifiers (`_hidden`) name no address: malformed.
pub(crate) fn node(bytes: &[u8]) -> Result<IpAddr, Malformed> {
    if let Some(v4) = ipv4(bytes) {
        return Ok(IpAddr::V4(v4));
    }
    let s = std::str::from_utf8(bytes).map_err(|_| Malformed)?;
    if let Some(rest) = s.strip_prefix('[') {
        let (v6, after) = rest.split_once(']').ok_or(Malformed)?;
        let ip: Ipv6Addr = v6.parse().map_err(|_| Malformed)?;
        if !after.is_empty() {
            port(after.strip_prefix(':').ok_or(Malformed)?)?;
        }
        return Ok(IpAddr::V6(ip));
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(ip);
    }
    let (v4, p) = s.rsplit_once(':').ok_or(Malformed)?;
    let ip = ipv4(v4.as_bytes()).ok_or(Malformed)?;
    port(p)?;
    Ok(IpAddr::V4(ip))
}

/// Dotted-quad IPv4, as strict as `Ipv4Addr::from_str` (four decimal octets up to 255, no leading
/// zeros). Hand-written because it is the hot path of every walk and the standard parser (generic
/// over all address forms, and needing a `str`) costs about three times as much; a unit proptest
/// holds it to the standard parser's answers.
pub(crate) fn ipv4(bytes: &[u8]) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut i = 0;
    for (n, octet) in octets.iter_mut().enumerate() {
        if n > 0 {
            if bytes.get(i) != Some(&b'.') {
                return None;
            }
            i += 1;
        }
        let start = i;
        let mut value = 0u16;
        while let Some(&d) = bytes.get(i).filter(|d| d.is_ascii_digit() && i - start < 3) {
            value = value * 10 + u16::from(d - b'0');
            i += 1;
        }
        let leading_zero = i - start > 1 && bytes[start] == b'0';
        if i == start || leading_zero {
            return None;
        }
        *octet = u8::try_from(value).ok()?;
    }
    (i == bytes.len()).then_some(Ipv4Addr::from(octets))
}

/// `port = 1*5DIGIT`, `obfport = "_" 1*(ALPHA / DIGIT / "." / "_" / "-")` (RFC 7239 §6.3).
fn port(p: &str) -> Result<(), Malformed> {
    let digits = (1..=5).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit());
    let obfuscated = p.strip_prefix('_').is_some_and(|rest| {
        !rest.is_empty()
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    });
    if digits || obfuscated {
        Ok(())
    } else {
        Err(Malformed)
    }
}

/// The address in the single `for=` pair of a `Forwarded` element (RFC 7239 §4):
/// `forwarded-element = [ forwarded-pair ] *( ";" [ forwarded-pair ] )`. An element without `for`,
/// with two, or with any pair that does not parse is malformed.
///
/// One forward pass: name, `=`, value (token or quoted string), then `;` or the end.
fn forwarded_for(element: &[u8]) -> Result<IpAddr, Malformed> {
    let mut found = None;
    let mut i = skip_ows(element, 0);
    while i < element.len() {
        if element[i] == b';' {
            // An empty pair.
            i = skip_ows(element, i + 1);
            continue;
        }
        let start = i;
        while i < element.len() && is_tchar(element[i]) {
            i += 1;
        }
        let name = &element[start..i];
        if name.is_empty() || element.get(i) != Some(&b'=') {
            return Err(Malformed);
        }
        let (value, end) = value(element, i + 1)?;
        if name.eq_ignore_ascii_case(b"for") {
            if found.is_some() {
                return Err(Malformed);
            }
            found = Some(value.address()?);
        }
        i = skip_ows(element, end);
        match element.get(i) {
            None => break,
            Some(b';') => i = skip_ows(element, i + 1),
            Some(_) => return Err(Malformed),
        }
    }
    found.ok_or(Malformed)
}

fn skip_ows(s: &[u8], mut i: usize) -> usize {
    while i < s.len() && matches!(s[i], b' ' | b'\t') {
        i += 1;
    }
    i
}

/// A pair's value: a token (read leniently, since proxies write `for=192.0.2.1:80` unquoted) or a
/// quoted string.
enum Value<'a> {
    /// The bytes, with no quoted-pairs to undo.
    Plain(&'a [u8]),
    /// The inside of a quoted string that contains quoted-pairs.
    Escaped(&'a [u8]),
}

/// The value starting at `s[i]`, and the index just past it.
fn value(s: &[u8], mut i: usize) -> Result<(Value<'_>, usize), Malformed> {
    if s.get(i) != Some(&b'"') {
        let start = i;
        while i < s.len() && is_lenient_token(s[i]) {
            i += 1;
        }
        return if i > start {
            Ok((Value::Plain(&s[start..i]), i))
        } else {
            Err(Malformed)
        };
    }
    i += 1;
    let start = i;
    let mut any_pair = false;
    loop {
        match *s.get(i).ok_or(Malformed)? {
            b'"' => break,
            b'\\' => {
                // quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text )
                any_pair = true;
                i += 1;
                let escaped = *s.get(i).ok_or(Malformed)?;
                if !(is_qdtext(escaped) || escaped == b'"' || escaped == b'\\') {
                    return Err(Malformed);
                }
            }
            b if is_qdtext(b) => {}
            _ => return Err(Malformed),
        }
        i += 1;
    }
    let inner = &s[start..i];
    let value = if any_pair {
        Value::Escaped(inner)
    } else {
        Value::Plain(inner)
    };
    Ok((value, i + 1))
}

impl Value<'_> {
    fn address(&self) -> Result<IpAddr, Malformed> {
        match self {
            Self::Plain(bytes) => node(bytes),
            Self::Escaped(inner) => {
                // The longest node with an address is 53 bytes (`[` 45-byte IPv6 `]:65535`).
                let mut buf = [0u8; 64];
                let mut len = 0;
                let mut escaped = false;
                for &b in *inner {
                    if !escaped && b == b'\\' {
                        escaped = true;
                        continue;
                    }
                    escaped = false;
                    *buf.get_mut(len).ok_or(Malformed)? = b;
                    len += 1;
                }
                node(&buf[..len])
            }
        }
    }
}

const TCHAR: u8 = 1;
const QDTEXT: u8 = 2;
const LENIENT_TOKEN: u8 = 4;

/// Byte classes, one table load per byte on the parsing hot path.
static CLASS: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        #[allow(clippy::cast_possible_truncation)] // b < 256
        let c = b as u8;
        let mut class = 0;
        // tchar (RFC 9110 §5.6.2)
        if c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            )
        {
            class |= TCHAR;
        }
        // qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text (RFC 9110 §5.6.4)
        if matches!(c, b'\t' | b' ' | 0x21 | 0x23..=0x5B | 0x5D..=0x7E | 0x80..=0xFF) {
            class |= QDTEXT;
        }
        // A token, plus the characters proxies put in unquoted nodes (`:`, `[`, `]`).
        if c.is_ascii_graphic() && !matches!(c, b'"' | b'\\' | b';' | b',') {
            class |= LENIENT_TOKEN;
        }
        table[b] = class;
        b += 1;
    }
    table
};

fn is_qdtext(b: u8) -> bool {
    CLASS[usize::from(b)] & QDTEXT != 0
}

fn is_tchar(b: u8) -> bool {
    CLASS[usize::from(b)] & TCHAR != 0
}

fn is_lenient_token(b: u8) -> bool {
    CLASS[usize::from(b)] & LENIENT_TOKEN != 0
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn ipv4_edge_cases_match_the_standard_parser() {
        for s in [
            "0.0.0.0",
            "255.255.255.255",
            "256.0.0.1",
            "01.2.3.4",
            "1.2.3.04",
            "1.2.3.0",
            "1.2.3",
            "1.2.3.4.",
            ".1.2.3.4",
            "1..2.3",
            "1.2.3.4.5",
            "",
            "1.2.3.+4",
            "0000.1.1.1",
            "1.2.3.255",
            "1.2.3.2550",
        ] {
            assert_eq!(ipv4(s.as_bytes()), s.parse().ok(), "{s:?}");
        }
    }

    proptest! {
        #[test]
        fn ipv4_agrees_with_the_standard_parser(s in "[0-9.]{0,18}|[0-9]{1,4}(\\.[0-9]{1,4}){3}") {
            prop_assert_eq!(ipv4(s.as_bytes()), s.parse().ok());
        }

        #[test]
        fn ipv4_agrees_on_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..20)) {
            let std = std::str::from_utf8(&bytes).ok().and_then(|s| s.parse().ok());
            prop_assert_eq!(ipv4(&bytes), std);
        }

        #[test]
        fn ipv4_round_trips(ip in any::<Ipv4Addr>()) {
            prop_assert_eq!(ipv4(ip.to_string().as_bytes()), Some(ip));
        }
    }
}
