//! The connection behind a [`RedisHandle`](super::RedisHandle): one server's
//! `ConnectionManager`, or a Redis Cluster's connection (`redis-rs`'s `cluster-async`, which
//! follows `MOVED`/`ASK` and refreshes its slot map by itself).

use std::collections::HashMap;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster::{ClusterClientBuilder, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{
    MultipleNodeRoutingInfo, ResponsePolicy, Route, RoutingInfo, SingleNodeRoutingInfo, Slot,
    SlotAddr,
};
use redis::{Cmd, ConnectionAddr, IntoConnectionInfo, Pipeline, RedisFuture, RedisResult, Value};

/// A connection to one server or to a cluster; every store's commands go through it.
#[derive(Clone)]
pub(crate) enum Conn {
    /// One server, reconnected one attempt at a time by the breaker's probes.
    Single(ConnectionManager),
    /// A cluster: the connection routes each command by its key's slot.
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(cmd, offset, count),
            Self::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

impl Conn {
    /// Whether this is a cluster's connection.
    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }

    /// `PUBLISH` of `message` on `channel`. On a cluster every node forwards a `PUBLISH` to
    /// all others over the cluster bus, so it goes to the master of the channel's slot, and
    /// when that fails (the master is down) to every master, succeeding when one took it:
    /// subscribers then hear it once per master that took it (a purge applied twice is
    /// harmless), rather than not at all.
    #[cfg_attr(not(feature = "cache"), allow(dead_code))]
    pub(crate) async fn publish(&mut self, channel: &str, message: &str) -> RedisResult<()> {
        let mut cmd = redis::cmd("PUBLISH");
        cmd.arg(channel).arg(message);
        match self {
            Self::Single(c) => cmd.query_async::<i64>(c).await.map(|_| ()),
            Self::Cluster(c) => {
                let owner = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(
                    Route::with_key(channel, SlotAddr::Master),
                ));
                if c.route_command(cmd.clone(), owner).await.is_ok() {
                    return Ok(());
                }
                let all = RoutingInfo::MultiNode((
                    MultipleNodeRoutingInfo::AllMasters,
                    Some(ResponsePolicy::OneSucceeded),
                ));
                c.route_command(cmd, all).await.map(|_| ())
            }
        }
    }

    /// The cluster's masters, as `(host, port)` (from `CLUSTER SLOTS`); on one server, none.
    #[cfg_attr(not(feature = "cache"), allow(dead_code))]
    pub(crate) async fn masters(&mut self) -> RedisResult<Vec<(String, u16)>> {
        let Self::Cluster(c) = self else {
            return Ok(Vec::new());
        };
        let cmd = redis::cmd("CLUSTER").arg("SLOTS").clone();
        let any = RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random);
        let slots: Vec<Vec<Value>> = redis::from_redis_value(c.route_command(cmd, any).await?)?;
        let mut masters: Vec<(String, u16)> = Vec::new();
        for range in slots {
            // [start, end, [host, port, id, ...], replicas...]
            if let Some(Value::Array(node)) = range.get(2)
                && let (Some(host), Some(port)) = (node.first(), node.get(1))
            {
                let host: String = redis::from_redis_value_ref(host)?;
                let port: u16 = redis::from_redis_value_ref(port)?;
                if !masters.iter().any(|m| m.0 == host && m.1 == port) {
                    masters.push((host, port));
                }
            }
        }
        Ok(masters)
    }

    /// Runs `cmd` on the node at `host:port` (a cluster's `SCAN`, which has no key to route by).
    #[cfg_attr(not(feature = "cache"), allow(dead_code))]
    pub(crate) async fn on_node(&mut self, host: &str, port: u16, cmd: Cmd) -> RedisResult<Value> {
        match self {
            Self::Single(c) => cmd.query_async(c).await,
            Self::Cluster(c) => {
                let node = SingleNodeRoutingInfo::ByAddress {
                    host: host.to_owned(),
                    port,
                };
                c.route_command(cmd, RoutingInfo::SingleNode(node)).await
            }
        }
    }
}

/// Whether `url` names a cluster: a comma-separated list of node addresses.
pub(crate) fn is_cluster_url(url: &str) -> bool {
    url.contains(',')
}

/// The node URLs of a cluster URL (`redis://a:7000,redis://b:7001`), each checked; `None` when
/// one is not a Redis URL.
pub(crate) fn cluster_nodes(url: &str) -> Option<Vec<String>> {
    let nodes: Vec<String> = url
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .collect();
    let ok = nodes.len() >= 2
        && nodes.iter().all(|n| {
            n.as_str().into_connection_info().is_ok_and(|i| {
                matches!(
                    i.addr(),
                    ConnectionAddr::Tcp(..) | ConnectionAddr::TcpTls { .. }
                )
            })
        });
    ok.then_some(nodes)
}

/// A lazily connecting cluster connection over `nodes`, each call bounded by `timeout`.
///
/// Two retries follow a `MOVED`/`ASK` redirection or a node lost under a call (the slot map is
/// refreshed meanwhile), waiting 10 to 50 ms: within the stores' timeout, a redirection is
/// followed; a failover that takes longer is an outage the breaker covers.
pub(crate) fn cluster(nodes: &[String], timeout: Duration) -> RedisResult<ClusterConnection> {
    let client = ClusterClientBuilder::new(nodes.iter().map(String::as_str))
        .retries(2)
        .min_retry_wait(10)
        .max_retry_wait(50)
        .build()?;
    let config = ClusterConfig::new()
        .set_connection_timeout(timeout.max(Duration::from_millis(250)))
        .set_response_timeout(timeout);
    Ok(client.get_pending_async_connection_with_config(config))
}

/// Groups `keys` by hash slot, keeping each key's index: the keys of one group can go to one
/// script on a cluster.
#[cfg_attr(not(feature = "rate-limit"), allow(dead_code))]
pub(crate) fn by_slot<'a>(keys: impl IntoIterator<Item = &'a str>) -> Vec<Vec<usize>> {
    let mut groups: HashMap<Slot, usize> = HashMap::new();
    let mut out: Vec<Vec<usize>> = Vec::new();
    for (i, key) in keys.into_iter().enumerate() {
        let g = *groups.entry(Slot::for_key(key)).or_insert_with(|| {
            out.push(Vec::new());
            out.len() - 1
        });
        out[g].push(i);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_comma_separated_list_is_a_cluster_of_checked_nodes() {
        assert!(!is_cluster_url("redis://127.0.0.1:6379"));
        let url = "redis://127.0.0.1:7000, redis://127.0.0.1:7001,";
        assert!(is_cluster_url(url));
        assert_eq!(
            cluster_nodes(url).unwrap(),
            ["redis://127.0.0.1:7000", "redis://127.0.0.1:7001"]
        );
        assert_eq!(cluster_nodes("redis://127.0.0.1:7000,http://x"), None);
        assert_eq!(cluster_nodes("redis://127.0.0.1:7000,"), None, "one node");
    }

    #[test]
    fn keys_group_by_slot_and_hash_tags_share_one() {
        assert_eq!(by_slot(["{a}x", "b", "{a}y"]), vec![vec![0, 2], vec![1]]);
        assert_eq!(by_slot(["same", "same"]), vec![vec![0, 1]]);
    }
}
