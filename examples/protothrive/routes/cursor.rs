//! List pagination by version: `limit`/`offset` in v1, an opaque `cursor` in v2 (keyset
//! pagination over `(created_at DESC, id DESC)`, so a page costs the same however deep it is and
//! rows inserted meanwhile do not shift it).
//!
//! The cursor is the lower-case hex of `"{created_at}.{id}"`: opaque to clients, checked strictly
//! here (a forged cursor is a 422 naming `cursor`, never an SQL error). Hex rather than base64 so
//! that one regular expression ([`PATTERN`]) says exactly which strings are cursors, and the
//! OpenAPI document can say it to clients.

use std::collections::HashMap;

use axum::extract::Query;
use axum::extract::rejection::QueryRejection;
use protothrive::gateway::ApiVersion;
use serde_json::{Value, json};

use crate::db::is_uuid;
use crate::http::{AppError, page};

/// Where a page starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Page {
    /// v1: skip `offset` rows.
    Offset { limit: i64, offset: i64 },
    /// v2: rows strictly after `after` in `(created_at DESC, id DESC)` order.
    Cursor {
        limit: i64,
        after: Option<(i64, String)>,
    },
}

impl Page {
    /// Reads `limit`, `offset` (v1) or `cursor` (v2) from a query; the other version's parameter
    /// is a 422 so that a client mixing them learns at once.
    pub fn from_query(v: ApiVersion, q: &HashMap<String, String>) -> Result<Self, AppError> {
        if v.0 >= 2 {
            if q.contains_key("offset") {
                return Err(AppError::field(
                    "offset",
                    "unsupported",
                    "v2 lists paginate by cursor, not offset",
                ));
            }
            let (limit, _) = page(q.get("limit").map(String::as_str), None)?;
            let after = q.get("cursor").map(|c| decode(c)).transpose()?;
            Ok(Self::Cursor { limit, after })
        } else {
            if q.contains_key("cursor") {
                return Err(AppError::field(
                    "cursor",
                    "unsupported",
                    "v1 lists paginate by limit and offset",
                ));
            }
            let (limit, offset) = page(
                q.get("limit").map(String::as_str),
                q.get("offset").map(String::as_str),
            )?;
            Ok(Self::Offset { limit, offset })
        }
    }

    /// The window's binds for `db::Builder::window`: the row to start after, the limit, and the
    /// offset (v1).
    pub fn window(&self) -> (Option<(i64, &str)>, i64, Option<i64>) {
        match self {
            Self::Offset { limit, offset } => (None, *limit, Some(*offset)),
            Self::Cursor { limit, after } => (
                after.as_ref().map(|(at, id)| (*at, id.as_str())),
                *limit,
                None,
            ),
        }
    }

    pub fn limit(&self) -> i64 {
        match self {
            Self::Offset { limit, .. } | Self::Cursor { limit, .. } => *limit,
        }
    }

    /// `meta` of a list answer: `total` and either `limit`/`offset` or `next_cursor` (null on the
    /// last page). `last` is the `(created_at, id)` of the page's last row.
    pub fn meta(&self, total: i64, rows: usize, last: Option<(i64, &str)>) -> Value {
        match self {
            Self::Offset { limit, offset } => {
                json!({"total": total, "limit": limit, "offset": offset})
            }
            Self::Cursor { limit, .. } => {
                let full = i64::try_from(rows).unwrap_or(i64::MAX) >= *limit;
                let next = last.filter(|_| full).map(|(at, id)| encode(at, id));
                json!({"total": total, "limit": limit, "next_cursor": next})
            }
        }
    }
}

