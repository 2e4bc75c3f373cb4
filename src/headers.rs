//! Small header helpers shared by the layers.

use http::header::VARY;
use http::{HeaderMap, HeaderValue};

/// Adds `names` to the response's `Vary`, merged with what is there: no name twice (compared
/// case-insensitively), `*` absorbs everything, the application's own entries are kept.
pub(crate) fn append_vary(headers: &mut HeaderMap, names: &[&str]) {
    let mut current: Vec<String> = headers
        .get_all(VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
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
