use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use super::Problem;

/// Turns a [`Problem`] into a response. Implement it to change how every rejection looks.
///
/// ```
/// use bytes::Bytes;
/// use http::Response;
/// use protothrive::error::{Problem, RenderProblem, Renderer};
///
/// #[derive(Debug)]
/// struct PlainText;
/// impl RenderProblem for PlainText {
///     fn render(&self, problem: &Problem) -> Response<Bytes> {
///         let mut res = Response::new(Bytes::from(problem.to_string()));
///         *res.status_mut() = problem.status();
///         res
///     }
/// }
///
/// let mut ext = http::Extensions::new();
/// ext.insert(Renderer::new(PlainText));
/// let res = Problem::new(http::StatusCode::NOT_FOUND, "NOT-FOUND-404").render_for(&ext);
/// assert_eq!(res.body(), "404 NOT-FOUND-404");
/// ```
pub trait RenderProblem: Send + Sync + fmt::Debug + 'static {
    /// Renders `problem`. The status and the problem's own headers should be kept.
    fn render(&self, problem: &Problem) -> Response<Bytes>;
}

/// A shared renderer, as stored in request extensions.
#[derive(Clone, Debug)]
pub struct Renderer(Arc<dyn RenderProblem>);

impl Renderer {
    /// Wraps a renderer.
    pub fn new(renderer: impl RenderProblem) -> Self {
        Self(Arc::new(renderer))
    }

    /// Renders a problem.
    #[must_use]
    pub fn render(&self, problem: &Problem) -> Response<Bytes> {
        self.0.render(problem)
    }
}

/// The default renderer: `application/problem+json`, optionally with a `type` URI per code.
///
/// ```
/// use protothrive::error::{JsonRenderer, Problem, RenderProblem};
///
/// let r = JsonRenderer::new().type_base("https://errors.example.com/");
/// let res = r.render(&Problem::new(http::StatusCode::CONFLICT, "CONFLICT-409"));
/// let body: serde_json::Value = serde_json::from_slice(res.body()).unwrap();
/// assert_eq!(body["type"], "https://errors.example.com/CONFLICT-409");
/// ```
#[derive(Clone, Debug, Default)]
pub struct JsonRenderer {
    type_base: Option<String>,
}

impl JsonRenderer {
    /// The renderer with `type` = `about:blank`.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes `type` the base URI followed by the problem's code, for problems with no type of
    /// their own (RFC 9457 §3.1.1: a dereferenceable page documenting the code).
    #[must_use]
    pub fn type_base(mut self, base: impl Into<String>) -> Self {
        self.type_base = Some(base.into());
        self
    }
}

impl RenderProblem for JsonRenderer {
    fn render(&self, problem: &Problem) -> Response<Bytes> {
        match &self.type_base {
            Some(base) if problem.to_json()["type"] == "about:blank" => {
                let typed = problem
                    .clone()
                    .with_type(format!("{base}{}", problem.code()));
                render_json(&typed)
            }
            _ => render_json(problem),
        }
    }
}

pub(super) fn render_json(problem: &Problem) -> Response<Bytes> {
    let body = serde_json::to_vec(&problem.to_json()).unwrap_or_default();
    let mut res = Response::new(Bytes::from(body));
    *res.status_mut() = problem.status();
    let headers = res.headers_mut();
    *headers = problem.headers_owned();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    res
}

/// Puts a [`Renderer`] into every request's extensions, so every layer inside renders with it.
///
/// ```
/// use protothrive::error::{JsonRenderer, RendererLayer};
/// let layer = RendererLayer::new(JsonRenderer::new().type_base("https://errors.example.com/"));
/// # let _ = layer;
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct RendererLayer {
    renderer: Renderer,
}

impl RendererLayer {
    /// A layer installing `renderer`.
    pub fn new(renderer: impl RenderProblem) -> Self {
        Self {
            renderer: Renderer::new(renderer),
        }
    }
}

impl<S> Layer<S> for RendererLayer {
    type Service = SetRenderer<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SetRenderer {
            inner,
            renderer: self.renderer.clone(),
        }
    }
}

/// The service of [`RendererLayer`]: sets the [`Renderer`] in each request's extensions, then
/// calls the inner service.
///
/// Named for what it does, as tower-http's `SetRequestId<S>` is: [`Renderer`] is the value it
/// sets.
#[derive(Clone, Debug)]
pub struct SetRenderer<S> {
    inner: S,
    renderer: Renderer,
}

impl<S> SetRenderer<S> {
    crate::macros::inner_service_accessors!();
}

/// The former name of [`SetRenderer`].
#[deprecated(since = "0.1.0", note = "renamed `SetRenderer`")]
pub type RendererService<S> = SetRenderer<S>;

impl<S, B> Service<Request<B>> for SetRenderer<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        req.extensions_mut().insert(self.renderer.clone());
        self.inner.call(req)
    }
}
