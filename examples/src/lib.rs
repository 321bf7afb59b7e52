//! Runnable examples of the Kruxia Flow Rust worker SDK, one module per use case.
//!
//! Each module defines its activities and a `register` function; the binary of the
//! same name (`src/bin/<name>.rs`) runs them as a worker against a real server
//! (`KRUXIAFLOW_API_URL` defaults to `http://localhost:8080`, as in the guide):
//!
//! ```text
//! KRUXIAFLOW_WORKER=my-rust-worker cargo run -p kruxiaflow-worker-examples --bin quickstart
//! ```
//!
//! The `demo` binary runs all of them against the fake server embedded in its own
//! process, so it needs nothing installed:
//!
//! ```text
//! cargo run -p kruxiaflow-worker-examples --bin demo
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod class_based;
pub mod complete;
pub mod config;
pub mod context;
pub mod decorators;
pub mod durable;
pub mod files;
pub mod guide;
pub mod llm_chat;
pub mod load;
pub mod quickstart;
pub mod results;

use kruxiaflow_worker::prelude::*;

/// Prints log lines at `info` and above (or as `RUST_LOG` says) to standard error, as
/// text or as JSON (`KRUXIAFLOW_LOG_FORMAT=json`).
pub fn init_logging() -> Result<(), WorkerError> {
    Ok(kruxiaflow_worker::logging::init()?)
}

/// Log lines as [`init_logging`] prints them, and, when `OTEL_EXPORTER_OTLP_ENDPOINT`
/// (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, traces exported there.
pub fn init_logging_and_traces() -> Result<Option<kruxiaflow_worker::otel::Tracing>, WorkerError> {
    if let Some(tracing) = init_traces()? {
        return Ok(Some(tracing));
    }
    init_logging()?;
    Ok(None)
}

/// Log lines and traces as [`kruxiaflow_worker::otel::init`] sets them up, when
/// `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set;
/// `None`, with nothing installed, otherwise.
pub fn init_traces() -> Result<Option<kruxiaflow_worker::otel::Tracing>, WorkerError> {
    let traced = ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]
        .iter()
        .any(|name| std::env::var(name).is_ok_and(|value| !value.trim().is_empty()));
    if !traced {
        return Ok(None);
    }
    kruxiaflow_worker::otel::init().map(Some).map_err(|e| WorkerError::Startup(e.to_string()))
}

/// Runs `registry` as a worker configured from the environment until SIGINT/SIGTERM:
/// what each example binary does.
pub async fn run_from_env(register: impl FnOnce(&mut ActivityRegistry, &str)) -> Result<(), WorkerError> {
    run_from_env_with(register, |manager| manager).await
}

/// Like [`run_from_env`], with `customize` applied to the worker before it runs (its
/// rate limits, for instance).
pub async fn run_from_env_with(
    register: impl FnOnce(&mut ActivityRegistry, &str),
    customize: impl FnOnce(WorkerManager) -> WorkerManager,
) -> Result<(), WorkerError> {
    let tracing = init_logging_and_traces()?;
    let config = WorkerConfig::from_env()?;
    let mut registry = ActivityRegistry::new();
    register(&mut registry, &config.worker);
    tracing::info!(activities = ?registry.activity_types(), "registered");
    let ran = customize(WorkerManager::new(config, registry)).run_until_shutdown().await;
    if let Some(tracing) = tracing {
        tracing.shutdown(std::time::Duration::from_secs(5)).await;
    }
    ran
}
