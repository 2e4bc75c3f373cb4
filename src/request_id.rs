//! Request ids: `X-Request-Id` in and out, and a [`RequestId`] for every layer inside.
//!
//! Guarantees:
//! * every request leaves this layer with a [`RequestId`] (in the request's
//!   [`RequestContext`], read with [`RequestId::of`]), so a problem rendered by any
//!   layer further in (401, 403, 413, 429, ...) carries `request_id`;
//! * an incoming id is kept only when it is sane — 1 to 64 visible ASCII characters — and only
//!   when the layer is told to trust it ([`RequestIdLayer::trust_incoming`], on by default, as
//!   tower-http's `SetRequestId` keeps an existing header); anything else is replaced by a new id,
//!   so a client cannot inject control characters or megabytes into logs;
//! * every response carries the id in the same header, unless the service set one itself.
//!
//! New ids are 32 lowercase hex digits (128 bits): a counter mixed with two per-process random
//! keys (splitmix64's finalizer, a bijection, so never the same id twice in a process; different
//! across processes), without a random-number crate. They identify requests; they are not
//! secrets.
//!
//! Why not tower-http's `request_id`: it leaves the id in a header only, where the problem
//! renderer of the other layers cannot find it without parsing, and it keeps whatever the client
//! sent.
//!
//! ```
//! use http::{Request, Response};
//! use protothrive::error::RequestId;
//! use protothrive::request_id::RequestIdLayer;
//! use tower::{Layer, ServiceExt, service_fn};
//!
//! let svc = RequestIdLayer::new().layer(service_fn(|req: Request<()>| async move {
//!     let id = RequestId::of(req.extensions()).unwrap().as_str().to_owned();
//!     Ok::<_, std::convert::Infallible>(Response::new(id))
//! }));
//! let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
//!
//! let req = Request::get("/").header("x-request-id", "abc-123").body(()).unwrap();
//! let res = rt.block_on(svc.clone().oneshot(req)).unwrap();
//! assert_eq!(res.headers()["x-request-id"], "abc-123");
//! assert_eq!(res.body(), "abc-123");
//!
//! // A hostile id is replaced.
//! let req = Request::get("/").header("x-request-id", "a b").body(()).unwrap();
//! let res = rt.block_on(svc.oneshot(req)).unwrap();
//! assert_eq!(res.headers()["x-request-id"].len(), 32);
//! ```
//!
//! Cost: one id (a few multiplications and one 32-byte allocation, shared by the extension, the
//! request header and the response header) when the client sent none; a sane incoming id shares
//! the request's bytes. Then the request's
//! [`RequestContext`] (one extension, shared with the other
//! layers) and one response header insert.

use std::cell::Cell;
use std::future::Future;
use std::hash::BuildHasher;
use std::pin::Pin;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use http::{HeaderName, HeaderValue, Request, Response};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::error::RequestId;
use crate::identity::RequestContext;

/// `X-Request-Id`, the default header.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest incoming id that is kept.
pub const MAX_INCOMING_LEN: usize = 64;

/// Sets a [`RequestId`] on every request and echoes it on the response. See the
/// [module docs](self).
#[derive(Debug, Clone)]
#[must_use]
pub struct RequestIdLayer {
    header: HeaderName,
    trust_incoming: bool,
}

impl Default for RequestIdLayer {
    fn default() -> Self {
        Self {
            header: X_REQUEST_ID.clone(),
            trust_incoming: true,
        }
    }
}

impl RequestIdLayer {
    /// `X-Request-Id`, incoming ids kept when sane.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads and writes `header` instead of `X-Request-Id`.
    ///
    /// ```
    /// use protothrive::request_id::RequestIdLayer;
    /// let layer = RequestIdLayer::new().header(http::HeaderName::from_static("x-correlation-id"));
    /// assert_eq!(layer.header_name(), "x-correlation-id");
    /// ```
    pub fn header(mut self, header: HeaderName) -> Self {
        self.header = header;
        self
    }

