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
        let mut in_quote = false;
        let mut i = line.len();
        while i > floor {
            i -= 1;
            match line[i] {
                b'"' if in_quote => in_quote = backslashes_before(line, i, floor) % 2 == 1,
                b'"' if self.quotes => in_quote = true,
                b',' if !in_quote => {
                    self.rest = Some(&line[..i]);
                    return Some(Ok(&line[i + 1..]));
                }
                _ => {}
            }
        }
        self.rest = None;
        Some(if floor == 0 { Ok(line) } else { Err(TooLarge) })
    }
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
    let ip: Ipv4Addr = v4.parse().map_err(|_| Malformed)?;
    port(p)?;
    Ok(IpAddr::V4(ip))
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
fn forwarded_for(element: &[u8]) -> Result<IpAddr, Malformed> {
    let mut found = None;
    let mut rest = Some(element);
    while let Some(text) = rest {
        let (pair, tail) = split_pair(text);
        rest = tail;
        let pair = trim_ows(pair);
        if pair.is_empty() {
            continue;
        }
        let eq = pair.iter().position(|&b| b == b'=').ok_or(Malformed)?;
        let (name, raw) = (&pair[..eq], &pair[eq + 1..]);
        if name.is_empty() || !name.iter().copied().all(is_tchar) {
            return Err(Malformed);
        }
        let value = value(raw)?;
        if name.eq_ignore_ascii_case(b"for") {
            if found.is_some() {
                return Err(Malformed);
            }
            found = Some(value.address()?);
        }
    }
    found.ok_or(Malformed)
}

/// Splits at the first `;` outside a quoted string.
fn split_pair(s: &[u8]) -> (&[u8], Option<&[u8]>) {
    let mut in_quote = false;
    let mut escaped = false;
    for (i, &b) in s.iter().enumerate() {
        match b {
            _ if escaped => escaped = false,
            b'\\' if in_quote => escaped = true,
            b'"' => in_quote = !in_quote,
            b';' if !in_quote => return (&s[..i], Some(&s[i + 1..])),
            _ => {}
        }
    }
    (s, None)
}

/// A pair's value: a token (read leniently, since proxies write `for=192.0.2.1:80` unquoted) or a
/// quoted string.
enum Value<'a> {
    /// The bytes, with no quoted-pairs to undo.
    Plain(&'a [u8]),
    /// The inside of a quoted string that contains quoted-pairs.
    Escaped(&'a [u8]),
}

fn value(raw: &[u8]) -> Result<Value<'_>, Malformed> {
    let Some(inner) = raw.strip_prefix(b"\"") else {
        let lenient_token =
            |b: u8| b.is_ascii_graphic() && !matches!(b, b'"' | b'\\' | b';' | b',');
        return if !raw.is_empty() && raw.iter().copied().all(lenient_token) {
            Ok(Value::Plain(raw))
        } else {
            Err(Malformed)
        };
    };
    let inner = inner.strip_suffix(b"\"").ok_or(Malformed)?;
    let mut escaped = false;
    let mut any_pair = false;
    for &b in inner {
        if escaped {
            escaped = false;
            if !is_qdtext(b) && b != b'"' && b != b'\\' {
                return Err(Malformed);
            }
        } else if b == b'\\' {
            escaped = true;
            any_pair = true;
        } else if !is_qdtext(b) {
            return Err(Malformed);
        }
    }
    if escaped {
        return Err(Malformed);
    }
    Ok(if any_pair {
        Value::Escaped(inner)
    } else {
        Value::Plain(inner)
    })
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

/// `qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text` (RFC 9110 §5.6.4).
fn is_qdtext(b: u8) -> bool {
    matches!(b, b'\t' | b' ' | 0x21 | 0x23..=0x5B | 0x5D..=0x7E | 0x80..=0xFF)
}

/// `tchar` (RFC 9110 §5.6.2).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
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
}
