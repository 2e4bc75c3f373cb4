//! [`LoaderLayer`]: a fresh [`Loader`] in every request's extensions (and, with `axum`, the
//! extractor that takes it out).

use std::fmt;
use std::task::{Context, Poll};

use http::Request;
use tower_layer::Layer;
use tower_service::Service;

#[cfg(feature = "axum")]
use super::Loader;
use super::{BatchFn, LoaderFactory};

/// Puts a new [`Loader`] (empty per-request cache) from a [`LoaderFactory`] into every request's
/// extensions, where handlers find it (`Extension<Loader<F>>`, or `Loader<F>` itself as an axum
/// extractor).
///
/// ```
/// use std::collections::HashMap;
/// use std::convert::Infallible;
/// use http::{Request, Response};
/// use protothrive::batch::{BatchFn, Loader, LoaderFactory, LoaderLayer};
/// use tower::{service_fn, ServiceBuilder, ServiceExt};
///
/// struct Len;
/// impl BatchFn for Len {
///     type Key = String;
///     type Value = usize;
///     type Error = ();
///     async fn load(&self, keys: &[String]) -> Result<HashMap<String, usize>, ()> {
///         Ok(keys.iter().map(|k| (k.clone(), k.len())).collect())
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let svc = ServiceBuilder::new()
///     .layer(LoaderLayer::new(LoaderFactory::new(Len)))
///     .service(service_fn(|req: Request<()>| async move {
///         let loader = req.extensions().get::<Loader<Len>>().cloned();
///         let len = match loader {
///             Some(l) => l.load("four".to_owned()).await.ok().flatten(),
///             None => None,
///         };
///         Ok::<_, Infallible>(Response::new(format!("{len:?}")))
///     }));
/// let res = svc.oneshot(Request::new(())).await?;
/// assert_eq!(res.body(), "Some(4)");
/// # Ok(()) }
/// ```
#[must_use]
pub struct LoaderLayer<F: BatchFn> {
    factory: LoaderFactory<F>,
}

impl<F: BatchFn> LoaderLayer<F> {
    /// A layer handing out loaders of `factory`.
    pub fn new(factory: LoaderFactory<F>) -> Self {
        Self { factory }
    }
}

impl<F: BatchFn> Clone for LoaderLayer<F> {
    fn clone(&self) -> Self {
        Self {
            factory: self.factory.clone(),
        }
    }
}

impl<F: BatchFn> fmt::Debug for LoaderLayer<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("LoaderLayer").field(&self.factory).finish()
    }
}

impl<S, F: BatchFn> Layer<S> for LoaderLayer<F> {
    type Service = AddLoader<S, F>;

    fn layer(&self, inner: S) -> Self::Service {
        AddLoader {
            inner,
            factory: self.factory.clone(),
        }
    }
}

/// The service of [`LoaderLayer`]: adds a fresh [`Loader`](super::Loader) to each request's
/// extensions, then calls the inner service.
///
/// Named for what it does, as tower-http's `AddExtension<S, T>` is: `Loader` is what it adds.
pub struct AddLoader<S, F: BatchFn> {
    inner: S,
    factory: LoaderFactory<F>,
}

impl<S, F: BatchFn> AddLoader<S, F> {
    crate::macros::inner_service_accessors!();
}

impl<S: Clone, F: BatchFn> Clone for AddLoader<S, F> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            factory: self.factory.clone(),
        }
    }
}

impl<S: fmt::Debug, F: BatchFn> fmt::Debug for AddLoader<S, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AddLoader")
            .field("inner", &self.inner)
            .field("factory", &self.factory)
            .finish()
    }
}

impl<S, F: BatchFn, B> Service<Request<B>> for AddLoader<S, F>
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
        req.extensions_mut().insert(self.factory.loader());
        self.inner.call(req)
    }
}

/// The former name of [`AddLoader`] (its type parameters were `<F, S>`).
#[deprecated(since = "0.1.0", note = "renamed `AddLoader<S, F>`")]
pub type LoaderService<F, S> = AddLoader<S, F>;

/// `Loader<F>` as an axum extractor: a 500 problem when no [`LoaderLayer`] of `F` is installed
/// (a wiring mistake of the application, never the client's).
#[cfg(feature = "axum")]
impl<F: BatchFn, S: Send + Sync> axum_core::extract::FromRequestParts<S> for Loader<F> {
    type Rejection = axum_core::response::Response;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Self>().cloned().ok_or_else(|| {
            let problem = crate::error::Problem::new(
                http::StatusCode::INTERNAL_SERVER_ERROR,
                crate::error::code::INTERNAL,
            )
            .with_detail("no loader is installed for this route");
            problem
                .render_for(&parts.extensions)
                .map(axum_core::body::Body::from)
        })
    }
}