    /// Whether a sane incoming id is kept (default) or always replaced (for a service that faces
    /// clients directly and wants ids it made itself).
    ///
    /// ```
    /// use protothrive::request_id::RequestIdLayer;
    /// let _layer = RequestIdLayer::new().trust_incoming(false);
    /// ```
    pub fn trust_incoming(mut self, trust: bool) -> Self {
        self.trust_incoming = trust;
        self
    }

    /// The header this layer reads and writes.
    #[must_use]
    pub fn header_name(&self) -> &HeaderName {
        &self.header
    }

    /// Whether a sane incoming id is kept.
    #[cfg_attr(not(feature = "trace"), allow(dead_code))]
    pub(crate) fn trusts_incoming(&self) -> bool {
        self.trust_incoming
    }
}

impl<S> Layer<S> for RequestIdLayer {
    type Service = SetRequestId<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SetRequestId {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service of [`RequestIdLayer`]: sets each request's id (extension and header) and echoes it
/// on the response.
///
/// Named for what it does, as tower-http's `SetRequestId<S>` is: [`RequestId`] is the id itself.
///
/// ```
/// use protothrive::request_id::{RequestIdLayer, SetRequestId};
/// use tower::Layer;
/// let svc: SetRequestId<()> = RequestIdLayer::new().layer(());
/// let () = svc.into_inner();
/// ```
#[derive(Debug, Clone)]
pub struct SetRequestId<S> {
    inner: S,
    layer: RequestIdLayer,
}

impl<S> SetRequestId<S> {
    crate::macros::inner_service_accessors!();
}

/// The former name of [`SetRequestId`].
#[deprecated(since = "0.1.0", note = "renamed `SetRequestId`")]
pub type RequestIdService<S> = SetRequestId<S>;

/// Whether an incoming id is kept: 1 to [`MAX_INCOMING_LEN`] visible ASCII characters.
///
/// ```
/// use protothrive::request_id::is_sane;
/// assert!(is_sane(b"req-42"));
/// assert!(!is_sane(b""));
/// assert!(!is_sane(b"a b"));
/// assert!(!is_sane(&[b'x'; 65]));
/// ```
#[must_use]
pub fn is_sane(id: &[u8]) -> bool {
    !id.is_empty() && id.len() <= MAX_INCOMING_LEN && id.iter().all(u8::is_ascii_graphic)
}

/// Gives `req` its id: the incoming `header` when `trust`ed and sane, else a new one (then also
/// written into the request's `header`, for the services further in and upstream). Puts the
/// [`RequestId`] in the request's context and returns it with the header value to echo on the
/// response.
pub(crate) fn assign<B>(
    req: &mut Request<B>,
    header: &HeaderName,
    trust: bool,
) -> (RequestId, HeaderValue) {
    match incoming(req, header, trust) {
        Some(v) => install(req, header, v, false),
        None => {
            let generated = RequestId::generated(new_hex())
                .header_value()
                .unwrap_or_else(|| HeaderValue::from_static("0"));
            install(req, header, generated, true)
        }
    }
}

/// The incoming id of `req` in `header`, when `trust`ed and sane.
pub(crate) fn incoming<B>(
    req: &Request<B>,
    header: &HeaderName,
    trust: bool,
) -> Option<HeaderValue> {
    trust
        .then(|| req.headers().get(header))
        .flatten()
        .filter(|v| is_sane(v.as_bytes()))
        .cloned()
}

/// Makes `value` (visible ASCII: sane or generated) the id of `req`: into its context and, when
/// `generated`, into its `header`. Returns the id and the value to echo.
pub(crate) fn install<B>(
    req: &mut Request<B>,
    header: &HeaderName,
    value: HeaderValue,
    generated: bool,
) -> (RequestId, HeaderValue) {
    if generated {
        req.headers_mut().insert(header.clone(), value.clone());
    }
    // Sane or generated means visible ASCII: the id shares the value's bytes.
    let id = RequestId::from_header(value.clone());
    RequestContext::get_mut(req.extensions_mut()).request_id = Some(id.clone());
    (id, value)
}

/// A new id: 32 lowercase hex digits.
///
/// ```
/// use protothrive::request_id::new_id;
/// let (a, b) = (new_id(), new_id());
/// assert_eq!(a.len(), 32);
/// assert!(a.bytes().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
/// assert_ne!(a, b);
/// ```
#[must_use]
pub fn new_id() -> String {
    // Every byte is an ASCII hex digit.
    String::from_utf8(new_hex().to_vec()).unwrap_or_default()
}

/// Counter values a thread reserves from the process-wide counter at a time.
const BLOCK: u64 = 1 << 16;

/// A new id's 32 lowercase hex digits, on the stack.
///
/// The counter is per thread: each thread reserves a block of [`BLOCK`] values from the
/// process-wide counter (one shared atomic operation per 65,536 ids, where one per id would
/// bounce the counter's cache line between the cores serving requests), and counts through it
/// locally. Reserved ranges never overlap, so no counter value, and no id, repeats.
pub(crate) fn new_hex() -> [u8; 32] {
    static KEYS: OnceLock<(u64, u64)> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    thread_local! {
        /// The thread's next counter value and the end of its block (equal: none left).
        static NEXT: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
    }
    let &(k1, k2) = KEYS.get_or_init(|| {
        let state = std::collections::hash_map::RandomState::new();
        (state.hash_one(1u8), state.hash_one(2u8))
    });
    let n = NEXT
        .try_with(|next| {
            let (mut n, mut end) = next.get();
            if n == end {
                n = COUNTER.fetch_add(BLOCK, Ordering::Relaxed);
                end = n + BLOCK;
            }
            next.set((n + 1, end));
            n
        })
        // While the thread is torn down: one value reserved alone.
        .unwrap_or_else(|_| COUNTER.fetch_add(1, Ordering::Relaxed));
    // splitmix64's finalizer is a bijection: distinct counters give distinct high halves.
    let value = (u128::from(mix(n ^ k1)) << 64) | u128::from(mix(n.wrapping_add(k2)));
    let mut hex = [0u8; 32];
    crate::headers::encode_hex(&value.to_be_bytes(), &mut hex);
    hex
}

/// splitmix64's output function.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for SetRequestId<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let stamp = self.layer.assign(&mut req);
        ResponseFuture::new(self.inner.call(req), Some(stamp))
    }
}

