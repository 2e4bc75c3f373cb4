//! Write-through under interleaved writers and readers: no `GET` that starts after a write was
//! acknowledged ever answers an older representation — on one instance (L1 alone), and on two
//! instances sharing one real Redis — while the writes' representations are served as hits.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use protothrive::cache::{CacheLayer, CacheTier, Purge, RedisTier, WriteThrough};
use tower::{ServiceBuilder, ServiceExt, service_fn};

use crate::support::redis_cluster::on_single_and_cluster;

type Svc = tower::util::BoxCloneSyncService<
    Request<Full<Bytes>>,
    Response<protothrive::cache::CacheBody<Full<Bytes>>>,
    Infallible,
>;

const ITEMS: usize = 4;

/// The origin's data: one version per item, and how many reads reached it.
#[derive(Default)]
struct Data {
    versions: [AtomicU64; ITEMS],
    reads: AtomicUsize,
}

fn representation(item: usize, version: u64) -> Response<Full<Bytes>> {
    Response::builder()
        .header("cache-control", "max-age=300")
        .header("surrogate-key", format!("item:{item} items"))
        .body(Full::new(Bytes::from(format!("v{version}"))))
        .unwrap()
}

/// Yields a few times, so that tasks interleave at the points that matter.
async fn interleave(n: u64) {
    for _ in 0..(n % 4) {
        tokio::task::yield_now().await;
    }
}

/// `GET /items/{i}` reads the item's version (then yields before answering: a read that races a
/// write answers the old version); `PATCH /items/{i}` bumps it (the write), yields, and answers
/// with the new representation as a write-through that also purges the list tag.
fn origin(
    data: Arc<Data>,
) -> impl tower::Service<
    Request<Full<Bytes>>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future: Send,
> + Clone
+ Send
+ Sync
+ 'static {
    service_fn(move |req: Request<Full<Bytes>>| {
        let data = data.clone();
        async move {
            let item: usize = req
                .uri()
                .path()
                .rsplit('/')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            let host = req.headers().get("host").cloned();
            if req.method() == http::Method::GET {
                let v = data.versions[item].load(Ordering::SeqCst);
                data.reads.fetch_add(1, Ordering::SeqCst);
                interleave(v).await;
                return Ok(representation(item, v));
            }
            let v = data.versions[item].fetch_add(1, Ordering::SeqCst) + 1;
            interleave(v + 1).await;
            let mut get = Request::get(req.uri().clone());
            if let Some(h) = host {
                get = get.header("host", h);
            }
            let through = WriteThrough::new().purge(Purge::Tag("items".into())).put(
                get.body(()).unwrap(),
                representation(item, v).map(|_| format!("v{v}")),
            );
            let mut res = Response::new(Full::new(Bytes::from(format!("v{v}"))));
            res.extensions_mut().insert(through);
            Ok(res)
        }
    })
}

fn instance(data: &Arc<Data>, tier: Option<(RedisTier, u64)>) -> Svc {
    let mut builder = CacheLayer::builder();
    if let Some((tier, max_bytes)) = tier {
        builder = builder
            .tier(Arc::new(tier) as Arc<dyn CacheTier>)
            .max_bytes(max_bytes);
    }
    let layer = builder.build().unwrap();
    tower::util::BoxCloneSyncService::new(
        ServiceBuilder::new()
            .layer(layer)
            .service(origin(data.clone())),
    )
}

async fn send(svc: &Svc, method: &str, item: usize) -> (u64, bool) {
    let req = Request::builder()
        .method(method)
        .uri(format!("http://api.test/items/{item}"))
        .body(Full::default())
        .unwrap();
    let res = svc.clone().oneshot(req).await.unwrap();
    let hit = res
        .headers()
        .get("cache-status")
        .is_some_and(|v| v.to_str().unwrap().contains("; hit"));
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let v = std::str::from_utf8(&body).unwrap()[1..].parse().unwrap();
    (v, hit)
}

/// Writers and readers on `instances` in turn; every read that starts after a write of its item
/// was acknowledged must answer that version or a newer one. Returns the reads answered as hits.
async fn hammer(instances: &[Svc], tasks: usize, rounds: usize) -> usize {
    let acked: Arc<[AtomicU64; ITEMS]> = Arc::default();
    let hits = Arc::new(AtomicUsize::new(0));
    let mut all = Vec::new();
    for t in 0..tasks {
        let svc = instances[t % instances.len()].clone();
        let acked = acked.clone();
        let hits = hits.clone();
        all.push(tokio::spawn(async move {
            for r in 0..rounds {
                let item = (t * 7 + r * 3) % ITEMS;
                if (t + r) % 3 == 0 {
                    let (v, _) = send(&svc, "PATCH", item).await;
                    acked[item].fetch_max(v, Ordering::SeqCst);
                } else {
                    let floor = acked[item].load(Ordering::SeqCst);
                    let (v, hit) = send(&svc, "GET", item).await;
                    assert!(
                        v >= floor,
                        "item {item}: answered v{v} after v{floor} was acknowledged"
                    );
                    hits.fetch_add(usize::from(hit), Ordering::SeqCst);
                }
            }
        }));
    }
    for task in all {
        task.await.unwrap();
    }
    hits.load(Ordering::SeqCst)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_instance_never_answers_older_than_an_acknowledged_write() {
    let data = Arc::new(Data::default());
    let svc = instance(&data, None);
    let hits = hammer(std::slice::from_ref(&svc), 16, 60).await;
    assert!(hits > 0, "no read was a hit");
    // Quiet: a write is read back from the cache, the origin not asked.
    let (v, _) = send(&svc, "PATCH", 0).await;
    let reads = data.reads.load(Ordering::SeqCst);
    assert_eq!(send(&svc, "GET", 0).await, (v, true));
    assert_eq!(data.reads.load(Ordering::SeqCst), reads);
}

on_single_and_cluster! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_instances_on_one_redis_never_answer_older_than_an_acknowledged_write(server) {
        let data = Arc::new(Data::default());
        // L2 only (an entry never fits L1): every read of either instance goes through Redis, so the
        // instances see one another's writes at once (with L1s they would see them when the purge
        // broadcast arrives).
        let tier = || (RedisTier::builder(server.url()).build().unwrap(), 1);
        let instances = [instance(&data, Some(tier())), instance(&data, Some(tier()))];
        let _ = hammer(&instances, 16, 40).await;
        // Keys no purge touched in the last second (Redis judges by time, with a second for clock
        // skew): written on one instance, a hit on the other.
        let fresh = Arc::new(Data::default());
        let tier = || {
            let t = RedisTier::builder(server.url()).key_prefix("fresh:");
            (t.build().unwrap(), 1)
        };
        let (a, b) = (
            instance(&fresh, Some(tier())),
            instance(&fresh, Some(tier())),
        );
        let (v, _) = send(&a, "PATCH", 3).await;
        assert_eq!(send(&b, "GET", 3).await, (v, true));
        assert_eq!(fresh.reads.load(Ordering::SeqCst), 0);
    }
}

