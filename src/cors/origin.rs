//! Serialized origins (RFC 6454 §6.2, HTML "serialization of an origin"): parsing and comparison
//! without allocating.

/// An origin as a browser serializes it in the `Origin` header: `scheme://host[:port]`.
///
/// Borrowed from the header value; the scheme and host keep the case they were sent in and compare
/// case-insensitively; a default port (`http` 80, `https` 443, `ws` 80, `wss` 443) is dropped, so
/// `https://a.example:443` and `https://A.example` are the same origin.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Origin<'a> {
    pub(crate) scheme: &'a str,
    pub(crate) host: &'a str,
    pub(crate) port: Option<u16>,
}

impl PartialEq for Origin<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.port == other.port
            && self.scheme.eq_ignore_ascii_case(other.scheme)
            && self.host.eq_ignore_ascii_case(other.host)
    }
}

fn default_port(scheme: &str) -> Option<u16> {
    if scheme.eq_ignore_ascii_case("https") || scheme.eq_ignore_ascii_case("wss") {
        Some(443)
    } else if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("ws") {
        Some(80)
    } else {
        None
    }
}

fn valid_scheme(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

/// A host name of non-empty labels of letters, digits, `-` and `_` (IPv4 addresses are such names),
/// or a bracketed IPv6 address. Browsers send IDNs as punycode, so nothing else is valid.
pub(crate) fn valid_host(s: &str) -> bool {
    if let Some(inner) = s.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
        return !inner.is_empty()
            && inner
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || matches!(b, b':' | b'.'));
    }
    !s.is_empty()
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
        })
}

/// Parses `scheme://host[:port]`; `None` for anything else (a path, a trailing slash, userinfo, a
/// query, an empty or non-numeric port, `null`).
pub(crate) fn parse(s: &str) -> Option<Origin<'_>> {
    let (scheme, rest) = s.split_once("://")?;
    if !valid_scheme(scheme) {
        return None;
    }
    // A bracketed IPv6 host holds colons; the port separator is the colon after `]`.
    let (host, port) = match rest.rfind(':') {
        Some(i) if !rest.ends_with(']') => (&rest[..i], Some(&rest[i + 1..])),
        _ => (rest, None),
    };
    if !valid_host(host) {
        return None;
    }
    let port = match port {
        None => None,
        Some(p) => {
            // A serialized origin never has a leading zero in its port.
            if p.is_empty()
                || p.len() > 5
                || (p.len() > 1 && p.starts_with('0'))
                || !p.bytes().all(|b| b.is_ascii_digit())
            {
                return None;
            }
            let n: u16 = p.parse().ok()?;
            (default_port(scheme) != Some(n)).then_some(n)
        }
    };
    Some(Origin { scheme, host, port })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_normalises() {
        type Parsed<'a> = Option<(&'a str, &'a str, Option<u16>)>;
        let cases: &[(&str, Parsed<'_>)] = &[
            ("https://example.com", Some(("https", "example.com", None))),
            (
                "https://example.com:443",
                Some(("https", "example.com", None)),
            ),
            ("http://example.com:80", Some(("http", "example.com", None))),
            (
                "http://example.com:443",
                Some(("http", "example.com", Some(443))),
            ),
            (
                "https://example.com:8443",
                Some(("https", "example.com", Some(8443))),
            ),
            ("HTTPS://EXAMPLE.com", Some(("HTTPS", "EXAMPLE.com", None))),
            (
                "http://127.0.0.1:3000",
                Some(("http", "127.0.0.1", Some(3000))),
            ),
            ("http://[::1]:3000", Some(("http", "[::1]", Some(3000)))),
            ("http://[::1]", Some(("http", "[::1]", None))),
            ("https://example.com/", None),
            ("https://example.com/path", None),
            ("https://user@example.com", None),
            ("https://example.com:", None),
            ("https://example.com:99999", None),
            ("https://example.com:-1", None),
            ("https://exa mple.com", None),
            ("https://example..com", None),
            ("https://.example.com", None),
            ("https://", None),
            ("example.com", None),
            ("null", None),
            ("://example.com", None),
            ("1http://example.com", None),
            ("https://example.com?x", None),
            ("https://example.com:0443", None),
            ("https://exämple.com", None),
        ];
        for (input, want) in cases {
            let got = parse(input).map(|o| (o.scheme, o.host, o.port));
            assert_eq!(got, *want, "{input}");
        }
    }

    #[test]
    fn equality_is_case_insensitive_and_port_aware() {
        let a = parse("https://Example.COM").unwrap();
        assert_eq!(a, parse("https://example.com:443").unwrap());
        assert_ne!(a, parse("http://example.com").unwrap());
        assert_ne!(a, parse("https://example.com:8443").unwrap());
    }
}
