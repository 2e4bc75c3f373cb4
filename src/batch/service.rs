//! The [`Batch`] service: reads the envelope, runs the items through the inner service, and
//! gathers their results.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt as _;
use http::request::Parts;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body::Body;
use http_body_util::{BodyExt as _, Limited};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use tower_service::Service;
use tracing::Instrument as _;

use super::envelope::{Checked, Rules, parse_envelope, path_version};
use crate::error::{Problem, code};
use crate::response::{ResponseBody, ResponseFuture};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// JSON text kept as it is: an item's result, serialized once.
type Raw = Box<RawValue>;

/// The largest admission answer read for its JSON members.
const MAX_FRAME: usize = 64 * 1024;

/// The settings every [`Batch`] service of one layer shares.
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) rules: Rules,
    pub(crate) lent: Vec<HeaderName>,
    pub(crate) credentials: Vec<HeaderName>,
    pub(crate) kept: Vec<HeaderName>,
    pub(crate) version_header: Option<HeaderName>,
    pub(crate) max_items: usize,
    pub(crate) max_request_bytes: usize,
    pub(crate) max_response_bytes: usize,
    pub(crate) max_item_response_bytes: usize,
    pub(crate) deadline: Duration,
    pub(crate) concurrency: usize,
    pub(crate) admit: bool,
}

/// Marks a sub-request of a batch, with its position in the envelope: a handler can tell, and a
/// batch inside a batch is refused whatever its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchItem {
    /// The item's index in the envelope.
    pub index: usize,
}

/// The service of [`BatchLayer`](super::BatchLayer).
#[derive(Debug, Clone)]
pub struct Batch<S> {
    inner: S,
    settings: Arc<Settings>,
}

impl<S> Batch<S> {
    pub(crate) fn new(inner: S, settings: Arc<Settings>) -> Self {
        Self { inner, settings }
    }

    crate::macros::inner_service_accessors!();
}

impl<S, B, ResBody> Service<Request<B>> for Batch<S>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Send + 'static,
    B: Body<Data = Bytes> + From<Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
    ResBody: Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        if req.method() != Method::POST || !self.settings.rules.is_batch(req.uri().path()) {
            return ResponseFuture::inner(self.inner.call(req));
        }
        if req.extensions().get::<BatchItem>().is_some() {
            let problem = Problem::new(StatusCode::BAD_REQUEST, code::BAD_REQUEST)
                .with_detail("a batch may not contain a batch")
                .with_member("reason", "nested_batch");
            return ResponseFuture::ready(ResponseBody::map_problem(
                problem.render_for(req.extensions()),
            ));
        }
        let inner = crate::response::take_ready(&mut self.inner);
        ResponseFuture::boxed(Box::pin(run(inner, self.settings.clone(), req)))
    }
}

/// Calls `svc` once it is ready.
async fn ready_call<S: Service<R>, R>(svc: &mut S, req: R) -> Result<S::Response, S::Error> {
    std::future::poll_fn(|cx| svc.poll_ready(cx)).await?;
    svc.call(req).await
}

fn problem_response<B>(problem: Problem, parts: &Parts) -> Response<ResponseBody<B>> {
    ResponseBody::map_problem(problem.render_for(&parts.extensions))
}

/// Reads at most `limit` bytes of `body`: `Err(true)` when it is longer, `Err(false)` when it failed.
async fn read<T: Body<Data = Bytes>>(body: T, limit: usize) -> Result<Bytes, bool>
where
    T::Error: Into<BoxError>,
{
    match Limited::new(body, limit).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) => Err(e.is::<http_body_util::LengthLimitError>()),
    }
}

async fn run<S, B, ResBody>(
    mut inner: S,
    settings: Arc<Settings>,
    req: Request<B>,
) -> Result<Response<ResponseBody<ResBody>>, S::Error>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Clone,
    B: Body<Data = Bytes> + From<Bytes>,
    B::Error: Into<BoxError>,
    ResBody: Body<Data = Bytes>,
    ResBody::Error: Into<BoxError>,
{
    let (parts, body) = req.into_parts();
    let max = settings.max_request_bytes;
    let too_large = || {
        Problem::new(StatusCode::PAYLOAD_TOO_LARGE, code::BATCH_TOO_LARGE)
            .with_detail(format!("a batch envelope is at most {max} bytes"))
            .with_member("max_bytes", max)
    };
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Ok(problem_response(too_large(), &parts));
    }
    let bytes = match read(body, max).await {
        Ok(b) => b,
        Err(true) => return Ok(problem_response(too_large(), &parts)),
        Err(false) => {
            let p = Problem::new(StatusCode::BAD_REQUEST, code::BATCH_INVALID)
                .with_detail("the batch envelope could not be read");
            return Ok(problem_response(p, &parts));
        }
    };
    let mut frame = Map::new();
    let mut headers = HeaderMap::new();
    if settings.admit {
        let admission = Request::from_parts(parts.clone(), B::from(bytes.clone()));
        let res = ready_call(&mut inner, admission).await?;
        if !res.status().is_success() {
            return Ok(ResponseBody::map_response(res));
        }
        let (res_parts, res_body) = res.into_parts();
        headers = res_parts.headers;
        if let Ok(b) = read(res_body, MAX_FRAME).await
            && let Ok(Value::Object(members)) = serde_json::from_slice(&b)
        {
            frame = members;
        }
    }
    let envelope = match parse_envelope(&bytes, settings.max_items) {
        Ok(e) => e,
        Err(p) => return Ok(problem_response(p, &parts)),
    };
    let results = run_items(inner, &settings, &parts, envelope).await;
    Ok(answer(frame, headers, &results))
}

