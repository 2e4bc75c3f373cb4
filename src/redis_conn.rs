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
