//! The `Vary` of a response and the request values it selects on (RFC 9111 §4.1).

use http::header::VARY;
use http::{HeaderMap, HeaderName};

/// The `Vary` of a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Vary {
    /// No `Vary`: one response for every request to the URI.
    None,
    /// `Vary: *`, or a `Vary` that cannot be read: no request matches.
    Star,
    /// The request headers that select the response, lowercase, sorted, without duplicates.
    Names(Vec<HeaderName>),
}

/// Reads `Vary` (RFC 9110 §12.5.5) from response headers.
///
/// ```
/// use http::HeaderMap;
/// use protothrive::cache::policy::{vary, Vary};
///
/// let mut h = HeaderMap::new();
/// h.append("vary", "Accept-Encoding, accept".parse().unwrap());
/// h.append("vary", "ACCEPT".parse().unwrap());
/// assert_eq!(vary(&h), Vary::Names(vec!["accept".parse().unwrap(), "accept-encoding".parse().unwrap()]));
/// ```
#[must_use]
pub fn vary(headers: &HeaderMap) -> Vary {
    let mut names = Vec::new();
    for v in headers.get_all(VARY) {
        let Ok(s) = v.to_str() else {
            return Vary::Star;
        };
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            if item == "*" {
                return Vary::Star;
            }
            match HeaderName::from_bytes(item.as_bytes()) {
                Ok(n) => names.push(n),
                Err(_) => return Vary::Star,
            }
        }
    }
    if names.is_empty() {
        return Vary::None;
    }
    names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    names.dedup();
    Vary::Names(names)
}

/// The normalised value of request header `name` for `Vary` matching (RFC 9111 §4.1): every
/// field line joined with `,`, whitespace around list commas and at both ends removed, inner runs
/// of whitespace collapsed to one space. Absent and empty read the same. Bytes that are not
/// visible ASCII are kept as they are (escaped), never dropped.
///
/// ```
/// use http::HeaderMap;
/// use protothrive::cache::policy::vary_value;
/// let mut h = HeaderMap::new();
/// h.append("accept-encoding", " gzip ,  br".parse().unwrap());
/// h.append("accept-encoding", "zstd".parse().unwrap());
/// assert_eq!(vary_value(&h, &"accept-encoding".parse().unwrap()), "gzip,br,zstd");
/// ```
#[must_use]
pub fn vary_value(headers: &HeaderMap, name: &HeaderName) -> String {
    let mut out = String::new();
    for (i, v) in headers.get_all(name).iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let mut pending_space = false;
        for &b in v.as_bytes() {
            match b {
                b' ' | b'\t' => pending_space = !out.is_empty() && !out.ends_with(','),
                b',' => {
                    pending_space = false;
                    out.push(',');
                }
                _ => {
                    if pending_space {
                        out.push(' ');
                        pending_space = false;
                    }
                    if b.is_ascii_graphic() {
                        out.push(char::from(b));
                    } else {
                        out.push_str(&format!("\\x{b:02x}"));
                    }
                }
            }
        }
    }
    out
}

/// Whether a new request selects the same response as the stored request for `names`
/// (RFC 9111 §4.1).
///
/// ```
/// use http::HeaderMap;
/// use protothrive::cache::policy::vary_matches;
/// let (mut stored, mut new) = (HeaderMap::new(), HeaderMap::new());
/// stored.insert("accept", "text/html".parse().unwrap());
/// new.insert("accept", "text/html ".parse().unwrap());
/// assert!(vary_matches(&["accept".parse().unwrap()], &stored, &new));
/// ```
#[must_use]
pub fn vary_matches(names: &[HeaderName], stored: &HeaderMap, new: &HeaderMap) -> bool {
    names
        .iter()
        .all(|n| vary_value(stored, n) == vary_value(new, n))
}
