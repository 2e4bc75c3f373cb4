//! Snippets: reusable code by category and language.

use super::{Builder, Db, new_id};

/// id, category, title, code, language, preview URL, version, author, created, updated.
pub type SnippetRow = (
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    i64,
    String,
    i64,
    i64,
);

const COLUMNS: &str = "id, category, title, code, language, ui_preview_url, version, created_by, \
     created_at, updated_at";

/// A page's row: the total, then a snippet's columns (all `NULL` on an empty page).
type ListRow = (
    i64,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<i64>,
    Option<i64>,
);

/// One page of the snippets in `category` and `language` (when given), newest first, and the
/// total: the `COUNT(*)` left-joined to the page, one statement.
pub async fn list<'a>(
    db: &Db,
    category: Option<&'a str>,
    language: Option<&'a str>,
    window: (Option<(i64, &'a str)>, i64, Option<i64>),
) -> Result<(i64, Vec<SnippetRow>), sqlx::Error> {
    let filter = |qb: &mut Builder<'a>| {
        if let Some(c) = category {
            qb.push(" AND category = ").push_bind(c);
        }
        if let Some(l) = language {
            qb.push(" AND language = ").push_bind(l);
        }
    };
    Builder::page("snippets", COLUMNS, filter, window)
        .fetch_page(
            db,
            |r: &ListRow| r.0,
            |r| Some((r.1?, r.2?, r.3?, r.4?, r.5?, r.6, r.7?, r.8?, r.9?, r.10?)),
        )
        .await
}

/// Snippet `id`.
pub async fn one(db: &Db, id: &str) -> Result<Option<SnippetRow>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM snippets WHERE id = $1"))
        .bind(id)
        .fetch_optional(db.reader())
        .await
}

/// One snippet to record.
#[derive(Debug)]
pub struct NewSnippet<'a> {
    pub category: &'a str,
    pub title: &'a str,
    pub code: &'a str,
    pub language: &'a str,
    pub ui_preview_url: Option<&'a str>,
    pub created_by: &'a str,
    pub now: i64,
}

/// Records snippet `s` (version 1); returns its row.
pub async fn insert(db: &Db, s: &NewSnippet<'_>) -> Result<SnippetRow, sqlx::Error> {
    sqlx::query_as(&format!(
        "INSERT INTO snippets (id, category, title, code, language, ui_preview_url, version, \
         created_by, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $8, $8) RETURNING {COLUMNS}"
    ))
    .bind(new_id())
    .bind(s.category)
    .bind(s.title)
    .bind(s.code)
    .bind(s.language)
    .bind(s.ui_preview_url)
    .bind(s.created_by)
    .bind(s.now)
    .fetch_one(db.writer())
    .await
}