/// Runs every item (refused ones answer for themselves) within the deadline.
async fn run_items<S, B, ResBody>(
    inner: S,
    settings: &Settings,
    parts: &Parts,
    envelope: super::Envelope,
) -> Vec<Raw>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Clone,
    B: From<Bytes>,
    ResBody: Body<Data = Bytes>,
    ResBody::Error: Into<BoxError>,
{
    let count = envelope.items.len();
    let span = tracing::info_span!("batch", items = count, sequential = envelope.sequential);
    metrics::histogram!("protothrive_batch_items").record(count as f64);
    let budget = AtomicUsize::new(settings.max_response_bytes);
    let runs = envelope.items.into_iter().enumerate().map(|(index, item)| {
        let item_span = tracing::info_span!(parent: &span, "batch.item", index, method = %item.method, path = %item.path);
        let checked = settings.rules.check(item);
        let svc = inner.clone();
        let budget = &budget;
        async move {
            let result = match checked {
                Ok(checked) => {
                    let req = sub_request(settings, parts, index, checked);
                    one(svc, req, settings, budget).await
                }
                Err(p) => problem_result(&p, parts),
            };
            (index, result)
        }
        .instrument(item_span)
    });
    // Collected first, so the stream holds each item's own service and not the closure's borrow.
    let runs: Vec<_> = runs.collect();
    let limit = if envelope.sequential {
        1
    } else {
        settings.concurrency
    };
    let mut stream = futures_util::stream::iter(runs).buffer_unordered(limit);
    let mut results: Vec<Option<Raw>> = (0..count).map(|_| None).collect();
    let gather = async {
        while let Some((i, v)) = stream.next().await {
            results[i] = Some(v);
        }
    };
    let _ = tokio::time::timeout(settings.deadline, gather.instrument(span.clone())).await;
    drop(stream);
    let late =
        Problem::new(StatusCode::GATEWAY_TIMEOUT, code::BATCH_DEADLINE).with_detail(format!(
            "the item did not finish within the batch's {} ms",
            settings.deadline.as_millis()
        ));
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| problem_result(&late, parts)))
        .collect()
}

/// Builds item `index`'s request: the item's own headers, the batch's lent headers and host, its
/// credentials unless the item brings some, its version unless the item has one, and every
/// extension of the batch request (the peer address among them) plus [`BatchItem`].
fn sub_request<B: From<Bytes>>(
    settings: &Settings,
    outer: &Parts,
    index: usize,
    item: Checked,
) -> Request<B> {
    let mut headers = item.headers;
    let own_credentials = settings.credentials.iter().any(|h| headers.contains_key(h));
    let lent = settings
        .lent
        .iter()
        .chain(settings.credentials.iter().filter(|_| !own_credentials));
    for name in lent {
        for value in outer.headers.get_all(name) {
            headers.append(name.clone(), value.clone());
        }
    }
    if let Some(version) = &settings.version_header
        && !headers.contains_key(version)
        && path_version(item.uri.path()).is_none()
    {
        let inherited =
            outer.headers.get(version).cloned().or_else(|| {
                path_version(outer.uri.path()).and_then(|v| HeaderValue::from_str(v).ok())
            });
        if let Some(v) = inherited {
            headers.insert(version.clone(), v);
        }
    }
    if let Some(rid) = outer
        .headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        && let Ok(v) = HeaderValue::from_str(&format!("{rid}.{index}"))
    {
        headers.insert("x-request-id", v);
    }
    let body = match item.body {
        Some(v) => {
            headers
                .entry(header::CONTENT_TYPE)
                .or_insert(HeaderValue::from_static("application/json"));
            Bytes::from(v.to_string())
        }
        None => Bytes::new(),
    };
    // An item is a request to the batch's own server: it has the batch's `Host`, or (HTTP/2,
    // absolute form) its scheme and authority — the cache keys by them, and stores nothing for
    // a request without a host.
    if let Some(host) = outer.headers.get(header::HOST) {
        headers.insert(header::HOST, host.clone());
    }
    let uri = match (outer.uri.scheme(), outer.uri.authority()) {
        (Some(scheme), Some(authority)) if item.uri.authority().is_none() => {
            let mut parts = item.uri.clone().into_parts();
            parts.scheme = Some(scheme.clone());
            parts.authority = Some(authority.clone());
            http::Uri::from_parts(parts).unwrap_or(item.uri)
        }
        _ => item.uri,
    };
    let mut req = Request::new(B::from(body));
    *req.method_mut() = item.method;
    *req.uri_mut() = uri;
    *req.headers_mut() = headers;
    *req.extensions_mut() = outer.extensions.clone();
    req.extensions_mut().insert(BatchItem { index });
    req
}

