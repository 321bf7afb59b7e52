//! A worker serving `llm_chat`: streamed answers from an OpenAI-compatible API.
//!
//! ```text
//! OPENAI_API_KEY=sk-... OPENAI_MODEL=gpt-4o-mini cargo run -p kruxiaflow-worker-examples --bin llm_chat
//! # or a local server: OPENAI_BASE_URL=http://localhost:11434/v1 OPENAI_MODEL=llama3.2
//! ```
#![forbid(unsafe_code)]

use kruxiaflow_worker::WorkerError;

#[tokio::main]
async fn main() -> Result<(), WorkerError> {
    kruxiaflow_worker_examples::run_from_env(kruxiaflow_worker_examples::llm_chat::register).await
}
