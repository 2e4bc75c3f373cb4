//! Query batching: a DataLoader for N+1 lookups inside handlers, and an HTTP batch endpoint
//! around the whole stack.
//!
//! ## [`Loader`]
//!
//! Handlers ask for one key at a time (`loader.load(owner_id)`); the loads of one scheduling
//! window become one [`BatchFn`] call with the distinct keys, and each caller gets its own value.
//! One loader per request (from a [`LoaderFactory`], handed out by [`LoaderLayer`]) keeps a
//! per-request cache. See [`Loader`] for the guarantees and the cost. Written here rather than
//! taken from the `dataloader` crate or async-graphql's `DataLoader` because neither keeps a
//! failed batch apart from later loads of its keys with a per-request cache, takes the injected
//! clock for its metrics, or comes without a GraphQL or runtime-feature dependency tree.
//!
//! With the `cache` feature, [`SharedCache`] keeps a batch function's values across requests in
//! a [`DataCache`](crate::cache::DataCache) (memory, then Redis), with invalidation.
//!
//! ## [`BatchLayer`]
//!
//! `POST <path>` with a JSON array of sub-requests (or `{"requests": [...], "sequential":
//! true}`) answers `200` with one result per item, in order:
//! `{"status": 201, "headers": {"location": "..."}, "body": {...}}`.
//!
//! **Guarantees.**
//! * Outermost: each item is a new request sent through the inner service — the whole stack
//!   below — exactly as if it came alone: the batch request's extensions (the peer address among
//!   them) and forwarding, trace and credential headers (credentials only when the item brings
//!   none), its own `X-Request-Id` (`<batch id>.<index>`) and a `batch.item` span (a child of the
//!   `batch` span). Every layer below sees every item: rate limits count each one, so a batch
//!   can never do more than its items could one by one; auth, roles and caches apply per item.
//!   There is no reference back to the application.
//! * A batch inside a batch is refused however its path is spelled (case, `//`, `%2F`, `%252F`,
//!   trailing `/`, `..`, with or without a `v<N>` segment), as is any item leaving the
//!   [`items_under`](BatchLayerBuilder::items_under) prefix, with a dot segment, a method other
//!   than `GET HEAD POST PUT PATCH DELETE` or a header outside the allow-list: that item's result
//!   is a 400 [`VAL-400`](crate::error::code::BAD_REQUEST) problem whose `reason` says why; the
//!   other items run.
//! * Bounded: items (413 [`BATCH-ITEMS-413`](crate::error::code::BATCH_TOO_MANY_ITEMS)), envelope
//!   bytes (413 [`BATCH-SIZE-413`](crate::error::code::BATCH_TOO_LARGE)), answer bytes in all and
//!   per item (an answer past them keeps its status and headers, its body becomes a 507
//!   [`BATCH-RESPONSE-507`](crate::error::code::BATCH_RESPONSE_TOO_LARGE) problem), a deadline
//!   (an unfinished item's result is a 504 [`BATCH-504`](crate::error::code::BATCH_DEADLINE));
//!   a malformed envelope is a 400 [`BATCH-400`](crate::error::code::BATCH_INVALID). Items run
//!   up to [`concurrency`](BatchLayerBuilder::concurrency) at once, or in order when the
//!   envelope says `"sequential": true`.
//! * With [`admit_through_inner`](BatchLayerBuilder::admit_through_inner), the batch request
//!   itself goes through the stack first, so the endpoint's own authentication, limits and
//!   validation answer it.
//!
//! **Cost.** Nothing for other requests but a path comparison on `POST`s. A batch buffers its
//! envelope (bounded) and each answer body (bounded by the budget), clones the batch request's
//! extensions per item, and boxes its future. A JSON answer body is checked and copied into the
//! batch answer as it came (serde_json's `RawValue`), not parsed into a tree and written again.
//!
//! ```
//! use std::convert::Infallible;
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::{BodyExt, Full};
//! use protothrive::batch::BatchLayer;
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let app = ServiceBuilder::new()
//!     .layer(BatchLayer::builder("/api/batch").items_under("/api").build()?)
//!     .service(service_fn(|req: Request<Full<Bytes>>| async move {
//!         let body = format!("{{\"path\": \"{}\"}}", req.uri().path());
//!         let res = Response::builder().header("content-type", "application/json").body(body);
//!         Ok::<_, Infallible>(res.unwrap())
//!     }));
//! let envelope = r#"[{"method": "GET", "path": "/api/a"}, {"method": "POST", "path": "/api/V1/Batch/"}]"#;
//! let req = Request::post("/api/batch").body(Full::from(envelope))?;
//! let res = app.oneshot(req).await?;
//! let bytes = res.into_body().collect().await?.to_bytes();
//! let answer: serde_json::Value = serde_json::from_slice(&bytes)?;
//! assert_eq!(answer["data"][0]["body"]["path"], "/api/a");
//! assert_eq!(answer["data"][1]["status"], 400);
//! assert_eq!(answer["data"][1]["body"]["reason"], "nested_batch");
//! # Ok(()) }
//! ```

mod config;
mod envelope;
mod factory;
mod layer;
mod loader;
mod loader_layer;
mod service;
#[cfg(feature = "cache")]
mod shared;

#[cfg(test)]
mod loader_tests;
#[cfg(test)]
mod tests;

pub use config::BatchTask;
pub use envelope::{Envelope, Item, canonical_path, parse_envelope};
pub use factory::LoaderFactory;
pub use layer::{BatchLayer, BatchLayerBuilder, DEFAULT_ALLOWED_HEADERS};
pub use loader::{BatchFn, Loader};
#[allow(deprecated)]
pub use loader_layer::{AddLoader, LoaderLayer, LoaderService};
pub use service::{Batch, BatchItem};
#[cfg(feature = "cache")]
pub use shared::SharedCache;
