//! The invalidation broadcast between instances over Redis pub/sub: [`RedisTier::subscribe`]
//! (see [`RedisTier`] for what it guarantees; the messages are [`encode_purge`]'s).

use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::{Client, IntoConnectionInfo, ProtocolVersion, PushKind, Value};

use super::tier::RedisTier;
use super::wire::decode_purge;
use crate::cache::store::Purge;
use crate::error::ConfigError;

impl RedisTier {
    /// Calls `on_message` for every invalidation published on the channel, for as long as the
    /// returned [`Subscription`] lives; reconnects and resubscribes by itself, and reports
    /// [`Purge::All`] after each disconnect. Subscribing to a server that is down now is not
    /// an error: the subscription is made once it answers.
    ///
    /// # Errors
    /// The connection could not be set up (a configuration mistake).
    pub fn subscribe(
        &self,
        on_message: impl Fn(Purge) + Send + Sync + 'static,
    ) -> Result<Subscription, ConfigError> {
        let info = self
            .client
            .get_connection_info()
            .clone()
            .into_connection_info()
            .map_err(|_| ConfigError::new("the Redis URL of the cache tier"))?;
        let settings = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        let client = Client::open(info.set_redis_settings(settings))
            .map_err(|_| ConfigError::new("the Redis URL of the cache tier"))?;
        let channel = self.channel.clone();
        let push = move |info: redis::PushInfo| -> Result<(), std::convert::Infallible> {
            match info.kind {
                PushKind::Message => {
                    if let Some(Value::BulkString(payload)) = info.data.get(1)
                        && let Some(i) = std::str::from_utf8(payload).ok().and_then(decode_purge)
                    {
                        on_message(i);
                    }
                }
                // Disconnected: purges may be missed until the subscription is back; and once it
                // is (re)confirmed, whatever was published in between is lost to this instance.
                PushKind::Disconnection | PushKind::Subscribe => on_message(Purge::All),
                _ => {}
            }
            Ok(())
        };
        let config = crate::redis_handle::subscriber_config(self.timeout)
            .set_push_sender(push)
            .set_automatic_resubscription();
        let mut conn = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| ConfigError::new(format!("Redis subscription: {:?}", e.kind())))?;
        let task = tokio::spawn(async move {
            // Until the first SUBSCRIBE succeeds; afterwards the manager resubscribes itself.
            let mut wait = Duration::from_millis(50);
            loop {
                // The confirmation arrives as a `Subscribe` push: reported as `Purge::All`.
                if conn.subscribe(&*channel).await.is_ok() {
                    break;
                }
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(2));
            }
            // Keep the connection (and its resubscription) alive with the subscription.
            std::future::pending::<()>().await;
        });
        Ok(Subscription { task })
    }
}

/// A live subscription to invalidations; dropping it unsubscribes.
#[derive(Debug)]
pub struct Subscription {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.task.abort();
    }
}
