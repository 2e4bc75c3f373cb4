//! The batch envelope: parsing, and the checks of one item (pure; no I/O).

use std::collections::BTreeMap;

use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use serde::Deserialize;
use serde_json::Value;

use crate::error::{Problem, code};

/// The longest item path.
const MAX_PATH: usize = 2048;
/// The longest item header value.
const MAX_HEADER_VALUE: usize = 8192;

/// A parsed envelope: its items and whether they run one after the other.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// Run the items in order, each after the previous one finished.
    pub sequential: bool,
    /// The sub-requests, as sent.
    pub items: Vec<Item>,
}

/// One sub-request of an envelope, as sent (the layer checks each before sending it).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Item {
    /// `GET`, `HEAD`, `POST`, `PUT`, `PATCH` or `DELETE`.
    pub method: String,
    /// An origin-form path with an optional query.
    pub path: String,
    /// Request headers, from the allow-list.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// A JSON body, sent as `application/json` unless the item says otherwise.
    #[serde(default)]
    pub body: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Object {
    requests: Vec<Item>,
    #[serde(default)]
    sequential: bool,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Wire {
    List(Vec<Item>),
    Object(Object),
}

/// Parses an envelope: a JSON array of items, or `{"requests": [...], "sequential": bool}`.
///
/// Not JSON, not of that shape, or no item: a 400 [`BATCH-400`](code::BATCH_INVALID) problem;
/// more than `max_items`: a 413 [`BATCH-ITEMS-413`](code::BATCH_TOO_MANY_ITEMS) problem.
///
/// ```
/// use protothrive::batch::parse_envelope;
/// let e = parse_envelope(br#"[{"method": "GET", "path": "/api/a"}]"#, 20).unwrap();
/// assert_eq!(e.items[0].path, "/api/a");
/// assert!(!e.sequential);
/// assert_eq!(parse_envelope(b"[]", 20).unwrap_err().code(), "BATCH-400");
/// ```
pub fn parse_envelope(bytes: &[u8], max_items: usize) -> Result<Envelope, Problem> {
    let invalid = |detail: String| {
        Problem::new(StatusCode::BAD_REQUEST, code::BATCH_INVALID).with_detail(detail)
    };
    let wire: Wire = serde_json::from_slice(bytes).map_err(|e| {
        invalid(format!(
            "the batch must be a JSON array of {{method, path, headers?, body?}} items, or \
             {{\"requests\": [...], \"sequential\": bool}} ({e})"
        ))
    })?;
    let (items, sequential) = match wire {
        Wire::List(items) => (items, false),
        Wire::Object(o) => (o.requests, o.sequential),
    };
    if items.is_empty() {
        return Err(invalid("the batch has no items".into()));
    }
    if items.len() > max_items {
        return Err(
            Problem::new(StatusCode::PAYLOAD_TOO_LARGE, code::BATCH_TOO_MANY_ITEMS)
                .with_detail(format!("a batch holds at most {max_items} items"))
                .with_member("max_items", max_items),
        );
    }
    Ok(Envelope { sequential, items })
}

/// `%XX` decoding (invalid escapes kept as they are).
fn percent_decoded(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| {
            char::from(b)
                .to_digit(16)
                .and_then(|d| u8::try_from(d).ok())
        };
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push(h * 16 + l);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn is_version(segment: &str) -> bool {
    segment
        .strip_prefix('v')
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The canonical form of a path for comparisons: percent-decoded until stable (`%252F` too),
/// lowercase, `\` read as `/`, empty and `.` segments dropped, `..` applied, version segments
/// (`v1`, `v2`, ...) dropped. `None` when `..` climbs above the root.
///
/// ```
/// use protothrive::batch::canonical_path;
/// for spelling in ["/api/batch", "/API/V2/Batch/", "/api//v1/%62atch", "/api/v1/x/../batch", "/api%2Fbatch"] {
///     assert_eq!(canonical_path(spelling).as_deref(), Some("/api/batch"), "{spelling}");
/// }
/// assert_eq!(canonical_path("/api/../../etc"), None);
/// ```
#[must_use]
pub fn canonical_path(path: &str) -> Option<String> {
    let mut decoded = path.to_owned();
    for _ in 0..4 {
        let next = percent_decoded(&decoded);
        if next == decoded {
            break;
        }
        decoded = next;
    }
    let decoded = decoded.to_ascii_lowercase().replace('\\', "/");
    let mut segments: Vec<&str> = Vec::new();
    for segment in decoded.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop()?;
            }
            s if is_version(s) => {}
            s => segments.push(s),
        }
    }
    Some(format!("/{}", segments.join("/")))
}

/// The version segment (`v2` → `2`) of a path, if any.
pub(crate) fn path_version(path: &str) -> Option<&str> {
    path.split('/')
        .find(|s| is_version(&s.to_ascii_lowercase()))
        .map(|s| &s[1..])
}

