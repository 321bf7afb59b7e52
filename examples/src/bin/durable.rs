//! Example worker: durable steps (paid LLM steps a retry skips) and a checkpointed batch.
//!
//! Run it against a server (dev mode needs no credentials):
//!
//! ```text
//! KRUXIAFLOW_API_URL=http://localhost:8080 cargo run -p kruxiaflow-worker-examples --bin durable
//! ```
//!
//! With OAuth, also set `KRUXIAFLOW_CLIENT_ID` and `KRUXIAFLOW_CLIENT_SECRET`. Stop it
//! with Ctrl-C: in-flight activities finish first (a second Ctrl-C stops at once).
#![forbid(unsafe_code)]

use kruxiaflow_worker::WorkerError;

#[tokio::main]
async fn main() -> Result<(), WorkerError> {
    kruxiaflow_worker_examples::run_from_env(kruxiaflow_worker_examples::durable::register).await
}
