//! A throw-away PostgreSQL server on a free loopback port, in a directory of its own under the
//! system's temporary directory (`./scripts/test` installs Debian's `postgresql` when `initdb` is
//! missing). [`shared`] is the one a test binary's servers share, a database each
//! ([`Postgres::create_database`]).
//!
//! PostgreSQL refuses to run as root: as root (a CI container) the server runs as the
//! `postgres` user the Debian package creates, or `nobody` when there is none, and owns its
//! directory; as anyone else it runs as that user. It is started by a small shell that holds it
//! and waits on a pipe from this process: when the pipe closes — [`Postgres`] dropped, or the
//! test process ending in any way, `kill -9` included, which is what ends the [`shared`] one —
//! the shell stops the server (immediate shutdown) and removes the directory. Durability is not
//! what these servers are for: `fsync` is off.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};

/// One server, stopped (and its directory removed) when this drops.
pub struct Postgres {
    pub port: u16,
    bin: PathBuf,
    /// The holding shell and the pipe it waits on.
    holder: Mutex<Option<(Child, ChildStdin)>>,
}

/// Whether the API under test runs on PostgreSQL (`PROTOTHRIVE_TEST_DATABASE=postgres`) rather
/// than SQLite (the default).
pub fn on_postgres() -> bool {
    std::env::var("PROTOTHRIVE_TEST_DATABASE").is_ok_and(|v| v == "postgres")
}

/// A database of its own for one server of the API: a new database on the [`shared`] server
/// when [`on_postgres`], else a SQLite file in `dir`. [`forget`] drops it.
pub fn database_for(dir: &Path) -> String {
    if on_postgres() {
        shared().create_database()
    } else {
        format!("sqlite://{}", dir.join("api.db").display())
    }
}

/// Drops a database [`database_for`] made on PostgreSQL (a SQLite file goes with its directory).
pub fn forget(url: &str) {
    if url.starts_with("postgres://") {
        shared().drop_database(url);
    }
}

/// The server a test binary shares, started on first use; it ends with the test process.
pub fn shared() -> &'static Postgres {
    static SHARED: OnceLock<Postgres> = OnceLock::new();
    SHARED.get_or_init(Postgres::start)
}

/// The directory of PostgreSQL's programs: Debian's newest `/usr/lib/postgresql/N/bin`, else
/// where the `initdb` on `PATH` really is.
fn bin_dir() -> PathBuf {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return bin;
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join("initdb"))
        .find(|p| p.exists())
        .and_then(|p| std::fs::canonicalize(p).ok())
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .expect("PostgreSQL must be installed: initdb not found (./scripts/test installs it)")
}

/// The uid and gid to run the server as when this process is root: `postgres`, else `nobody`.
fn unprivileged() -> Option<(u32, u32)> {
    let id = |flag: &str, user: &str| -> Option<u32> {
        let out = Command::new("id").args([flag, user]).output().ok()?;
        String::from_utf8(out.stdout).ok()?.trim().parse().ok()
    };
    let me = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&me.stdout).trim() != "0" {
        return None;
    }
    ["postgres", "nobody"]
        .into_iter()
        .find_map(|user| Some((id("-u", user)?, id("-g", user)?)))
}

/// A command run as the server's user.
fn as_server_user(program: &Path, user: Option<(u32, u32)>) -> Command {
    let mut command = Command::new(program);
    if let Some((uid, gid)) = user {
        use std::os::unix::process::CommandExt as _;
        command.uid(uid).gid(gid);
    }
    command
}

impl Postgres {
    /// Initializes a cluster in a fresh directory and starts it on a free loopback port; returns
    /// once it accepts connections.
    pub fn start() -> Self {
        let bin = bin_dir();
        let user = unprivileged();
        let dir = crate::support::client::fresh_dir();
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).expect("chown the directory");
        }
        let data = dir.join("data");
        let init = as_server_user(&bin.join("initdb"), user)
            .args(["--auth=trust", "--username=postgres", "--encoding=UTF8"])
            .args(["--locale=C", "--no-sync", "--no-instructions", "-D"])
            .arg(&data)
            .stdout(Stdio::null())
            .output()
            .expect("run initdb");
        assert!(
            init.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&init.stderr)
        );
        // Ask the kernel for a free port; the tiny window before the server binds it is
        // acceptable for tests (a clash makes the start fail loudly).
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        // The holder: the server in the background; when stdin closes, an immediate shutdown,
        // then the directory goes.
        let script = r#"
            "$1/postgres" -D "$2/data" -p "$3" -k "$2" -c listen_addresses=127.0.0.1 \
                -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
                -c max_connections=400 -c shared_buffers=32MB &
            pid=$!
            cat >/dev/null
            kill -QUIT "$pid" 2>/dev/null
            wait "$pid"
            rm -rf "$2"
        "#;
        let mut holder = as_server_user(Path::new("/bin/sh"), user)
            .arg("-c")
            .arg(script)
            .arg("sh")
            .arg(&bin)
            .arg(&dir)
            .arg(port.to_string())
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start postgres");
        let stdin = holder.stdin.take().expect("stdin");
        let stderr = holder.stderr.take().expect("stderr");
        let mut lines = BufReader::new(stderr).lines();
        let mut log = Vec::new();
        loop {
            let Some(Ok(line)) = lines.next() else {
                panic!("postgres exited before it was ready:\n{}", log.join("\n"));
            };
            if line.contains("ready to accept connections") {
                break;
            }
            log.push(line);
        }
        // Keep reading its log so that it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Self {
            port,
            bin,
            holder: Mutex::new(Some((holder, stdin))),
        }
    }

    /// Runs one of the client programs (`createdb`, `dropdb`) against this server; returns why
    /// it failed, if it did.
    fn client(&self, program: &str, database: &str, extra: &[&str]) -> Result<(), String> {
        let port = self.port.to_string();
        let out = Command::new(self.bin.join(program))
            .args(["-h", "127.0.0.1", "-p", &port, "-U", "postgres"])
            .args(extra)
            .arg(database)
            .output()
            .map_err(|e| format!("run {program}: {e}"))?;
        if out.status.success() {
            return Ok(());
        }
        let why = String::from_utf8_lossy(&out.stderr);
        Err(format!("{program} {database}: {why}"))
    }

    /// A new empty database; returns its URL.
    pub fn create_database(&self) -> String {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!("t{}", NEXT.fetch_add(1, Ordering::SeqCst));
        if let Err(e) = self.client("createdb", &name, &[]) {
            panic!("{e}");
        }
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Drops the database of `url` (its connections closed by force). Servers call it as they
    /// drop: a failure is told on stderr, not a panic (the whole cluster goes at the end anyway).
    pub fn drop_database(&self, url: &str) {
        if let Some(name) = url.rsplit('/').next()
            && let Err(e) = self.client("dropdb", name, &["--force", "--if-exists"])
        {
            eprintln!("{e}");
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let holder = self
            .holder
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some((mut child, stdin)) = holder {
            drop(stdin);
            let _ = child.wait();
        }
    }
}
