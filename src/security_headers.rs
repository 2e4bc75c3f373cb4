//! Security headers on every response: what a browser needs to treat an API's answers as data,
//! never as a page to render, frame or sniff.
//!
//! | header | default | why |
//! |---|---|---|
//! | `X-Content-Type-Options` | `nosniff` | no MIME sniffing of JSON into HTML or script |
//! | `X-Frame-Options` | `DENY` | no framing (clickjacking), for browsers without CSP `frame-ancestors` |
//! | `Referrer-Policy` | `no-referrer` | URLs with ids never leak to other sites |
//! | `Content-Security-Policy` | `default-src 'none'; frame-ancestors 'none'` | an API answer loads nothing and is framed nowhere |
//! | `Cross-Origin-Opener-Policy` | `same-origin` | no cross-origin window handles |
//! | `Strict-Transport-Security` | off; [`hsts`](SecurityHeadersLayer::hsts) | only an HTTPS deployment may promise HTTPS for a year |
//!
//! The application's own values win: a header the inner service set is left alone, so one route can
//! have its own CSP.
//!
//! ```
//! use std::convert::Infallible;
//! use std::time::Duration;
//! use http::{HeaderValue, Request, Response};
//! use protothrive::security_headers::SecurityHeadersLayer;
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let svc = ServiceBuilder::new()
//!     .layer(SecurityHeadersLayer::new().hsts(Duration::from_secs(31_536_000), true))
//!     .service(service_fn(|_req: Request<()>| async {
//!         let mut res = Response::new(String::new());
//!         res.headers_mut().insert("x-frame-options", HeaderValue::from_static("SAMEORIGIN"));
//!         Ok::<_, Infallible>(res)
//!     }));
//! let res = svc.oneshot(Request::get("/").body(())?).await?;
//! assert_eq!(res.headers()["x-content-type-options"], "nosniff");
//! assert_eq!(res.headers()["x-frame-options"], "SAMEORIGIN");
//! assert_eq!(res.headers()["strict-transport-security"], "max-age=31536000; includeSubDomains");
//! # Ok(())
//! # }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::header::{
    CONTENT_SECURITY_POLICY, HeaderName, REFERRER_POLICY, STRICT_TRANSPORT_SECURITY,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use http::{HeaderValue, Request, Response};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

static CROSS_ORIGIN_OPENER_POLICY: HeaderName =
    HeaderName::from_static("cross-origin-opener-policy");

/// Adds security headers to responses that lack them; see the [module docs](self).
#[derive(Debug, Clone)]
#[must_use]
pub struct SecurityHeadersLayer {
    headers: Arc<Vec<(HeaderName, HeaderValue)>>,
}

