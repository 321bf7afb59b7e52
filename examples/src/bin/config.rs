//! Example: `WorkerConfig` from the environment and built in code, then a worker run
//! with the code-built settings (32 activities at once, 10-minute timeout).
//!
//! ```text
//! KRUXIAFLOW_API_URL=http://localhost:8080 cargo run -p kruxiaflow-worker-examples --bin config
//! ```
#![forbid(unsafe_code)]

use kruxiaflow_worker::prelude::*;
use kruxiaflow_worker_examples::{config, quickstart};

#[tokio::main]
async fn main() -> Result<(), WorkerError> {
    let from_env = config::from_env()?;
    println!("from the environment: {from_env:#?}");
    let config = WorkerConfig { credentials: from_env.credentials.clone(), ..config::programmatic(&from_env.api_url) };
    println!("built in code: {config:#?}");
    let mut registry = ActivityRegistry::new();
    quickstart::register(&mut registry, &config.worker);
    WorkerManager::new(config, registry).run_until_shutdown().await
}
