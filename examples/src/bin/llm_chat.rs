//! A worker serving `llm_chat`: streamed answers from an OpenAI-compatible API.
//!
//! ```text
//! OPENAI_API_KEY=sk-... OPENAI_MODEL=gpt-4o-mini cargo run -p kruxiaflow-worker-examples --bin llm_chat
//! # or a local server: OPENAI_BASE_URL=http://localhost:11434/v1 OPENAI_MODEL=llama3.2
//! ```
//!
//! `LLM_REQUESTS_PER_MINUTE` limits this worker's requests (its share of the
//! provider's quota); a 429 or 503 is waited out in the attempt, as its `Retry-After`
//! says, up to three times.
#![forbid(unsafe_code)]

use kruxiaflow_worker::WorkerError;

#[tokio::main]
async fn main() -> Result<(), WorkerError> {
    use kruxiaflow_worker_examples::llm_chat::{REQUESTS_LIMIT, register, requests_limit_from_env};
    kruxiaflow_worker_examples::run_from_env_with(register, |manager| match requests_limit_from_env() {
        Some(limit) => manager.rate_limit(REQUESTS_LIMIT, limit),
        None => manager,
    })
    .await
}
