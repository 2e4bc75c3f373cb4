use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, Response};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

pin_project! {
    /// The response body of a layer that may answer by itself or replace what the inner service
    /// sent: the inner service's body; bytes of its own (a rendered [`Problem`](crate::error::Problem),
    /// a stored cache entry, a buffered body with its trailers); or bytes already read from the
    /// inner body followed by the rest of it (a body the cache began to buffer and let stream
    /// through).
    ///
    /// ```
    /// use bytes::Bytes;
    /// use http_body::Body;
    /// use protothrive::response::ResponseBody;
    ///
    /// let body: ResponseBody<http_body_util::Empty<Bytes>> = ResponseBody::full(Bytes::from("{}"));
    /// assert_eq!(body.size_hint().exact(), Some(2));
    /// ```
    #[derive(Debug)]
    pub struct ResponseBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    #[derive(Debug)]
    enum Kind<B> {
        Inner { #[pin] body: B },
        Full { data: Option<Bytes>, trailers: Option<Box<HeaderMap>> },
        Rest { prefix: Option<Bytes>, body: Pin<Box<B>> },
    }
}

impl<B> ResponseBody<B> {
    /// Wraps the inner service's body.
    pub fn inner(body: B) -> Self {
        Self {
            kind: Kind::Inner { body },
        }
    }

    /// A body of the given bytes.
    pub fn full(data: Bytes) -> Self {
        Self::buffered(data, None)
    }

    /// Bytes and the trailers that followed them (a buffered body).
    pub(crate) fn buffered(data: Bytes, trailers: Option<HeaderMap>) -> Self {
        Self {
            kind: Kind::Full {
                data: (!data.is_empty()).then_some(data),
                trailers: trailers.map(Box::new),
            },
        }
    }

    /// `prefix` (already read from `body`), then the rest of `body`.
    #[cfg(feature = "cache")]
    pub(crate) fn rest(prefix: Bytes, body: Pin<Box<B>>) -> Self {
        Self {
            kind: Kind::Rest {
                prefix: (!prefix.is_empty()).then_some(prefix),
                body,
            },
        }
    }

    /// Maps a response of the inner service.
    pub fn map_response(res: Response<B>) -> Response<Self> {
        res.map(Self::inner)
    }

    /// Maps a rendered problem.
    pub fn map_problem(res: Response<Bytes>) -> Response<Self> {
        res.map(Self::full)
    }
}

impl<B: Default> Default for ResponseBody<B> {
    fn default() -> Self {
        Self::inner(B::default())
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.project().kind.project() {
            KindProj::Inner { body } => body.poll_frame(cx),
            KindProj::Full { data, trailers } => Poll::Ready(
                data.take()
                    .map(Frame::data)
                    .or_else(|| trailers.take().map(|t| Frame::trailers(*t)))
                    .map(Ok),
            ),
            KindProj::Rest { prefix, body } => match prefix.take() {
                Some(p) => Poll::Ready(Some(Ok(Frame::data(p)))),
                None => body.as_mut().poll_frame(cx),
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Inner { body } => body.is_end_stream(),
            Kind::Full { data, trailers } => data.is_none() && trailers.is_none(),
            Kind::Rest { prefix, body } => prefix.is_none() && body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Inner { body } => body.size_hint(),
            Kind::Full { data, .. } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            Kind::Rest { prefix, body } => {
                let p = prefix.as_ref().map_or(0, |d| d.len() as u64);
                let inner = body.size_hint();
                let mut h = SizeHint::new();
                h.set_lower(inner.lower() + p);
                if let Some(u) = inner.upper() {
                    h.set_upper(u + p);
                }
                h
            }
        }
    }
}
