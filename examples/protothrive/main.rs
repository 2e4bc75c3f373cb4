//! Run with: cargo run --example protothrive
//!
//! The ProtoThrive API (contract: `shared/docs/protothrive-api.md`) on the crate's layers: users,
//! roadmaps, snippets, agent runs, insights and analytics on SQLite (the default, no setup) or
//! PostgreSQL (`PROTOTHRIVE_DATABASE_URL=postgres://…`; see `db/mod.rs`).

// A binary: `pub` marks what its modules share (and what the fuzz target compiles in), not a
// public API, so the library lints on public items do not apply.
#![allow(unreachable_pub, missing_docs, missing_debug_implementations)]

pub mod agent;
pub mod app;
pub mod cache;
pub mod config;
pub mod db;
pub mod http;
pub mod loaders;
pub mod passwords;
pub mod revocations;
pub mod routes;
pub mod state;

use std::net::SocketAddr;
use std::time::Duration;

use axum::ServiceExt as _;
use protothrive::clock;
use protothrive::trace::otel::OtlpExporter;

use crate::config::Config;

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let otlp = otlp_exporter()?;
    {
        use tracing_subscriber::Layer as _;
        use tracing_subscriber::layer::SubscriberExt as _;
        use tracing_subscriber::util::SubscriberInitExt as _;
        // The filter is the log's only: the exporter sees the request spans whatever it says.
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        tracing_subscriber::registry()
            .with(tracing_subscriber::fmt::layer().with_filter(filter))
            .with(otlp.as_ref().map(OtlpExporter::layer))
            .init();
    }
    let config = Config::from_env()?;
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .ok();
    let app::Built {
        service,
        demo_password,
        state,
    } = app::build(config.clone(), clock::system(), metrics).await?;

    let listener = tokio::net::TcpListener::bind(config.addr).await?;
    let addr = listener.local_addr()?;
    println!(
        "ProtoThrive API listening on http://{addr} ({:?})",
        config.env
    );
    println!("  try: curl http://{addr}/api/v1/health");
    match (&demo_password, config.is_production()) {
        (_, true) => {}
        (Some(p), false) => {
            for (_, email, _, role) in db::seed::DEMO_USERS {
                println!("  demo user {email} ({role}), password: {p}");
            }
        }
        (None, false) => println!(
            "  demo users were seeded earlier; their password is the one printed then (or PROTOTHRIVE_DEMO_PASSWORD)"
        ),
    }

    let grace = Duration::from_secs(config.shutdown_grace_secs);
    let (signal_tx, signal_rx) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(
        listener,
        service.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        shutdown_signal().await;
        tracing::info!("shutting down: finishing in-flight requests");
        let _ = signal_tx.send(());
    });
    // Bounded shutdown: in-flight requests get `grace` to finish; idle or slow clients do not hold
    // the process past it.
    tokio::select! {
        res = server => res?,
        () = async {
            let _ = signal_rx.await;
            tokio::time::sleep(grace).await;
        } => tracing::warn!("grace period over; exiting with connections still open"),
    }
    // Purges Redis did not take yet are replayed until it does: give them the grace too, so a
    // write answered before the shutdown is not left stale in another instance's cache.
    let settled = async {
        state.cache.handle().settled().await;
        state.data.settled().await;
    };
    if tokio::time::timeout(grace, settled).await.is_err() {
        tracing::warn!("exiting with cache purges Redis has not taken yet");
    }
    if let Some(otlp) = otlp
        && let Err(e) = otlp.shutdown().await
    {
        tracing::warn!("the last spans were not exported: {e}");
    }
    Ok(())
}

/// Request spans exported with OTLP/HTTP when `PROTOTHRIVE_OTLP_ENDPOINT` is set (a base URL
/// such as `http://127.0.0.1:4318`; `PROTOTHRIVE_OTLP_SERVICE_NAME`, default `protothrive-api`).
fn otlp_exporter() -> Result<Option<OtlpExporter>, protothrive::error::ConfigError> {
    let var = |name| {
        std::env::var(name)
            .ok()
            .filter(|v: &String| !v.trim().is_empty())
    };
    let Some(endpoint) = var("PROTOTHRIVE_OTLP_ENDPOINT") else {
        return Ok(None);
    };
    let service = var("PROTOTHRIVE_OTLP_SERVICE_NAME").unwrap_or_else(|| "protothrive-api".into());
    OtlpExporter::builder(endpoint.trim())
        .service_name(service)
        .build()
        .map(Some)
}