/// Runs one item and turns its answer into a result.
async fn one<S, B, ResBody>(
    mut svc: S,
    req: Request<B>,
    settings: &Settings,
    budget: &AtomicUsize,
) -> Raw
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    ResBody: Body<Data = Bytes>,
    ResBody::Error: Into<BoxError>,
{
    let ext = req.extensions().clone();
    let Ok(res) = ready_call(&mut svc, req).await else {
        let p = Problem::new(StatusCode::INTERNAL_SERVER_ERROR, code::INTERNAL)
            .with_detail("the item could not be served");
        return result_json(p.status(), p.render_for(&ext).body());
    };
    let (res_parts, body) = res.into_parts();
    let mut kept = Map::new();
    for name in &settings.kept {
        if let Some(v) = res_parts.headers.get(name).and_then(|v| v.to_str().ok()) {
            kept.insert(name.as_str().to_owned(), v.into());
        }
    }
    let limit = settings
        .max_item_response_bytes
        .min(budget.load(Ordering::Acquire));
    let bytes = match read(body, limit).await {
        Ok(b) => budget
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| {
                left.checked_sub(b.len())
            })
            .ok()
            .map(|_| b),
        Err(_) => None,
    };
    let json = kept
        .get("content-type")
        .and_then(Value::as_str)
        .is_some_and(|ct| ct.contains("json"));
    let status = res_parts.status.as_u16();
    // A JSON body goes into the answer as it came (checked, not rebuilt); other bodies as text.
    if let Some(b) = &bytes
        && json
        && let Ok(raw) = serde_json::from_slice::<&RawValue>(b)
    {
        return item_result(status, &kept, raw);
    }
    let body = match bytes {
        Some(b) if b.is_empty() => Value::Null,
        Some(b) => String::from_utf8_lossy(&b).into_owned().into(),
        None => Problem::new(
            StatusCode::INSUFFICIENT_STORAGE,
            code::BATCH_RESPONSE_TOO_LARGE,
        )
        .with_detail(format!(
            "the answer did not fit in the batch's answer budget ({} bytes in all, {} per item) and was left out",
            settings.max_response_bytes, settings.max_item_response_bytes
        ))
        .with_ids_from(&ext)
        .to_json(),
    };
    item_result(status, &kept, &raw(&body))
}

/// An item's result, `{"status": ..., "headers": {...}, "body": ...}`.
#[derive(Serialize)]
struct ItemResult<'a> {
    status: u16,
    headers: &'a Map<String, Value>,
    body: &'a RawValue,
}

fn item_result(status: u16, headers: &Map<String, Value>, body: &RawValue) -> Raw {
    raw(&ItemResult {
        status,
        headers,
        body,
    })
}

/// `value` as JSON text (`null` if it cannot be: no value of this module fails).
fn raw<T: Serialize + ?Sized>(value: &T) -> Raw {
    serde_json::value::to_raw_value(value).unwrap_or_default()
}

fn problem_headers() -> Map<String, Value> {
    let mut h = Map::new();
    h.insert("content-type".into(), "application/problem+json".into());
    h
}

/// The result of an item answered by a problem (`body`, rendered).
fn result_json(status: StatusCode, body: &Bytes) -> Raw {
    let headers = problem_headers();
    match serde_json::from_slice::<&RawValue>(body) {
        Ok(body) => item_result(status.as_u16(), &headers, body),
        Err(_) => item_result(status.as_u16(), &headers, &raw(&Value::Null)),
    }
}

/// The result of an item answered by the batch itself (refused, or past the deadline).
fn problem_result(problem: &Problem, parts: &Parts) -> Raw {
    let res = problem.clone().render_for(&parts.extensions);
    result_json(problem.status(), res.body())
}

/// The batch answer: the admission's members, `data` and `meta` (with `count`).
#[derive(Serialize)]
struct Answer<'a> {
    #[serde(flatten)]
    frame: &'a Map<String, Value>,
    data: &'a [Raw],
    meta: &'a Map<String, Value>,
}

/// The batch answer: the admission's members and headers, `data` and `meta.count`.
fn answer<B>(
    mut frame: Map<String, Value>,
    mut headers: HeaderMap,
    results: &[Raw],
) -> Response<ResponseBody<B>> {
    let mut meta = match frame.remove("meta") {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    frame.remove("data");
    meta.insert("count".into(), results.len().into());
    let body = serde_json::to_vec(&Answer {
        frame: &frame,
        data: results,
        meta: &meta,
    })
    .unwrap_or_default();
    headers.remove(header::CONTENT_LENGTH);
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let mut res = Response::new(ResponseBody::full(Bytes::from(body)));
    *res.headers_mut() = headers;
    res
}
