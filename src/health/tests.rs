use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::*;
use crate::clock::ManualClock;
use http::StatusCode;
use report::MAX_ERROR;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

async fn up() -> Result<(), &'static str> {
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_check_that_hangs_times_out_without_holding_the_others() {
    let health = Health::builder()
        .check("database", ms(200), up)
        .check("hangs", ms(50), || {
            std::future::pending::<Result<(), &str>>()
        })
        .build()
        .unwrap();
    let start = tokio::time::Instant::now();
    let report = health.readiness().await;
    // Paused time jumps to the timeout: the probe took exactly the hung check's bound.
    assert_eq!(start.elapsed(), ms(50));
    assert_eq!(report.status(), Status::NotReady);
    assert_eq!(report.http_status(), StatusCode::SERVICE_UNAVAILABLE);
    let hung = report.check("hangs").unwrap();
    assert_eq!(hung.state, CheckState::Timeout);
    assert_eq!(hung.error.as_deref(), Some("no answer within 50 ms"));
    assert_eq!(report.check("database").unwrap().state, CheckState::Up);
}

#[tokio::test(start_paused = true)]
async fn checks_run_concurrently() {
    let slow = |n| {
        move || async move {
            tokio::time::sleep(ms(n)).await;
            Ok::<_, &str>(())
        }
    };
    let health = Health::builder()
        .check("a", ms(1000), slow(300))
        .check("b", ms(1000), slow(300))
        .check("c", ms(1000), slow(100))
        .build()
        .unwrap();
    let start = tokio::time::Instant::now();
    let report = health.readiness().await;
    assert_eq!(start.elapsed(), ms(300), "not 700: the checks overlap");
    assert_eq!(report.status(), Status::Ready);
}

#[tokio::test]
async fn a_failing_required_check_is_not_ready_and_says_why() {
    let health = Health::builder()
        .clock(Arc::new(ManualClock::at_unix(0)))
        .check("database", ms(100), || async {
            Err("unable to open database file: /var/lib/app/db.sqlite")
        })
        .optional("redis", ms(100), up)
        .build()
        .unwrap();
    let report = health.readiness().await;
    assert_eq!(report.status(), Status::NotReady);
    assert_eq!(
        report.to_json(),
        serde_json::json!({
            "status": "not_ready",
            "checks": {
                "database": {"state": "down", "required": true, "latency_ms": 0,
                    "error": "unable to open database file: /var/lib/app/db.sqlite"},
                "redis": {"state": "up", "required": false, "latency_ms": 0},
            }
        })
    );
}

#[tokio::test]
async fn optional_checks_degrade_required_ones_fail() {
    let down = || async { Err::<(), _>("refused") };
    let cases = [
        (true, true, Status::Ready, 200),
        (true, false, Status::Degraded, 200),
        (false, true, Status::NotReady, 503),
        (false, false, Status::NotReady, 503),
    ];
    for (db_up, redis_up, status, code) in cases {
        let mut b = Health::builder();
        b = if db_up {
            b.check("db", ms(10), up)
        } else {
            b.check("db", ms(10), down)
        };
        b = if redis_up {
            b.optional("redis", ms(10), up)
        } else {
            b.optional("redis", ms(10), down)
        };
        let report = b.build().unwrap().readiness().await;
        assert_eq!(
            (report.status(), report.http_status().as_u16()),
            (status, code),
            "db {db_up} redis {redis_up}"
        );
    }
}

#[tokio::test]
async fn a_panicking_check_is_down() {
    let health = Health::builder()
        .check("boom", ms(100), || async {
            if true {
                panic!("the check panicked on purpose");
            }
            Ok::<_, &str>(())
        })
        .build()
        .unwrap();
    let report = health.readiness().await;
    let boom = report.check("boom").unwrap();
    assert_eq!(
        (boom.state, boom.error.as_deref()),
        (CheckState::Down, Some("the check panicked"))
    );
}