impl Default for SecurityHeadersLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl SecurityHeadersLayer {
    /// The defaults in the module docs, without HSTS.
    pub fn new() -> Self {
        Self {
            headers: Arc::new(vec![
                (X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
                (X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
                (REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
                (
                    CONTENT_SECURITY_POLICY,
                    HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
                ),
                (
                    CROSS_ORIGIN_OPENER_POLICY.clone(),
                    HeaderValue::from_static("same-origin"),
                ),
            ]),
        }
    }

    fn set(mut self, name: HeaderName, value: HeaderValue) -> Self {
        let headers = Arc::make_mut(&mut self.headers);
        match headers.iter_mut().find(|(n, _)| *n == name) {
            Some(entry) => entry.1 = value,
            None => headers.push((name, value)),
        }
        self
    }

    /// Sends `Strict-Transport-Security: max-age=<seconds>[; includeSubDomains]` (RFC 6797 §6.1).
    /// Only for deployments served over HTTPS: browsers then refuse plain HTTP to the host.
    pub fn hsts(self, max_age: Duration, include_subdomains: bool) -> Self {
        let mut value = format!("max-age={}", max_age.as_secs());
        if include_subdomains {
            value.push_str("; includeSubDomains");
        }
        match HeaderValue::from_str(&value) {
            Ok(v) => self.set(STRICT_TRANSPORT_SECURITY, v),
            Err(_) => self,
        }
    }

    /// The `Content-Security-Policy` (CSP Level 3 §3.1).
    pub fn content_security_policy(self, value: HeaderValue) -> Self {
        self.set(CONTENT_SECURITY_POLICY, value)
    }

    /// The `X-Frame-Options` value (RFC 7034 §2.1): `DENY` or `SAMEORIGIN`.
    pub fn frame_options(self, value: HeaderValue) -> Self {
        self.set(X_FRAME_OPTIONS, value)
    }

    /// The `Referrer-Policy` (Referrer Policy §4.1).
    pub fn referrer_policy(self, value: HeaderValue) -> Self {
        self.set(REFERRER_POLICY, value)
    }

    /// The `Cross-Origin-Opener-Policy` (HTML §7.1.3).
    pub fn cross_origin_opener_policy(self, value: HeaderValue) -> Self {
        self.set(CROSS_ORIGIN_OPENER_POLICY.clone(), value)
    }

    /// Any other header, set when the response lacks it (`Permissions-Policy`, ...).
    pub fn header(self, name: HeaderName, value: HeaderValue) -> Self {
        self.set(name, value)
    }

    /// Stops sending one of the headers.
    pub fn without(mut self, name: &HeaderName) -> Self {
        Arc::make_mut(&mut self.headers).retain(|(n, _)| n != name);
        self
    }
}

impl<S> Layer<S> for SecurityHeadersLayer {
    type Service = SecurityHeaders<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SecurityHeaders {
            inner,
            headers: self.headers.clone(),
        }
    }
}

/// The service of [`SecurityHeadersLayer`].
#[derive(Debug, Clone)]
pub struct SecurityHeaders<S> {
    inner: S,
    headers: Arc<Vec<(HeaderName, HeaderValue)>>,
}

impl<S> SecurityHeaders<S> {
    crate::macros::inner_service_accessors!();
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for SecurityHeaders<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        ResponseFuture {
            future: self.inner.call(req),
            headers: self.headers.clone(),
        }
    }
}

pin_project! {
    /// Response future of [`SecurityHeaders`].
    pub struct ResponseFuture<F> {
        #[pin]
        future: F,
        headers: Arc<Vec<(HeaderName, HeaderValue)>>,
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
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut res = std::task::ready!(this.future.poll(cx))?;
        set_missing(this.headers, res.headers_mut());
        Poll::Ready(Ok(res))
    }
}

/// Sets each of `headers` the response lacks.
fn set_missing(headers: &[(HeaderName, HeaderValue)], h: &mut http::HeaderMap) {
    for (name, value) in headers {
        // One hash per name; the application's own value is kept.
        if let http::header::Entry::Vacant(v) = h.entry(name) {
            v.insert(value.clone());
        }
    }
}

impl SecurityHeadersLayer {
    /// Adds this layer's headers to a response that lacks them (for a service that runs
    /// several layers at once).
    pub(crate) fn stamp(&self, h: &mut http::HeaderMap) {
        set_missing(&self.headers, h);
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::pin::pin;
    use std::task::Waker;

    use super::*;

    fn run(layer: &SecurityHeadersLayer, own: &[(&'static str, &'static str)]) -> Response<()> {
        let own = own.to_vec();
        let mut svc = layer.layer(tower::service_fn(move |_req: Request<()>| {
            let mut res = Response::new(());
            for (k, v) in &own {
                res.headers_mut().insert(*k, HeaderValue::from_static(v));
            }
            std::future::ready(Ok::<_, Infallible>(res))
        }));
        let mut fut = pin!(svc.call(Request::new(())));
        match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(Ok(res)) => res,
            _ => panic!("ready"),
        }
    }

    #[test]
    fn defaults_and_overrides_table() {
        let hsts = SecurityHeadersLayer::new().hsts(Duration::from_secs(60), false);
        let custom = SecurityHeadersLayer::new()
            .content_security_policy(HeaderValue::from_static("default-src 'self'"))
            .without(&X_FRAME_OPTIONS);
        // (layer, the app's own headers, header, expected)
        type Case<'a> = (
            &'a SecurityHeadersLayer,
            &'static [(&'static str, &'static str)],
            &'static str,
            Option<&'static str>,
        );
        let cases: [Case<'_>; 10] = [
            (
                &SecurityHeadersLayer::new(),
                &[],
                "x-content-type-options",
                Some("nosniff"),
            ),
            (
                &SecurityHeadersLayer::new(),
                &[],
                "x-frame-options",
                Some("DENY"),
            ),
            (
                &SecurityHeadersLayer::new(),
                &[],
                "referrer-policy",
                Some("no-referrer"),
            ),
            (
                &SecurityHeadersLayer::new(),
                &[],
                "content-security-policy",
                Some("default-src 'none'; frame-ancestors 'none'"),
            ),
            (
                &SecurityHeadersLayer::new(),
                &[],
                "cross-origin-opener-policy",
                Some("same-origin"),
            ),
            (
                &SecurityHeadersLayer::new(),
                &[],
                "strict-transport-security",
                None,
            ),
            (&hsts, &[], "strict-transport-security", Some("max-age=60")),
            (
                &custom,
                &[],
                "content-security-policy",
                Some("default-src 'self'"),
            ),
            (&custom, &[], "x-frame-options", None),
            (
                &SecurityHeadersLayer::new(),
                &[("referrer-policy", "strict-origin")],
                "referrer-policy",
                Some("strict-origin"),
            ),
        ];
        for (i, (layer, own, name, want)) in cases.iter().enumerate() {
            let res = run(layer, own);
            let got = res.headers().get(*name).map(|v| v.to_str().unwrap());
            assert_eq!(got, *want, "case {i}");
        }
    }
}
