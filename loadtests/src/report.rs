//! The verdict and the figures, from the [`GooseMetrics`] `execute()` returns (goose's own
//! per-request-name histograms, merged for the aggregate) and from what [`crate::observe`] kept
//! (headers, and exact per-phase percentiles).

use std::fmt::Write as _;

use goose::metrics::{GooseMetrics, GooseRequestMetricTimingData};

use crate::observe::{HeaderCounts, Observed};
use crate::profile::{self, Phase};
use crate::scenarios::ARGON2;

/// The pass/fail line of the original report: P50 < 200 ms, P99 < 500 ms, errors < 1%.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) error_rate: f64,
}

pub(crate) const LIMITS: Limits = Limits {
    p50_ms: 200.0,
    p99_ms: 500.0,
    error_rate: 0.01,
};

/// One line of the endpoint table.
#[derive(Debug, Clone, Default)]
pub(crate) struct Row {
    pub(crate) name: String,
    pub(crate) requests: usize,
    pub(crate) failures: usize,
    pub(crate) p50_us: u64,
    pub(crate) p95_us: u64,
    pub(crate) p99_us: u64,
    pub(crate) max_us: u64,
    pub(crate) headers: HeaderCounts,
    /// Non-2xx status codes and how often, for a line under the table.
    pub(crate) statuses: Vec<(u16, usize)>,
}

impl Row {
    fn new(name: &str, timing: &GooseRequestMetricTimingData, failures: usize) -> Self {
        Self {
            name: name.to_owned(),
            requests: timing.counter,
            failures,
            p50_us: timing.percentile_us(0.50),
            p95_us: timing.percentile_us(0.95),
            p99_us: timing.percentile_us(0.99),
            max_us: timing.maximum_time_us,
            ..Self::default()
        }
    }

    pub(crate) fn error_rate(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.failures as f64 / self.requests as f64
        }
    }
}

/// One line of the phase table (exact percentiles over the samples of that phase).
#[derive(Debug, Clone)]
pub(crate) struct PhaseRow {
    pub(crate) phase: Phase,
    pub(crate) planned: (f64, f64),
    pub(crate) requests: usize,
    pub(crate) failures: usize,
    pub(crate) p50_us: u64,
    pub(crate) p95_us: u64,
    pub(crate) p99_us: u64,
    /// P99 leaving out register and login.
    pub(crate) p99_no_argon2_us: u64,
}

/// Everything printed at the end.
#[derive(Debug, Clone)]
pub(crate) struct Summary {
    pub(crate) duration_s: usize,
    pub(crate) total: Row,
    pub(crate) without_argon2: Row,
    pub(crate) endpoints: Vec<Row>,
    pub(crate) phases: Vec<PhaseRow>,
    pub(crate) errors: Vec<(String, usize)>,
    pub(crate) max_users: usize,
    pub(crate) total_users: usize,
}

/// Adds `from`'s buckets and totals into `into` (goose keeps its own merge private).
fn merge(into: &mut GooseRequestMetricTimingData, from: &GooseRequestMetricTimingData) {
    if from.counter == 0 {
        return;
    }
    for (&bucket, &count) in &from.times_us {
        let have = into.times_us.get(&bucket).copied().unwrap_or(0);
        into.times_us.insert(bucket, have + count);
    }
    if into.counter == 0 || from.minimum_time_us < into.minimum_time_us {
        into.minimum_time_us = from.minimum_time_us;
    }
    into.maximum_time_us = into.maximum_time_us.max(from.maximum_time_us);
    into.total_time_us += from.total_time_us;
    into.counter += from.counter;
}

/// Nearest-rank percentile of sorted values.
pub(crate) fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn phase_rows(observed: &Observed, phases: &[Phase]) -> Vec<PhaseRow> {
    let argon2: Vec<bool> = observed
        .names
        .iter()
        .map(|n| ARGON2.contains(&n.as_str()))
        .collect();
    let mut buckets: Vec<(Vec<u64>, Vec<u64>, usize)> =
        vec![(Vec::new(), Vec::new(), 0); phases.len()];
    for s in &observed.samples {
        let (all, cheap, failures) = &mut buckets[profile::phase_at(phases, s.elapsed_ms)];
        all.push(s.micros);
        if !argon2.get(usize::from(s.name)).copied().unwrap_or(false) {
            cheap.push(s.micros);
        }
        *failures += usize::from(!s.success);
    }
    phases
        .iter()
        .zip(profile::planned_rates(phases))
        .zip(buckets)
        .map(|((phase, planned), (mut all, mut cheap, failures))| {
            all.sort_unstable();
            cheap.sort_unstable();
            PhaseRow {
                phase: *phase,
                planned,
                requests: all.len(),
                failures,
                p50_us: percentile(&all, 0.50),
                p95_us: percentile(&all, 0.95),
                p99_us: percentile(&all, 0.99),
                p99_no_argon2_us: percentile(&cheap, 0.99),
            }
        })
        .collect()
}

