//! `POST /batch`: up to 20 sub-requests through the whole app, by the library's `BatchLayer`
//! (outermost, so each item passes every layer — client IP, ids, versions, limits,
//! authentication, roles, caches — as if sent alone, and a batch can do nothing its items could
//! not do one by one).
//!
//! The layer first sends the envelope itself through the app to the route below, which admits it:
//! the caller must be a user, and the envelope must match the contract's schema (422 otherwise).
//! Its answer is the frame of the batch answer (`version`, `timestamp`); the layer adds `data`,
//! one result per item, and `meta.count`. A sub-request carries the caller's credentials unless it
//! brings its own, the caller's peer address and forwarding headers, and the batch's API version
//! when its path has none; a batch inside a batch, however spelled, is a per-item 400.
//!
//! The answers' bodies share one budget ([`MAX_BATCH_BODY`]) besides each item's own limit
//! ([`MAX_ITEM_BODY`]): 20 items of 2 MiB would otherwise hold 40 MiB per batch in memory. Every
//! item still runs; an answer past the budget keeps its status and headers, and its body is a
//! `BATCH-RESPONSE-507` problem.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use protothrive::batch::{BatchLayer, DEFAULT_ALLOWED_HEADERS};
use protothrive::error::ConfigError;
use protothrive::gateway::{ApiVersion, ValidJson};
use serde::Deserialize;
use serde_json::{Value, json};
use validator::{Validate, ValidationError, ValidationErrors};

use crate::app::MAX_BODY;
use crate::http::envelope;
use crate::state::AppState;

use super::table::{Route, Who::User, ep};

/// Items per batch.
pub const MAX_ITEMS: u64 = 20;
/// The largest item answer kept (bigger ones are replaced by a problem).
pub const MAX_ITEM_BODY: usize = 2 * 1024 * 1024;
/// The most answer bytes one batch keeps, all items together.
pub const MAX_BATCH_BODY: usize = 4 * 1024 * 1024;
/// The time all items of a batch may take together.
const DEADLINE: Duration = Duration::from_secs(20);
/// Headers of an item's answer that its result repeats.
const KEPT_HEADERS: [&str; 5] = [
    "content-type",
    "location",
    "retry-after",
    "etag",
    "x-query-count",
];

/// The batch layer of the app, outermost.
pub fn layer() -> Result<BatchLayer, ConfigError> {
    let names = |list: &[&'static str]| -> Vec<HeaderName> {
        list.iter().map(|h| HeaderName::from_static(h)).collect()
    };
    BatchLayer::builder("/api/batch")
        .items_under("/api")
        .kept_headers(names(&KEPT_HEADERS))
        .max_items(MAX_ITEMS as usize)
        .max_request_bytes(MAX_BODY)
        .max_response_bytes(MAX_BATCH_BODY, MAX_ITEM_BODY)
        .deadline(DEADLINE)
        .admit_through_inner(true)
        .build()
}

pub fn routes() -> Vec<Route> {
    vec![Route::to(
        ep(
            "POST",
            "/api/batch",
            "Run up to 20 sub-requests through the whole API",
            User,
            "batch",
        )
        .body(batch_schema)
        .unscoped(),
        admit,
    )]
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    requests: Vec<Item>,
    #[serde(default)]
    #[allow(dead_code)]
    sequential: bool,
}

/// By hand: the derive would want `Item: Serialize` to echo the value in the error.
impl Validate for Batch {
    fn validate(&self) -> Result<(), ValidationErrors> {
        if (1..=MAX_ITEMS).contains(&(self.requests.len() as u64)) {
            return Ok(());
        }
        let mut errors = ValidationErrors::new();
        errors.add(
            "requests",
            ValidationError::new("length")
                .with_message(format!("1 to {MAX_ITEMS} requests").into()),
        );
        Err(errors)
    }
}

/// The shape of an item (the layer checks paths, methods and headers of each).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct Item {
    method: String,
    path: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    body: Option<Value>,
}

/// JSON Schema (2020-12) of [`Batch`], for the OpenAPI document: what the envelope must be. The
/// layer judges each item's method, path and headers as it runs it; an item it refuses is that
/// item's 400 in a batch answered 200, so the item rules are descriptions, not constraints.
pub fn batch_schema(_v: u8) -> Value {
    json!({
        "type": "object", "additionalProperties": false,
        "required": ["requests"],
        "properties": {
            "sequential": {"type": "boolean", "description": "run the items one after the other, in order"},
            "requests": {
                "type": "array", "minItems": 1, "maxItems": MAX_ITEMS,
                "items": {
                    "type": "object", "additionalProperties": false,
                    "required": ["method", "path"],
                    "properties": {
                        "method": {"type": "string",
                                   "description": "GET, HEAD, POST, PUT, PATCH or DELETE (another is the item's 400)"},
                        "path": {"type": "string",
                                 "description": "an API path under /api/ (not /batch), with an optional query, at most 2048 \
                                                 visible ASCII characters (another is the item's 400)"},
                        "headers": {"type": "object", "additionalProperties": {"type": "string"},
                                    "description": format!("only {} (another is the item's 400)", DEFAULT_ALLOWED_HEADERS.join(", "))},
                        "body": {"description": "any JSON value, sent as application/json"},
                    }
                }
            }
        }
    })
}

/// Admits a batch: a user, a valid envelope. The answer is the frame the layer fills.
async fn admit(
    axum::extract::State(s): axum::extract::State<AppState>,
    v: ApiVersion,
    ValidJson(_): ValidJson<Batch>,
) -> Response {
    let mut res = envelope(v, s.now(), Vec::<Value>::new(), json!({})).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}
