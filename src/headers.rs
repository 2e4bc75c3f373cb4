//! Small header helpers shared by the layers: comma-separated lists, `Vary` merging and preflight
//! detection, written once.

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

use http::header::{ACCESS_CONTROL_REQUEST_METHOD, VARY};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request};

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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn star_absorbs_everything() {
        let mut h = HeaderMap::new();
        h.insert(VARY, HeaderValue::from_static("*"));
        append_vary(&mut h, &["Origin"]);
        assert_eq!(vary(&h), ["*"]);
    }
}
