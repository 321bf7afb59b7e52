//! Example worker: the guide's complete worker: `analyze_text`, `call_external_api` and
//! `batch_process` (a `BatchProcessor` with batches of 50).
//!
//! Run it against a server (a dev-mode server needs no credentials):
//!
//! ```text
//! KRUXIAFLOW_WORKER=my-rust-worker cargo run -p kruxiaflow-worker-examples --bin complete
//! ```
//!
//! `KRUXIAFLOW_API_URL` defaults to `http://localhost:8080`. With OAuth, also set
//! `KRUXIAFLOW_CLIENT_ID` and `KRUXIAFLOW_CLIENT_SECRET`. Stop it with Ctrl-C:
//! in-flight activities finish first (a second Ctrl-C stops at once).
#![forbid(unsafe_code)]

use kruxiaflow_worker::prelude::*;
use kruxiaflow_worker_examples::complete;

#[tokio::main]
async fn main() -> Result<(), WorkerError> {
    kruxiaflow_worker_examples::init_logging()?;
    let config = WorkerConfig::from_env()?;

    let mut registry = ActivityRegistry::new();
    // analyze_text, call_external_api and BatchProcessor { batch_size: 50 }
    complete::register(&mut registry, &config.worker);

    println!("Worker: {}", config.worker);
    println!("Activities: {:?}", registry.activity_types());

    WorkerManager::new(config, registry).run_until_shutdown().await
}
