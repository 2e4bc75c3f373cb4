//! Builds the ProtoThrive API example and runs it on a free loopback port with a throw-away SQLite
//! file, for a load test given no `--host`. The process is killed when [`Server`] is dropped, so
//! an early return or a panic never leaves it running.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Rate limits for the spawned API: every user of the test comes from 127.0.0.1, so the
/// contract's defaults (60/min per IP, 5 registrations per 15 min) would answer 429 to nearly
/// everything. Each limit is set far above what the test sends; the limiter still runs, so its
/// cost is measured. `--server-env PROTOTHRIVE_RATE_LIMITS=...` overrides it.
pub(crate) const RATE_LIMITS: &str = "ip=1000000/60s:100000,user=1000000/60s:100000,api_key=1000000/60s:100000,\
     login=1000000/300s:100000,register=1000000/900s:100000";

/// How the example is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Build {
    /// `cargo build --example protothrive` (the dev profile).
    Dev,
    /// `cargo build --release --example protothrive`.
    Release,
}

impl Build {
    /// The profile this binary was built with: a release load test measures a release server.
    pub(crate) fn same_as_this_binary() -> Self {
        if cfg!(debug_assertions) {
            Self::Dev
        } else {
            Self::Release
        }
    }
}

/// The running example.
#[derive(Debug)]
pub(crate) struct Server {
    child: Child,
    dir: PathBuf,
    /// `http://127.0.0.1:PORT`.
    pub(crate) base_url: String,
}

/// The workspace root: this crate's parent folder.
fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// Runs `cargo build --example protothrive` and returns the executable cargo reports, which is
/// wherever `CARGO_TARGET_DIR` (or `build.target-dir`) puts it.
fn build(profile: Build) -> Result<PathBuf, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command.current_dir(workspace_root()).args([
        "build",
        "--example",
        "protothrive",
        "--message-format=json-render-diagnostics",
    ]);
    if profile == Build::Release {
        command.arg("--release");
    }
    eprintln!(
        "loadtest: building the API: cargo build --example protothrive{}",
        if profile == Build::Release {
            " --release"
        } else {
            ""
        }
    );
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    let mut executable = None;
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let Ok(message) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            let is_example = message["reason"] == "compiler-artifact"
                && message["target"]["name"] == "protothrive"
                && message["target"]["kind"]
                    .as_array()
                    .is_some_and(|k| k.iter().any(|k| k == "example"));
            if let (true, Some(path)) = (is_example, message["executable"].as_str()) {
                executable = Some(PathBuf::from(path));
            }
        }
    }
    let status = child.wait().map_err(|e| format!("cargo build: {e}"))?;
    if !status.success() {
        return Err(format!(
            "cargo build --example protothrive failed ({status})"
        ));
    }
    executable.ok_or_else(|| "cargo build reported no protothrive example executable".to_owned())
}

/// A port nothing listens on right now.
fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

/// The last `max` bytes of a file, for an error message.
fn tail(path: &Path, max: u64) -> String {
    let Ok(mut file) = File::open(path) else {
        return String::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(max)));
    let mut text = String::new();
    let _ = file.read_to_string(&mut text);
    text
}

impl Server {
    /// Builds and starts the example (or runs `LOADTEST_SERVER_BIN`), and waits until `/api/v1/health/ready` answers 200.
    /// `extra_env` (`KEY=VALUE`) is applied last, over the defaults.
    pub(crate) async fn start(profile: Build, extra_env: &[String]) -> Result<Self, String> {
        // A prebuilt executable (say, another revision's, to compare): no build.
        let executable = match std::env::var_os("LOADTEST_SERVER_BIN") {
            Some(path) => PathBuf::from(path),
            None => build(profile)?,
        };
        let dir =
            std::env::temp_dir().join(format!("protothrive-loadtest-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let log_path = dir.join("server.log");
        let log =
            File::create(&log_path).map_err(|e| format!("cannot create the server log: {e}"))?;
        let log_err = log.try_clone().map_err(|e| format!("server log: {e}"))?;
        let addr = format!("127.0.0.1:{}", free_port()?);

        let mut command = Command::new(&executable);
        // Nothing of the caller's own ProtoThrive set-up leaks in: the run is reproducible.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("PROTOTHRIVE_") {
                command.env_remove(key);
            }
        }
        command
            .env("PROTOTHRIVE_ADDR", &addr)
            .env(
                "PROTOTHRIVE_DATABASE_URL",
                format!("sqlite://{}", dir.join("lt.db").display()),
            )
            .env("PROTOTHRIVE_ENV", "development")
            .env("PROTOTHRIVE_AGENT_LATENCY_MS", "0")
            .env("PROTOTHRIVE_RATE_LIMITS", RATE_LIMITS)
            // Per-request info logs would be part of what is measured; warnings still show.
            .env(
                "RUST_LOG",
                std::env::var("LOADTEST_SERVER_LOG").unwrap_or_else(|_| "warn".into()),
            );
        for pair in extra_env {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| format!("--server-env {pair}: use KEY=VALUE"))?;
            command.env(key, value);
        }
        let child = command
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", executable.display()))?;
        let mut server = Self {
            child,
            dir,
            base_url: format!("http://{addr}"),
        };
        eprintln!(
            "loadtest: started {} on {} (log: {})",
            executable.display(),
            server.base_url,
            log_path.display()
        );
        server.wait_ready(&log_path).await?;
        Ok(server)
    }

    /// Polls readiness every 100 ms, 300 times at most (30 s), or until the process exits.
    async fn wait_ready(&mut self, log: &Path) -> Result<(), String> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .map_err(|e| format!("http client: {e}"))?;
        let url = format!("{}/api/v1/health/ready", self.base_url);
        for _ in 0..300 {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "the API exited before it was ready ({status}):\n{}",
                    tail(log, 4000)
                ));
            }
            if let Ok(response) = client.get(&url).send().await
                && response.status().is_success()
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(format!(
            "the API was not ready after 30 s at {url}:\n{}",
            tail(log, 4000)
        ))
    }
}

/// CPU seconds (user + system, all threads) a process has used so far, from `/proc/PID/stat`
/// (Linux; clock ticks of 1/100 s, as every Linux build has them); `None` elsewhere.
pub(crate) fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; fields after it start at field 3.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    Some((ticks(11)? + ticks(12)?) as f64 / 100.0)
}

impl Server {
    /// CPU seconds the API has used so far.
    pub(crate) fn cpu_seconds(&self) -> Option<f64> {
        cpu_seconds(&self.child.id().to_string())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #[test]
    fn reads_this_process_cpu_time() {
        assert!(super::cpu_seconds("self").is_some_and(|s| s >= 0.0));
        assert_eq!(super::cpu_seconds("not-a-pid"), None);
    }
}
