//! Run with: cargo run --release -p protothrive-loadtests -- --profile quick
//!
//! goose load tests of the ProtoThrive API (`cargo run --example protothrive`): the original mix
//! of auth, roadmap, snippet and health traffic from many registered users, in a `quick` (45 s,
//! CI) or `full` (140 s, spike to 500 req/s) shape. Without `--host` it builds the example,
//! starts it on a free loopback port with a throw-away SQLite file and stops it afterwards.
//!
//! It exits non-zero when the aggregate P50 ≥ 200 ms, P99 ≥ 500 ms or errors ≥ 1%, and prints
//! throughput, per-request percentiles, errors, statements per request (`X-Query-Count`) and the
//! API's cache hit rate (its `Cache-Status` member, also through a gateway's cache), the share of
//! reads (successful `GET`s) answered without a database statement (`X-Query-Count: 0`, or a hit
//! where the count is missing) — per request name and overall, on a line of its own: `reads
//! served without the database: NN.N%` — and where goose wrote its HTML report.
//! `LOADTEST_SERVER_BIN=PATH` runs that executable instead of building the example (to compare
//! two revisions under one load test).
//!
//! `--agent-faults` makes the simulated agent service fail 30% of calls and answer 20% late, adds
//! agent runs to the mix, and holds them to what the API's breaker and retry budget promise
//! (`report::AGENT_ERRORS`) while the usual limits apply to the rest.
//!
//! Every run also writes self-contained plots (throughput, P50/P99 and errors per second, the
//! phases marked; inline SVG, no script) to `<report>-plots.html` beside goose's report
//! ([`plot`]).
//!
//! The multi-instance run (`scripts/multi-instance`) uses two more modes ([`multi`]):
//! `--check-instances A,B` runs the cross-instance checks against two API instances instead of a
//! load test, and `--kill-pid PID --kill-after SECONDS` kills one instance behind `--host` with
//! `kill -9` mid-run, then reads every acknowledged write back and places the errors against
//! the kill.
//!
//! Every goose option works too (`--help` lists them); `--test-plan`, `--throttle-requests` and
//! `--report-file` override what the profile sets.

mod checks;
mod multi;
mod observe;
mod plot;
mod profile;
mod report;
mod scenarios;
mod server;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use goose::config::GooseConfiguration;
use goose::prelude::*;

use crate::profile::Profile;
use crate::server::{Build, Server};

/// goose load tests of the ProtoThrive API.
// No `Debug`: goose's configuration has none.
#[allow(missing_debug_implementations)]
#[derive(Parser)]
#[command(name = "loadtest")]
struct Cli {
    /// Load shape: `quick` (45 s, spike to 300 req/s; what CI runs), `full` (140 s, spike to
    /// 500 req/s) or `short` (15 s at 60 req/s; the short multi-instance run).
    #[arg(
        long,
        value_enum,
        default_value = "quick",
        help_heading = "ProtoThrive"
    )]
    profile: Profile,
    /// How to build the example when no --host is given [default: as this binary was built].
    #[arg(long, value_enum, help_heading = "ProtoThrive")]
    server_build: Option<Build>,
    /// Extra environment for the started example, KEY=VALUE; repeatable.
    #[arg(long, value_name = "KEY=VALUE", help_heading = "ProtoThrive")]
    server_env: Vec<String>,
    /// The simulated agent service fails 30% of calls and answers 20% of them 250 ms late; agent
    /// runs join the mix (1 in 6 users), held to what the breaker and retry budget promise.
    #[arg(long, help_heading = "ProtoThrive")]
    agent_faults: bool,
    /// Multi-instance run: `kill -9` this process (an API instance behind --host) during the
    /// run, then read every acknowledged roadmap write back and place the errors against the kill.
    #[arg(long, value_name = "PID", help_heading = "ProtoThrive")]
    kill_pid: Option<u32>,
    /// Seconds into the run at which --kill-pid is killed.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value = "20",
        help_heading = "ProtoThrive"
    )]
    kill_after: f64,
    /// The gateway's ejection window in seconds: no request sent later than this after the kill
    /// may fail.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value = "5",
        help_heading = "ProtoThrive"
    )]
    eject_window: f64,
    /// The gateway's log, read after a --kill-pid run for when it took the instance out of
    /// rotation.
    #[arg(
        long,
        value_name = "PATH",
        requires = "killed_upstream",
        help_heading = "ProtoThrive"
    )]
    gateway_log: Option<PathBuf>,
    /// The killed instance's `host:port/` as the gateway's log names it (with --gateway-log).
    #[arg(long, value_name = "HOST:PORT/", help_heading = "ProtoThrive")]
    killed_upstream: Option<String>,
    /// Runs the cross-instance checks against two API instances (A,B) instead of a load test.
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "URL,URL",
        help_heading = "ProtoThrive"
    )]
    check_instances: Vec<String>,
    /// The per-user burst the instances of --check-instances were started with.
    #[arg(
        long,
        value_name = "N",
        default_value = "30",
        help_heading = "ProtoThrive"
    )]
    user_quota: u32,
    #[command(flatten)]
    goose: GooseConfiguration,
}

