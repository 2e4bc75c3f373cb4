//! Several instances of one upstream service behind one tower service: power-of-two-choices
//! balancing on requests in flight, passive health (ejection by a [`CircuitBreaker`](super::CircuitBreaker) per
//! member), active health checks, and retries of idempotent requests on another member within
//! a [`RetryBudget`](super::RetryBudget) — what a reverse proxy needs in front of N instances.
//!
//! Guarantees:
//!
//! * **Balancing**: each request goes to the less loaded (fewer requests awaiting a response
//!   head) of two members drawn at random among those in rotation — active-healthy and not
//!   ejected; with two members, always the less loaded one.
//! * **Passive health** (Envoy's consecutive-5xx outlier detection): a member whose last N calls
//!   all failed (a 5xx, or an error of its service: refused or reset connection, timeout) is
//!   ejected by its own breaker, on the injected [`Clock`](crate::clock), for a wait that
//!   doubles after each failed probe ([`UpstreamsBuilder::eject_after`]). Once the wait is over,
//!   one probe goes to it — the next client request that picks it, or its next active check —
//!   and it is back when the probe succeeds. An ejected member gets no traffic.
//! * **Active health** ([`HealthCheck`]): a `GET` of a path on every member each interval; a
//!   member failing N checks in a row (no 2xx within the timeout) leaves the rotation, and comes
//!   back after M passes in a row. When *every* member fails its checks the checks are ignored
//!   (Envoy's panic routing): a broken health endpoint alone takes nothing out of service.
//! * **Retries**: only a request whose body is known to fit the replay buffer; one that may be
//!   sent twice (an idempotent method, or an `Idempotency-Key`) on a 502, 503, 504 or an error
//!   of the member's service, any other (a POST without a key) only when the answer says it never
//!   left ([`NotSent`](super::NotSent): the connection was refused); each attempt on a
//!   member not yet tried; each retry of a request that was sent paid from the [`RetryBudget`](super::RetryBudget) (so a failing fleet sees at
//!   most the budget's extra load); never once the request's [`Deadline`](super::Deadline) has passed. No backoff
//!   between attempts: the next attempt goes to another member, not the one that failed.
//! * When no member may be called, a `503` problem `UPSTREAM-503` with `Retry-After` (the
//!   shortest ejection left) and a [`Refused`](super::Refused) extension, without calling anyone.
//!
//! ```
//! use std::convert::Infallible;
//! use std::sync::Arc;
//! use std::time::Duration;
//! use bytes::Bytes;
//! use http::{Method, Request, Response};
//! use http_body_util::{Either, Full};
//! use protothrive::clock::ManualClock;
//! use protothrive::resilience::{BreakerState, Upstreams};
//! use tower::{service_fn, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // One instance of the upstream service, answering with `status` (in real use, a client of one
//! // instance's address).
//! let instance = |status: u16| {
//!     service_fn(move |_req: Request<Either<Full<Bytes>, String>>| async move {
//!         Ok::<_, Infallible>(Response::builder().status(status).body(String::new()).unwrap())
//!     })
//! };
//! let clock = ManualClock::default();
//! let set = Upstreams::builder()
//!     .member("a", instance(200))
//!     .member("b", instance(503))
//!     .eject_after(2, Duration::from_secs(10))
//!     .clock(Arc::new(clock.clone()))
//!     .build()?;
//! // A GET that meets b's 503 is retried on a: every one succeeds.
//! for _ in 0..40 {
//!     let res = set.clone().oneshot(Request::get("/").body(String::new())?).await?;
//!     assert_eq!(res.status(), 200);
//! }
//! // b failed twice in a row: ejected for 10 s, it gets nothing, so even a POST succeeds.
//! assert_eq!(set.status()[1].breaker, BreakerState::Open);
//! let post = Request::builder().method(Method::POST).body(String::from("{}"))?;
//! assert_eq!(set.clone().oneshot(post).await?.status(), 200);
//! # Ok(())
//! # }
//! ```
//!
//! Why not tower's `balance::p2c` with `load::PendingRequests`: `Balance` owns its services
//! and takes `&mut self`, so sharing one between connections takes a `Buffer` (a channel and a
//! task hop per request), where this set is shared by every clone through atomics. It ejects
//! nothing itself: a member out of rotation would have to return `Pending` from `poll_ready` and
//! wake when its ejection ends — a tokio timer, not the injected clock — and with every member
//! out `Balance` waits rather than answering 503. A retry on *another* member cannot be asked of
//! it (each call picks afresh, maybe the member that just failed). And `PendingRequests` is not
//! `Clone`, counting through one `Arc` per service value. So the choice is written here, in
//! tower's way: the same two random draws and the same count as
//! `PendingRequests` with `CompleteOnResponse` (a request is in flight until its response head).
//! The `upstreams` benchmark sets it beside tower's `Balance`.
//!
//! Cost per request: one allocation for the members' loads, one random number (a keyed hash of
//! a counter), two atomic operations for the in-flight count, the breaker's admission (one atomic
//! load when closed) and outcome (a short uncontended lock), and a boxed future. A request that
//! may be retried has its body buffered (up to [`UpstreamsBuilder::max_body`]) and its parts
//! cloned per attempt, as [`RetryLayer`](super::RetryLayer) does. Active checks cost one `GET`
//! per member per interval, on a spawned task.

mod builder;
mod checks;
mod health;
mod member;
mod select;
mod service;

pub use builder::UpstreamsBuilder;
pub use checks::HealthChecks;
pub use health::HealthCheck;
pub use member::MemberStatus;
pub use service::Upstreams;
