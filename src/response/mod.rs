//! The response plumbing every layer shares: one body type and one response future.
//!
//! A layer that may answer by itself (a 401, a 429, a preflight, a cached 200) returns
//! `Response<ResponseBody<B>>`: the inner service's body `B` untouched, or bytes of the layer's
//! own. Its future is [`ResponseFuture`]: the inner future (its response optionally stamped with
//! the layer's headers), a ready answer, or — for layers that must await something first — a
//! boxed future. Each layer's public `ResponseFuture` is an alias of this one, so the stack's
//! types stay small and nothing is boxed on the common path.
//!
//! ```
//! use bytes::Bytes;
//! use http::Response;
//! use http_body::Body as _;
//! use protothrive::response::ResponseBody;
//!
//! let own: Response<ResponseBody<http_body_util::Empty<Bytes>>> =
//!     ResponseBody::map_problem(Response::new(Bytes::from_static(b"{}")));
//! assert_eq!(own.body().size_hint().exact(), Some(2));
//! ```
//!
//! Cost: an enum match per poll; no allocation unless a layer boxes its future.

mod body;
mod future;

pub use body::ResponseBody;
pub(crate) use future::{Checked, stamped};
pub use future::{NoStamp, ResponseFuture, Stamp};

/// The service that was driven to readiness, for a future that calls it later; a clone (not yet
/// ready) is left in its place for the next `poll_ready`.
pub(crate) fn take_ready<S: Clone>(service: &mut S) -> S {
    let clone = service.clone();
    std::mem::replace(service, clone)
}
