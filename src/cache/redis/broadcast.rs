//! The invalidation broadcast between instances over Redis pub/sub: [`RedisTier::subscribe`]
//! (see [`RedisTier`] for what it guarantees; the messages are [`encode_purge`]'s).
//!
//! On a Redis Cluster a `PUBLISH` reaches every node over the cluster bus, so one subscription
//! on any node hears every purge; the subscription is made on the first node of the list that
//! answers, and when that node is lost (its connection drops, or a `PING` after a quiet second
//! goes unanswered) it moves to the next one, delivering [`Purge::All`] for what it may have missed.
//! (`redis-rs`'s own cluster subscription follows the channel's slot, whose master may be the
//! one that died with no replica to take over.)

use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::{
    AsyncConnectionConfig, Client, ConnectionInfo, IntoConnectionInfo, ProtocolVersion, PushInfo,
    PushKind, Value,
};

use super::tier::RedisTier;
use super::wire::decode_purge;
use crate::cache::store::Purge;
use crate::error::ConfigError;
use crate::redis_handle::Target;

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
        let info = match &self.target {
            Target::Single(client) => client.get_connection_info().clone(),
            Target::Cluster(nodes) => {
                let nodes = nodes
                    .iter()
                    .map(|n| resp3(n.as_str().into_connection_info()))
                    .collect::<Result<Vec<_>, _>>()?;
                let task = tokio::spawn(follow_nodes(
                    nodes,
                    self.channel.clone(),
                    self.timeout,
                    Arc::new(on_message),
                ));
                return Ok(Subscription { task });
            }
        };
        let client = Client::open(resp3(Ok(info))?)
            .map_err(|_| ConfigError::new("the Redis URL of the cache tier"))?;
        let channel = self.channel.clone();
        let push = move |info: PushInfo| -> Result<(), std::convert::Infallible> {
            deliver(&info, &on_message);
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

/// `info` speaking RESP3 (the subscription's messages arrive as pushes on a connection that
/// still answers commands).
fn resp3(info: redis::RedisResult<ConnectionInfo>) -> Result<ConnectionInfo, ConfigError> {
    let info = info.map_err(|_| ConfigError::new("the Redis URL of the cache tier"))?;
    let settings = info
        .redis_settings()
        .clone()
        .set_protocol(ProtocolVersion::RESP3);
    Ok(info.set_redis_settings(settings))
}

/// Hands a push to `on_message`: a purge, or [`Purge::All`] for a disconnect (purges may be
/// missed until the subscription is back) and a (re)confirmed subscription (whatever was
/// published in between is lost to this instance).
fn deliver(info: &PushInfo, on_message: &(impl Fn(Purge) + ?Sized)) {
    match info.kind {
        PushKind::Message => {
            if let Some(Value::BulkString(payload)) = info.data.get(1)
                && let Some(i) = std::str::from_utf8(payload).ok().and_then(decode_purge)
            {
                on_message(i);
            }
        }
        PushKind::Disconnection | PushKind::Subscribe => on_message(Purge::All),
        _ => {}
    }
}

type OnMessage = Arc<dyn Fn(Purge) + Send + Sync>;

/// A cluster's subscription: on each node in turn, for as long as it lasts; after a round in
/// which no node answered, waits 50 ms doubling to 2 s.
async fn follow_nodes(
    nodes: Vec<ConnectionInfo>,
    channel: Arc<str>,
    timeout: Duration,
    on_message: OnMessage,
) {
    let mut wait = Duration::from_millis(50);
    for (round, node) in nodes.iter().cycle().enumerate() {
        if listen(node.clone(), &channel, timeout, &on_message).await {
            wait = Duration::from_millis(50);
        } else if (round + 1) % nodes.len() == 0 {
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(2));
        }
    }
}

/// Subscribes on one node and delivers its purges until it is lost; whether it subscribed.
async fn listen(node: ConnectionInfo, channel: &str, timeout: Duration, on: &OnMessage) -> bool {
    let patience = timeout.max(Duration::from_millis(250));
    let (tx, mut pushes) = tokio::sync::mpsc::unbounded_channel::<PushInfo>();
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(patience))
        .set_response_timeout(Some(patience))
        .set_push_sender(tx);
    let Ok(client) = Client::open(node) else {
        return false;
    };
    let Ok(mut conn) = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
    else {
        return false;
    };
    if conn.subscribe(channel).await.is_err() {
        return false;
    }
    loop {
        match tokio::time::timeout(Duration::from_secs(1), pushes.recv()).await {
            Ok(Some(p)) if p.kind == PushKind::Disconnection => break,
            Ok(Some(p)) => deliver(&p, &**on),
            Ok(None) => break,
            // A quiet second: make sure the node still answers.
            Err(_) => {
                let ping = redis::cmd("PING");
                let ping = ping.query_async::<String>(&mut conn);
                if !matches!(tokio::time::timeout(patience, ping).await, Ok(Ok(_))) {
                    break;
                }
            }
        }
    }
    on(Purge::All);
    true
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
