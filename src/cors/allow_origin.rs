use std::fmt;
use std::sync::Arc;

use super::origin::{self, Origin};

/// Which origins may read responses (Fetch §3.2.5, `Access-Control-Allow-Origin`).
///
/// Entries are compared as serialized origins: scheme, host and port, the scheme and host without
/// regard to case, default ports dropped. Nothing is matched by substring or prefix.
///
/// ```
/// use protothrive::cors::AllowOrigin;
///
/// let origins = AllowOrigin::list(["https://app.example.com", "https://*.example.org", "null"]);
/// assert!(origins.matches("https://APP.example.com:443"));
/// assert!(origins.matches("https://eu.api.example.org"));
/// assert!(origins.matches("null"));
/// assert!(!origins.matches("https://example.org"));
/// assert!(!origins.matches("https://example.org.evil.net"));
/// assert!(!origins.matches("http://app.example.com"));
/// ```
#[derive(Clone)]
#[must_use]
pub struct AllowOrigin {
    kind: Kind,
}

#[derive(Clone)]
enum Kind {
    Any,
    Mirror,
    List(Arc<List>),
    Predicate(Arc<dyn Fn(&str) -> bool + Send + Sync>),
}

#[derive(Debug, Default)]
struct List {
    exact: Vec<Exact>,
    patterns: Vec<Pattern>,
    null: bool,
    errors: Vec<String>,
}

#[derive(Debug)]
struct Exact {
    scheme: String,
    host: String,
    port: Option<u16>,
    /// The origin as a browser serializes it, when that text parses back to exactly this entry:
    /// a byte-equal `Origin` matches without being parsed.
    serialized: Option<String>,
}

impl Exact {
    fn new(scheme: &str, host: &str, port: Option<u16>) -> Self {
        let scheme = scheme.to_ascii_lowercase();
        let host = host.to_ascii_lowercase();
        let text = match port {
            Some(p) => format!("{scheme}://{host}:{p}"),
            None => format!("{scheme}://{host}"),
        };
        let round_trips = origin::parse(&text)
            .is_some_and(|o| o.scheme == scheme && o.host == host && o.port == port);
        let serialized = round_trips.then_some(text);
        Self {
            scheme,
            host,
            port,
            serialized,
        }
    }
}

/// `scheme://*.suffix[:port]`: one or more whole labels in front of `suffix`.
#[derive(Debug)]
struct Pattern {
    scheme: String,
    suffix: String,
    port: Option<u16>,
}

impl AllowOrigin {
    /// Any origin: `Access-Control-Allow-Origin: *`. Refused by the builder with credentials.
    pub fn any() -> Self {
        Self { kind: Kind::Any }
    }

    /// Echoes whatever origin the request names. Refused by the builder with credentials (it would
    /// let every site read every user's data); prefer [`list`](Self::list) or
    /// [`predicate`](Self::predicate).
    pub fn mirror_request() -> Self {
        Self { kind: Kind::Mirror }
    }

    /// One exact origin, such as `https://app.example.com` or `http://localhost:5173`.
    pub fn exact(origin: impl AsRef<str>) -> Self {
        Self::list([origin])
    }

    /// Several entries, each an exact origin, a host pattern `https://*.example.com` (whole labels
    /// in front of `example.com`, same scheme and port), or `null` (the opaque origin of sandboxed
    /// frames and `file:` pages — allow it only if you mean it). Mistakes are reported by
    /// [`CorsLayerBuilder::build`](super::CorsLayerBuilder::build).
    pub fn list<I>(entries: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let mut list = List::default();
        for entry in entries {
            list.add(entry.as_ref().trim());
        }
        Self {
            kind: Kind::List(Arc::new(list)),
        }
    }

    /// Origins a function accepts. It sees only well-formed serialized origins (and `null`), one at
    /// a time — never a list or a malformed value.
    pub fn predicate<F>(f: F) -> Self
    where
        F: Fn(&str) -> bool + Send + Sync + 'static,
    {
        Self {
            kind: Kind::Predicate(Arc::new(f)),
        }
    }