/// The query parameters of a request, or a 400 problem when the query string is malformed
/// (axum's own rejection is plain text).
pub fn params(
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<HashMap<String, String>, AppError> {
    q.map(|Query(q)| q)
        .map_err(|_| AppError::BadRequest("The query string is malformed.".into()))
}

/// One character of a UUID (`0-9`, `a-f`, `A-F`), hex-encoded.
const UUID_CHAR: &str = "(?:3[0-9]|6[1-6]|4[1-6])";

/// The hex of a UUID in its hyphenated form.
pub fn uuid_pattern() -> String {
    let c = |n: usize| format!("{UUID_CHAR}{{{n}}}");
    format!("{}2d{}2d{}2d{}2d{}", c(8), c(4), c(4), c(4), c(12))
}

/// Exactly the cursors [`decode`] reads: the hex of 1 to 18 digits, `.` and a UUID.
pub fn pattern() -> String {
    format!("^(?:3[0-9]){{1,18}}2e{}(?![\\s\\S])", uuid_pattern())
}

/// Lower-case hex of `text`.
pub fn hex(text: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(text.len() * 2);
    for b in text.bytes() {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// The text whose lower-case hex `s` is; `None` for anything else (upper case, odd lengths, bytes
/// that are not UTF-8).
pub fn unhex(s: &str) -> Option<String> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let bytes = s
        .as_bytes()
        .chunks(2)
        .map(|p| Some((digit(p[0])? << 4) | digit(p[1])?))
        .collect::<Option<Vec<u8>>>()?;
    String::from_utf8(bytes).ok()
}

/// `1` to `18` ASCII digits (always an `i64`), as a number.
pub fn digits(s: &str) -> Option<i64> {
    ((1..=18).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// The cursor of the row `(created_at, id)`.
pub fn encode(created_at: i64, id: &str) -> String {
    hex(&format!("{created_at}.{id}"))
}

fn decode(cursor: &str) -> Result<(i64, String), AppError> {
    let bad = || AppError::field("cursor", "invalid", "not a cursor returned by this API");
    if cursor.is_empty() || cursor.len() > 128 {
        return Err(bad());
    }
    let text = unhex(cursor).ok_or_else(bad)?;
    let (at, id) = text.split_once('.').ok_or_else(bad)?;
    let at = digits(at).ok_or_else(bad)?;
    if !is_uuid(id) {
        return Err(bad());
    }
    Ok((at, id.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// The `(field, code)` of each field error a refused query gets.
    fn refused(page: Result<Page, AppError>) -> Vec<(String, String)> {
        match page {
            Err(AppError::Validation(errors)) => {
                errors.into_iter().map(|e| (e.field, e.code)).collect()
            }
            other => panic!("not a validation error: {other:?}"),
        }
    }

    fn field(field: &str, code: &str) -> Vec<(String, String)> {
        vec![(field.to_owned(), code.to_owned())]
    }

    #[test]
    fn cursors_round_trip_and_forgeries_are_refused() {
        let id = "00000000-0000-4000-8000-000000000001";
        let c = encode(1_700_000_000, id);
        let p = Page::from_query(ApiVersion(2), &query(&[("cursor", &c)])).unwrap();
        assert_eq!(
            p,
            Page::Cursor {
                limit: 20,
                after: Some((1_700_000_000, id.to_owned()))
            }
        );
        for forged in [
            "",
            "x",
            "%%%",
            &hex("1.' OR 1=1 --"),
            &hex(&format!("-5.{id}")),
            &hex(&format!("+5.{id}")),
            &hex(&format!("1234567890123456789.{id}")),
            &hex(&format!("5.{id}")).to_uppercase(),
        ] {
            assert_eq!(
                refused(Page::from_query(
                    ApiVersion(2),
                    &query(&[("cursor", forged)])
                )),
                field("cursor", "invalid"),
                "{forged}"
            );
        }
    }

    #[test]
    fn each_version_refuses_the_other_versions_parameter() {
        assert_eq!(
            refused(Page::from_query(
                ApiVersion(1),
                &query(&[("cursor", "abc")])
            )),
            field("cursor", "unsupported")
        );
        assert_eq!(
            refused(Page::from_query(ApiVersion(2), &query(&[("offset", "0")]))),
            field("offset", "unsupported")
        );
        assert_eq!(
            Page::from_query(ApiVersion(1), &query(&[("limit", "5"), ("offset", "10")])).unwrap(),
            Page::Offset {
                limit: 5,
                offset: 10
            }
        );
    }

    #[test]
    fn next_cursor_only_on_a_full_page() {
        let p = Page::Cursor {
            limit: 2,
            after: None,
        };
        let id = "00000000-0000-4000-8000-000000000001";
        assert!(p.meta(5, 2, Some((1, id)))["next_cursor"].is_string());
        assert!(p.meta(5, 1, Some((1, id)))["next_cursor"].is_null());
    }
}