/// Why an item was refused: the `reason` member of its 400 problem.
fn refused(reason: &'static str, detail: String) -> Problem {
    Problem::new(StatusCode::BAD_REQUEST, code::BAD_REQUEST)
        .with_detail(detail)
        .with_member("reason", reason)
}

/// What an item may be: the batch's own path (never an item), the prefix items must stay under,
/// and the headers they may set.
#[derive(Debug, Clone)]
pub(crate) struct Rules {
    pub(crate) batch_path: String,
    pub(crate) prefix: String,
    pub(crate) allowed_headers: Vec<HeaderName>,
}

/// An item that passed the checks.
#[derive(Debug)]
pub(crate) struct Checked {
    pub(crate) method: Method,
    pub(crate) uri: Uri,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Option<Value>,
}

impl Rules {
    /// Rules for a batch endpoint at `batch_path` whose items stay under `prefix`.
    pub(crate) fn new(batch_path: &str, prefix: &str, allowed_headers: Vec<HeaderName>) -> Self {
        Self {
            batch_path: canonical_path(batch_path).unwrap_or_else(|| "/".into()),
            prefix: canonical_path(prefix).unwrap_or_else(|| "/".into()),
            allowed_headers,
        }
    }

    /// Whether `path` (any spelling) is the batch endpoint.
    pub(crate) fn is_batch(&self, path: &str) -> bool {
        canonical_path(path).is_some_and(|c| c == self.batch_path)
    }

