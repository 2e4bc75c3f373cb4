//! Active health checks: what is checked, and how often.

use std::time::Duration;

use http::Uri;

use crate::error::ConfigError;

/// Active health checks of an [`Upstreams`](super::Upstreams) set: a `GET` of `path` on each member every
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