/// One step of a schedule: writer `w` takes its ticket, writes (the version goes up), or applies
/// its write-through; or a reader fills the cache from the origin.
#[derive(Debug, Clone, Copy)]
enum Step {
    Writer(usize),
    Fill,
}

/// Runs `schedule` (each writer's three steps in order, interleaved as given) against one cache
/// over one item, checking after every step that what the cache holds is never older than an
/// applied write, and that a write-through with no other write between its ticket and its
/// application is stored.
async fn run_schedule(writers: usize, schedule: &[Step]) {
    let data = Arc::new(Data::default());
    let layer = CacheLayer::builder().build().unwrap();
    let cache = layer.handle();
    let svc: Svc = tower::util::BoxCloneSyncService::new(
        ServiceBuilder::new()
            .layer(layer)
            .service(origin(data.clone())),
    );
    let cached = || async {
        let req = Request::get("http://api.test/items/0")
            .header("cache-control", "only-if-cached")
            .body(Full::default())
            .unwrap();
        let res = svc.clone().oneshot(req).await.unwrap();
        if res.status() == 504 {
            return None;
        }
        let body = res.into_body().collect().await.unwrap().to_bytes();
        Some(
            std::str::from_utf8(&body).unwrap()[1..]
                .parse::<u64>()
                .unwrap(),
        )
    };
    let mut next = vec![0; writers];
    let mut tickets = vec![None; writers];
    let mut versions = vec![0; writers];
    let mut applied = 0;
    let mut writes_since: Vec<usize> = vec![0; writers];
    for step in schedule {
        match *step {
            Step::Fill => {
                let _ = send(&svc, "GET", 0).await;
            }
            Step::Writer(w) => {
                match next[w] {
                    0 => {
                        tickets[w] = Some(cache.ticket());
                        writes_since[w] = 0;
                    }
                    1 => {
                        versions[w] = data.versions[0].fetch_add(1, Ordering::SeqCst) + 1;
                        for (o, n) in writes_since.iter_mut().enumerate() {
                            *n += usize::from(o != w);
                        }
                    }
                    _ => {
                        let v = versions[w];
                        let get = Request::get("http://api.test/items/0").body(()).unwrap();
                        let through = WriteThrough::new()
                            .purge(Purge::Tag("items".into()))
                            .put(get, representation(0, v).map(|_| format!("v{v}")));
                        let done = cache.write_through(tickets[w].unwrap(), through).await;
                        applied = applied.max(v);
                        for (o, n) in writes_since.iter_mut().enumerate() {
                            *n += usize::from(o != w);
                        }
                        if writes_since[w] == 0 {
                            assert_eq!(done.stored, 1, "alone since its ticket: stored");
                        }
                    }
                }
                next[w] += 1;
            }
        }
        if let Some(v) = cached().await {
            assert!(v >= applied, "holds v{v} after v{applied} was applied");
        }
    }
}

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config::with_cases(200))]

    /// Writers' tickets, writes and write-throughs interleaved in any order, with fills from the
    /// origin between them: the cache never holds a value older than an applied write.
    #[test]
    fn no_interleaving_leaves_an_older_value(
        writers in 1usize..5,
        picks in proptest::collection::vec(0usize..64, 0..40),
    ) {
        // Each pick chooses among the writers with steps left (or a fill, one choice more).
        let mut left = vec![3usize; writers];
        let mut schedule = Vec::new();
        for pick in picks.into_iter().chain(std::iter::repeat_n(0, 3 * writers)) {
            let open: Vec<usize> = (0..writers).filter(|&w| left[w] > 0).collect();
            if open.is_empty() {
                break;
            }
            match pick % (open.len() + 1) {
                0 if schedule.len() % 2 == 1 => schedule.push(Step::Fill),
                i => {
                    let w = open[i.max(1) - 1];
                    left[w] -= 1;
                    schedule.push(Step::Writer(w));
                }
            }
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(run_schedule(writers, &schedule));
    }
}
