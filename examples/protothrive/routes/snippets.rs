//! Snippets: a shared library of code, readable by every user, written by engineers and above.
//!
//! A list is two statements whatever the page size: the total and the page come from a one-row
//! `COUNT(*)` left-joined to the page, so an empty page still carries its total, and the authors
//! (`author`: id and name) of every snippet on it from one batch of the request's loader.

use std::collections::HashMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use protothrive::auth::Principal;
use protothrive::gateway::{ApiVersion, ValidJson};
use serde::Deserialize;
use serde_json::{Value, json};
use validator::{Validate, ValidationError};

use super::cursor::{Page, params};
use crate::db::snippets::{self, SnippetRow};
use crate::db::{is_uuid, rfc3339};
use crate::http::{ApiResult, AppError, created, envelope};
use crate::loaders::{self, Kind, Nested, NestedLoader, public_user};
use crate::state::AppState;

use super::table::{
    Route,
    Who::{Role, User},
    ep,
};

/// The largest snippet code (bytes). The app's body limit (64 KB) applies first.
pub const MAX_CODE_BYTES: usize = 100_000;

pub fn routes() -> Vec<Route> {
    // Snippets are the same for every user: shared entries, behind the user check.
    let cached: super::table::Wrap = |r, state| r.route_layer(crate::cache::cached(state));
    vec![
        Route::to(
            ep(
                "GET",
                "/api/snippets",
                "Shared code snippets, each with its author",
                User,
                "snippets",
            )
            .query(super::docs::SNIPPET_FILTERS),
            list,
        )
        .wrap(cached),
        Route::to(
            ep(
                "POST",
                "/api/snippets",
                "Add a snippet",
                Role("engineer"),
                "snippets",
            )
            .body(new_snippet_schema)
            .created(),
            create,
        ),
        Route::to(
            ep(
                "GET",
                "/api/snippets/{id}",
                "One snippet with its author",
                User,
                "snippets",
            )
            .extra(&[404]),
            one,
        )
        .wrap(cached),
    ]
}

/// `[A-Za-z0-9_-]{1,50}`.
pub fn valid_category(c: &str) -> bool {
    (1..=50).contains(&c.len())
        && c.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// 1..=30 characters, none of them control characters (`c++`, `c#` and `objective-c` are fine).
pub fn valid_language(l: &str) -> bool {
    (1..=30).contains(&l.chars().count())
        && !l.chars().any(char::is_control)
        && !l.trim().is_empty()
}

fn category(c: &str) -> Result<(), ValidationError> {
    valid_category(c).then_some(()).ok_or_else(|| {
        ValidationError::new("pattern")
            .with_message("1 to 50 characters of A-Z, a-z, 0-9, _ and -".into())
    })
}

fn language(l: &str) -> Result<(), ValidationError> {
    valid_language(l).then_some(()).ok_or_else(|| {
        ValidationError::new("length").with_message("1 to 30 printable characters".into())
    })
}

fn title(t: &str) -> Result<(), ValidationError> {
    let n = t.chars().count();
    ((1..=200).contains(&n) && !t.trim().is_empty() && !t.chars().any(char::is_control))
        .then_some(())
        .ok_or_else(|| {
            ValidationError::new("length").with_message("1 to 200 characters, not blank".into())
        })
}

fn code(c: &str) -> Result<(), ValidationError> {
    (1..=MAX_CODE_BYTES)
        .contains(&c.len())
        .then_some(())
        .ok_or_else(|| {
            ValidationError::new("length")
                .with_message(format!("1 to {MAX_CODE_BYTES} bytes").into())
        })
}

/// An absolute `http` or `https` URL with a host, at most 2048 bytes (no `javascript:`, `data:`,
/// credentials or relative references: it ends up in a browser's `src`).
pub fn valid_preview_url(u: &str) -> bool {
    u.len() <= 2048
        && u.trim() == u
        && reqwest::Url::parse(u).is_ok_and(|url| {
            matches!(url.scheme(), "http" | "https")
                && url.host_str().is_some_and(|h| !h.is_empty())
                && url.username().is_empty()
                && url.password().is_none()
        })
}

fn preview_url(u: &str) -> Result<(), ValidationError> {
    valid_preview_url(u).then_some(()).ok_or_else(|| {
        ValidationError::new("url")
            .with_message("an http or https URL of at most 2048 characters".into())
    })
}

#[derive(Debug, Deserialize, Validate)]
#[serde(deny_unknown_fields)]
pub struct NewSnippet {
    #[validate(custom(function = "category"))]
    category: String,
    #[validate(custom(function = "title"))]
    title: String,
    #[validate(custom(function = "code"))]
    code: String,
    #[validate(custom(function = "language"))]
    language: String,
    #[validate(custom(function = "preview_url"))]
    ui_preview_url: Option<String>,
}

/// JSON Schema (2020-12) of [`NewSnippet`], for the OpenAPI document.
pub fn new_snippet_schema(_v: u8) -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["category", "title", "code", "language"],
        "properties": {
            "category": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,50}$"},
            "title": super::docs::printable(200),
            "code": {"type": "string", "minLength": 1, "description": format!("at most {MAX_CODE_BYTES} bytes")},
            "language": super::docs::printable(30),
            "ui_preview_url": {"type": ["string", "null"], "format": "uri", "maxLength": 2048, "pattern": "^https?://"},
        }
    })
}

