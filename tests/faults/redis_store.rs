//! The Redis stores' outage breaker (one `RedisHandle`) through the fault proxy to a real
//! `redis-server`: a fault costs one timeout, then calls fail fast without reaching Redis; once
//! the fault clears one probe closes the breaker.

use std::sync::Arc;
use std::time::Duration;

use protothrive::clock::{ManualClock, SharedClock};
use protothrive::rate_limit::{Quota, RedisStore, RemoteStore, StoreErrorKind};
use protothrive::redis_handle::RedisHandle;

use crate::support::fault::{Fault, FaultProxy};
use crate::support::redis::RedisServer;

/// The outage breaker's wait (the handle's `FAIL_FAST`).
const FAIL_FAST: Duration = Duration::from_millis(500);

struct Setup {
    server: RedisServer,
    proxy: FaultProxy,
    clock: ManualClock,
    store: RedisStore,
}

async fn setup() -> Setup {
    let server = RedisServer::start();
    let proxy = FaultProxy::start(([127, 0, 0, 1], server.port()).into()).await;
    let clock = ManualClock::default();
    let shared: SharedClock = Arc::new(clock.clone());
    let handle = RedisHandle::builder(format!("redis://{}", proxy.addr()))
        .timeout(Duration::from_millis(100))
        .clock(shared)
        .build()
        .unwrap();
    let store = RedisStore::from_handle(&handle).build().unwrap();
    Setup {
        server,
        proxy,
        clock,
        store,
    }
}

fn quota() -> Quota {
    "1000/s".parse().unwrap()
}

impl Setup {
    async fn check(&self) -> Result<(), StoreErrorKind> {
        self.store
            .check_many(vec![("k".into(), quota())], 0)
            .await
            .map(|_| ())
            .map_err(|e| e.kind())
    }

    /// The first probe after the wait closes the breaker, whether the connection survived the
    /// fault or must be made again.
    async fn recovers(&self, what: &str) {
        self.clock.advance(FAIL_FAST);
        assert_eq!(
            self.check().await,
            Ok(()),
            "{what}: the first probe closes it"
        );
    }
}

async fn outage(fault: Fault) {
    let s = setup().await;
    for _ in 0..5 {
        assert_eq!(s.check().await, Ok(()));
    }
    s.proxy.set(fault);
    let first = s.check().await.unwrap_err();
    assert!(
        matches!(
            first,
            StoreErrorKind::Timeout | StoreErrorKind::Unavailable | StoreErrorKind::Protocol
        ),
        "{first:?}"
    );
    let reached = s.proxy.forwarded();
    for _ in 0..50 {
        assert_eq!(
            s.check().await,
            Err(StoreErrorKind::Unavailable),
            "{fault:?}"
        );
    }
    assert_eq!(
        s.proxy.forwarded(),
        reached,
        "{fault:?}: nothing reached Redis while open"
    );
    s.proxy.set(Fault::None);
    s.recovers(&format!("{fault:?}")).await;
    for _ in 0..5 {
        assert_eq!(s.check().await, Ok(()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blackholed_redis_costs_one_timeout() {
    outage(Fault::Blackhole).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resetting_redis_fails_fast() {
    outage(Fault::Reset).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_open_redis_costs_one_timeout() {
    outage(Fault::HalfOpen).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_redis_then_a_killed_one_recover_with_one_probe() {
    let mut s = setup().await;
    assert_eq!(s.check().await, Ok(()));
    s.server.pause();
    assert_eq!(s.check().await, Err(StoreErrorKind::Timeout));
    assert_eq!(s.check().await, Err(StoreErrorKind::Unavailable));
    s.server.resume();
    s.recovers("SIGSTOP").await;
    s.server.kill();
    // The request under way when it died may time out or find the connection gone.
    assert!(matches!(
        s.check().await,
        Err(StoreErrorKind::Timeout | StoreErrorKind::Unavailable)
    ));
    assert_eq!(s.check().await, Err(StoreErrorKind::Unavailable));
    s.server.restart();
    s.recovers("SIGKILL").await;
}
