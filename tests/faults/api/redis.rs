//! Redis behind the fault proxy, stopped (SIGSTOP) or killed (SIGKILL, then restarted): the
//! stores behind the API's one Redis connection take their fallbacks (local rate limits, local
//! revocations, no L2 cache), so clients see no error at all; the outage breaker opens on the
//! first failed call, lets one probe through per half second, and the first probe after the
//! fault closes it, whether the connection survived the fault or had to be made again.

use std::sync::Mutex;
use std::time::Duration;

use super::load::Kind;
use super::{Api, Inject, Outcome, Phases, ProxyFault, back_to, run, turn};
use crate::support::fault::{Fault, FaultProxy};
use crate::support::redis::RedisServer;

/// Reads, identity checks and writes: every request runs the rate limiter's script in Redis, `me`
/// checks revocations there, reads go through the cache's L2 there.
const MIX: &[Kind] = &[Kind::Read, Kind::Me, Kind::Write, Kind::Me];
/// The outage breaker's wait (`redis_handle::FAIL_FAST`).
const FAIL_FAST: Duration = Duration::from_millis(500);
/// How long after the fault cleared the breaker closes at the latest: its wait, then the
/// probe's own time on a loaded machine (a new connection, a restarted server's first script).
const CLOSE_BOUND: Duration = Duration::from_millis(FAIL_FAST.as_millis() as u64 + 1000);

struct Setup {
    /// Locked only to stop, kill or restart it.
    redis: Mutex<RedisServer>,
    proxy: FaultProxy,
    api: Api,
}

async fn setup() -> Setup {
    let redis = RedisServer::start();
    let proxy = FaultProxy::start(([127, 0, 0, 1], redis.port()).into()).await;
    let url = format!("redis://{}", proxy.addr());
    let api = Api::start(&[("PROTOTHRIVE_REDIS_URL", url.as_str())]).await;
    Setup {
        redis: Mutex::new(redis),
        proxy,
        api,
    }
}

/// The checks every Redis fault shares; `bound` is the stated recovery time.
async fn check(name: &str, out: &Outcome, api: &Api, bound: Duration) {
    out.assert_answers_documented();
    for s in &out.samples {
        assert!(
            s.ok(),
            "{name}: the stores' fallbacks answer every request: {s:?}"
        );
    }
    out.assert_writes_kept(api).await;
    let t = out.transitions;
    assert_eq!((t[1] - t[0]).open, 0, "{name}: closed before the fault");
    assert!(
        (t[2] - t[1]).open >= 1,
        "{name}: the outage breaker never opened"
    );
    // Its window is one call: the first request after the fault (one leaves every 40 ms) fails
    // within the handle's timeout (50 ms) and opens it.
    let opened = out.opened.unwrap_or_else(|| panic!("{name}: never opened"));
    assert!(
        opened <= Duration::from_millis(500),
        "{name}: opened {opened:?} into the fault"
    );
    let closed = out.closed.unwrap_or_else(|| panic!("{name}: never closed"));
    assert!(closed <= bound, "{name}: closed {closed:?} after the fault");
    // While Redis is out, at most one probe a FAIL_FAST interval leaves (its command and the
    // two `PING`s that make sure of a connection first), beside the calls in flight when it
    // failed and the purges a write publishes.
    let during = out.backend[2] - out.backend[1];
    let probes = (out.phases.fault.as_millis() / FAIL_FAST.as_millis()) as u64 + 1;
    let offered = (super::RATE * out.phases.fault.as_secs_f64()) as u64;
    assert!(
        during <= 3 * probes + 16 && during < offered,
        "{name}: {during} commands reached Redis during the fault ({offered} requests offered)"
    );
    let threshold = back_to(out.baseline_p99());
    let recovery = out.recovery(threshold);
    assert!(
        recovery <= bound,
        "{name}: recovered after {recovery:?} (bound {bound:?})"
    );
    out.report(&format!("redis {name}"), recovery, threshold);
}

/// After the fault the breaker closed with no probe failing before: the first probe closed it.
/// A call that takes longer than the handle's 50 ms afterwards (a loaded machine, a debug build)
/// may open it again; that is not held against the probe.
fn first_probe_closes(name: &str, out: &Outcome) {
    let first = out.until_closed;
    assert_eq!(first.closed, 1, "{name}: {first:?}");
    assert_eq!(first.open, 0, "{name}: probes failed first: {first:?}");
}

async fn outage(name: &str, fault: &mut impl Inject, s: &Setup) {
    let phases = Phases::ms(1500, 2000, 2500);
    let out = run(&s.api, phases, MIX, fault, "redis", || s.proxy.commands()).await;
    first_probe_closes(name, &out);
    check(name, &out, &s.api, CLOSE_BOUND).await;
}

/// Redis behind the proxy with `fault`.
async fn proxy_fault(fault: Fault, name: &str) {
    let _turn = turn().await;
    let s = setup().await;
    let mut inject = ProxyFault {
        proxy: &s.proxy,
        fault,
    };
    outage(name, &mut inject, &s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blackholed_redis_costs_no_request_an_error() {
    // The connection survives, and what was held back arrives late once the fault clears.
    proxy_fault(Fault::Blackhole, "blackhole").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_open_redis_costs_no_request_an_error() {
    // Redis runs the commands (the limiter's scripts count) but its answers are held back.
    proxy_fault(Fault::HalfOpen, "half-open").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resetting_redis_costs_no_request_an_error() {
    // Every connection is lost: the probe makes a new one before its command.
    proxy_fault(Fault::Reset, "reset").await;
}

/// Something done to the server, then undone.
struct Act<'a> {
    redis: &'a Mutex<RedisServer>,
    start: fn(&mut RedisServer),
    clear: fn(&mut RedisServer),
}

impl Inject for Act<'_> {
    async fn start(&mut self) {
        (self.start)(&mut self.redis.lock().unwrap());
    }

    async fn clear(&mut self) {
        (self.clear)(&mut self.redis.lock().unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_redis_costs_no_request_an_error() {
    let _turn = turn().await;
    let s = setup().await;
    let mut stop = Act {
        redis: &s.redis,
        start: |r| r.pause(),
        clear: |r| r.resume(),
    };
    outage("SIGSTOP", &mut stop, &s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_redis_costs_no_request_an_error() {
    let _turn = turn().await;
    let s = setup().await;
    // SIGKILL, then a new server on the same port.
    let mut kill = Act {
        redis: &s.redis,
        start: RedisServer::kill,
        clear: RedisServer::restart,
    };
    outage("SIGKILL", &mut kill, &s).await;
}
