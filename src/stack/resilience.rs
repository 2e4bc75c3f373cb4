//! The resilience layers on the stack's clock, for routes and outbound clients.
//!
//! They go per route, like the cache: put the route's breaker (or timeout, or load shedder) on
//! it with `route_layer` *before* the cache, so the cache sits outside and answers a refusal
//! from a stale entry when the entry allows `stale-if-error` (its `Cache-Status` says
//! `fwd-status=503; detail=stale-if-error`).

use std::borrow::Cow;
use std::time::Duration;

use super::Stack;
use crate::resilience::{CircuitBreaker, CircuitBreakerBuilder, RetryBudget, TimeoutLayer};

impl Stack {
    /// A [`CircuitBreaker`] builder on the stack's clock (one breaker per dependency; share it
    /// between the routes and clients that call that dependency).
    ///
    /// ```
    /// use protothrive::resilience::CircuitBreakerLayer;
    /// use protothrive::stack::Stack;
    ///
    /// let stack = Stack::builder().build()?;
    /// let breaker = stack.circuit_breaker("reports").min_calls(20).build()?;
    /// let _per_route = CircuitBreakerLayer::new(breaker);
    /// # Ok::<(), protothrive::error::ConfigError>(())
    /// ```
    pub fn circuit_breaker(&self, name: impl Into<Cow<'static, str>>) -> CircuitBreakerBuilder {
        CircuitBreaker::builder(name).clock(self.clock().clone())
    }

    /// A handler deadline on the stack's clock: expiry answers 503 `TIMEOUT-503`, and the
    /// handler finds the [`Deadline`](crate::resilience::Deadline) in its request.
    ///
    /// ```
    /// use std::time::Duration;
    /// use protothrive::stack::Stack;
    ///
    /// let stack = Stack::builder().build()?;
    /// let _per_route = stack.handler_timeout(Duration::from_secs(2));
    /// # Ok::<(), protothrive::error::ConfigError>(())
    /// ```
    pub fn handler_timeout(&self, timeout: Duration) -> TimeoutLayer {
        TimeoutLayer::handler(timeout).clock(self.clock().clone())
    }

    /// An outbound call deadline on the stack's clock: expiry answers 504 `TIMEOUT-504`.
    pub fn outbound_timeout(&self, timeout: Duration) -> TimeoutLayer {
        TimeoutLayer::outbound(timeout).clock(self.clock().clone())
    }

    /// A [`RetryBudget`] on the stack's clock: retries of up to `percent`% of the requests of
    /// the last 10 s, and at least `min_per_sec` a second.
    #[must_use]
    pub fn retry_budget(&self, percent: u32, min_per_sec: u32) -> RetryBudget {
        RetryBudget::new(self.clock().clone(), percent, min_per_sec)
    }
}
