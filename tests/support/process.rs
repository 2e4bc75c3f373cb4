//! An example as a real process on a loopback port ([`example_binary`], [`listening`]), and the
//! ProtoThrive example so, with its own SQLite file ([`Server`]): for the tests where the process
//! is the point (shutdown on SIGTERM, `kill -9`, two instances on one Redis, faults under load, a
//! browser, the gateway's command line). Everything else runs the app in process
//! (`tests/support/example.rs`).

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use super::client::Url;

/// The binary of example `name`, built on demand once per test process (a no-op when
/// `cargo test` built it).
pub fn example_binary(name: &str) -> PathBuf {
    static BUILT: Mutex<Option<HashSet<String>>> = Mutex::new(None);
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> → target/<profile>/examples/<name>
    let profile_dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let mut built = BUILT.lock().unwrap_or_else(PoisonError::into_inner);
    if built
        .get_or_insert_with(HashSet::new)
        .insert(name.to_owned())
    {
        let status = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "--example", name])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .unwrap_or_else(|e| panic!("cargo build --example {name}: {e}"));
        assert!(status.success(), "building the {name} example failed");
    }
    profile_dir.join("examples").join(name)
}

/// Waits for the `listening on URL` line a spawned example prints on stdout (its stdout piped)
/// and returns the URL; stdout is drained from then on, so the child never blocks on a full pipe.
pub fn listening(child: &mut Child) -> String {
    let stdout = child.stdout.take().expect("stdout piped");
    let mut lines = BufReader::new(stdout).lines();
    let base = loop {
        let line = lines
            .next()
            .expect("the example exited before listening")
            .expect("read stdout");
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    base
}

pub struct Server {
    child: Option<Child>,
    pub base: String,
    pub dir: PathBuf,
    /// `sqlite://DIR/api.db`, or a PostgreSQL database (`support::postgres::database_for`).
    pub database_url: String,
    env: Vec<(String, String)>,
}

impl Server {
    /// Starts the app with extra environment variables.
    pub fn start_with(env: &[(&str, &str)]) -> Self {
        let mut server = Self::unstarted(env);
        server.spawn();
        server
    }

    /// A server not started yet, with a directory of its own.
    fn unstarted(env: &[(&str, &str)]) -> Self {
        let dir = Self::fresh_dir();
        Self {
            child: None,
            base: String::new(),
            database_url: super::postgres::database_for(&dir),
            dir,
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    /// An empty directory of its own for one server's files.
    fn fresh_dir() -> PathBuf {
        super::client::fresh_dir()
    }

    /// The example's command line: loopback, this server's database, the test secrets.
    fn command(&self) -> Command {
        let mut cmd = Command::new(example_binary("protothrive"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(super::client::base_env(&self.database_url))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    fn spawn(&mut self) {
        let mut child = self.command().spawn().expect("spawn the example");
        self.base = listening(&mut child);
        self.child = Some(child);
    }

    /// Runs the app with extra environment variables, expecting it to refuse to start: returns
    /// what it wrote to stderr (it must exit unsuccessfully without ever listening).
    pub fn refused_start(env: &[(&str, &str)]) -> String {
        let out = Self::unstarted(env)
            .command()
            .stderr(Stdio::piped())
            .output()
            .expect("run the example");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(!out.status.success(), "it started: {stdout}");
        assert!(!stdout.contains("listening on"), "it listened: {stdout}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// Full URL of a path.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// SIGKILL: the process gets no chance to flush anything.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits up to `limit` for the process to exit; returns whether it did.
    // A deadline for a real child process: the wall clock is what it runs against.
    #[allow(clippy::disallowed_methods)]
    pub fn terminate(&mut self, limit: Duration) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                return true;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the app again on the same database.
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
        super::postgres::forget(&self.database_url);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Url for Server {
    fn url(&self, path: &str) -> String {
        Server::url(self, path)
    }
}
