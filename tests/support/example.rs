//! The ProtoThrive example compiled into the test crate, and [`Server`]: the app built by
//! `app::build` from a configuration and served on a loopback port inside the test process (a
//! start costs milliseconds, not a process).
//!
//! A test crate includes it next to `tests/support/mod.rs` and names the example's modules at its
//! root, where the example's `crate::…` paths look for them:
//!
//! ```ignore
//! #[path = "../support/example.rs"]
//! mod example;
//! use example::api::{agent, app, cache, config, db, http, loaders, passwords, revocations, routes, state};
//! ```
//!
//! What one process holds once is shared by the servers of a test binary: the Prometheus recorder
//! (a scrape shows every server's series) and the example's process-wide settings.

#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use axum::ServiceExt as _;

use crate::support::client::{Url, base_env, fresh_dir};

/// The example's modules, as `cargo run --example protothrive` compiles them.
#[path = "../../examples/protothrive/main.rs"]
#[allow(clippy::all, clippy::pedantic)]
pub mod api;

use api::{app, config};

/// The test process's one Prometheus recorder (a process has at most one).
fn metrics() -> Option<metrics_exporter_prometheus::PrometheusHandle> {
    static HANDLE: OnceLock<Option<metrics_exporter_prometheus::PrometheusHandle>> =
        OnceLock::new();
    HANDLE
        .get_or_init(|| {
            metrics_exporter_prometheus::PrometheusBuilder::new()
                .install_recorder()
                .ok()
        })
        .clone()
}

/// A running app: its thread and runtime, stopped when this drops.
struct Running {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The API served in process on a free loopback port, with a directory and a database of its own:
/// a SQLite file in the directory, or with `PROTOTHRIVE_TEST_DATABASE=postgres` a database of
/// the test binary's throw-away PostgreSQL server (`support::postgres`). Its runtime runs on a
/// thread of its own, so it serves whatever runtime the test uses.
pub struct Server {
    pub base: String,
    pub dir: PathBuf,
    /// `sqlite://DIR/api.db` or `postgres://…`, kept across restarts.
    pub database_url: String,
    env: Vec<(String, String)>,
    running: Option<Running>,
}

impl Server {
    /// Starts the app with extra configuration variables (`PROTOTHRIVE_*`).
    pub fn start_with(env: &[(&str, &str)]) -> Self {
        let mut server = Self::unstarted(env);
        if let Err(e) = server.spawn() {
            panic!("the app did not start: {e}");
        }
        server
    }

    fn unstarted(env: &[(&str, &str)]) -> Self {
        let dir = fresh_dir();
        let database_url = crate::support::postgres::database_for(&dir);
        Self {
            base: String::new(),
            dir,
            database_url,
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            running: None,
        }
    }

    /// The configuration variables: the test defaults, then the test's own.
    fn vars(&self) -> HashMap<String, String> {
        base_env(&self.database_url)
            .into_iter()
            .chain(self.env.iter().cloned())
            .collect()
    }

    fn spawn(&mut self) -> Result<(), String> {
        let config = config::Config::from_vars(&self.vars()).map_err(|e| e.to_string())?;
        let (ready_tx, ready_rx) = mpsc::channel::<Result<String, String>>();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let started = async {
                    let addr = config.addr;
                    let built = app::build(config, protothrive::clock::system(), metrics()).await?;
                    let listener = tokio::net::TcpListener::bind(addr).await?;
                    let addr = listener.local_addr()?;
                    Ok::<_, Box<dyn std::error::Error>>((built.service, listener, addr))
                };
                let (service, listener, addr) = match started.await {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(format!("http://{addr}")));
                let serve = axum::serve(
                    listener,
                    service.into_make_service_with_connect_info::<std::net::SocketAddr>(),
                );
                tokio::select! {
                    _ = serve => {}
                    _ = stop_rx => {}
                }
            });
            // Connections still open end with the runtime.
            rt.shutdown_timeout(Duration::from_secs(1));
        });
        let mut running = Running {
            stop: Some(stop_tx),
            thread: Some(thread),
        };
        match ready_rx.recv() {
            Ok(Ok(base)) => {
                self.base = base;
                self.running = Some(running);
                Ok(())
            }
            Ok(Err(e)) => Err(e),
            Err(_) => {
                running.stop = None;
                Err("the app's thread ended before it listened".to_owned())
            }
        }
    }

    /// Builds the app with extra configuration variables, expecting it to refuse: returns why.
    pub fn refused_start(env: &[(&str, &str)]) -> String {
        match Self::unstarted(env).spawn() {
            Ok(()) => panic!("it started with {env:?}"),
            Err(e) => e,
        }
    }

    /// Full URL of a path.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Stops the app and starts it again on the same database (on another port).
    pub fn restart(&mut self) {
        self.running = None;
        if let Err(e) = self.spawn() {
            panic!("the app did not start again: {e}");
        }
    }
}

impl Url for Server {
    fn url(&self, path: &str) -> String {
        Server::url(self, path)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.running = None;
        crate::support::postgres::forget(&self.database_url);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
