//! Runnable examples of the Kruxia Flow Rust worker SDK, one module per use case.
//!
//! Each module defines its activities and a `registry` function; the binary of the
//! same name (`src/bin/<name>.rs`) runs them as a worker against a real server:
//!
//! ```text
//! KRUXIAFLOW_API_URL=http://localhost:8080 cargo run -p kruxiaflow-worker-examples --bin quickstart
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
pub mod files;
pub mod load;
pub mod quickstart;
pub mod results;

use kruxiaflow_worker::prelude::*;

/// Runs `registry` as a worker configured from the environment until SIGINT/SIGTERM:
/// what each example binary does.
pub async fn run_from_env(register: impl FnOnce(&mut ActivityRegistry, &str)) -> Result<(), WorkerError> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let config = WorkerConfig::from_env()?;
    let mut registry = ActivityRegistry::new();
    register(&mut registry, &config.worker);
    tracing::info!(activities = ?registry.activity_types(), "registered");
    WorkerManager::new(config, registry).run_until_shutdown().await
}
