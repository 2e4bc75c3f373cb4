//! The ProtoThrive API (the example, as a real process on loopback) under steady load while a
//! real fault hits one of its dependencies: the agent service (behind the fault proxy), Redis
//! (behind the proxy, or stopped and killed) or its SQLite file (locked by another connection).
//!
//! Each test runs three phases — baseline, fault, recovery — at a fixed offered rate, and checks
//! what the issue of resilience asks of the whole API: no 500s; every other non-2xx a documented
//! problem code (and `Retry-After` on a 503); every write answered 2xx in the database
//! afterwards, none executed twice; the breaker open during the fault and closed by its first
//! probe after it; backend calls within the offered load plus the retry budget; and the p99 back
//! to baseline within a stated time after the fault clears.
//!
//! At most two of these tests run at once (each API process under load uses a small part of a
//! core, so two leave the machine's two cores mostly idle and one test's load barely shows in
//! the other's latencies). `PROTOTHRIVE_SOAK=1` runs each phase ten times longer.

mod agent;
pub mod load;
mod redis;
mod shed;
mod sqlite;

use std::sync::Arc;
use std::time::Duration;

use protothrive::error::code;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};
use tokio::time::Instant;

use crate::support::agent::AgentService;
use crate::support::fault::{Fault, FaultProxy};
use crate::support::process::Server;
use crate::support::{DEMO, first_roadmap, login};
use load::{Kind, Sample, Target};

/// Rate limits far above the load: every request comes from 127.0.0.1 as one user.
const LIMITS: &str = "ip=1000000/60s:100000,user=1000000/60s:100000,\
     api_key=1000000/60s:100000,login=1000000/300s:100000,register=1000000/900s:100000";

/// Requests a second the load offers.
pub const RATE: f64 = 25.0;

/// The problem codes a client of the API may see: the contract's and the library's layers'.
const DOCUMENTED: &[&str] = &[
    "AGENT-502",
    "DB-503",
    code::UNAVAILABLE,
    code::CIRCUIT_OPEN,
    code::OVERLOADED,
    code::DEADLINE_EXCEEDED,
    code::UPSTREAM_TIMEOUT,
    code::RATE_LIMITED,
];

static TURNS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

/// Whether the long variant runs (`PROTOTHRIVE_SOAK=1`).
pub fn soak() -> bool {
    std::env::var("PROTOTHRIVE_SOAK").is_ok_and(|v| v == "1")
}

/// How long each phase lasts.
#[derive(Debug, Clone, Copy)]
pub struct Phases {
    pub baseline: Duration,
    pub fault: Duration,
    pub recovery: Duration,
}

impl Phases {
    /// Phases of these many milliseconds (ten times longer under `PROTOTHRIVE_SOAK=1`).
    pub fn ms(baseline: u64, fault: u64, recovery: u64) -> Self {
        let k = if soak() { 10 } else { 1 };
        Self {
            baseline: Duration::from_millis(baseline * k),
            fault: Duration::from_millis(fault * k),
            recovery: Duration::from_millis(recovery * k),
        }
    }

    fn total(self) -> Duration {
        self.baseline + self.fault + self.recovery
    }
}

/// The running API, signed in as the demo user.
pub struct Api {
    pub server: Server,
    pub target: Arc<Target>,
}

impl Api {
    /// Starts the example with `env` (and loose rate limits), signs in, finds a roadmap.
    pub async fn start(env: &[(&str, &str)]) -> Self {
        let mut all = vec![("PROTOTHRIVE_RATE_LIMITS", LIMITS)];
        all.extend_from_slice(env);
        let server = Server::start_with(&all);
        let token = login(&server, DEMO).await;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap();
        let roadmap = first_roadmap(&server, &token).await;
        let target = Arc::new(Target {
            base: server.base.clone(),
            token,
            roadmap,
            http,
        });
        Self { server, target }
    }

    /// The transitions of breaker `name` so far, from the Prometheus text at `/metrics`.
    pub async fn transitions(&self, name: &str) -> Transitions {
        let text = self
            .target
            .http
            .get(self.server.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let count = |to: &str| {
            text.lines()
                .filter(|l| l.starts_with("protothrive_breaker_transitions_total{"))
                .filter(|l| {
                    l.contains(&format!("breaker=\"{name}\""))
                        && l.contains(&format!("to=\"{to}\""))
                })
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum::<f64>() as u64
        };
        Transitions {
            open: count("open"),
            half_open: count("half_open"),
            closed: count("closed"),
        }
    }

    /// A read-only connection to the API's database file.
    pub async fn database(&self) -> SqlitePool {
        let options = SqliteConnectOptions::new()
            .filename(self.server.dir.join("api.db"))
            .read_only(true);
        SqlitePool::connect_with(options).await.unwrap()
    }
}

/// Transitions of one breaker, counted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Transitions {
    pub open: u64,
    pub half_open: u64,
    pub closed: u64,
}

