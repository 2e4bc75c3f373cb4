//! The stable `code` values of the problems this crate answers with.
//!
//! They follow the ProtoThrive API contract (`AREA-STATUS`). A client branches on `code`, never on
//! `title` or `detail`, which may change wording.

/// Authentication failed: no credentials, or credentials that could not be verified (401).
pub const AUTH_UNAUTHORIZED: &str = "AUTH-401";
/// Authenticated, but not allowed: missing role or scope (403).
pub const AUTH_FORBIDDEN: &str = "AUTH-403";
/// The request is malformed (400).
pub const BAD_REQUEST: &str = "VAL-400";
/// The request body is larger than allowed (413).
pub const PAYLOAD_TOO_LARGE: &str = "VAL-413";
/// The request body's media type is not accepted (415).
pub const UNSUPPORTED_MEDIA_TYPE: &str = "VAL-415";
/// The request body failed validation; the problem carries per-field `errors` (422).
pub const VALIDATION_FAILED: &str = "VAL-422";
/// The resource does not exist (404).
pub const NOT_FOUND: &str = "NOT-FOUND-404";
/// No route matches the path, or the API version is unknown (404).
pub const ROUTE_NOT_FOUND: &str = "ROUTE-404";
/// The request conflicts with the current state (409).
pub const CONFLICT: &str = "CONFLICT-409";
/// A rate limit was exceeded; `Retry-After` says when to retry (429).
pub const RATE_LIMITED: &str = "RATE-429";
/// An unexpected server error (500). Never carries internal details in production.
pub const INTERNAL: &str = "SRV-500";
/// The service is overloaded or a dependency is down; `Retry-After` may say when to retry (503).
pub const UNAVAILABLE: &str = "SRV-503";
/// A CORS preflight was refused: the origin, method or a request header is not allowed (403).
pub const CORS_FORBIDDEN: &str = "CORS-403";
/// A cookie-authenticated state-changing request failed the CSRF check (403).
pub const CSRF_FORBIDDEN: &str = "CSRF-403";
/// The origin's response body failed while the cache was buffering it; the cache answers for
/// itself, since the origin's response is lost (502).
pub const CACHE_UPSTREAM_BODY: &str = "CACHE-502";
/// The request allows only a cached response (`Cache-Control: only-if-cached`) and nothing stored
/// fits (504, RFC 9111 §5.2.1.7).
pub const CACHE_ONLY_IF_CACHED: &str = "CACHE-504";
/// A `Range` request none of whose ranges is within the stored response it was answered from
/// (416, RFC 9110 §15.5.17); `Content-Range` gives the length.
pub const CACHE_RANGE_NOT_SATISFIABLE: &str = "CACHE-416";
/// A circuit breaker is open: the dependency behind it failed too often and is not called for a
/// while; `Retry-After` says when it may be (503).
pub const CIRCUIT_OPEN: &str = "CIRCUIT-503";
/// Every instance of an upstream service is ejected or failing its health checks; none is called
/// (503, with `Retry-After` when an ejection's end is known).
pub const UPSTREAMS_UNAVAILABLE: &str = "UPSTREAM-503";
/// The service sheds load: too many requests in flight for the caller's priority; `Retry-After`
/// says when to retry (503).
pub const OVERLOADED: &str = "LOAD-503";
/// The request's deadline passed before the handler answered (503).
pub const DEADLINE_EXCEEDED: &str = "TIMEOUT-503";
/// An outbound call got no answer before its deadline (504).
pub const UPSTREAM_TIMEOUT: &str = "TIMEOUT-504";
/// A batch envelope is not JSON, not of the batch's shape, or has no item (400).
pub const BATCH_INVALID: &str = "BATCH-400";
/// A batch has more items than allowed; the problem's `max_items` says how many (413).
pub const BATCH_TOO_MANY_ITEMS: &str = "BATCH-ITEMS-413";
/// A batch envelope is larger than allowed in bytes; `max_bytes` says how large (413).
pub const BATCH_TOO_LARGE: &str = "BATCH-SIZE-413";
/// An item's answer did not fit in what was left of the batch's answer budget and was left out;
/// the item's own status and headers are kept (507, in the item's `body`).
pub const BATCH_RESPONSE_TOO_LARGE: &str = "BATCH-RESPONSE-507";
/// An item did not finish before the batch's deadline (504, as the item's result).
pub const BATCH_DEADLINE: &str = "BATCH-504";
