use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{HeaderMap, Response, StatusCode};
use pin_project_lite::pin_project;

use super::ResponseBody;

type Boxed<B, E> = Pin<Box<dyn Future<Output = Result<Response<ResponseBody<B>>, E>> + Send>>;

/// What a layer adds to the inner service's response once it arrives (CORS headers, `API-Version`,
/// `RateLimit`, ...).
pub trait Stamp {
    /// Adds this stamp's headers to a response with `status`.
    fn stamp(self, status: StatusCode, headers: &mut HeaderMap);
}

/// The [`Stamp`] of layers that add nothing to the inner response (it has no value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoStamp {}

impl Stamp for NoStamp {
    fn stamp(self, _status: StatusCode, _headers: &mut HeaderMap) {
        match self {}
    }
}

/// What a layer decides about a request before the service inside it sees it: hand it on
/// (adding the stamp, if any, to the response that comes back), or answer it with a response
/// of the layer's own (a rendered problem, a preflight answer).
///
/// Each layer's service and the [`Stack`](crate::stack::Stack), which runs the checks of several
/// layers in one service, act on the same decision.
// Unused when none of the checking layers' features is on.
#[allow(dead_code)]
pub(crate) enum Checked<T> {
    /// Call the inner service; stamp its response with `T`.
    Pass(Option<T>),
    /// Answer with this response; the inner service is not called.
    Answer(Response<bytes::Bytes>),
}

/// The inner service's response with `stamp` (if any) added and its body wrapped: what a layer
/// answers once the inner service has, on the ready path ([`ResponseFuture`]) and on a path that
/// awaited something first.
#[inline]
pub(crate) fn stamped<B, T: Stamp>(
    mut res: Response<B>,
    stamp: Option<T>,
) -> Response<ResponseBody<B>> {
    if let Some(stamp) = stamp {
        let status = res.status();
        stamp.stamp(status, res.headers_mut());
    }
    ResponseBody::map_response(res)
}

pin_project! {
    /// The response future of every layer that may answer by itself: the inner service's future
    /// (its response optionally stamped with the layer's headers, `T`), a ready rejection, or
    /// (for layers that must await something first) a boxed future.
    ///
    /// Like any future, it must not be polled after it completed: a ready answer panics then
    /// (as `std::future::Ready` does), the other kinds do what the future inside them does.
    ///
    /// ```
    /// use http::{HeaderMap, HeaderValue, Response, StatusCode};
    /// use protothrive::response::{ResponseFuture, Stamp};
    ///
    /// struct Served;
    /// impl Stamp for Served {
    ///     fn stamp(self, _status: StatusCode, headers: &mut HeaderMap) {
    ///         headers.insert("x-served-by", HeaderValue::from_static("me"));
    ///     }
    /// }
    ///
    /// let inner = std::future::ready(Ok::<_, ()>(Response::new(http_body_util::Empty::<bytes::Bytes>::new())));
    /// let fut: ResponseFuture<_, _, (), Served> = ResponseFuture::stamped(inner, Some(Served));
    /// let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// let res = rt.block_on(fut).unwrap();
    /// assert_eq!(res.headers()["x-served-by"], "me");
    /// ```
    pub struct ResponseFuture<F, B, E, T = NoStamp> {
        #[pin]
        kind: Kind<F, B, E, T>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, B, E, T> {
        Inner { #[pin] future: F, stamp: Option<T> },
        Ready { response: Option<Response<ResponseBody<B>>> },
        Boxed { future: Boxed<B, E> },
    }
}

impl<F, B, E, T> ResponseFuture<F, B, E, T> {
    /// Passes the inner service's future through (its body wrapped in [`ResponseBody`]).
    pub fn inner(future: F) -> Self {
        Self::stamped(future, None)
    }

    /// Passes the inner service's future through, adding `stamp` (if any) to its response.
    #[inline]
    pub fn stamped(future: F, stamp: Option<T>) -> Self {
        Self {
            kind: Kind::Inner { future, stamp },
        }
    }

    /// The future of a layer's `decision`: the inner service's future (`call` makes it) stamped,
    /// or the layer's answer.
    #[inline]
    #[allow(dead_code)] // as `Checked`
    pub(crate) fn checked(decision: Checked<T>, call: impl FnOnce() -> F) -> Self {
        match decision {
            Checked::Pass(stamp) => Self::stamped(call(), stamp),
            Checked::Answer(res) => Self::ready(ResponseBody::map_problem(res)),
        }
    }

    /// Answers at once with `response` (a rendered problem, or a preflight answer).
    pub fn ready(response: Response<ResponseBody<B>>) -> Self {
        Self {
            kind: Kind::Ready {
                response: Some(response),
            },
        }
    }

    /// Answers with a boxed future (for layers that must await something before deciding).
    pub fn boxed(future: Boxed<B, E>) -> Self {
        Self {
            kind: Kind::Boxed { future },
        }
    }
}

impl<F, B, E, T> fmt::Debug for ResponseFuture<F, B, E, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, B, E, T> Future for ResponseFuture<F, B, E, T>
where
    F: Future<Output = Result<Response<B>, E>>,
    T: Stamp,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Inner { future, stamp } => {
                let res = std::task::ready!(future.poll(cx))?;
                Poll::Ready(Ok(stamped(res, stamp.take())))
            }
            // As `std::future::Ready` and tower-http's futures do: a future polled after it
            // completed is a bug in the caller, so say so rather than stay pending for ever.
            KindProj::Ready { response } => match response.take() {
                Some(r) => Poll::Ready(Ok(r)),
                None => panic!("`ResponseFuture` polled after completion"),
            },
            KindProj::Boxed { future } => future.as_mut().poll(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::Pending;
    use std::pin::pin;
    use std::task::Waker;

    use bytes::Bytes;
    use http_body_util::Empty;

    use super::*;

    type Ready = ResponseFuture<Pending<Result<Response<Empty<Bytes>>, ()>>, Empty<Bytes>, ()>;

    #[test]
    #[should_panic(expected = "`ResponseFuture` polled after completion")]
    fn a_ready_answer_polled_again_panics_rather_than_hang() {
        let mut cx = Context::from_waker(Waker::noop());
        let mut fut = pin!(Ready::ready(ResponseBody::map_response(Response::new(
            Empty::new()
        ))));
        match fut.as_mut().poll(&mut cx) {
            Poll::Ready(Ok(res)) => assert_eq!(res.status(), StatusCode::OK),
            other => panic!("the first poll answers: {:?}", other.map(|r| r.is_ok())),
        }
        let _ = fut.as_mut().poll(&mut cx);
    }
}