    /// Whether one `Origin` value is allowed. A comma list, an empty or malformed value is not.
    #[must_use]
    pub fn matches(&self, origin: &str) -> bool {
        if origin == "null" {
            return match &self.kind {
                Kind::Any | Kind::Mirror => true,
                Kind::List(list) => list.null,
                Kind::Predicate(f) => f(origin),
            };
        }
        // What browsers send is the serialized origin: a byte-equal configured one is a match
        // without parsing (it parses to that entry by construction).
        if let Kind::List(list) = &self.kind
            && list
                .exact
                .iter()
                .any(|e| e.serialized.as_deref() == Some(origin))
        {
            return true;
        }
        let Some(parsed) = origin::parse(origin) else {
            return false;
        };
        match &self.kind {
            Kind::Any | Kind::Mirror => true,
            Kind::List(list) => list.matches(&parsed),
            Kind::Predicate(f) => f(origin),
        }
    }

    /// `*` is sent instead of the request's origin.
    pub(crate) fn is_any(&self) -> bool {
        matches!(self.kind, Kind::Any)
    }

    /// Allows every origin (`*` or mirroring): refused with credentials.
    pub(crate) fn is_unrestricted(&self) -> bool {
        matches!(self.kind, Kind::Any | Kind::Mirror)
    }

    /// The first configuration mistake, if any.
    pub(crate) fn error(&self) -> Option<&str> {
        match &self.kind {
            // A list whose only entries are mistakes is empty too: name the mistake.
            Kind::List(list) if !list.errors.is_empty() => list.errors.first().map(String::as_str),
            Kind::List(list) if list.exact.is_empty() && list.patterns.is_empty() && !list.null => {
                Some(
                    "the origin list is empty; list at least one origin such as https://app.example.com",
                )
            }
            _ => None,
        }
    }
}

impl List {
    fn add(&mut self, entry: &str) {
        if entry == "null" {
            self.null = true;
        } else if entry == "*" {
            self.errors.push(
                "`*` in an origin list; use AllowOrigin::any() (never with credentials)".to_owned(),
            );
        } else if let Some((scheme, rest)) = entry.split_once("://*.") {
            // Parse with a stand-in label so the suffix gets the same checks as an exact host.
            let probe = format!("{scheme}://x.{rest}");
            match origin::parse(&probe) {
                Some(o)
                    if o.host.len() > 2
                        && o.host[2..].contains('.')
                        && !o.host[2..].contains('*')
                        && !o.host[2..].bytes().all(|b| b.is_ascii_digit() || b == b'.') =>
                {
                    self.patterns.push(Pattern {
                        scheme: o.scheme.to_ascii_lowercase(),
                        suffix: o.host[2..].to_ascii_lowercase(),
                        port: o.port,
                    });
                }
                _ => self.errors.push(format!(
                    "`{entry}` is not a host pattern; write `https://*.example.com` (a wildcard \
                     label in front of a domain of at least two labels, no path)"
                )),
            }
        } else {
            match origin::parse(entry) {
                Some(o) => self.exact.push(Exact::new(o.scheme, o.host, o.port)),
                None => self.errors.push(format!(
                    "`{entry}` is not an origin; write `scheme://host[:port]` with no path or \
                     trailing slash, such as https://app.example.com"
                )),
            }
        }
    }

    fn matches(&self, o: &Origin<'_>) -> bool {
        self.exact.iter().any(|e| {
            e.port == o.port
                && e.host.eq_ignore_ascii_case(o.host)
                && e.scheme.eq_ignore_ascii_case(o.scheme)
        }) || self.patterns.iter().any(|p| {
            let host = o.host.as_bytes();
            let n = p.suffix.len();
            p.port == o.port
                && host.len() > n + 1
                && host[host.len() - n - 1] == b'.'
                && host[host.len() - n..].eq_ignore_ascii_case(p.suffix.as_bytes())
                && p.scheme.eq_ignore_ascii_case(o.scheme)
        })
    }
}

impl fmt::Debug for AllowOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Any => f.write_str("AllowOrigin::Any"),
            Kind::Mirror => f.write_str("AllowOrigin::Mirror"),
            Kind::List(list) => f.debug_tuple("AllowOrigin::List").field(list).finish(),
            Kind::Predicate(_) => f.write_str("AllowOrigin::Predicate(..)"),
        }
    }
}

