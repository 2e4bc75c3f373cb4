//! Two ProtoThrive API processes sharing one Redis (or one Redis Cluster) enforce one rate limit
//! between them, and report Redis in their readiness check; with Redis killed they follow the configured policy.

use crate::example::Server;
use crate::support::client;
use crate::support::process::Server as Process;
use crate::support::redis::RedisServer;
use crate::support::redis_cluster::on_single_and_cluster;

const LIMITS: &str = "ip=4/60s:4,login=1000/300s:1000,register=1000/900s:1000";

on_single_and_cluster! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_instances_share_one_limit_through_redis(redis) {
        let url = redis.url();
        let env = [
            ("PROTOTHRIVE_RATE_LIMITS", LIMITS),
            ("PROTOTHRIVE_REDIS_URL", url.as_str()),
        ];
        let a = Process::start_with(&env);
        let b = Process::start_with(&env);

        let ready: serde_json::Value = client()
            .get(a.url("/api/health/ready"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(ready["data"]["checks"]["redis"], "up", "{ready}");

        // 4 per minute for 127.0.0.1, whichever instance answers: the 5th and 6th are refused.
        let mut statuses = Vec::new();
        for (i, server) in [&a, &b, &a, &b, &a, &b].into_iter().enumerate() {
            let res = client()
                .get(server.url("/api/health/live"))
                .send()
                .await
                .unwrap();
            statuses.push(res.status().as_u16());
            if i == 5 {
                assert_eq!(res.headers()["ratelimit-policy"], r#""ip";q=4;w=60"#);
                let body: serde_json::Value = res.json().await.unwrap();
                assert_eq!(body["code"], "RATE-429");
            }
        }
        // The readiness probe above counted as one.
        assert_eq!(statuses, [200, 200, 200, 429, 429, 429]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_redis_fails_closed_when_configured() {
    let mut redis = RedisServer::start();
    let url = redis.url();
    let server = Server::start_with(&[
        ("PROTOTHRIVE_RATE_LIMITS", LIMITS),
        ("PROTOTHRIVE_REDIS_URL", url.as_str()),
        ("PROTOTHRIVE_RATE_LIMIT_ON_REDIS_ERROR", "closed"),
    ]);
    let res = client()
        .get(server.url("/api/health/live"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    redis.kill();
    let res = client()
        .get(server.url("/api/health/live"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["retry-after"], "1");
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["code"], "SRV-503");
}

/// Two instances on one database and one Redis: a token logged out on one is refused by the
/// other at once (it was accepted there a moment before, and its verification is cached), and
/// still after that instance restarts. Each instance consults Redis: nothing to wait for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_on_one_instance_is_refused_by_the_other() {
    let redis = RedisServer::start();
    let url = redis.url();
    let limits = crate::api::LOOSE_LIMITS;
    let a = Process::start_with(&[
        ("PROTOTHRIVE_RATE_LIMITS", limits),
        ("PROTOTHRIVE_REDIS_URL", url.as_str()),
    ]);
    let shared_db = a.database_url.clone();
    let mut b = Process::start_with(&[
        ("PROTOTHRIVE_RATE_LIMITS", limits),
        ("PROTOTHRIVE_REDIS_URL", url.as_str()),
        ("PROTOTHRIVE_DATABASE_URL", shared_db.as_str()),
    ]);
    let token = crate::support::login(&a, crate::support::DEMO).await;
    let me = |server: &Process| {
        client()
            .get(server.url("/api/v1/auth/me"))
            .bearer_auth(&token)
            .send()
    };
    for server in [&a, &b, &b] {
        assert_eq!(me(server).await.unwrap().status(), 200);
    }
    let out = client()
        .post(a.url("/api/v1/auth/logout"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 200);
    for server in [&b, &a] {
        let res = me(server).await.unwrap();
        assert_eq!(res.status(), 401);
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["code"], "AUTH-401");
    }
    b.restart();
    assert_eq!(me(&b).await.unwrap().status(), 401);
}

/// Readiness: the database is required, Redis optional; both up is `healthy`, Redis killed is
/// `degraded` and still 200 (the limits fall back as configured), as the contract says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_degrades_when_redis_dies() {
    let mut redis = RedisServer::start();
    let url = redis.url();
    let server = Server::start_with(&[
        ("PROTOTHRIVE_RATE_LIMITS", crate::api::LOOSE_LIMITS),
        ("PROTOTHRIVE_REDIS_URL", url.as_str()),
    ]);
    let ready = || async {
        let res = client()
            .get(server.url("/api/v1/health/ready"))
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let body: serde_json::Value = res.json().await.unwrap();
        (status, body["data"].clone())
    };
    let (status, data) = ready().await;
    assert_eq!(status, 200);
    assert_eq!(
        data,
        serde_json::json!({"status": "healthy", "checks": {"database": "up", "redis": "up"}})
    );
    redis.kill();
    let (status, data) = ready().await;
    assert_eq!(status, 200);
    assert_eq!(
        data,
        serde_json::json!({"status": "degraded", "checks": {"database": "up", "redis": "down"}})
    );
}
