//! The API's SQLite file held locked by another connection (`BEGIN EXCLUSIVE`): writes wait the
//! configured busy time, then answer 503 `DB-503` with `Retry-After` — never a 500 — while reads
//! go on (WAL); nothing acknowledged is lost, and writes succeed again once the lock is gone.

use std::path::PathBuf;
use std::time::Duration;

use sqlx::Connection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};

use super::load::Kind;
use super::{Api, Inject, Phases, back_to, run, turn};

/// The API's wait for a lock, and for the writer behind a waiting write, here.
const BUSY_MS: u64 = 250;
const MIX: &[Kind] = &[Kind::Write, Kind::Read, Kind::Write, Kind::Me];

/// Another process's connection holding the database's write lock.
struct Lock {
    path: PathBuf,
    conn: Option<SqliteConnection>,
}

impl Inject for Lock {
    async fn start(&mut self) {
        let options = SqliteConnectOptions::new().filename(&self.path);
        let mut conn = SqliteConnection::connect_with(&options).await.unwrap();
        sqlx::raw_sql("BEGIN EXCLUSIVE")
            .execute(&mut conn)
            .await
            .unwrap();
        self.conn = Some(conn);
    }

    async fn clear(&mut self) {
        let mut conn = self.conn.take().unwrap();
        sqlx::raw_sql("ROLLBACK").execute(&mut conn).await.unwrap();
        conn.close().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_database_answers_503_and_keeps_every_acknowledged_write() {
    let _turn = turn().await;
    let api = Api::start(&[("PROTOTHRIVE_DATABASE_BUSY_TIMEOUT_MS", &BUSY_MS.to_string())]).await;
    let mut lock = Lock {
        path: api.server.dir.join("api.db"),
        conn: None,
    };
    let out = run(
        &api,
        Phases::ms(1500, 2000, 2500),
        MIX,
        &mut lock,
        "none",
        || 0,
    )
    .await;
    out.assert_answers_documented();
    out.assert_writes_kept(&api).await;
    let margin = Duration::from_millis(2 * BUSY_MS);
    let during: Vec<_> = out
        .samples
        .iter()
        .filter(|s| s.at >= out.fault_at() + margin && s.at + margin < out.cleared_at())
        .collect();
    // A write sent while the lock is held (and not about to be released) is refused.
    for s in &during {
        match s.kind {
            Kind::Write => assert_eq!((s.status, s.code.as_str()), (503, "DB-503"), "{s:?}"),
            _ => assert!(s.ok(), "reads go on beside a held write lock: {s:?}"),
        }
    }
    assert!(
        during.iter().any(|s| s.kind == Kind::Write),
        "no write was refused"
    );
    // Back within the wait for the lock and for the writer, and half a second.
    let threshold = back_to(out.baseline_p99());
    let recovery = out.recovery(threshold);
    let bound = Duration::from_millis(2 * BUSY_MS + 500);
    assert!(
        recovery <= bound,
        "recovered after {recovery:?} (bound {bound:?})"
    );
    out.report("sqlite lock", recovery, threshold);
}
