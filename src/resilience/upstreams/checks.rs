//! Running the active health checks: a `GET` of the path on every member, on an interval.

use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{Either, Full};
use tower_service::Service;

use super::health::HealthCheck;
use super::service::{Shared, Upstreams};
use crate::resilience::bounds::{ReplayBody, ReplayService};

/// The task running an [`Upstreams`] set's health checks: stopped when dropped.
///
/// ```
/// use std::convert::Infallible;
/// use bytes::Bytes;
/// use http::{Request, Response};
/// use http_body_util::{Either, Full};
/// use protothrive::resilience::{HealthCheck, Upstreams};
/// use tower::service_fn;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), protothrive::error::ConfigError> {
/// let instance = service_fn(|_req: Request<Either<Full<Bytes>, String>>| async {
///     Ok::<_, Infallible>(Response::new(String::new()))
/// });
/// let set: Upstreams<_, String> = Upstreams::builder()
///     .member("a", instance)
///     .health_check(HealthCheck::new("/health"))
///     .build()?;
/// let checks = set.spawn_health_checks().expect("a check is configured");
/// drop(checks); // stops them
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct HealthChecks {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for HealthChecks {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl<S, B> Upstreams<S, B>
where
    S: ReplayService<B> + Sync,
    B: ReplayBody,
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