    /// Checks an item: a known method, an origin-form path under the prefix without dot segments
    /// that is not the batch endpoint, allowed headers with valid values. A refusal is a 400
    /// [`VAL-400`](code::BAD_REQUEST) problem whose `reason` says why.
    pub(crate) fn check(&self, item: Item) -> Result<Checked, Problem> {
        let method = match item.method.as_str() {
            "GET" => Method::GET,
            "HEAD" => Method::HEAD,
            "POST" => Method::POST,
            "PUT" => Method::PUT,
            "PATCH" => Method::PATCH,
            "DELETE" => Method::DELETE,
            _ => {
                return Err(refused(
                    "method",
                    "method must be one of GET, HEAD, POST, PUT, PATCH, DELETE".into(),
                ));
            }
        };
        let path = item.path.as_str();
        if path.len() > MAX_PATH || !path.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(refused(
                "path",
                format!("path must be at most {MAX_PATH} visible ASCII characters"),
            ));
        }
        if !path.starts_with('/') || path.starts_with("//") || path.contains('#') {
            return Err(refused(
                "path",
                "path must be an origin-form path and query".into(),
            ));
        }
        let uri: Uri = path
            .parse()
            .map_err(|_| refused("path", "path is not a valid request target".into()))?;
        if self.is_batch(uri.path()) {
            return Err(refused(
                "nested_batch",
                "a batch may not contain a batch".into(),
            ));
        }
        let decoded = percent_decoded(&percent_decoded(uri.path()));
        if decoded.contains('\\')
            || decoded.contains("//")
            || decoded.split('/').any(|s| s == "." || s == "..")
        {
            return Err(refused(
                "path",
                "path must not contain dot segments, empty segments or backslashes".into(),
            ));
        }
        let under = canonical_path(uri.path()).is_some_and(|c| {
            self.prefix == "/" || c == self.prefix || c.starts_with(&format!("{}/", self.prefix))
        });
        if !under {
            return Err(refused(
                "path",
                format!("path must be under {}", self.prefix),
            ));
        }
        let mut headers = HeaderMap::new();
        for (name, value) in &item.headers {
            let name = HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes())
                .ok()
                .filter(|n| self.allowed_headers.contains(n))
                .ok_or_else(|| {
                    refused(
                        "header",
                        format!("header {name} may not be set in a batch item"),
                    )
                })?;
            let value = HeaderValue::from_str(value)
                .ok()
                .filter(|_| value.len() <= MAX_HEADER_VALUE)
                .ok_or_else(|| refused("header", format!("header {name} has an invalid value")))?;
            headers.insert(name, value);
        }
        Ok(Checked {
            method,
            uri,
            headers,
            body: item.body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rules() -> Rules {
        Rules::new(
            "/api/batch",
            "/api",
            vec![http::header::ACCEPT, HeaderName::from_static("x-api-key")],
        )
    }

    fn item(method: &str, path: &str, headers: &[(&str, &str)]) -> Item {
        Item {
            method: method.into(),
            path: path.into(),
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            body: None,
        }
    }

    fn reason(r: Result<Checked, Problem>) -> String {
        let p = r.expect_err("refused");
        assert_eq!((p.status(), p.code()), (StatusCode::BAD_REQUEST, "VAL-400"));
        p.to_json()["reason"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    #[test]
    fn a_batch_inside_a_batch_is_refused_however_spelled() {
        for path in [
            "/api/batch",
            "/api/v1/batch",
            "/api/v2/BATCH",
            "/API/Batch/",
            "/api/v1/%62atch",
            "/api/v1/%2562atch",
            "/api%2Fbatch",
            "/api%252Fv1%252Fbatch",
            "/api/v1/snippets/../batch",
            "/api//batch",
            "/api/./batch",
            "/api\\batch",
            "/api/batch?x=1",
        ] {
            assert_eq!(
                reason(rules().check(item("POST", path, &[]))),
                "nested_batch",
                "{path}"
            );
        }
    }

    #[test]
    fn items_stay_in_the_api_with_known_methods_and_allowed_headers() {
        let ok = rules()
            .check(item(
                "GET",
                "/api/v2/snippets?limit=5",
                &[("Accept", "application/json")],
            ))
            .unwrap();
        assert_eq!(
            (ok.method, ok.uri.path()),
            (Method::GET, "/api/v2/snippets")
        );
        assert_eq!(ok.headers["accept"], "application/json");
        for (method, path, headers, why) in [
            ("get", "/api/x", &[][..], "method"),
            ("CONNECT", "/api/x", &[], "method"),
            ("GET", "/metrics", &[], "path"),
            ("GET", "/apix", &[], "path"),
            ("GET", "http://evil.example/api/x", &[], "path"),
            ("GET", "//evil.example/api/x", &[], "path"),
            ("GET", "/api/v1/../../etc/passwd", &[], "path"),
            ("GET", "/api/v1/./x", &[], "path"),
            ("GET", "/api/x#frag", &[], "path"),
            ("GET", "/api/snip pets", &[], "path"),
            ("GET", "", &[], "path"),
            ("GET", "/api/x", &[("Host", "evil")], "header"),
            ("GET", "/api/x", &[("x-forwarded-for", "1.2.3.4")], "header"),
            ("GET", "/api/x", &[("accept", "a\nb")], "header"),
        ] {
            assert_eq!(
                reason(rules().check(item(method, path, headers))),
                why,
                "{method} {path}"
            );
        }
    }

    #[test]
    fn envelopes_are_a_list_or_an_object_with_bounded_items() {
        let e = parse_envelope(
            br#"{"requests": [{"method": "GET", "path": "/a", "body": {"x": 1}}], "sequential": true}"#,
            2,
        )
        .unwrap();
        assert!(e.sequential);
        assert_eq!(e.items[0].body, Some(serde_json::json!({"x": 1})));
        let three = br#"[{"method":"GET","path":"/a"},{"method":"GET","path":"/a"},{"method":"GET","path":"/a"}]"#;
        let p = parse_envelope(three, 2).unwrap_err();
        assert_eq!((p.status().as_u16(), p.code()), (413, "BATCH-ITEMS-413"));
        for bad in [
            &b"{}"[..],
            b"[]",
            b"{\"requests\": []}",
            b"[{\"method\": \"GET\"}]",
            b"[{\"method\": \"GET\", \"path\": \"/a\", \"extra\": 1}]",
            b"{\"requests\": [], \"other\": 1}",
            b"not json",
            b"",
        ] {
            let p = parse_envelope(bad, 2).unwrap_err();
            assert_eq!(
                (p.status().as_u16(), p.code()),
                (400, "BATCH-400"),
                "{bad:?}"
            );
        }
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(
            parse_envelope(deep.as_bytes(), 2).unwrap_err().code(),
            "BATCH-400"
        );
    }

    proptest! {
        /// Any bytes: an envelope or a 400/413 problem, never a panic; every item of a parsed
        /// envelope is accepted or refused with a 400.
        #[test]
        fn the_parser_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            match parse_envelope(&bytes, 20) {
                Ok(e) => for item in e.items {
                    if let Err(p) = rules().check(item) {
                        prop_assert_eq!(p.status(), StatusCode::BAD_REQUEST);
                    }
                },
                Err(p) => prop_assert!(matches!(p.status().as_u16(), 400 | 413)),
            }
        }

        /// Any path: canonical or `None`, never a panic; a canonical path is its own canonical form
        /// unless it still looks encoded.
        #[test]
        fn canonical_paths_are_stable(path in "[/a-zA-Z0-9%.\\\\]{0,40}") {
            if let Some(c) = canonical_path(&path) {
                prop_assert!(c.starts_with('/'));
                if !c.contains('%') {
                    prop_assert_eq!(canonical_path(&c), Some(c));
                }
            }
            let _ = rules().check(Item { method: "GET".into(), path, headers: BTreeMap::new(), body: None });
        }
    }
}
