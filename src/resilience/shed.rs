//! Priority load shedding over a concurrency limit, fixed or adaptive.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::adaptive::Adaptive;
use super::{Reason, refusal};
use crate::clock::SharedClock;
use crate::error::{ConfigError, code};
use crate::identity::Principal;
use crate::response::{ResponseBody, ResponseFuture};

/// Who is shed first when the service is overloaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Priority {
    /// No [`Principal`] in the request: shed first.
    Anonymous,
    /// A principal without the admin role.
    Authenticated,
    /// A principal with the admin role: shed last.
    Admin,
}

/// A concurrency limit shared by every clone of the layer (one per route or per service), that
/// sheds by [`Priority`]: anonymous requests may fill only part of it, authenticated ones a larger
/// part, admins all of it — so under overload anonymous traffic is refused first, then
/// authenticated, admin last. A refusal is a 503 problem `LOAD-503` with `Retry-After`, answered
/// before the inner service does any work. A request counts until its response head is ready.
///
/// With [`adaptive`](LoadShedBuilder::adaptive) the limit is a ceiling that latency lowers (see
/// the `adaptive` module: slow answers cut it by a tenth, fast ones under load raise it back),
/// and the shares apply to the limit of the moment.
///
/// ```
/// use std::convert::Infallible;
/// use http::{Request, Response};
/// use protothrive::identity::Principal;
/// use protothrive::resilience::LoadShedLayer;
/// use tower::{service_fn, Layer, Service, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // 10 in flight at most; anonymous callers up to 5, signed-in ones up to 9.
/// let layer = LoadShedLayer::builder(10).anonymous_share(50).authenticated_share(90).build()?;
/// let (tx, rx) = tokio::sync::watch::channel(false);
/// let mut svc = layer.layer(service_fn(move |_req: Request<()>| {
///     let mut rx = rx.clone();
///     async move {
///         let _ = rx.wait_for(|go| *go).await;
///         Ok::<_, Infallible>(Response::new(String::new()))
///     }
/// }));
/// let held: Vec<_> = (0..5).map(|_| svc.call(Request::new(()))).collect();
/// assert_eq!(layer.in_flight(), 5);
/// assert_eq!(svc.call(Request::new(())).await?.status(), 503, "anonymous shed at 5");
/// let mut signed_in = Request::new(());
/// signed_in.extensions_mut().insert(Principal::builder("ada").build());
/// let admitted = svc.call(signed_in);
/// assert_eq!(layer.in_flight(), 6);
/// tx.send(true)?;
/// drop((held, admitted));
/// assert_eq!(layer.in_flight(), 0);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct LoadShedLayer {
    state: Arc<State>,
}

#[derive(Debug)]
struct State {
    /// The limit, when it is fixed.
    limit: usize,
    /// The shares (percent) of the limit anonymous and authenticated requests may fill.
    shares: [usize; 2],
    adaptive: Option<Adaptive>,
    admin_role: String,
    retry_after: Duration,
    in_flight: AtomicUsize,
}

/// Builds a [`LoadShedLayer`].
#[derive(Debug)]
#[must_use]
pub struct LoadShedBuilder {
    limit: usize,
    anonymous: u8,
    authenticated: u8,
    admin_role: String,
    retry_after: Duration,
    adaptive: Option<(Duration, usize)>,
    clock: Option<SharedClock>,
}

impl LoadShedLayer {
    /// A limit of `limit` requests in flight. Defaults: anonymous requests may fill 50% of it,
    /// authenticated ones 90%, principals with role `admin` all; `Retry-After: 1`.
    pub fn builder(limit: usize) -> LoadShedBuilder {
        LoadShedBuilder {
            limit,
            anonymous: 50,
            authenticated: 90,
            admin_role: "admin".to_owned(),
            retry_after: Duration::from_secs(1),
            adaptive: None,
            clock: None,
        }
    }

    /// Requests in flight now.
    #[must_use]
    pub fn in_flight(&self) -> usize {
        self.state.in_flight.load(Ordering::Acquire)
    }

    /// The limit now: the configured one, or where the adaptive limit stands.
    #[must_use]
    pub fn limit(&self) -> usize {
        self.state.limit()
    }
}

impl State {
    fn limit(&self) -> usize {
        self.adaptive.as_ref().map_or(self.limit, Adaptive::limit)
    }

    /// The most requests of `priority` in flight now.
    fn cap(&self, priority: Priority) -> usize {
        let limit = self.limit();
        match priority {
            Priority::Anonymous => limit * self.shares[0] / 100,
            Priority::Authenticated => limit * self.shares[1] / 100,
            Priority::Admin => limit,
        }
    }
}

impl LoadShedBuilder {
    /// The share of the limit (percent) anonymous requests may fill.
    pub fn anonymous_share(mut self, percent: u8) -> Self {
        self.anonymous = percent;
        self
    }

    /// The share of the limit (percent) authenticated, non-admin requests may fill.
    pub fn authenticated_share(mut self, percent: u8) -> Self {
        self.authenticated = percent;
        self
    }

    /// The role whose holders may fill the whole limit (default `admin`).
    pub fn admin_role(mut self, role: impl Into<String>) -> Self {
        self.admin_role = role.into();
        self
    }

    /// The `Retry-After` of a refusal (rounded up to whole seconds, at least 1).
    pub fn retry_after(mut self, after: Duration) -> Self {
        self.retry_after = after;
        self
    }