impl std::ops::Sub for Transitions {
    type Output = Self;

    fn sub(self, rhs: Self) -> Self {
        Self {
            open: self.open - rhs.open,
            half_open: self.half_open - rhs.half_open,
            closed: self.closed - rhs.closed,
        }
    }
}

/// A fault to switch on and off.
#[allow(async_fn_in_trait)]
pub trait Inject {
    async fn start(&mut self);
    async fn clear(&mut self);
}

/// What one run of the three phases gave.
pub struct Outcome {
    pub phases: Phases,
    pub samples: Vec<Sample>,
    /// The breaker's transitions at the start, when the fault started, when it cleared, at the
    /// end.
    pub transitions: [Transitions; 4],
    /// The backend's own count of what reached it, at the same four moments.
    pub backend: [u64; 4],
    /// How long after the fault started the breaker opened (read every 50 ms).
    pub opened: Option<Duration>,
    /// How long after the fault cleared it closed.
    pub closed: Option<Duration>,
    /// The transitions since the fault cleared, when it first closed: whether probes failed
    /// before one closed it (later ones, should a slow call open it again, are not in here).
    pub until_closed: Transitions,
}

/// Runs the load through the three phases, switching `fault` on and off, watching breaker
/// `breaker` and the backend's count `backend`.
pub async fn run(
    api: &Api,
    phases: Phases,
    mix: &'static [Kind],
    fault: &mut impl Inject,
    breaker: &str,
    backend: impl Fn() -> u64,
) -> Outcome {
    let start = Instant::now();
    let mut transitions = [Transitions::default(); 4];
    let mut seen = [0; 4];
    transitions[0] = api.transitions(breaker).await;
    seen[0] = backend();
    let load = tokio::spawn(load::drive(api.target.clone(), RATE, mix, phases.total()));
    tokio::time::sleep_until(start + phases.baseline).await;
    transitions[1] = api.transitions(breaker).await;
    seen[1] = backend();
    fault.start().await;
    let cleared = start + phases.baseline + phases.fault;
    let before = transitions[1].open;
    let opened = watch(api, breaker, cleared, |t| t.open > before)
        .await
        .map(|(after, _)| after);
    tokio::time::sleep_until(cleared).await;
    transitions[2] = api.transitions(breaker).await;
    seen[2] = backend();
    fault.clear().await;
    let before = transitions[2].closed;
    let closed = watch(api, breaker, start + phases.total(), |t| t.closed > before).await;
    let until_closed = closed.map_or_else(Transitions::default, |(_, t)| t - transitions[2]);
    let closed = closed.map(|(after, _)| after);
    let samples = load.await.unwrap();
    transitions[3] = api.transitions(breaker).await;
    seen[3] = backend();
    Outcome {
        phases,
        samples,
        transitions,
        backend: seen,
        opened,
        closed,
        until_closed,
    }
}