/// Builds the summary. `phases` is `None` when the caller gave its own `--test-plan`.
pub(crate) fn summarize(
    metrics: &GooseMetrics,
    observed: &Observed,
    phases: Option<&[Phase]>,
) -> Summary {
    let mut all = GooseRequestMetricTimingData::default();
    let mut cheap = GooseRequestMetricTimingData::default();
    let (mut failures, mut cheap_failures) = (0, 0);
    let mut all_headers = HeaderCounts::default();
    let mut cheap_headers = HeaderCounts::default();
    let mut endpoints = Vec::new();
    for (key, aggregate) in &metrics.requests {
        let name = key.as_str();
        let mut row = Row::new(name, &aggregate.raw_data, aggregate.fail_count);
        row.headers = observed.headers.get(name).copied().unwrap_or_default();
        let mut statuses: Vec<(u16, usize)> = aggregate
            .status_code_counts
            .iter()
            .filter(|(code, _)| !(200..300).contains(*code))
            .map(|(&code, &n)| (code, n))
            .collect();
        statuses.sort_unstable();
        row.statuses = statuses;
        merge(&mut all, &aggregate.raw_data);
        failures += aggregate.fail_count;
        all_headers.add(&row.headers);
        if !ARGON2.contains(&name) {
            merge(&mut cheap, &aggregate.raw_data);
            cheap_failures += aggregate.fail_count;
            cheap_headers.add(&row.headers);
        }
        endpoints.push(row);
    }
    endpoints.sort_by(|a, b| a.name.cmp(&b.name));
    let mut total = Row::new("all requests", &all, failures);
    total.headers = all_headers;
    let mut without_argon2 = Row::new("all but register/login", &cheap, cheap_failures);
    without_argon2.headers = cheap_headers;
    let mut errors: Vec<(String, usize)> = metrics
        .errors
        .values()
        .map(|e| {
            (
                format!("{} {}: {}", e.method_label(), e.name, e.error),
                e.occurrences,
            )
        })
        .collect();
    errors.sort_by_key(|e| std::cmp::Reverse(e.1));
    Summary {
        duration_s: metrics.duration,
        total,
        without_argon2,
        endpoints,
        phases: phases.map(|p| phase_rows(observed, p)).unwrap_or_default(),
        errors,
        max_users: metrics.maximum_users,
        total_users: metrics.total_users,
    }
}

/// Agent runs, as goose files them.
pub(crate) const AGENT_RUN: &str = "POST /agent/run";

/// The agent runs' error rate the breaker and the retry budget promise with the agent service
/// failing 30% of calls (`--agent-faults`): 30% stays under the breaker's 50%, so it stays
/// closed; a run fails only when a failed attempt finds the retry budget spent, and the budget
/// (20% of runs, and 3 a second) retries at least two of every three failed first attempts
/// (the simulated failures are spread evenly, so a retry of a failed call succeeds). At most
/// 30% − 20% = 10% of runs fail, each a 502 `AGENT-502` (or a 503 `SRV-503` should the breaker
/// open after all).
pub(crate) const AGENT_ERRORS: f64 = 0.10;

/// The verdict of an `--agent-faults` run: the usual limits on latency over every request (the
/// API's own P99, agent runs included), on errors over every request but agent runs; and agent
/// runs within [`AGENT_ERRORS`], each error a 502 or 503. Agent runs' own P99 is printed, not
/// judged: a run that meets a failed slow call and then a slow one takes two slow calls and a
/// backoff (about 600 ms with the simulated 250 ms) by design.
pub(crate) fn agent_verdict(summary: &Summary, limits: Limits) -> Vec<String> {
    let Some(agent) = summary.endpoints.iter().find(|r| r.name == AGENT_RUN) else {
        return vec!["no agent run was made".to_owned()];
    };
    let mut others = summary.clone();
    others.total.requests -= agent.requests;
    others.total.failures -= agent.failures;
    let mut failed = verdict(&others, limits);
    if agent.error_rate() > AGENT_ERRORS {
        failed.push(format!(
            "agent run errors {:.2}% > {}% ({} of {})",
            agent.error_rate() * 100.0,
            AGENT_ERRORS * 100.0,
            agent.failures,
            agent.requests
        ));
    }
    for (status, n) in &agent.statuses {
        if !matches!(status, 502 | 503) {
            failed.push(format!("{n} agent run(s) answered {status}"));
        }
    }
    failed
}