#[tokio::test]
async fn latency_is_measured_on_the_injected_clock() {
    let clock = ManualClock::at_unix(1_700_000_000);
    let moved = clock.clone();
    let health = Health::builder()
        .clock(Arc::new(clock.clone()))
        .check("db", ms(1000), move || {
            moved.advance(ms(42));
            async { Ok::<_, &str>(()) }
        })
        .build()
        .unwrap();
    let report = health.readiness().await;
    assert_eq!(report.check("db").unwrap().latency, ms(42));
    assert_eq!(report.to_json()["checks"]["db"]["latency_ms"], 42);
    clock.advance(Duration::from_secs(90));
    assert_eq!(health.liveness().uptime_seconds, 90);
}

#[tokio::test]
async fn liveness_never_runs_a_check() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let health = Health::builder()
        .check("db", ms(10), move || {
            counted.fetch_add(1, Ordering::Relaxed);
            async { Err::<(), _>("down") }
        })
        .build()
        .unwrap();
    let live = health.liveness();
    assert_eq!(serde_json::to_value(&live).unwrap()["status"], "alive");
    assert_eq!(calls.load(Ordering::Relaxed), 0);
    health.readiness().await;
    assert_eq!(calls.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn hidden_errors_leave_the_state_only() {
    let health = Health::builder()
        .hide_errors()
        .check("db", ms(10), || async { Err::<(), _>("password=x") })
        .build()
        .unwrap();
    let report = health.readiness().await;
    assert_eq!(report.check("db").unwrap().error, None);
    assert!(report.to_json()["checks"]["db"].get("error").is_none());
}

#[test]
fn secrets_are_redacted_from_error_messages() {
    for (raw, shown) in [
        (
            "refused: redis://:hunter2@10.0.0.7:6379/0",
            "refused: redis://***@10.0.0.7:6379/0",
        ),
        (
            "postgres://app:s3cr3t@db:5432/app failed",
            "postgres://***@db:5432/app failed",
        ),
        (
            "http://example.com/path no userinfo",
            "http://example.com/path no userinfo",
        ),
        (
            "auth failed (Password=abc def)",
            "auth failed (Password=*** def)",
        ),
        ("token=eyJhbGci, key=k1; ok", "token=***, key=***; ok"),
        ("a://u:p@h and b://v:q@i", "a://***@h and b://***@i"),
        ("password=", "password="),
        ("plain", "plain"),
        ("é://ü:ö@ä", "é://***@ä"),
    ] {
        assert_eq!(redact(raw), shown, "{raw:?}");
    }
    let long = "x".repeat(500);
    assert_eq!(redact(&long).chars().count(), MAX_ERROR + 1);
}

#[test]
fn configuration_mistakes_are_errors() {
    let err = |b: HealthBuilder| b.build().unwrap_err().message().to_owned();
    assert!(err(Health::builder().check("", ms(1), up)).contains("needs a name"));
    assert!(err(Health::builder().check("db", Duration::ZERO, up)).contains("zero timeout"));
    assert!(
        err(Health::builder()
            .check("db", ms(1), up)
            .optional("db", ms(1), up))
        .contains("twice")
    );
}

proptest::proptest! {
    /// Whatever the message, no byte of a URL's userinfo or a `password=` value survives, and
    /// the result stays within the bound.
    #[test]
    fn redaction_never_leaks_and_stays_bounded(
        before in "[ -~]{0,40}", user in "[a-z0-9]{1,12}", secret in "[A-Za-z0-9]{8,16}", after in "[ -~]{0,40}",
    ) {
        let msg = format!("{before} redis://{user}:{secret}@host {after} password={secret}");
        let out = redact(&msg);
        proptest::prop_assert!(!out.contains(&format!(":{secret}@")), "{out}");
        proptest::prop_assert!(!out.contains(&format!("password={secret}")), "{out}");
        proptest::prop_assert!(out.chars().count() <= MAX_ERROR + 1);
    }
}
