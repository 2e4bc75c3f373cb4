//! The gateway's `--redis` given a Redis Cluster (a comma-separated list of node addresses): what
//! it keeps in Redis — the per-client limit's state, the cache's L2 tier and its purges — is one
//! for two gateway processes on a real 3-master cluster.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::{Gateway, origin};
use crate::support::client;
use crate::support::redis_cluster::RedisCluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_on_a_cluster_share_one_per_client_limit() {
    let cluster = RedisCluster::start();
    let (up, calls) = origin().await;
    let nodes = cluster.url();
    let args: [&str; 8] = [
        "--upstream",
        &up,
        "--rate",
        "4/min burst 4",
        "--redis",
        &nodes,
        "--cache-mb",
        "0",
    ];
    let gateways = [Gateway::start(&args), Gateway::start(&args)];
    let mut statuses = Vec::new();
    for i in 0..8 {
        let res = client()
            .get(gateways[i % 2].url("/x"))
            .send()
            .await
            .unwrap();
        statuses.push(res.status().as_u16());
    }
    // 127.0.0.1's quota of 4 a minute holds across both: each alone would have allowed 4.
    assert_eq!(statuses, [200, 200, 200, 200, 429, 429, 429, 429]);
    assert_eq!(calls.load(Ordering::SeqCst), 4);
}

/// The site both gateways serve in the cache test.
const HOST: &str = "app.example";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_on_a_cluster_share_the_cache_and_its_purges() {
    let cluster = RedisCluster::start();
    let (up, calls) = origin().await;
    let nodes = cluster.url();
    let args: [&str; 6] = ["--upstream", &up, "--rate", "off", "--redis", &nodes];
    let (a, b) = (Gateway::start(&args), Gateway::start(&args));
    // One host for both: the cache's key is the host the client named, and each gateway
    // listens on a port of its own.
    let get = |gw: &Gateway| {
        let url = gw.url("/fresh");
        async move {
            let res = client().get(url).header("host", HOST).send().await.unwrap();
            let status = res.headers()["cache-status"].to_str().unwrap().to_owned();
            (res.text().await.unwrap(), status)
        }
    };
    let (body, status) = get(&a).await;
    assert_eq!(body, "answer #1");
    assert!(status.contains("; stored"), "{status}");
    // b never saw it: its answer comes from the L2 tier on the cluster, not from the origin.
    let (body, status) = get(&b).await;
    assert_eq!(body, "answer #1");
    assert!(status.starts_with("protothrive-gateway; hit"), "{status}");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // A POST through b invalidates the URI in the tier and, over pub/sub, in a's memory: a asks
    // the origin again once the purge has reached it.
    let posted = client()
        .post(b.url("/fresh"))
        .header("host", HOST)
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 200);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let body = loop {
        let (body, _) = get(&a).await;
        if body != "answer #1" || tokio::time::Instant::now() > deadline {
            break body;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(body, "answer #2", "the purge reached a within 10 s");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}