/// Reads breaker `name`'s transitions every 50 ms until `reached` holds of them (the time that
/// took, and the transitions then) or `until` passes (`None`).
async fn watch(
    api: &Api,
    name: &str,
    until: Instant,
    reached: impl Fn(Transitions) -> bool,
) -> Option<(Duration, Transitions)> {
    let from = Instant::now();
    while Instant::now() < until {
        let t = api.transitions(name).await;
        if reached(t) {
            return Some((from.elapsed(), t));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

impl Outcome {
    /// When the fault started, from the start of the load.
    pub fn fault_at(&self) -> Duration {
        self.phases.baseline
    }

    /// When it cleared.
    pub fn cleared_at(&self) -> Duration {
        self.phases.baseline + self.phases.fault
    }

    fn baseline(&self) -> impl Iterator<Item = &Sample> {
        self.samples.iter().filter(|s| s.at < self.fault_at())
    }

    /// The p99 of the baseline phase (every answer there must be a 2xx).
    pub fn baseline_p99(&self) -> Duration {
        for s in self.baseline() {
            assert!(s.ok(), "before the fault: {s:?}");
        }
        load::p99(self.baseline().map(|s| s.latency))
    }

    /// Requests of `kind` offered.
    pub fn offered(&self, kind: Kind) -> usize {
        self.samples.iter().filter(|s| s.kind == kind).count()
    }

    /// No 500, no request unanswered; every other non-2xx is a 502, 503 or 504 problem with a
    /// documented code, and a 503 says when to retry.
    pub fn assert_answers_documented(&self) {
        for s in self.samples.iter().filter(|s| !s.ok()) {
            assert!(
                matches!(s.status, 502..=504) && s.problem && DOCUMENTED.contains(&s.code.as_str()),
                "an undocumented answer: {s:?}"
            );
            if s.status == 503 {
                assert!(s.retry_after.is_some(), "a 503 without Retry-After: {s:?}");
            }
        }
    }

    /// Every write answered 201 is in the database; no write was executed twice (each title is
    /// there at most once; no more runs were recorded than were asked for).
    pub async fn assert_writes_kept(&self, api: &Api) {
        let db = api.database().await;
        let roadmaps: Vec<(String, String)> =
            sqlx::query_as("SELECT id, title FROM roadmaps WHERE title LIKE 'fault-%'")
                .fetch_all(&db)
                .await
                .unwrap();
        let runs: Vec<String> = sqlx::query_scalar("SELECT id FROM agent_runs")
            .fetch_all(&db)
            .await
            .unwrap();
        db.close().await;
        let mut titles: Vec<&str> = roadmaps.iter().map(|(_, t)| t.as_str()).collect();
        titles.sort_unstable();
        let before = titles.len();
        titles.dedup();
        assert_eq!(titles.len(), before, "a roadmap write was executed twice");
        assert!(
            runs.len() <= self.offered(Kind::Run),
            "more runs recorded than asked for"
        );
        for s in self.samples.iter().filter(|s| s.acknowledged()) {
            let id = s.id.as_deref().expect("a 201 names what it created");
            let kept = match s.kind {
                Kind::Write => roadmaps.iter().any(|(r, t)| r == id && *t == s.title),
                Kind::Run => runs.iter().any(|r| r == id),
                Kind::Read | Kind::Me => true,
            };
            assert!(kept, "an acknowledged write is missing: {s:?}");
        }
    }

    /// How long after the fault cleared every answer was a 2xx again with the p99 within
    /// `threshold` (the figure the test states and asserts), for at least the last second.
    pub fn recovery(&self, threshold: Duration) -> Duration {
        load::recovered(
            &self.samples,
            self.cleared_at(),
            threshold,
            Duration::from_secs(1),
        )
        .unwrap_or_else(|| panic!("no recovery within {threshold:?}: {}", self.tally_after()))
    }

    fn tally_after(&self) -> String {
        load::tally(self.samples.iter().filter(|s| s.at >= self.cleared_at()))
    }

    /// One line for the record: what the client saw during the fault, what the backend saw.
    pub fn report(&self, fault: &str, recovery: Duration, threshold: Duration) {
        let during = self
            .samples
            .iter()
            .filter(|s| s.at >= self.fault_at() && s.at < self.cleared_at());
        let b = self.backend;
        let t = self.transitions;
        eprintln!(
            "FAULT {fault}: client during the fault: {}; after it: {}; backend calls \
             baseline/fault/recovery: {}/{}/{}; breaker opened {:?} into the fault, {} time(s), \
             closed {:?} after it, transitions until then {:?} and in all {:?}; baseline p99 \
             {:?}; p99 back \
             {:?} after the fault cleared (p99 ≤ {threshold:?})",
            load::tally(during),
            self.tally_after(),
            b[1] - b[0],
            b[2] - b[1],
            b[3] - b[2],
            self.opened,
            (t[2] - t[1]).open,
            self.closed,
            self.until_closed,
            t[3] - t[2],
            self.baseline_p99(),
            recovery,
        );
    }
}

/// Waits for this test's turn (see the module docs).
pub async fn turn() -> tokio::sync::SemaphorePermit<'static> {
    TURNS.acquire().await.unwrap()
}

/// The API calling the agent stand-in through the fault proxy.
pub struct AgentPath {
    pub agent: AgentService,
    pub proxy: FaultProxy,
    pub api: Api,
}

impl AgentPath {
    /// The stand-in, the proxy in front of it, and the API started with `env` calling it there.
    pub async fn start(env: &[(&str, &str)]) -> Self {
        let agent = AgentService::start().await;
        let proxy = FaultProxy::start(agent.addr).await;
        let url = format!("http://{}", proxy.addr());
        let mut all = vec![("PROTOTHRIVE_AGENT_URL", url.as_str())];
        all.extend_from_slice(env);
        let api = Api::start(&all).await;
        Self { agent, proxy, api }
    }
}

/// A fault of the proxy in front of a dependency.
pub struct ProxyFault<'a> {
    pub proxy: &'a FaultProxy,
    pub fault: Fault,
}

impl Inject for ProxyFault<'_> {
    async fn start(&mut self) {
        self.proxy.set(self.fault);
    }

    async fn clear(&mut self) {
        self.proxy.set(Fault::None);
    }
}

/// The p99 the API must be back to after a fault: three times the baseline's, or 100 ms above
/// it, whichever is more (the machine is shared; a debug build's p99 of a few milliseconds moves
/// by tens of them).
pub fn back_to(baseline: Duration) -> Duration {
    (baseline * 3).max(baseline + Duration::from_millis(100))
}
