//! The agent service behind the fault proxy: agent runs fail fast (502 `AGENT-502` while the
//! breaker counts, then 503 `SRV-503` with `Retry-After` while it is open), the rest of the API
//! is untouched, and one probe closes the breaker once the path is clean.

use std::time::Duration;

use super::load::Kind;
use super::{AgentPath, Phases, ProxyFault, Transitions, back_to, run, turn};
use crate::support::fault::Fault;

/// The API's per-attempt timeout to the agent service here.
const ATTEMPT_MS: u64 = 250;
/// The agent breaker's first open wait here; it doubles up to six times this.
const WAIT_MS: u64 = 300;
/// The agent client's attempts per run (`agent::MAX_ATTEMPTS`).
const MAX_ATTEMPTS: u32 = 3;
/// The breaker's minimum of calls in its window (`agent.rs`).
const MIN_CALLS: usize = 10;
/// Half the load is agent runs, a quarter reads, a quarter roadmap writes.
const MIX: &[Kind] = &[Kind::Run, Kind::Read, Kind::Run, Kind::Write];

async fn agent_outage(fault: Fault, name: &str) {
    let _turn = turn().await;
    let AgentPath { agent, proxy, api } = AgentPath::start(&[
        ("PROTOTHRIVE_AGENT_TIMEOUT_MS", &ATTEMPT_MS.to_string()),
        ("PROTOTHRIVE_AGENT_BREAKER_WAIT_MS", &WAIT_MS.to_string()),
    ])
    .await;
    let phases = Phases::ms(1500, 2000, 3000);
    let mut inject = ProxyFault {
        proxy: &proxy,
        fault,
    };
    let out = run(&api, phases, MIX, &mut inject, "agent", || agent.calls()).await;
    out.assert_answers_documented();
    out.assert_writes_kept(&api).await;

    // Closed before the fault; open within its window during it. The window (the last 30 s,
    // at least 10 calls) opens at 50% failures: the failed attempts it needs are as many as the
    // successes it holds, so the runs that failed before the first refusal (each at least one
    // failed attempt) are at most the baseline's successful runs, or the minimum of calls.
    let t = out.transitions;
    assert_eq!(
        t[1] - t[0],
        Transitions::default(),
        "{name}: closed before the fault"
    );
    assert!((t[2] - t[1]).open >= 1, "{name}: the breaker never opened");
    let refused = out
        .samples
        .iter()
        .find(|s| s.code == "SRV-503")
        .unwrap_or_else(|| panic!("{name}: no run was refused while open"));
    let failed_before = out
        .samples
        .iter()
        .filter(|s| s.code == "AGENT-502" && s.at < refused.at)
        .count();
    let succeeded = out
        .samples
        .iter()
        .filter(|s| s.kind == Kind::Run && s.ok() && s.at < out.fault_at())
        .count();
    assert!(
        failed_before <= succeeded.max(MIN_CALLS),
        "{name}: {failed_before} failed runs before it opened ({succeeded} succeeded before)"
    );
    eprintln!(
        "FAULT agent {name}: opened {:?} after the fault started, after {failed_before} failed runs",
        refused.at.saturating_sub(out.fault_at())
    );
    // One probe closed it: after the fault, it closed once (within the longest open wait) and
    // never opened again.
    let wait = Duration::from_millis(6 * WAIT_MS);
    let closed = out.closed.unwrap_or_else(|| panic!("{name}: never closed"));
    assert!(
        closed <= wait + Duration::from_millis(500),
        "{name}: closed after {closed:?}"
    );
    let after = t[3] - t[2];
    assert_eq!(
        (after.open, after.closed),
        (0, 1),
        "{name}: after the fault {after:?}"
    );

    // Backend calls: at most the runs offered plus the retry budget (20% of the runs, and 3 a
    // second over each 10 s of the budget's window).
    let db = api.database().await;
    let attempts: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM agent_run_traces")
        .fetch_one(&db)
        .await
        .unwrap();
    db.close().await;
    let offered = out.offered(Kind::Run) as u64;
    let windows = phases.total().as_secs().div_ceil(10).max(1);
    let bound = offered + offered / 5 + 30 * windows;
    let attempts = attempts as u64;
    assert!(
        attempts <= bound,
        "{name}: {attempts} attempts for {offered} runs (bound {bound})"
    );
    assert!(
        agent.calls() <= attempts,
        "{name}: the service saw more than was sent"
    );
    // No POST without an idempotency key was ever sent twice: every call carried one, and no
    // key came more often than a run has attempts.
    assert_eq!(agent.without_key(), 0);
    assert!(agent.most_per_key() <= MAX_ATTEMPTS);

    // The p99 is back within the longest open wait (a probe's wait) and half a second.
    let threshold = back_to(out.baseline_p99());
    let recovery = out.recovery(threshold);
    let bound = wait + Duration::from_millis(500);
    assert!(
        recovery <= bound,
        "{name}: recovered after {recovery:?} (bound {bound:?})"
    );
    out.report(&format!("agent {name}"), recovery, threshold);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blackholed_agent_service_is_cut_off_then_probed_back() {
    agent_outage(Fault::Blackhole, "blackhole").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resetting_agent_service_is_cut_off_then_probed_back() {
    agent_outage(Fault::Reset, "reset").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_open_agent_service_never_runs_a_task_twice() {
    agent_outage(Fault::HalfOpen, "half-open").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_narrow_link_to_the_agent_service_times_out_then_is_probed_back() {
    // 200 bytes a second: a run's request (~400 bytes) takes two seconds to get through.
    agent_outage(Fault::Bandwidth(200), "bandwidth 200 B/s").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_agent_service_times_out_then_is_probed_back() {
    agent_outage(Fault::Latency(Duration::from_millis(400)), "latency 400 ms").await;
}
