//! List pagination by version: `limit`/`offset` in v1, an opaque `cursor` in v2 (keyset
//! pagination over `(created_at DESC, id DESC)`, so a page costs the same however deep it is and
//! rows inserted meanwhile do not shift it).
//!
//! The cursor is base64url of `"{created_at}.{id}"`: opaque to clients, checked strictly here (a
//! forged cursor is a 422 naming `cursor`, never an SQL error).

use std::collections::HashMap;

use axum::extract::Query;
use axum::extract::rejection::QueryRejection;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
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

    /// Appends the page window to a query over a table with `created_at` and `id`: the keyset
    /// condition (`AND ...`, after a `WHERE`), newest first, `LIMIT`, and `OFFSET` in v1.
    pub fn push_window(&self, qb: &mut sqlx::QueryBuilder<'_, sqlx::Sqlite>) {
        if let Page::Cursor {
            after: Some((at, id)),
            ..
        } = self
        {
            qb.push(" AND (created_at < ")
                .push_bind(*at)
                .push(" OR (created_at = ")
                .push_bind(*at)
                .push(" AND id < ")
                .push_bind(id.clone())
                .push("))");
        }
        qb.push(" ORDER BY created_at DESC, id DESC LIMIT ")
            .push_bind(self.limit());
        if let Page::Offset { offset, .. } = self {
            qb.push(" OFFSET ").push_bind(*offset);
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

/// The cursor of the row `(created_at, id)`.
pub fn encode(created_at: i64, id: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{created_at}.{id}"))
}

fn decode(cursor: &str) -> Result<(i64, String), AppError> {
    let bad = || AppError::field("cursor", "invalid", "not a cursor returned by this API");
    if cursor.is_empty() || cursor.len() > 100 {
        return Err(bad());
    }
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let (at, id) = text.split_once('.').ok_or_else(bad)?;
    let at: i64 = at.parse().map_err(|_| bad())?;
    if at < 0 || !is_uuid(id) {
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
            &URL_SAFE_NO_PAD.encode("1.' OR 1=1 --"),
            &URL_SAFE_NO_PAD.encode(format!("-5.{id}")),
        ] {
            assert!(
                Page::from_query(ApiVersion(2), &query(&[("cursor", forged)])).is_err(),
                "{forged}"
            );
        }
    }

    #[test]
    fn each_version_refuses_the_other_versions_parameter() {
        assert!(Page::from_query(ApiVersion(1), &query(&[("cursor", "abc")])).is_err());
        assert!(Page::from_query(ApiVersion(2), &query(&[("offset", "0")])).is_err());
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
