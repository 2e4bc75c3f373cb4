//! Pagination of the roadmap lists: `limit` + `offset` in v1, an opaque keyset `cursor` in v2.
//!
//! A cursor is the lower-case hex of `"<key>:<id>"` ([`pattern`]; `super::super::cursor::hex`), where `key` is the sort time of the
//! last row of the page (`updated_at` for roadmaps, `timestamp` for logs, `created_at` for
//! insights) and `id` breaks ties. Lists sort by `(key DESC, id DESC)`, so the next page is the
//! rows with `(key, id) < (cursor.key, cursor.id)`: it does not shift when rows are added above it,
//! and costs an index seek rather than skipping `offset` rows. The cursor is opaque to clients but
//! carries nothing secret; the query still filters by the caller, so a forged one reveals nothing.

use std::collections::HashMap;

use protothrive::gateway::ApiVersion;
use serde_json::{Value, json};

use crate::db::is_uuid;
use crate::http::{AppError, page};
use crate::routes::cursor::{digits, hex, unhex, uuid_pattern};

/// Exactly the cursors [`Cursor::decode`] reads: the hex of an optional `-`, 1 to 18 digits, `:`
/// and a UUID.
pub fn pattern() -> String {
    format!("^(?:2d)?(?:3[0-9]){{1,18}}3a{}(?![\\s\\S])", uuid_pattern())
}

/// The longest cursor accepted (a real one is about 100).
const MAX_CURSOR: usize = 128;

/// A position in a list: the sort key and id of the last row seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub key: i64,
    pub id: String,
}

impl Cursor {
    /// The opaque form given to clients.
    pub fn encode(&self) -> String {
        hex(&format!("{}:{}", self.key, self.id))
    }

    /// Reads a cursor this API issued; `None` for anything else.
    pub fn decode(s: &str) -> Option<Self> {
        if s.is_empty() || s.len() > MAX_CURSOR {
            return None;
        }
        let text = unhex(s)?;
        let (key, id) = text.split_once(':')?;
        // 1 to 18 digits with an optional sign: no whitespace or `+` that `parse` would accept.
        let magnitude = digits(key.strip_prefix('-').unwrap_or(key))?;
        if !is_uuid(id) {
            return None;
        }
        Some(Self {
            key: if key.starts_with('-') {
                -magnitude
            } else {
                magnitude
            },
            id: id.to_owned(),
        })
    }
}

/// How a request pages through a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pagination {
    /// v1: skip `offset` rows.
    Offset { limit: i64, offset: i64 },
    /// v2: rows after `after` (from the start when `None`).
    Keyset { limit: i64, after: Option<Cursor> },
}

impl Pagination {
    /// Reads `limit`, `offset` (v1) or `cursor` (v2) from the query string. The other version's
    /// parameter is refused rather than ignored: silently ignoring it would make a client loop on
    /// the first page forever.
    pub fn from_query(v: ApiVersion, q: &HashMap<String, String>) -> Result<Self, AppError> {
        let limit = q.get("limit").map(String::as_str);
        if v.0 >= 2 {
            if q.contains_key("offset") {
                return Err(AppError::field(
                    "offset",
                    "unsupported",
                    "v2 pages by cursor: pass meta.next_cursor as cursor",
                ));
            }
            let (limit, _) = page(limit, None)?;
            let after = match q.get("cursor") {
                None => None,
                Some(c) => Some(Cursor::decode(c).ok_or_else(|| {
                    AppError::field("cursor", "invalid", "cursor is not one this API issued")
                })?),
            };
            Ok(Self::Keyset { limit, after })
        } else {
            if q.contains_key("cursor") {
                return Err(AppError::field(
                    "cursor",
                    "unsupported",
                    "v1 pages by limit and offset; cursors are v2",
                ));
            }
            let (limit, offset) = page(limit, q.get("offset").map(String::as_str))?;
            Ok(Self::Offset { limit, offset })
        }
    }

    /// The SQL binds `(key, id, limit, offset)`: a keyset page asks for one row more than it
    /// shows, to know whether there is a next page without another statement.
    pub fn binds(&self) -> (Option<i64>, Option<&str>, i64, i64) {
        match self {
            Self::Offset { limit, offset } => (None, None, *limit, *offset),
            Self::Keyset { limit, after } => (
                after.as_ref().map(|c| c.key),
                after.as_ref().map(|c| c.id.as_str()),
                limit + 1,
                0,
            ),
        }
    }

