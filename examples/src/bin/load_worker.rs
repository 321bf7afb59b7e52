//! A worker process running the load activities (`noop`, `nap`, `copy_file`, `soak`),
//! configured from the environment. The benchmark and the soak tests start it.
#![forbid(unsafe_code)]

#[tokio::main]
async fn main() -> Result<(), kruxiaflow_worker::WorkerError> {
    kruxiaflow_worker_examples::load::run_worker().await
}