impl RequestIdLayer {
    /// Gives the request its id; the header and value its response is to echo (for a service
    /// that runs several layers at once).
    pub(crate) fn assign<B>(&self, req: &mut Request<B>) -> (HeaderName, HeaderValue) {
        let (_, value) = assign(req, &self.header, self.trust_incoming);
        (self.header.clone(), value)
    }
}

impl<F> ResponseFuture<F> {
    /// `inner`, its response given `stamp` (the request-id header and value) unless it has one.
    pub(crate) fn new(inner: F, stamp: Option<(HeaderName, HeaderValue)>) -> Self {
        Self { inner, stamp }
    }
}

pin_project! {
    /// The response future of [`SetRequestId`]: the inner future, its response given the id.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        stamp: Option<(HeaderName, HeaderValue)>,
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut res = std::task::ready!(this.inner.poll(cx))?;
        if let Some((name, value)) = this.stamp.take()
            && let http::header::Entry::Vacant(v) = res.headers_mut().entry(name)
        {
            v.insert(value);
        }
        Poll::Ready(Ok(res))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;

    /// Threads counting past the end of their first block (and so reserving a second) never
    /// give the same id twice, within a thread or across them.
    #[test]
    fn ids_from_many_threads_never_repeat() {
        let per_thread = usize::try_from(BLOCK).unwrap() + 100;
        let threads: Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(move || (0..per_thread).map(|_| new_hex()).collect::<Vec<_>>())
            })
            .collect();
        let mut seen = std::collections::HashSet::new();
        for t in threads {
            for id in t.join().unwrap() {
                assert!(
                    id.iter()
                        .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
                );
                assert!(seen.insert(id), "an id repeated");
            }
        }
        assert_eq!(seen.len(), 4 * per_thread);
    }

    fn run(layer: &RequestIdLayer, req: Request<()>) -> (String, Response<()>) {
        let svc = layer.layer(tower::service_fn(|req: Request<()>| async move {
            let id = RequestId::of(req.extensions()).map(|r| r.as_str().to_owned());
            let header = req.headers().get("x-request-id").cloned();
            assert_eq!(
                id.as_deref().map(str::as_bytes),
                header.as_ref().map(HeaderValue::as_bytes),
                "the handler sees the same id in the header and the extension"
            );
            let mut res = Response::new(());
            res.extensions_mut()
                .insert(RequestId::new(id.unwrap_or_default()));
            Ok::<_, Infallible>(res)
        }));
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let res = rt.block_on(tower::ServiceExt::oneshot(svc, req)).unwrap();
        let id = res
            .extensions()
            .get::<RequestId>()
            .unwrap()
            .as_str()
            .to_owned();
        (id, res)
    }

    #[test]
    fn incoming_ids_are_kept_only_when_sane_and_trusted() {
        let cases: [(&[u8], bool, bool); 6] = [
            (b"abc", true, true),
            (b"abc", false, false),
            (b"", true, false),
            (b"with space", true, false),
            (&[b'a'; 64], true, true),
            (&[b'a'; 65], true, false),
        ];
        for (incoming, trust, kept) in cases {
            let req = Request::get("/")
                .header("x-request-id", HeaderValue::from_bytes(incoming).unwrap())
                .body(())
                .unwrap();
            let (id, res) = run(&RequestIdLayer::new().trust_incoming(trust), req);
            assert_eq!(
                id.as_bytes() == incoming,
                kept,
                "{incoming:?} trust={trust}"
            );
            assert_eq!(res.headers()["x-request-id"], id.as_str());
            if !kept {
                assert_eq!(id.len(), 32);
            }
        }
    }

    #[test]
    fn a_header_the_service_set_is_left_alone() {
        let svc = RequestIdLayer::new().layer(tower::service_fn(|_: Request<()>| async {
            let mut res = Response::new(());
            res.headers_mut()
                .insert("x-request-id", HeaderValue::from_static("mine"));
            Ok::<_, Infallible>(res)
        }));
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let res = rt
            .block_on(tower::ServiceExt::oneshot(svc, Request::new(())))
            .unwrap();
        assert_eq!(res.headers()["x-request-id"], "mine");
    }

    #[test]
    fn a_problem_rendered_further_in_quotes_the_id_alone_in_its_context() {
        // The layer alone (no stack, no trace layer): one extension, which problems read.
        let svc = RequestIdLayer::new().layer(tower::service_fn(|req: Request<()>| async move {
            assert_eq!(req.extensions().len(), 1);
            let res = crate::error::Problem::new(http::StatusCode::FORBIDDEN, "T-403")
                .render_for(req.extensions());
            Ok::<_, Infallible>(res)
        }));
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let req = Request::get("/").body(()).unwrap();
        let res = rt.block_on(tower::ServiceExt::oneshot(svc, req)).unwrap();
        let body: serde_json::Value = serde_json::from_slice(res.body()).unwrap();
        assert_eq!(
            body["request_id"],
            res.headers()["x-request-id"].to_str().unwrap()
        );
        assert_eq!(body["code"], "T-403");
    }

    #[test]
    fn new_ids_do_not_repeat() {
        let ids: std::collections::HashSet<String> = (0..10_000).map(|_| new_id()).collect();
        assert_eq!(ids.len(), 10_000);
    }
}