/// Snippets as shown, each with its author (one batch of `loader` for all of them).
async fn snippets_json(loader: &NestedLoader, rows: &[SnippetRow]) -> ApiResult<Vec<Value>> {
    let keys = rows
        .iter()
        .map(|r| Nested(Kind::User, r.7.clone()))
        .collect();
    let authors = loaders::load(loader, keys).await?;
    Ok(rows
        .iter()
        .zip(authors)
        .map(|(r, author)| {
            json!({
                "id": r.0, "category": r.1, "title": r.2, "code": r.3, "language": r.4,
                "ui_preview_url": r.5, "version": r.6, "created_by": r.7,
                "author": public_user(author),
                "created_at": rfc3339(r.8), "updated_at": rfc3339(r.9),
            })
        })
        .collect())
}

/// One snippet as [`snippets_json`] shows it.
async fn snippet_json(loader: &NestedLoader, row: SnippetRow) -> ApiResult<Value> {
    let mut shown = snippets_json(loader, &[row]).await?;
    Ok(shown.pop().unwrap_or_default())
}

fn cache(mut res: Response, value: HeaderValue) -> Response {
    res.headers_mut().insert(header::CACHE_CONTROL, value);
    res
}

async fn list(
    State(s): State<AppState>,
    v: ApiVersion,
    loader: NestedLoader,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> ApiResult {
    let q = params(q)?;
    let category = q.get("category").map(String::as_str);
    if category.is_some_and(|c| !valid_category(c)) {
        return Err(AppError::field(
            "category",
            "pattern",
            "1 to 50 characters of A-Z, a-z, 0-9, _ and -",
        ));
    }
    let language = q.get("language").map(String::as_str);
    if language.is_some_and(|l| !valid_language(l)) {
        return Err(AppError::field(
            "language",
            "length",
            "1 to 30 printable characters",
        ));
    }
    let page = Page::from_query(v, &q)?;

    let (total, items) = snippets::list(&s.db, category, language, page.window()).await?;
    let meta = page.meta(
        total,
        items.len(),
        items.last().map(|r| (r.8, r.0.as_str())),
    );
    let data = snippets_json(&loader, &items).await?;
    Ok(crate::cache::tag(
        envelope(v, s.now(), data, meta).into_response(),
        crate::cache::shared(),
        "snippets",
    ))
}

async fn one(
    State(s): State<AppState>,
    v: ApiVersion,
    loader: NestedLoader,
    Path(id): Path<String>,
) -> ApiResult {
    if !is_uuid(&id) {
        return Err(AppError::NotFound("Snippet"));
    }
    let row = snippets::one(&s.db, &id)
        .await?
        .ok_or(AppError::NotFound("Snippet"))?;
    let tags = format!("snippets snippet:{}", row.0);
    let data = snippet_json(&loader, row).await?;
    Ok(crate::cache::tag(
        envelope(v, s.now(), data, json!({})).into_response(),
        crate::cache::shared(),
        &tags,
    ))
}

async fn create(
    State(s): State<AppState>,
    v: ApiVersion,
    p: Principal,
    loader: NestedLoader,
    ValidJson(body): ValidJson<NewSnippet>,
) -> ApiResult {
    let now = s.now();
    let new = snippets::NewSnippet {
        category: &body.category,
        title: body.title.trim(),
        code: &body.code,
        language: body.language.trim(),
        ui_preview_url: body.ui_preview_url.as_deref(),
        created_by: p.subject(),
        now,
    };
    let row = snippets::insert(&s.db, &new).await?;
    crate::cache::purge(&s, &["snippets".to_owned()]).await;
    let location = format!("/api/{}/snippets/{}", v.name(), row.0);
    let data = snippet_json(&loader, row).await?;
    let res = created(&location, envelope(v, now, data, json!({})));
    Ok(cache(res, HeaderValue::from_static("no-store")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preview_urls_must_be_absolute_http_or_https() {
        for ok in [
            "https://example.com/p.png",
            "http://localhost:3000/x?y=1#z",
            "https://a.b/c%20d",
        ] {
            assert!(valid_preview_url(ok), "{ok}");
        }
        let long = format!("https://example.com/{}", "a".repeat(2048));
        for bad in [
            "javascript:alert(1)",
            "JaVaScRiPt:alert(1)",
            "data:text/html;base64,PHNjcmlwdD4=",
            "vbscript:msgbox",
            "file:///etc/passwd",
            "ftp://example.com/x",
            "//example.com/x",
            "/relative",
            "https://",
            "https://user:pw@example.com/",
            " javascript:alert(1)",
            long.as_str(),
        ] {
            assert!(!valid_preview_url(bad), "{bad}");
        }
    }

    #[test]
    fn categories_and_languages() {
        assert!(valid_category("ui") && valid_category("deploy_2-x"));
        for bad in ["", "a b", "ui;drop", "ü", &"a".repeat(51)] {
            assert!(!valid_category(bad), "{bad}");
        }
        assert!(valid_language("c++") && valid_language("objective-c"));
        assert!(
            !valid_language("")
                && !valid_language("   ")
                && !valid_language("a\u{0}")
                && !valid_language(&"x".repeat(31))
        );
    }
}
