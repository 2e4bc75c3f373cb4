//! A layer that is present or not, at the cost of one branch.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tower_service::Service;

/// How the response of a left-out layer is made to look like the present layer's.
pub trait MapOff<R> {
    /// The present layer's response type.
    type Out;
    /// Converts the inner service's response.
    fn map(response: R) -> Self::Out;
}

/// For layers that keep the response type (client IP, request id, security headers).
#[derive(Debug, Clone, Copy)]
pub enum Same {}

impl<R> MapOff<R> for Same {
    type Out = R;
    fn map(response: R) -> R {
        response
    }
}

/// One position of the [`Stack`](super::Stack): the layer's service (`On`), or the service it
/// would have wrapped (`Off`), whose responses `M` makes the same type.
pub struct Slot<A, B, M> {
    either: Either<A, B>,
    _map: PhantomData<fn() -> M>,
}

#[derive(Clone)]
enum Either<A, B> {
    On(A),
    Off(B),
}

impl<A, B, M> Slot<A, B, M> {
    pub(crate) fn on(service: A) -> Self {
        Self {
            either: Either::On(service),
            _map: PhantomData,
        }
    }

    pub(crate) fn off(service: B) -> Self {
        Self {
            either: Either::Off(service),
            _map: PhantomData,
        }
    }

    /// Whether the layer of this position is present.
    #[must_use]
    pub fn is_on(&self) -> bool {
        matches!(self.either, Either::On(_))
    }
}

impl<A: Clone, B: Clone, M> Clone for Slot<A, B, M> {
    fn clone(&self) -> Self {
        Self {
            either: self.either.clone(),
            _map: PhantomData,
        }
    }
}

impl<A, B, M> fmt::Debug for Slot<A, B, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Slot").field("on", &self.is_on()).finish()
    }
}

impl<A, B, M, Req> Service<Req> for Slot<A, B, M>
where
    A: Service<Req>,
    B: Service<Req, Error = A::Error>,
    M: MapOff<B::Response, Out = A::Response>,
{
    type Response = A::Response;
    type Error = A::Error;
    type Future = SlotFuture<A::Future, B::Future, M>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        match &mut self.either {
            Either::On(a) => a.poll_ready(cx),
            Either::Off(b) => b.poll_ready(cx),
        }
    }

    #[inline]
    fn call(&mut self, req: Req) -> Self::Future {
        let kind = match &mut self.either {
            Either::On(a) => Kind::On {
                future: a.call(req),
            },
            Either::Off(b) => Kind::Off {
                future: b.call(req),
            },
        };
        SlotFuture {
            kind,
            _map: PhantomData,
        }
    }
}

pin_project! {
    /// The response future of a [`Slot`].
    pub struct SlotFuture<FA, FB, M> {
        #[pin]
        kind: Kind<FA, FB>,
        _map: PhantomData<fn() -> M>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<FA, FB> {
        On { #[pin] future: FA },
        Off { #[pin] future: FB },
    }
}

impl<FA, FB, M> fmt::Debug for SlotFuture<FA, FB, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlotFuture").finish_non_exhaustive()
    }
}

impl<FA, FB, M, RA, RB, E> Future for SlotFuture<FA, FB, M>
where
    FA: Future<Output = Result<RA, E>>,
    FB: Future<Output = Result<RB, E>>,
    M: MapOff<RB, Out = RA>,
{
    type Output = Result<RA, E>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::On { future } => future.poll(cx),
            KindProj::Off { future } => future.poll(cx).map(|r| r.map(M::map)),
        }
    }
}
