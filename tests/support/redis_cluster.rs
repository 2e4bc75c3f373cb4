//! A real Redis Cluster on loopback, owned by one test: `redis-server --cluster-enabled yes` per
//! node on free ports, in a temporary directory, joined by `redis-cli --cluster create`; ready
//! once every node's `CLUSTER INFO` says `cluster_state:ok`. Dropping it kills every node and
//! removes the directory. [`Redis`] is either it or one [`RedisServer`], for the suites that run
//! on both.
//!
//! The nodes run with `cluster-require-full-coverage no` (the slots of a dead master fail, the
//! others keep serving), a 1 s node timeout (a dead master is marked failed, and a replica
//! promoted, within a few seconds) and `cluster-replica-validity-factor 0` (a replica takes over
//! even if it never finished its first sync).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::redis::RedisServer;

/// One node of a [`RedisCluster`].
struct Node {
    child: Option<Child>,
    port: u16,
}

/// A running cluster of `masters` masters with `replicas` replicas each.
pub(crate) struct RedisCluster {
    nodes: Vec<Node>,
    dir: PathBuf,
}

/// A free loopback port whose cluster bus port (+10000) is free too.
fn free_port() -> u16 {
    loop {
        let l = TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
        let port = l.local_addr().expect("local address").port();
        if port < 55_000 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

impl RedisCluster {
    /// Three masters, no replicas.
    pub(crate) fn start() -> Self {
        Self::with(3, 0)
    }

    /// `masters` masters with `replicas` replicas each (a failover needs one).
    pub(crate) fn with(masters: usize, replicas: usize) -> Self {
        let n = masters * (1 + replicas);
        let dir = std::env::temp_dir().join(format!(
            "protothrive-cluster-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let mut cluster = Self {
            nodes: (0..n)
                .map(|_| Node {
                    child: None,
                    port: free_port(),
                })
                .collect(),
            dir,
        };
        for i in 0..n {
            cluster.spawn(i);
        }
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for node in &cluster.nodes {
            create.arg(format!("127.0.0.1:{}", node.port));
        }
        let out = create
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli must be installed (./scripts/test installs it)");
        assert!(
            out.status.success(),
            "redis-cli --cluster create: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        cluster.wait_until_ok(&(0..n).collect::<Vec<_>>());
        cluster
    }

    fn spawn(&mut self, i: usize) {
        let port = self.nodes[i].port;
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                &format!("nodes-{port}.conf"),
                "--cluster-node-timeout",
                "1000",
                "--cluster-require-full-coverage",
                "no",
                // A replica takes over however long ago it last heard its master.
                "--cluster-replica-validity-factor",
                "0",
                "--dbfilename",
                &format!("dump-{port}.rdb"),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
            ])
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("redis-server must be installed (./scripts/test installs it)");
        self.nodes[i].child = Some(child);
        // Up to 10 s, polling every 20 ms.
        for _ in 0..500 {
            if self.cli(i, &["PING"]).trim() == "PONG" {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("node {port} did not start");
    }

    /// `redis-cli -p PORT ARGS...` on node `i`: its output (empty when it did not answer).
    pub(crate) fn cli(&self, i: usize, args: &[&str]) -> String {
        Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.nodes[i].port.to_string()])
            .args(args)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    /// Waits (polling every 50 ms, up to 30 s) until every node in `live` says
    /// `cluster_state:ok`.
    pub(crate) fn wait_until_ok(&self, live: &[usize]) {
        let ok = |i: &usize| {
            self.cli(*i, &["CLUSTER", "INFO"])
                .contains("cluster_state:ok")
        };
        for _ in 0..600 {
            if live.iter().all(ok) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the cluster did not become ok");
    }

    /// The comma-separated node URLs, the form `PROTOTHRIVE_REDIS_URL` takes for a cluster.
    pub(crate) fn url(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("redis://127.0.0.1:{}", n.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The port of node `i`.
    pub(crate) fn port(&self, i: usize) -> u16 {
        self.nodes[i].port
    }

    /// The index of the master that serves `key`'s slot now.
    pub(crate) fn master_of(&self, key: &str) -> usize {
        let slot: u16 = self
            .cli(0, &["CLUSTER", "KEYSLOT", key])
            .trim()
            .parse()
            .expect("a slot");
        for (i, _) in self.nodes.iter().enumerate() {
            let role = self.cli(i, &["ROLE"]);
            if role.starts_with("master") {
                let nodes = self.cli(i, &["CLUSTER", "NODES"]);
                let me = nodes
                    .lines()
                    .find(|l| l.contains("myself"))
                    .unwrap_or_default();
                if owns(me, slot) {
                    return i;
                }
            }
        }
        panic!("no master serves slot {slot}");
    }

    /// A command through a cluster connection (routed by its key; `KEYS` asks every master).
    pub(crate) async fn query<T: redis::FromRedisValue>(&self, args: &[&str]) -> T {
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        let nodes: Vec<String> = self.url().split(',').map(str::to_owned).collect();
        let client = redis::cluster::ClusterClient::new(nodes).unwrap();
        let mut conn = client.get_async_connection().await.unwrap();
        cmd.query_async(&mut conn).await.unwrap()
    }

    /// SIGKILL of node `i`: its connections drop, its slots fail until a replica takes over.
    pub(crate) fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Whether a `CLUSTER NODES` line lists `slot` among its ranges.
fn owns(line: &str, slot: u16) -> bool {
    line.split_whitespace().skip(8).any(|range| {
        let (a, b) = range.split_once('-').unwrap_or((range, range));
        matches!((a.parse::<u16>(), b.parse::<u16>()), (Ok(a), Ok(b)) if (a..=b).contains(&slot))
    })
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One Redis or a cluster, for the suites that run on both.
pub(crate) enum Redis {
    Single(RedisServer),
    Cluster(RedisCluster),
}

impl Redis {
    /// One `redis-server`.
    pub(crate) fn single() -> Self {
        Self::Single(RedisServer::start())
    }

    /// A 3-master cluster.
    pub(crate) fn cluster() -> Self {
        Self::Cluster(RedisCluster::start())
    }

    /// The URL the stores take: one server's, or the cluster's node list.
    pub(crate) fn url(&self) -> String {
        match self {
            Self::Single(s) => s.url(),
            Self::Cluster(c) => c.url(),
        }
    }

    /// A command on the server, or through a cluster connection (routed by its key).
    pub(crate) async fn query<T: redis::FromRedisValue>(&self, args: &[&str]) -> T {
        match self {
            Self::Single(s) => {
                let mut cmd = redis::cmd(args[0]);
                for a in &args[1..] {
                    cmd.arg(*a);
                }
                let client = redis::Client::open(s.url()).unwrap();
                let mut conn = client.get_multiplexed_async_connection().await.unwrap();
                cmd.query_async(&mut conn).await.unwrap()
            }
            Self::Cluster(c) => c.query(args).await,
        }
    }
}

/// Runs one test body on one Redis (`single`) and on a 3-master cluster (`cluster`): `$r` is the
/// [`Redis`] it runs on. The test's attributes (`#[tokio::test(...)]`) go on both.
#[allow(unused_macros)]
macro_rules! on_single_and_cluster {
    ($(#[$attr:meta])* async fn $name:ident($r:ident) $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            $(#[$attr])*
            async fn single() {
                let $r = $crate::support::redis_cluster::Redis::single();
                $body
            }

            $(#[$attr])*
            async fn cluster() {
                let $r = $crate::support::redis_cluster::Redis::cluster();
                $body
            }
        }
    };
}
#[allow(unused_imports)]
pub(crate) use on_single_and_cluster;