    /// Makes the limit adaptive: the builder's limit becomes its ceiling and its start, an
    /// answer slower than `target` (or a 5xx, or an error) cuts it by a tenth (once per
    /// `target` at most) down to `min`, and an answer within `target` while at least half the
    /// limit is in use raises it by `1 / limit`. Latency is read from the [`clock`](Self::clock).
    ///
    /// ```
    /// use std::convert::Infallible;
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use http::{Request, Response};
    /// use protothrive::clock::ManualClock;
    /// use protothrive::resilience::LoadShedLayer;
    /// use tower::{service_fn, Layer, ServiceExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let clock = ManualClock::default();
    /// let layer = LoadShedLayer::builder(100)
    ///     .adaptive(Duration::from_millis(50), 10)
    ///     .clock(Arc::new(clock.clone()))
    ///     .build()?;
    /// let slow = clock.clone();
    /// let svc = layer.layer(service_fn(move |_req: Request<()>| {
    ///     slow.advance(Duration::from_millis(80));
    ///     async { Ok::<_, Infallible>(Response::new(String::new())) }
    /// }));
    /// svc.oneshot(Request::new(())).await?;
    /// assert_eq!(layer.limit(), 90, "an answer past the target cut it by a tenth");
    /// # Ok(())
    /// # }
    /// ```
    pub fn adaptive(mut self, target: Duration, min: usize) -> Self {
        self.adaptive = Some((target, min));
        self
    }

    /// The clock an [`adaptive`](Self::adaptive) limit reads latency from (default: the
    /// system clock).
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// The layer.
    ///
    /// # Errors
    /// A zero limit, a share above 100, an anonymous share above the authenticated one, or an
    /// adaptive limit with a zero target or a floor of zero or above the limit.
    pub fn build(self) -> Result<LoadShedLayer, ConfigError> {
        if self.limit == 0 || self.authenticated > 100 || self.anonymous > self.authenticated {
            return Err(ConfigError::new(
                "load shedding: the limit must be above zero and 0 ≤ anonymous share ≤ \
                 authenticated share ≤ 100",
            ));
        }
        let adaptive = match self.adaptive {
            None => None,
            Some((target, min)) if target.is_zero() || min == 0 || min > self.limit => {
                return Err(ConfigError::new(
                    "load shedding: an adaptive limit needs a target latency above zero and \
                     0 < floor ≤ limit",
                ));
            }
            Some((target, min)) => Some(Adaptive::new(
                min,
                self.limit,
                target,
                self.clock.unwrap_or_else(crate::clock::system),
            )),
        };
        Ok(LoadShedLayer {
            state: Arc::new(State {
                limit: self.limit,
                shares: [usize::from(self.anonymous), usize::from(self.authenticated)],
                adaptive,
                admin_role: self.admin_role,
                retry_after: self.retry_after,
                in_flight: AtomicUsize::new(0),
            }),
        })
    }
}

impl<S> Layer<S> for LoadShedLayer {
    type Service = LoadShed<S>;

    fn layer(&self, inner: S) -> Self::Service {
        LoadShed {
            inner,
            state: self.state.clone(),
        }
    }
}

/// The service of [`LoadShedLayer`].
#[derive(Debug, Clone)]
pub struct LoadShed<S> {
    inner: S,
    state: Arc<State>,
}

impl<S> LoadShed<S> {
    crate::macros::inner_service_accessors!();
}

/// The priority of a request, from its [`Principal`].
fn priority(extensions: &http::Extensions, admin_role: &str) -> Priority {
    match Principal::of(extensions) {
        None => Priority::Anonymous,
        Some(p) if p.has_role(admin_role) => Priority::Admin,
        Some(_) => Priority::Authenticated,
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for LoadShed<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ShedFuture<S::Future, ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let s = &*self.state;
        let cap = s.cap(priority(req.extensions(), &s.admin_role));
        let admitted = s
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < cap).then_some(n + 1)
            })
            .is_ok();
        if !admitted {
            metrics::counter!("protothrive_shed_total").increment(1);
            let res = refusal(
                StatusCode::SERVICE_UNAVAILABLE,
                code::OVERLOADED,
                "The service is overloaded; retry shortly.",
                Reason::Overloaded,
                Some(s.retry_after),
                req.extensions(),
            );
            return ShedFuture {
                inner: ResponseFuture::ready(ResponseBody::map_problem(res)),
                slot: None,
            };
        }
        let admitted = s.adaptive.as_ref().map_or(0, Adaptive::now);
        ShedFuture {
            inner: ResponseFuture::inner(self.inner.call(req)),
            slot: Some(Slot {
                state: self.state.clone(),
                admitted,
            }),
        }
    }
}

/// One request in flight; released on drop.
struct Slot {
    state: Arc<State>,
    /// When it was admitted, on an adaptive limit's clock.
    admitted: u64,
}

impl Slot {
    /// The request's answer is ready: an adaptive limit learns from it (a dropped request, never
    /// answered, teaches nothing).
    fn answered(&self, failed: bool) {
        if let Some(adaptive) = &self.state.adaptive {
            let in_flight = self.state.in_flight.load(Ordering::Acquire);
            adaptive.record(self.admitted, failed, in_flight);
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.state.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

pin_project! {
    /// The response future of [`LoadShed`]: holds the request's slot until the response head.
    pub struct ShedFuture<F, B, E> {
        #[pin]
        inner: ResponseFuture<F, B, E>,
        slot: Option<Slot>,
    }
}

impl<F, B, E> std::fmt::Debug for ShedFuture<F, B, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShedFuture").finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ShedFuture<F, B, E>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let out = std::task::ready!(this.inner.poll(cx));
        if let Some(slot) = this.slot.take() {
            slot.answered(
                out.as_ref()
                    .map_or(true, |res| res.status().is_server_error()),
            );
        }
        Poll::Ready(out)
    }
}
