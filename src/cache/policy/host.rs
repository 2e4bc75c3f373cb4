//! The host a cache key names, read from a `Host` field: a DNS name or an IP literal and a port,
//! the common form in one pass and everything else by the general reading.

/// An unreserved character of RFC 3986 §2.3 (`A-Z a-z 0-9 - . _ ~`): what a registered name is
/// written in here, and what a percent-escape is decoded to in a key.
pub(super) fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// A DNS name or an IP literal: `http::uri::Authority` also takes sub-delimiters and stray
/// brackets, which no real host has; such a request is not cached rather than keyed oddly.
pub(super) fn plain_host(host: &str) -> bool {
    let b = host.as_bytes();
    match b {
        [] => false,
        [b'[', inner @ .., b']'] => {
            !inner.is_empty()
                && inner
                    .iter()
                    .all(|c| c.is_ascii_hexdigit() || matches!(c, b':' | b'.'))
        }
        _ => b.iter().all(|&c| unreserved(c)),
    }
}

/// The common `Host` field in one pass — a name or IPv4 address of unreserved characters and an
/// optional port — as the host, whether it is lowercase already, and the port. `None` leaves
/// everything else (IPv6 literals, other bytes, a port of more than five digits) to
/// [`host_field`] and [`plain_host`], which read what this reads the same way.
pub(super) fn simple_host_field(b: &[u8]) -> Option<(&str, bool, Option<u16>)> {
    let mut upper = false;
    let mut end = b.len();
    for (i, &c) in b.iter().enumerate() {
        match c {
            b':' => {
                end = i;
                break;
            }
            c if unreserved(c) => upper |= c.is_ascii_uppercase(),
            _ => return None,
        }
    }
    let port = match b.get(end + 1..) {
        None | Some([]) => None,
        Some(digits) if digits.len() <= 5 => {
            let mut p = 0u32;
            for &d in digits {
                if !d.is_ascii_digit() {
                    return None;
                }
                p = p * 10 + u32::from(d - b'0');
            }
            Some(u16::try_from(p).ok()?)
        }
        Some(_) => return None,
    };
    let host = std::str::from_utf8(&b[..end])
        .ok()
        .filter(|h| !h.is_empty())?;
    Some((host, !upper, port))
}

/// The host and port of a `Host` field (`uri-host [ ":" port ]`, RFC 9110 §7.2), read in place;
/// `None` for anything else (user info, a port that is not a number below 65536). The host is
/// checked by [`plain_host`] afterwards; the field comes as `HeaderValue::to_str` gives it
/// (visible ASCII: a host is never anything else), which is cheaper than UTF-8 validation.
pub(super) fn host_field(s: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if s.starts_with('[') {
        let end = s.find(']')? + 1;
        match &s[end..] {
            "" => (&s[..end], None),
            rest => (&s[..end], Some(rest.strip_prefix(':')?)),
        }
    } else {
        // ':' is ASCII, so its byte position is a char boundary.
        match s.bytes().position(|b| b == b':') {
            Some(i) => (&s[..i], Some(&s[i + 1..])),
            None => (s, None),
        }
    };
    let port = match port {
        // An empty port is allowed and means the scheme's default (RFC 3986 §3.2.3).
        None | Some("") => None,
        Some(p) if p.bytes().all(|c| c.is_ascii_digit()) => Some(p.parse().ok()?),
        Some(_) => return None,
    };
    Some((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The `Host` field read in place agrees with `http`'s own authority parser on every
        /// `host[:port]` it accepts, but for ports past 65535, which are refused.
        #[test]
        fn host_fields_read_as_the_authority_parser_reads_them(
            host in "([a-zA-Z0-9.-]{1,12}|\\[[0-9a-f:]{2,10}\\])",
            port in proptest::option::of("[0-9]{0,6}"),
        ) {
            let field = match &port {
                Some(p) => format!("{host}:{p}"),
                None => host,
            };
            let ours = host_field(&field);
            // A port past 65535 is refused here; `http` reads it as no port at all.
            let fits = port.as_deref().is_none_or(|p| p.is_empty() || p.parse::<u16>().is_ok());
            match http::uri::Authority::try_from(field.as_str()) {
                Ok(a) if fits => prop_assert_eq!(ours, Some((a.host(), a.port_u16()))),
                _ => prop_assert_eq!(ours, None),
            }
        }

        /// The one-pass reading of a `Host` field agrees with the general one (`host_field`
        /// then `plain_host`, host lowercased) wherever it answers, and answers for every
        /// name or IPv4 address of unreserved characters with a port of up to five digits.
        #[test]
        fn the_one_pass_host_reading_agrees_with_the_general_one(
            field in "([a-zA-Z0-9._~-]{0,12}(:[0-9]{0,6})?|\\[[0-9a-f:]{2,10}\\](:[0-9]{0,3})?|.{0,16})",
        ) {
            let general = host_field(&field)
                .filter(|(h, _)| plain_host(h))
                .map(|(h, p)| (h.to_ascii_lowercase(), p));
            match simple_host_field(field.as_bytes()) {
                Some((h, lowercase, p)) => {
                    prop_assert_eq!(lowercase, h == h.to_ascii_lowercase());
                    prop_assert_eq!(general, Some((h.to_ascii_lowercase(), p)));
                }
                None => {
                    let (h, p) = field.split_once(':').unwrap_or((&field, ""));
                    let simple = !h.is_empty()
                        && h.bytes().all(unreserved)
                        && p.len() <= 5
                        && p.bytes().all(|c| c.is_ascii_digit())
                        && (p.is_empty() || p.parse::<u16>().is_ok());
                    prop_assert!(!simple, "{:?} left to the general path", field);
                }
            }
        }

        #[test]
        fn any_host_field_is_read_without_panicking(v in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = host_field(&String::from_utf8_lossy(&v));
        }
    }
}
