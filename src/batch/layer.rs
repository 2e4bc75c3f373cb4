//! [`BatchLayer`]: its configuration, checked when built.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, header};
use tower_layer::Layer;

use super::envelope::{Rules, canonical_path};
use super::service::{Batch, Settings};
use crate::error::ConfigError;

/// The headers an item may set by default (lowercase).
pub const DEFAULT_ALLOWED_HEADERS: [&str; 8] = [
    "accept",
    "api-version",
    "authorization",
    "content-type",
    "idempotency-key",
    "if-match",
    "if-none-match",
    "x-api-key",
];
/// The headers of the batch request every item gets (credentials only when the item brings none).
const LENT: [&str; 6] = [
    "forwarded",
    "x-forwarded-for",
    "x-real-ip",
    "traceparent",
    "tracestate",
    "user-agent",
];
/// The headers of an item's answer its result repeats.
const KEPT: [&str; 6] = [
    "content-type",
    "location",
    "retry-after",
    "etag",
    "ratelimit",
    "ratelimit-policy",
];

/// Answers `POST <path>` with the results of the sub-requests its JSON envelope holds, each sent
/// through the inner service exactly as if it came alone (see the [module docs](super)).
///
/// ```
/// use std::time::Duration;
/// use protothrive::batch::BatchLayer;
///
/// let layer = BatchLayer::builder("/api/batch")
///     .items_under("/api")
///     .max_items(20)
///     .deadline(Duration::from_secs(10))
///     .build()
///     .unwrap();
/// # let _ = layer;
/// let err = BatchLayer::builder("api/batch").build().unwrap_err();
/// assert_eq!(
///     err.message(),
///     r#"batch path must be an absolute path such as /api/batch, not "api/batch""#
/// );
/// let err = BatchLayer::builder("/api/batch").concurrency(0).build().unwrap_err();
/// assert!(err.message().ends_with("must be above zero"));
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct BatchLayer {
    settings: Arc<Settings>,
}

impl BatchLayer {
    /// A builder for the batch endpoint at `path` (matched in any spelling: case, `//`, `%2F`,
    /// trailing `/`, `..`, and with or without a `v<N>` version segment).
    pub fn builder(path: impl Into<String>) -> BatchLayerBuilder {
        BatchLayerBuilder {
            path: path.into(),
            prefix: "/".into(),
            allowed: DEFAULT_ALLOWED_HEADERS
                .iter()
                .map(|h| HeaderName::from_static(h))
                .collect(),
            lent: LENT.iter().map(|h| HeaderName::from_static(h)).collect(),
            kept: KEPT.iter().map(|h| HeaderName::from_static(h)).collect(),
            version_header: Some(HeaderName::from_static("api-version")),
            max_items: 20,
            max_request_bytes: 256 * 1024,
            max_response_bytes: 4 * 1024 * 1024,
            max_item_response_bytes: 2 * 1024 * 1024,
            deadline: Duration::from_secs(30),
            concurrency: 4,
            admit: false,
        }
    }
}

impl<S> Layer<S> for BatchLayer {
    type Service = Batch<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Batch::new(inner, self.settings.clone())
    }
}

/// Builds a [`BatchLayer`]; [`build`](Self::build) checks the settings.
#[derive(Debug, Clone)]
#[must_use]
pub struct BatchLayerBuilder {
    path: String,
    prefix: String,
    allowed: Vec<HeaderName>,
    lent: Vec<HeaderName>,
    kept: Vec<HeaderName>,
    version_header: Option<HeaderName>,
    max_items: usize,
    max_request_bytes: usize,
    max_response_bytes: usize,
    max_item_response_bytes: usize,
    deadline: Duration,
    concurrency: usize,
    admit: bool,
}