impl<const N: usize> From<[&str; N]> for AllowOrigin {
    fn from(entries: [&str; N]) -> Self {
        Self::list(entries)
    }
}

impl From<Vec<String>> for AllowOrigin {
    fn from(entries: Vec<String>) -> Self {
        Self::list(entries)
    }
}

impl From<&str> for AllowOrigin {
    fn from(origin: &str) -> Self {
        Self::exact(origin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_patterns_match_whole_labels_only() {
        let p = AllowOrigin::list(["https://*.example.com"]);
        assert!(p.error().is_none());
        let cases = [
            ("https://a.example.com", true),
            ("https://a.b.example.com", true),
            ("https://A.EXAMPLE.COM", true),
            ("https://a.example.com:443", true),
            ("https://example.com", false),
            ("https://evilexample.com", false),
            ("https://a.evilexample.com", false),
            ("https://example.com.evil.net", false),
            ("https://a.example.com.evil.net", false),
            ("http://a.example.com", false),
            ("https://a.example.com:8443", false),
            ("https://.example.com", false),
            ("https://a.example.com/", false),
            ("https://a.example.com, https://b.example.com", false),
            ("null", false),
            ("", false),
        ];
        for (origin, want) in cases {
            assert_eq!(p.matches(origin), want, "{origin}");
        }
    }

    #[test]
    fn exact_origins_compare_as_serialized_origins() {
        let p = AllowOrigin::list(["https://App.Example.com:443", "http://localhost:5173"]);
        let cases = [
            ("https://app.example.com", true),
            ("HTTPS://APP.EXAMPLE.COM", true),
            ("https://app.example.com:443", true),
            ("https://app.example.com:8443", false),
            ("http://app.example.com", false),
            ("https://app.example.com.evil.net", false),
            ("https://xapp.example.com", false),
            ("http://localhost:5173", true),
            ("http://localhost", false),
            ("http://localhost:51730", false),
            ("null", false),
        ];
        for (origin, want) in cases {
            assert_eq!(p.matches(origin), want, "{origin}");
        }
    }

    #[test]
    fn null_only_when_listed() {
        assert!(AllowOrigin::list(["null"]).matches("null"));
        assert!(!AllowOrigin::list(["https://a.example"]).matches("null"));
    }

    #[test]
    fn predicates_see_only_well_formed_origins() {
        let p = AllowOrigin::predicate(|o| o.ends_with(".example.com"));
        assert!(p.matches("https://a.example.com"));
        assert!(!p.matches("https://a.example.com/x.example.com"));
        assert!(!p.matches("https://b.example.com, https://a.example.com"));
    }

    #[test]
    fn configuration_mistakes_are_reported() {
        let origin = |bad: &str| {
            format!(
                "`{bad}` is not an origin; write `scheme://host[:port]` with no path or trailing \
                 slash, such as https://app.example.com"
            )
        };
        let pattern = |bad: &str| {
            format!(
                "`{bad}` is not a host pattern; write `https://*.example.com` (a wildcard label in \
                 front of a domain of at least two labels, no path)"
            )
        };
        for (bad, expected) in [
            ("https://example.com/", origin("https://example.com/")),
            ("example.com", origin("example.com")),
            (
                "*",
                "`*` in an origin list; use AllowOrigin::any() (never with credentials)".to_owned(),
            ),
            ("https://*.com", pattern("https://*.com")),
            (
                "https://*.*.example.com",
                pattern("https://*.*.example.com"),
            ),
            ("https://*example.com", origin("https://*example.com")),
            ("https://*.10.0.0", pattern("https://*.10.0.0")),
            ("https://a.*.example.com", origin("https://a.*.example.com")),
        ] {
            assert_eq!(AllowOrigin::list([bad]).error(), Some(&*expected), "{bad}");
        }
        assert_eq!(
            AllowOrigin::list(Vec::<String>::new()).error(),
            Some(
                "the origin list is empty; list at least one origin such as https://app.example.com"
            )
        );
    }
}