    /// Trims the extra keyset row off `rows` (each with its cursor) and builds `meta`.
    pub fn finish<T>(&self, total: i64, mut rows: Vec<(T, Cursor)>) -> (Vec<T>, Value) {
        match self {
            Self::Offset { limit, offset } => {
                let meta = json!({"total": total, "limit": limit, "offset": offset});
                (rows.into_iter().map(|(item, _)| item).collect(), meta)
            }
            Self::Keyset { limit, .. } => {
                let keep = usize::try_from(*limit).unwrap_or(usize::MAX);
                let more = rows.len() > keep;
                rows.truncate(keep);
                let next = if more {
                    rows.last().map(|(_, c)| c.encode())
                } else {
                    None
                };
                let meta = json!({"total": total, "limit": limit, "next_cursor": next});
                (rows.into_iter().map(|(item, _)| item).collect(), meta)
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const ID: &str = "00000000-0000-4000-8000-000000000001";

    fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn cursor_round_trips() {
        for key in [
            0,
            1_767_225_600,
            -5,
            999_999_999_999_999_999,
            -999_999_999_999_999_999,
        ] {
            let c = Cursor {
                key,
                id: ID.to_owned(),
            };
            let s = c.encode();
            assert!(
                s.bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            );
            assert_eq!(Cursor::decode(&s), Some(c));
        }
    }

    #[test]
    fn hostile_cursors_are_refused() {
        let enc = |s: &str| hex(s);
        for bad in [
            String::new(),
            "not hex!".to_owned(),
            "x".repeat(500),
            enc("12345"),
            enc(&format!("abc:{ID}")),
            enc(&format!(" 12:{ID}")),
            enc(&format!("+12:{ID}")),
            enc(&format!("-:{ID}")),
            enc("12:' OR 1=1 --"),
            enc("12:../../etc/passwd"),
            enc(&format!("99999999999999999999:{ID}")),
            "fffe3a".to_owned(),
            format!("{}0", enc(&format!("1:{ID}"))),
            enc(&format!("1:{ID}")).to_uppercase(),
            enc(&format!("1234567890123456789:{ID}")),
        ] {
            assert_eq!(Cursor::decode(&bad), None, "{bad}");
        }
    }

    #[test]
    fn versions_page_differently() {
        let v1 =
            Pagination::from_query(ApiVersion(1), &q(&[("limit", "5"), ("offset", "10")])).unwrap();
        assert_eq!(
            v1,
            Pagination::Offset {
                limit: 5,
                offset: 10
            }
        );
        assert_eq!(v1.binds(), (None, None, 5, 10));
        let v2 = Pagination::from_query(ApiVersion(2), &q(&[])).unwrap();
        assert_eq!(
            v2,
            Pagination::Keyset {
                limit: 20,
                after: None
            }
        );
        assert_eq!(v2.binds().2, 21);
        let c = Cursor {
            key: 7,
            id: ID.to_owned(),
        };
        let v2 = Pagination::from_query(ApiVersion(2), &q(&[("cursor", &c.encode())])).unwrap();
        assert_eq!(v2.binds(), (Some(7), Some(ID), 21, 0));
    }

    #[test]
    fn wrong_parameters_are_field_errors() {
        for (v, pairs) in [
            (2, vec![("cursor", "nope")]),
            (2, vec![("offset", "0")]),
            (1, vec![("cursor", "x")]),
            (1, vec![("limit", "0")]),
            (1, vec![("limit", "101")]),
            (1, vec![("offset", "-1")]),
            (2, vec![("limit", "1; DROP TABLE roadmaps")]),
        ] {
            assert!(matches!(
                Pagination::from_query(ApiVersion(v), &q(&pairs)),
                Err(AppError::Validation(_))
            ));
        }
    }

    #[test]
    fn keyset_meta_has_next_cursor_only_when_more() {
        let p = Pagination::Keyset {
            limit: 2,
            after: None,
        };
        let row = |k: i64| {
            (
                k,
                Cursor {
                    key: k,
                    id: ID.to_owned(),
                },
            )
        };
        let (items, meta) = p.finish(3, vec![row(3), row(2), row(1)]);
        assert_eq!(items, vec![3, 2]);
        let next = Cursor::decode(meta["next_cursor"].as_str().unwrap()).unwrap();
        assert_eq!(next.key, 2);
        assert_eq!(meta["total"], 3);
        let (items, meta) = p.finish(2, vec![row(2), row(1)]);
        assert_eq!(items.len(), 2);
        assert!(meta["next_cursor"].is_null());
        let (_, meta) = Pagination::Offset {
            limit: 2,
            offset: 4,
        }
        .finish(9, vec![row(1)]);
        assert_eq!(meta, json!({"total": 9, "limit": 2, "offset": 4}));
    }
}