impl BatchLayerBuilder {
    /// The prefix every item's path must stay under (`/` by default: anywhere).
    pub fn items_under(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The headers an item may set (by default `Accept`, `Api-Version`, `Authorization`,
    /// `Content-Type`, `Idempotency-Key`, `If-Match`, `If-None-Match`, `X-API-Key`); any other
    /// makes the item a 400.
    pub fn allowed_headers(mut self, names: impl IntoIterator<Item = HeaderName>) -> Self {
        self.allowed = names.into_iter().collect();
        self
    }

    /// The headers of the batch request copied to every item (by default `Forwarded`,
    /// `X-Forwarded-For`, `X-Real-IP`, `traceparent`, `tracestate`, `User-Agent`), so the
    /// client-IP and trace layers see each item as the batch's client. `Authorization` and
    /// `X-API-Key` are always lent to an item that brings neither.
    pub fn lent_headers(mut self, names: impl IntoIterator<Item = HeaderName>) -> Self {
        self.lent = names.into_iter().collect();
        self
    }

    /// The headers of an item's answer repeated in its result (by default `Content-Type`,
    /// `Location`, `Retry-After`, `ETag`, `RateLimit`, `RateLimit-Policy`).
    pub fn kept_headers(mut self, names: impl IntoIterator<Item = HeaderName>) -> Self {
        self.kept = names.into_iter().collect();
        self
    }

    /// The header that carries the API version (`Api-Version` by default; `None`: no version
    /// handling). An item with no version of its own (no `v<N>` path segment, no header) gets the
    /// batch's: its header, or the `v<N>` segment of its path.
    pub fn version_header(mut self, name: Option<HeaderName>) -> Self {
        self.version_header = name;
        self
    }

    /// The most items in one batch (20 by default); more is a 413
    /// [`BATCH-ITEMS-413`](crate::error::code::BATCH_TOO_MANY_ITEMS).
    pub fn max_items(mut self, n: usize) -> Self {
        self.max_items = n;
        self
    }

    /// The largest envelope in bytes (256 KiB by default); larger is a 413
    /// [`BATCH-SIZE-413`](crate::error::code::BATCH_TOO_LARGE).
    pub fn max_request_bytes(mut self, n: usize) -> Self {
        self.max_request_bytes = n;
        self
    }

    /// The most answer body bytes one batch keeps, all items together (4 MiB by default), and
    /// the most one item may take (2 MiB). An answer past either is left out of its result: its
    /// body becomes a 507 [`BATCH-RESPONSE-507`](crate::error::code::BATCH_RESPONSE_TOO_LARGE)
    /// problem, its status and headers are kept.
    pub fn max_response_bytes(mut self, total: usize, per_item: usize) -> Self {
        self.max_response_bytes = total;
        self.max_item_response_bytes = per_item;
        self
    }

    /// The time all items together may take (30 s by default); an item unfinished by then is
    /// dropped and its result is a 504 [`BATCH-504`](crate::error::code::BATCH_DEADLINE).
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// How many items run at once (4 by default); an envelope with `"sequential": true` runs
    /// them one after the other, in order.
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n;
        self
    }

    /// Sends the batch request itself (with its body) through the inner service first, so the
    /// endpoint's own authentication, limits, roles and validation apply to it. A non-2xx answer
    /// is the batch's answer; a 2xx answer gives the batch answer its headers and, when it is a
    /// JSON object, its members (the layer sets `data` to the results and `meta.count`).
    pub fn admit_through_inner(mut self, on: bool) -> Self {
        self.admit = on;
        self
    }

    /// Checks the settings.
    ///
    /// # Errors
    ///
    /// A path or prefix that is not an absolute path, a limit of zero, or a per-item answer
    /// limit above the total.
    pub fn build(self) -> Result<BatchLayer, ConfigError> {
        for (what, p) in [("path", &self.path), ("items_under prefix", &self.prefix)] {
            if !p.starts_with('/') || canonical_path(p).is_none() {
                return Err(ConfigError::new(format!(
                    "batch {what} must be an absolute path such as /api/batch, not {p:?}"
                )));
            }
        }
        if self.max_items == 0
            || self.max_request_bytes == 0
            || self.max_response_bytes == 0
            || self.concurrency == 0
            || self.deadline.is_zero()
        {
            return Err(ConfigError::new(
                "batch max_items, max_request_bytes, max_response_bytes, concurrency and deadline must be above zero",
            ));
        }
        if self.max_item_response_bytes > self.max_response_bytes {
            return Err(ConfigError::new(
                "the per-item answer limit of a batch cannot exceed its total answer limit",
            ));
        }
        let rules = Rules::new(&self.path, &self.prefix, self.allowed);
        Ok(BatchLayer {
            settings: Arc::new(Settings {
                rules,
                lent: self.lent,
                credentials: vec![header::AUTHORIZATION, HeaderName::from_static("x-api-key")],
                kept: self.kept,
                version_header: self.version_header,
                max_items: self.max_items,
                max_request_bytes: self.max_request_bytes,
                max_response_bytes: self.max_response_bytes,
                max_item_response_bytes: self.max_item_response_bytes,
                deadline: self.deadline,
                concurrency: self.concurrency,
                admit: self.admit,
            }),
        })
    }
}
