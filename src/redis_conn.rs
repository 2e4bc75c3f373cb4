//! The one way this crate connects to Redis (feature `redis`): a lazily connecting
//! [`ConnectionManager`] that reconnects in the background with exponential backoff
//! (100 ms doubling to 2 s, forever) and bounds every answer by the store's timeout.

use std::time::Duration;

use redis::Client;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::error::ConfigError;

/// The connection manager settings for a store whose calls are bounded by `timeout`.
pub(crate) fn manager_config(timeout: Duration) -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout.max(Duration::from_millis(250))))
        .set_response_timeout(Some(timeout))
        .set_min_delay(Duration::from_millis(100))
        .set_max_delay(Duration::from_secs(2))
        .set_number_of_retries(usize::MAX)
}

/// A client for `url` and its lazily connecting manager. `what` names the store in errors.
///
/// Errors never quote the URL: it may hold a password.
pub(crate) fn connect(
    what: &str,
    url: &str,
    timeout: Duration,
) -> Result<(Client, ConnectionManager), ConfigError> {
    if timeout.is_zero() {
        return Err(ConfigError::new(format!(
            "the {what}'s timeout must be above zero"
        )));
    }
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(ConfigError::new(format!(
            "build the {what} inside a Tokio runtime (its connection runs there)"
        )));
    }
    let client = Client::open(url).map_err(|_| {
        ConfigError::new(format!(
            "the {what}'s Redis URL must look like redis://[:password@]host:port[/db]"
        ))
    })?;
    let conn = ConnectionManager::new_lazy_with_config(client.clone(), manager_config(timeout))
        .map_err(|e| {
            ConfigError::new(format!("{what}: Redis connection manager: {:?}", e.kind()))
        })?;
    Ok((client, conn))
}

/// After a call failed for want of the server (down, hung, unreachable), further calls fail at
/// once for a short while instead of each waiting out the timeout: during an outage one call per
/// interval probes, the others take the configured fallback immediately. A success (a probe,
/// or `PING`) closes it again.
#[derive(Debug)]
pub(crate) struct Breaker {
    clock: crate::clock::SharedClock,
    epoch: std::time::Instant,
    open_until: std::sync::atomic::AtomicU64,
}

/// How long calls fail fast after a failure.
pub(crate) const FAIL_FAST: Duration = Duration::from_millis(500);

impl Breaker {
    pub(crate) fn new() -> Self {
        let clock = crate::clock::system();
        let epoch = clock.instant();
        Self {
            clock,
            epoch,
            open_until: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(
            self.clock
                .instant()
                .saturating_duration_since(self.epoch)
                .as_nanos(),
        )
        .unwrap_or(u64::MAX)
    }

    /// Whether calls should fail at once now.
    pub(crate) fn is_open(&self) -> bool {
        self.now() < self.open_until.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A call failed for want of the server.
    pub(crate) fn trip(&self) {
        let until = self
            .now()
            .saturating_add(u64::try_from(FAIL_FAST.as_nanos()).unwrap_or(u64::MAX));
        self.open_until
            .store(until, std::sync::atomic::Ordering::Relaxed);
    }

    /// A call succeeded.
    pub(crate) fn close(&self) {
        self.open_until
            .store(0, std::sync::atomic::Ordering::Relaxed);
    }
}