/// The reasons the run fails, empty when it passes.
pub(crate) fn verdict(summary: &Summary, limits: Limits) -> Vec<String> {
    let t = &summary.total;
    let mut failed = Vec::new();
    if t.requests == 0 {
        failed.push("no request was made".to_owned());
        return failed;
    }
    if ms(t.p50_us) >= limits.p50_ms {
        failed.push(format!("P50 {:.2} ms ≥ {} ms", ms(t.p50_us), limits.p50_ms));
    }
    if ms(t.p99_us) >= limits.p99_ms {
        failed.push(format!("P99 {:.2} ms ≥ {} ms", ms(t.p99_us), limits.p99_ms));
    }
    if t.error_rate() >= limits.error_rate {
        failed.push(format!(
            "errors {:.2}% ≥ {}% ({} of {})",
            t.error_rate() * 100.0,
            limits.error_rate * 100.0,
            t.failures,
            t.requests
        ));
    }
    failed
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn optional(value: Option<f64>, format: impl Fn(f64) -> String) -> String {
    value.map_or_else(|| "n/a".to_owned(), format)
}

fn row_line(out: &mut String, row: &Row, duration_s: usize) {
    let rate = row.requests as f64 / duration_s.max(1) as f64;
    let _ = writeln!(
        out,
        "{:<34} {:>7} {:>6} {:>7.1} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>6} {:>6} {:>6}",
        row.name,
        row.requests,
        row.failures,
        rate,
        ms(row.p50_us),
        ms(row.p95_us),
        ms(row.p99_us),
        ms(row.max_us),
        optional(row.headers.mean_queries(), |q| format!("{q:.2}")),
        optional(row.headers.hit_rate(), |h| format!("{:.0}%", h * 100.0)),
        optional(row.headers.without_db(), |h| format!("{:.0}%", h * 100.0)),
    );
}

/// The report printed at the end of a run.
pub(crate) fn render(summary: &Summary) -> String {
    let mut out = String::new();
    let t = &summary.total;
    let _ = writeln!(
        out,
        "\n{} requests in {} s: {:.1} req/s; errors {} ({:.2}%); users: {} at most, {} in all",
        t.requests,
        summary.duration_s,
        t.requests as f64 / summary.duration_s.max(1) as f64,
        t.failures,
        t.error_rate() * 100.0,
        summary.max_users,
        summary.total_users,
    );
    let _ = writeln!(
        out,
        "statements/request (X-Query-Count): {}; cache hit rate (the API's Cache-Status member): {}",
        optional(t.headers.mean_queries(), |q| format!("{q:.2}")),
        optional(t.headers.hit_rate(), |h| format!("{:.1}%", h * 100.0)),
    );
    let _ = writeln!(
        out,
        "reads served without the database: {}",
        optional(t.headers.without_db(), |h| format!("{:.1}%", h * 100.0)),
    );
    let _ = writeln!(
        out,
        "\n{:<34} {:>7} {:>6} {:>7} {:>8} {:>8} {:>8} {:>8} {:>6} {:>6} {:>6}",
        "request",
        "count",
        "errors",
        "req/s",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "max ms",
        "stmts",
        "cache",
        "no-db"
    );
    for row in &summary.endpoints {
        row_line(&mut out, row, summary.duration_s);
    }
    let _ = writeln!(out, "{}", "-".repeat(119));
    row_line(&mut out, &summary.without_argon2, summary.duration_s);
    row_line(&mut out, t, summary.duration_s);
    let unusual: Vec<String> = summary
        .endpoints
        .iter()
        .filter(|r| !r.statuses.is_empty())
        .map(|r| {
            let codes: Vec<String> = r.statuses.iter().map(|(c, n)| format!("{c}×{n}")).collect();
            let missing = r
                .statuses
                .iter()
                .filter(|(c, _)| *c == 404 || *c == 405)
                .map(|(_, n)| n)
                .sum::<usize>()
                * 10
                >= r.requests * 9;
            format!(
                "  {}: {}{}",
                r.name,
                codes.join(", "),
                if missing { "  (endpoint missing?)" } else { "" }
            )
        })
        .collect();
    if !unusual.is_empty() {
        let _ = writeln!(out, "\nnon-2xx answers:\n{}", unusual.join("\n"));
    }
    if !summary.errors.is_empty() {
        let _ = writeln!(out, "\nerrors (most frequent first):");
        for (error, n) in summary.errors.iter().take(8) {
            let _ = writeln!(out, "  {n:>6}  {error}");
        }
    }
    if !summary.phases.is_empty() {
        let _ = writeln!(
            out,
            "\n{:<11} {:>5} {:>9} {:>13} {:>8} {:>7} {:>8} {:>8} {:>8} {:>13}",
            "phase",
            "secs",
            "users",
            "planned req/s",
            "req/s",
            "errors",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "p99 no argon2"
        );
        let mut from = 0;
        for p in &summary.phases {
            let _ = writeln!(
                out,
                "{:<11} {:>5} {:>9} {:>13} {:>8.1} {:>7} {:>8.2} {:>8.2} {:>8.2} {:>13.2}",
                p.phase.name,
                p.phase.secs,
                format!("{from}→{}", p.phase.users),
                format!("{:.0}→{:.0}", p.planned.0, p.planned.1),
                p.requests as f64 / p.phase.secs.max(1) as f64,
                p.failures,
                ms(p.p50_us),
                ms(p.p95_us),
                ms(p.p99_us),
                ms(p.p99_no_argon2_us),
            );
            from = p.phase.users;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let values: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&values, 0.50), 50);
        assert_eq!(percentile(&values, 0.99), 99);
        assert_eq!(percentile(&values, 1.0), 100);
        assert_eq!(percentile(&[7], 0.5), 7);
        assert_eq!(percentile(&[], 0.5), 0);
    }

    #[test]
    fn merged_timings_give_aggregate_percentiles() {
        let mut fast = GooseRequestMetricTimingData::default();
        for us in [100, 100, 100, 100] {
            fast.times_us
                .insert(us, fast.times_us.get(&us).copied().unwrap_or(0) + 1);
            fast.counter += 1;
            fast.total_time_us += us;
        }
        fast.minimum_time_us = 100;
        fast.maximum_time_us = 100;
        let mut slow = GooseRequestMetricTimingData::default();
        slow.times_us.insert(100_000, 1);
        (
            slow.counter,
            slow.total_time_us,
            slow.minimum_time_us,
            slow.maximum_time_us,
        ) = (1, 100_000, 100_000, 100_000);
        let mut all = GooseRequestMetricTimingData::default();
        merge(&mut all, &fast);
        merge(&mut all, &slow);
        assert_eq!(
            (all.counter, all.minimum_time_us, all.maximum_time_us),
            (5, 100, 100_000)
        );
        assert_eq!(all.percentile_us(0.5), 100);
        assert_eq!(all.percentile_us(1.0), 100_000);
    }

    fn summary(requests: usize, failures: usize, p50_us: u64, p99_us: u64) -> Summary {
        let total = Row {
            requests,
            failures,
            p50_us,
            p99_us,
            ..Row::default()
        };
        Summary {
            duration_s: 10,
            without_argon2: total.clone(),
            total,
            endpoints: Vec::new(),
            phases: Vec::new(),
            errors: Vec::new(),
            max_users: 1,
            total_users: 1,
        }
    }

    #[test]
    fn the_agent_verdict_leaves_agent_errors_to_their_own_bound() {
        let mut s = summary(1000, 25, 1_000, 9_000);
        assert_eq!(agent_verdict(&s, LIMITS), ["no agent run was made"]);
        s.endpoints.push(Row {
            name: AGENT_RUN.to_owned(),
            requests: 200,
            failures: 20,
            p99_us: 300_000,
            statuses: vec![(502, 20)],
            ..Row::default()
        });
        assert!(
            agent_verdict(&s, LIMITS).is_empty(),
            "5 errors in 800 others, 10% of runs"
        );
        s.endpoints[0].failures = 21;
        s.endpoints[0].statuses = vec![(500, 1), (502, 20)];
        s.total.failures = 26;
        assert_eq!(agent_verdict(&s, LIMITS).len(), 2, "over 10%, and a 500");
    }

    #[test]
    fn verdict_applies_each_limit() {
        assert!(verdict(&summary(1000, 9, 1_000, 9_000), LIMITS).is_empty());
        assert_eq!(
            verdict(&summary(1000, 10, 1_000, 9_000), LIMITS).len(),
            1,
            "1% errors fails"
        );
        assert_eq!(
            verdict(&summary(1000, 0, 200_000, 9_000), LIMITS).len(),
            1,
            "P50 of 200 ms fails"
        );
        assert_eq!(
            verdict(&summary(1000, 0, 1_000, 500_000), LIMITS).len(),
            1,
            "P99 of 500 ms fails"
        );
        assert_eq!(
            verdict(&summary(0, 0, 0, 0), LIMITS),
            ["no request was made"]
        );
    }
}
