use std::borrow::Cow;

/// The route template a request matched (`/roadmaps/{id}`, never the raw path), as a request or
/// response extension: the rate limiter keys per-endpoint limits by it and the trace layer labels
/// spans and metrics with it. Set it where routing happens; with the `axum` feature, axum's
/// `MatchedPath` is read as well ([`Route::of`]).
///
/// ```
/// use protothrive::identity::Route;
/// let mut req = http::Request::new(());
/// req.extensions_mut().insert(Route::new("/roadmaps/{id}"));
/// assert_eq!(Route::of(req.extensions()), Some("/roadmaps/{id}"));
/// assert_eq!(Route::of(&http::Extensions::new()), None);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Route(Cow<'static, str>);

impl Route {
    /// The template `route`.
    pub fn new(route: impl Into<Cow<'static, str>>) -> Self {
        Self(route.into())
    }

    /// The template.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The route in `extensions`: a [`Route`], else (with the `axum` feature) axum's
    /// `MatchedPath`.
    #[must_use]
    pub fn of(extensions: &http::Extensions) -> Option<&str> {
        if let Some(r) = extensions.get::<Route>() {
            return Some(r.as_str());
        }
        #[cfg(feature = "axum")]
        if let Some(m) = extensions.get::<axum::extract::MatchedPath>() {
            return Some(m.as_str());
        }
        None
    }
}
