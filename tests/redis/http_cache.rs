//! The HTTP cache with Redis as its L2: entries shared between instances, purges broadcast to
//! every instance's L1, and a Redis outage is a miss, never an error.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use protothrive::cache::redis::Subscription;
use protothrive::cache::{CacheHandle, CacheLayer, CacheTier, Purge, RedisTier};
use tokio::sync::mpsc;
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

use crate::support::redis::RedisServer;
use crate::support::redis_cluster::on_single_and_cluster;

type Svc = tower::util::BoxCloneSyncService<
    Request<Full<Bytes>>,
    Response<protothrive::cache::CacheBody<Full<Bytes>>>,
    Infallible,
>;

/// One instance: an origin counting its calls behind a cache whose L2 is `url`'s Redis, with a
/// subscription applying other instances' purges to its L1.
pub(crate) struct Instance {
    pub(crate) svc: Svc,
    pub(crate) handle: CacheHandle,
    pub(crate) tier: RedisTier,
    pub(crate) calls: Arc<AtomicUsize>,
    pub(crate) purges: mpsc::UnboundedReceiver<Purge>,
    _sub: Subscription,
}

fn instance(url: &str) -> Instance {
    instance_on(RedisTier::builder(url).build().unwrap(), "")
}

/// An instance on `tier` whose origin's bodies start with `name`.
pub(crate) fn instance_on(tier: RedisTier, name: &'static str) -> Instance {
    let layer = CacheLayer::builder()
        .tier(Arc::new(tier.clone()) as Arc<dyn CacheTier>)
        .build()
        .unwrap();
    let handle = layer.handle();
    let (tx, purges) = mpsc::unbounded_channel();
    let local = handle.clone();
    let sub = tier
        .subscribe(move |p| {
            local.invalidate_local(&p);
            let _ = tx.send(p);
        })
        .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let svc =
        ServiceBuilder::new()
            .layer(layer)
            .service(service_fn(move |req: Request<Full<Bytes>>| {
                let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                async move {
                    Ok::<_, Infallible>(
                        Response::builder()
                            .header("cache-control", "max-age=300")
                            .header("surrogate-key", "snippets")
                            .body(Full::new(Bytes::from(format!(
                                "{name}{} #{n}",
                                req.uri().path()
                            ))))
                            .unwrap(),
                    )
                }
            }));
    Instance {
        svc: tower::util::BoxCloneSyncService::new(svc),
        handle,
        tier,
        calls,
        purges,
        _sub: sub,
    }
}

pub(crate) async fn get(svc: &Svc, path: &str) -> (String, String) {
    let req = Request::get(format!("http://api.test{path}"))
        .body(Full::default())
        .unwrap();
    let res = svc.clone().oneshot(req).await.unwrap();
    let status = res.headers()["cache-status"].to_str().unwrap().to_owned();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (String::from_utf8(body.to_vec()).unwrap(), status)
}

on_single_and_cluster! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn instances_share_entries_and_a_purge_on_one_clears_the_others_l1(server) {
        let mut a = instance(&server.url());
        let mut b = instance(&server.url());
        assert_eq!(a.purges.recv().await, Some(Purge::All));
        assert_eq!(b.purges.recv().await, Some(Purge::All));

        let (body, status) = get(&a.svc, "/snippets").await;
        assert_eq!(body, "/snippets #1");
        assert!(status.contains("stored"), "{status}");
        // B has never seen it: L2 answers, B's origin is not called; then B's L1 does.
        let (body, _) = get(&b.svc, "/snippets").await;
        assert_eq!(body, "/snippets #1");
        assert_eq!(b.calls.load(Ordering::SeqCst), 0);
        let (body, status) = get(&b.svc, "/snippets").await;
        assert_eq!(body, "/snippets #1");
        assert!(status.contains("hit"), "{status}");
        assert_eq!(b.handle.l1_len(), 1);

        // A write on A purges the tag: Redis drops it and B's L1 hears it.
        a.handle.invalidate(Purge::Tag("snippets".into())).await;
        assert_eq!(b.purges.recv().await, Some(Purge::Tag("snippets".into())));
        assert_eq!(b.handle.l1_len(), 0);
        let (body, _) = get(&b.svc, "/snippets").await;
        assert_eq!(
            body, "/snippets #1",
            "B's own origin answers anew (its first call)"
        );
        assert_eq!(b.calls.load(Ordering::SeqCst), 1);
        let _ = a.purges.recv().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_redis_is_a_miss_and_never_an_error() {
    let mut server = RedisServer::start();
    let mut a = instance(&server.url());
    assert_eq!(a.purges.recv().await, Some(Purge::All));
    let (body, _) = get(&a.svc, "/x").await;
    assert_eq!(body, "/x #1");
    server.kill();
    // The subscription drops: purges may be missed from now on, so L1 is emptied.
    assert_eq!(a.purges.recv().await, Some(Purge::All));
    assert_eq!(a.handle.l1_len(), 0);
    // With neither tier the origin answers; nothing fails, and L1 serves again.
    let (body, _) = get(&a.svc, "/x").await;
    assert_eq!(body, "/x #2");
    let (body, status) = get(&a.svc, "/x").await;
    assert_eq!(body, "/x #2");
    assert!(status.contains("hit"), "{status}");
    for i in 0..5 {
        let mut svc = a.svc.clone();
        let req = Request::get(format!("http://api.test/y{i}"))
            .body(Full::default())
            .unwrap();
        let res = svc.ready().await.unwrap().call(req).await.unwrap();
        assert_eq!(res.status(), 200);
    }
    a.handle.invalidate(Purge::Tag("snippets".into())).await;
    assert_eq!(a.handle.l1_len(), 0);
    assert_eq!(a.calls.load(Ordering::SeqCst), 7);
}
