//! Active health checks: a `GET` of a path on every member, on an interval.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body_util::{Either, Full};
use tower_service::Service;

use super::service::{Shared, Upstreams};
use crate::error::ConfigError;

/// Active health checks of an [`Upstreams`] set: a `GET` of `path` on each member every
/// `interval`; a check passes on a 2xx within `timeout`. A member that fails `unhealthy_after`
/// checks in a row leaves the rotation; one that passes `healthy_after` in a row comes back.
///
/// ```
/// use std::time::Duration;
/// use protothrive::resilience::HealthCheck;
///
/// let check = HealthCheck::new("/healthz")
///     .interval(Duration::from_secs(5))
///     .timeout(Duration::from_secs(1))
///     .unhealthy_after(2)
///     .healthy_after(2);
/// assert_eq!(check.path(), "/healthz");
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct HealthCheck {
    path: String,
    /// The path as a request target, once validated.
    pub(super) target: Uri,
    pub(super) interval: Duration,
    pub(super) timeout: Duration,
    pub(super) unhealthy_after: u32,
    pub(super) healthy_after: u32,
}

impl HealthCheck {
    /// Checks of `path` (an origin-form target: `/health`, `/ready?full=1`); every 5 s, a 2 s
    /// timeout, out after 2 failures in a row, back after 1 pass.
    pub fn new(path: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            target: Uri::from_static("/"),
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(2),
            unhealthy_after: 2,
            healthy_after: 1,
        }
    }

    /// The path checked.
    #[must_use]
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The time between two rounds of checks (tokio's timer: the [`Clock`](crate::clock) has
    /// none).
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// How long a check may take before it counts as failed.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Failed checks in a row that take a member out of the rotation.
    pub fn unhealthy_after(mut self, checks: u32) -> Self {
        self.unhealthy_after = checks;
        self
    }

    /// Passed checks in a row that bring it back.
    pub fn healthy_after(mut self, checks: u32) -> Self {
        self.healthy_after = checks;
        self
    }

    pub(super) fn validate(&mut self) -> Result<(), ConfigError> {
        let err = |m: &str| {
            Err(ConfigError::new(format!(
                "health check {:?}: {m}",
                self.path
            )))
        };
        let Ok(uri) = self.path.parse::<Uri>() else {
            return err("the path is not a valid request target");
        };
        if !self.path.starts_with('/') || uri.authority().is_some() {
            return err("the path is an origin-form target, starting with `/`");
        }
        if self.interval.is_zero() || self.timeout.is_zero() {
            return err("the interval and the timeout are above zero");
        }
        if self.unhealthy_after == 0 || self.healthy_after == 0 {
            return err("unhealthy_after and healthy_after are at least 1");
        }
        self.target = uri;
        Ok(())
    }
}

/// The task running an [`Upstreams`] set's health checks: stopped when dropped.
#[derive(Debug)]
pub struct HealthChecks {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for HealthChecks {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl<S, B, ResBody> Upstreams<S, B>
where
    S: Service<Request<Either<Full<Bytes>, B>>, Response = Response<ResBody>>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send,
    B: Send + 'static,
    ResBody: Send + 'static,
{
    /// Runs one round of health checks, every member at once, and counts each result; returns
    /// whether each member passed, in the order they were added (empty without a
    /// [`HealthCheck`]). A member whose breaker is open with its wait over takes its check as
    /// the breaker's probe.
    pub async fn check(&self) -> Vec<bool> {
        let Some(health) = self.shared.health.clone() else {
            return Vec::new();
        };
        let tasks: Vec<_> = (0..self.shared.members.len())
            .map(|i| tokio::spawn(check_one(self.shared.clone(), i, health.clone())))
            .collect();
        let mut passed = Vec::with_capacity(tasks.len());
        for task in tasks {
            passed.push(task.await.unwrap_or(false));
        }
        passed
    }

    /// Runs [`check`](Self::check) every interval on the current tokio runtime, until the
    /// returned handle is dropped; `None` without a [`HealthCheck`].
    #[must_use = "the checks stop when the handle is dropped"]
    pub fn spawn_health_checks(&self) -> Option<HealthChecks> {
        let interval = self.shared.health.as_ref()?.interval;
        let set = self.clone();
        let task = tokio::spawn(async move {
            loop {
                set.check().await;
                tokio::time::sleep(interval).await;
            }
        });
        Some(HealthChecks { task })
    }
}

async fn check_one<S, B, ResBody>(shared: Arc<Shared<S>>, i: usize, health: HealthCheck) -> bool
where
    S: Service<Request<Either<Full<Bytes>, B>>, Response = Response<ResBody>> + Clone,
{
    let member = &shared.members[i];
    let mut req = Request::new(Either::Left(Full::new(Bytes::new())));
    *req.uri_mut() = health.target.clone();
    req.headers_mut().insert(
        http::header::USER_AGENT,
        http::HeaderValue::from_static("protothrive-health-check"),
    );
    let mut svc = member.service.clone();
    let call = async {
        std::future::poll_fn(|cx| svc.poll_ready(cx)).await.ok()?;
        svc.call(req).await.ok()
    };
    let passed = matches!(
        tokio::time::timeout(health.timeout, call).await,
        Ok(Some(res)) if res.status().is_success()
    );
    member.checked(passed, health.healthy_after, health.unhealthy_after);
    passed
}