/// The simulated agent service of `--agent-faults`: 30% of calls fail (503), 20% are 250 ms slow.
const AGENT_FAULTS: [&str; 3] = [
    "PROTOTHRIVE_AGENT_FAILURE_RATE=0.3",
    "PROTOTHRIVE_AGENT_SLOW_RATE=0.2",
    "PROTOTHRIVE_AGENT_SLOW_MS=250",
];

/// The machine, for the record: cores and the 1-minute load average (Linux), since other work on
/// the same cores shows up in the latencies.
fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "n/a".to_owned());
    format!("{cores} cores, load average {load}")
}

/// Where the HTML report goes unless `--report-file` says: beside this crate (git-ignored).
fn default_report(profile: Profile) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("report-{}.html", profile.name()))
}

async fn run(cli: Cli) -> Result<bool, String> {
    if !cli.check_instances.is_empty() {
        return checks::checks(&cli.check_instances, cli.user_quota).await;
    }
    let profile = cli.profile;
    let mut configuration = cli.goose;
    // goose keeps its test plan private: a plan of the caller's own is seen on the command line.
    let own_plan = configuration.users.is_some()
        || configuration.run_time.is_some()
        || configuration.iterations.is_some()
        || std::env::args().any(|a| a.starts_with("--test-plan"));
    let reports = if configuration.report_file.is_empty() {
        vec![default_report(profile).display().to_string()]
    } else {
        configuration.report_file.clone()
    };
    configuration.report_file.clone_from(&reports);

    let server = match &configuration.host {
        Some(host) => {
            eprintln!(
                "loadtest: targeting {host} (start it with high PROTOTHRIVE_RATE_LIMITS: every user is 127.0.0.1)"
            );
            if cli.agent_faults {
                eprintln!(
                    "loadtest: --agent-faults: start the target with {}",
                    AGENT_FAULTS.join(" ")
                );
            }
            None
        }
        None => {
            let build = cli.server_build.unwrap_or_else(Build::same_as_this_binary);
            let mut env: Vec<String> = Vec::new();
            if cli.agent_faults {
                env.extend(AGENT_FAULTS.iter().map(|v| (*v).to_owned()));
            }
            env.extend(cli.server_env.iter().cloned());
            let server = Server::start(build, &env).await?;
            configuration.host = Some(server.base_url.clone());
            Some(server)
        }
    };

    let host = configuration.host.clone().unwrap_or_default();
    let mut attack = GooseAttack::initialize_with_config(configuration)
        .map_err(|e| e.to_string())?
        .set_scheduler(GooseScheduler::RoundRobin);
    for scenario in scenarios::all(cli.agent_faults).map_err(|e| e.to_string())? {
        attack = attack.register_scenario(scenario);
    }
    let mut attack = attack
        .set_default(GooseDefault::ThrottleRequests, profile.throttle())
        .and_then(|a| a.set_default(GooseDefault::Timeout, "10"))
        .and_then(|a| a.set_default(GooseDefault::NoTelnet, true))
        .and_then(|a| a.set_default(GooseDefault::NoPrintMetrics, true))
        // Warnings only: goose's per-user start and stop lines would bury the report.
        .and_then(|a| a.set_default(GooseDefault::Quiet, 1))
        .map_err(|e| e.to_string())?;
    if !own_plan {
        attack = attack
            .set_default(GooseDefault::TestPlan, profile.test_plan().as_str())
            .map_err(|e| e.to_string())?;
        eprintln!(
            "loadtest: profile {} — test plan {}",
            profile.name(),
            profile.test_plan()
        );
    }
    let kill = cli.kill_pid.map(|pid| {
        let secs = |s: f64| Duration::try_from_secs_f64(s).unwrap_or_default();
        let gateway = cli.gateway_log.clone().zip(cli.killed_upstream.clone());
        multi::Kill::arm(pid, secs(cli.kill_after), secs(cli.eject_window), gateway)
    });
    let mut failures = Vec::new();
    let before = machine();
    let metrics = attack.execute().await.map_err(|e| format!("goose: {e}"))?;
    let after = machine();
    let cpu = format!(
        "CPU used: API {}, load test (goose) {}",
        server
            .as_ref()
            .and_then(Server::cpu_seconds)
            .map_or_else(|| "n/a".to_owned(), |s| format!("{s:.1} s")),
        server::cpu_seconds("self").map_or_else(|| "n/a".to_owned(), |s| format!("{s:.1} s")),
    );
    drop(server);

    let observed = observe::take();
    let summary = report::summarize(&metrics, &observed, (!own_plan).then(|| profile.phases()));
    let mut text = report::render(&summary);
    let _ = writeln!(
        text,
        "\nmachine: {before} at the start; {after} at the end (1 min). {cpu}"
    );
    let mut marks = Vec::new();
    if let Some(kill) = kill {
        let (lines, mark, failed) = kill.finish(&observed, &host).await;
        text.push_str(&lines);
        marks.extend(mark);
        failures.extend(failed);
    }
    print!("{text}");
    println!("\nHTML report: {}", reports.join(", "));
    let phases = if own_plan { &[][..] } else { profile.phases() };
    let svg = plot::svg(&observed.samples, phases, &marks);
    for report in &reports {
        let path = plot::path_beside(report);
        let title = format!("ProtoThrive load test, profile {}", profile.name());
        match std::fs::write(&path, plot::page(&title, &text, &svg)) {
            Ok(()) => println!("plots (self-contained): {}", path.display()),
            Err(e) => eprintln!("loadtest: cannot write {}: {e}", path.display()),
        }
    }
    let mut failed = if cli.agent_faults {
        report::agent_verdict(&summary, report::LIMITS)
    } else {
        report::verdict(&summary, report::LIMITS)
    };
    failed.extend(failures);
    if failed.is_empty() {
        println!(
            "PASS: P50 < {} ms, P99 < {} ms, errors < {}%{}",
            report::LIMITS.p50_ms,
            report::LIMITS.p99_ms,
            report::LIMITS.error_rate * 100.0,
            if cli.agent_faults {
                format!(
                    " (agent runs' errors aside: ≤ {}%, all 502/503)",
                    report::AGENT_ERRORS * 100.0
                )
            } else {
                String::new()
            }
        );
    } else {
        println!("FAIL: {}", failed.join("; "));
    }
    Ok(failed.is_empty())
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("loadtest: {e}");
            ExitCode::from(2)
        }
    }
}
