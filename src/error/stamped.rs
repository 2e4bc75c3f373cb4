use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{HeaderMap, Response, StatusCode};
use pin_project_lite::pin_project;

use super::ProblemBody;

/// What a layer adds to the inner service's response once it arrives (CORS headers, `API-Version`,
/// `RateLimit`, ...).
pub trait Stamp {
    /// Adds this stamp's headers to a response with `status`.
    fn stamp(self, status: StatusCode, headers: &mut HeaderMap);
}

pin_project! {
    /// The response future of a layer that either answers at once with a rendered problem, or
    /// passes the request on and stamps headers onto the inner service's response.
    ///
    /// ```
    /// use http::{HeaderMap, HeaderValue, Response, StatusCode};
    /// use protothrive::error::{Stamp, StampedFuture};
    ///
    /// struct Served;
    /// impl Stamp for Served {
    ///     fn stamp(self, _status: StatusCode, headers: &mut HeaderMap) {
    ///         headers.insert("x-served-by", HeaderValue::from_static("me"));
    ///     }
    /// }
    ///
    /// let inner = std::future::ready(Ok::<_, ()>(Response::new(http_body_util::Empty::<bytes::Bytes>::new())));
    /// let fut = StampedFuture::inner(inner, Some(Served));
    /// let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// let res = rt.block_on(fut).unwrap();
    /// assert_eq!(res.headers()["x-served-by"], "me");
    /// ```
    pub struct StampedFuture<F, B, T> {
        #[pin]
        kind: Kind<F, B, T>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, B, T> {
        Inner { #[pin] future: F, stamp: Option<T> },
        Ready { response: Option<Response<ProblemBody<B>>> },
    }
}

impl<F, B, T> StampedFuture<F, B, T> {
    /// Passes the inner service's future through, adding `stamp` (if any) to its response.
    pub fn inner(future: F, stamp: Option<T>) -> Self {
        Self {
            kind: Kind::Inner { future, stamp },
        }
    }

    /// Answers at once with `response` (a rendered problem, or a preflight answer).
    pub fn ready(response: Response<ProblemBody<B>>) -> Self {
        Self {
            kind: Kind::Ready {
                response: Some(response),
            },
        }
    }
}

impl<F, B, T> fmt::Debug for StampedFuture<F, B, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StampedFuture").finish_non_exhaustive()
    }
}

impl<F, B, E, T> Future for StampedFuture<F, B, T>
where
    F: Future<Output = Result<Response<B>, E>>,
    T: Stamp,
{
    type Output = Result<Response<ProblemBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Inner { future, stamp } => {
                let mut res = std::task::ready!(future.poll(cx))?;
                if let Some(stamp) = stamp.take() {
                    let status = res.status();
                    stamp.stamp(status, res.headers_mut());
                }
                Poll::Ready(Ok(ProblemBody::map_response(res)))
            }
            KindProj::Ready { response } => match response.take() {
                Some(r) => Poll::Ready(Ok(r)),
                None => Poll::Pending,
            },
        }
    }
}
