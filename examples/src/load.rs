//! Activities for the benchmark and the soak tests, and the worker process that runs
//! them (`load_worker`, or `bench --worker`).

use std::time::Duration;

use kruxiaflow_worker::prelude::*;

/// Wall-clock microseconds since the Unix epoch, comparable across processes.
pub fn unix_micros() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

/// Does nothing; reports when its handler started and ended, for latency figures.
#[activity]
pub async fn noop() -> ActivityResult {
    let started_us = unix_micros();
    ActivityResult::values(vec![
        ActivityOutput::value("started_us", started_us),
        ActivityOutput::value("ended_us", unix_micros()),
    ])
}

/// Parameters of [`nap`].
#[derive(Debug, serde::Deserialize)]
pub struct Nap {
    /// How long to sleep, in milliseconds.
    pub ms: u64,
}

/// Sleeps, then completes.
#[activity]
pub async fn nap(params: Nap) -> ActivityResult {
    tokio::time::sleep(Duration::from_millis(params.ms)).await;
    ActivityResult::value("slept_ms", params.ms)
}

/// Parameters of [`copy_file`].
#[derive(Debug, serde::Deserialize)]
pub struct CopyFile {
    /// The file to copy.
    pub input: String,
}

/// Downloads a file and uploads it again as `copy.bin`.
#[activity]
pub async fn copy_file(params: CopyFile, ctx: &ActivityContext) -> Result<ActivityResult, ActivityError> {
    let path = ctx.download_file(&params.input).await?;
    Ok(ActivityResult::empty().with_output(ctx.file_output("copy.bin", &path).await?))
}

/// Parameters of [`stream_tokens`].
#[derive(Debug, serde::Deserialize)]
pub struct StreamTokens {
    /// How many tokens to send.
    pub tokens: u32,
    /// Milliseconds between tokens, as a model's pace.
    pub pace_ms: u64,
}

/// The text of every token [`stream_tokens`] sends.
pub const TOKEN: &str = "tok ";

/// Streams `tokens` tokens of [`TOKEN`], one every `pace_ms`, then completes with
/// their count.
#[activity]
pub async fn stream_tokens(params: StreamTokens, ctx: &ActivityContext) -> ActivityResult {
    let stream = ctx.stream();
    for _ in 0..params.tokens {
        stream.send(TOKEN);
        if params.pace_ms > 0 {
            tokio::time::sleep(Duration::from_millis(params.pace_ms)).await;
        }
    }
    ActivityResult::value("tokens", params.tokens)
}

/// Parameters of [`soak`].
#[derive(Debug, serde::Deserialize)]
pub struct Soak {
    /// Input; the output is `2 × n`.
    pub n: i64,
    /// Milliseconds of work, in 10 ms steps that stop when cancelled.
    pub work_ms: u64,
}

/// Works for a while (stopping when cancelled) and returns a value derived from its
/// input, so a test can check every completion is the exact expected one.
#[activity]
pub async fn soak(params: Soak, ctx: &ActivityContext) -> Result<ActivityResult, ActivityError> {
    let mut left = params.work_ms;
    while left > 0 {
        if let Some(reason) = ctx.cancel_reason() {
            return Err(ActivityError::retryable("CANCELLED", format!("stopped: {reason}")));
        }
        let step = left.min(10);
        tokio::time::sleep(Duration::from_millis(step)).await;
        left -= step;
    }
    Ok(ActivityResult::value("double", params.n * 2))
}

/// Parameters of [`steps`].
#[derive(Debug, serde::Deserialize)]
pub struct Steps {
    /// How many durable steps to run.
    pub steps: u32,
}

/// Runs `steps` durable steps, each returning a small value at once (so what is
/// measured is the steps' own cost); reports when its handler started and ended.
#[activity]
pub async fn steps(params: Steps, ctx: &ActivityContext) -> Result<ActivityResult, ActivityError> {
    let started_us = unix_micros();
    for n in 0..params.steps {
        let _: u32 = ctx.step(&format!("step-{n}"), || async move { Ok(n) }).await?;
    }
    Ok(ActivityResult::values(vec![
        ActivityOutput::value("started_us", started_us),
        ActivityOutput::value("ended_us", unix_micros()),
    ]))
}

/// Registers the load activities under `worker`.
pub fn register(registry: &mut ActivityRegistry, worker: &str) {
    registry
        .register(noop, worker)
        .register(nap, worker)
        .register(copy_file, worker)
        .register(soak, worker)
        .register(steps, worker)
        .register(stream_tokens, worker);
}

/// Runs the load activities as a worker configured from the environment, logging
/// warnings only (logging every activity would measure the logger).
/// Traces are exported as [`init_traces`](crate::init_traces) says.
pub async fn run_worker() -> Result<(), WorkerError> {
    let tracing = crate::init_traces()?;
    if tracing.is_none() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
            .with_writer(std::io::stderr)
            .init();
    }
    let config = WorkerConfig::from_env()?;
    let mut registry = ActivityRegistry::new();
    register(&mut registry, &config.worker);
    let ran = WorkerManager::new(config, registry).run_until_shutdown().await;
    if let Some(tracing) = tracing {
        tracing.shutdown(std::time::Duration::from_secs(5)).await;
    }
    ran
}

#[cfg(test)]
mod tests {
    use super::*;
    use kruxiaflow_worker_testing::MockContext;
    use serde_json::json;

    #[tokio::test]
    async fn soak_returns_twice_its_input_and_stops_when_cancelled() {
        let result = MockContext::new("rust", "soak").run(&soak, json!({"n": 21, "work_ms": 20})).await.unwrap();
        assert_eq!(result.output("double"), Some(&json!(42)));
        let mock = MockContext::builder("rust", "soak").cancel_after(Duration::from_millis(30)).build();
        let error = mock.run(&soak, json!({"n": 1, "work_ms": 10_000})).await.unwrap_err();
        assert_eq!(error.code(), "CANCELLED");
    }

    #[tokio::test]
    async fn stream_tokens_sends_each_token() {
        let mock = MockContext::builder("rust", "stream_tokens").streaming(true).build();
        let result = mock.run(&stream_tokens, json!({"tokens": 3, "pace_ms": 0})).await.unwrap();
        assert_eq!(result.output("tokens"), Some(&json!(3)));
        assert_eq!(mock.streamed().text(), "tok tok tok ");
    }

    #[tokio::test]
    async fn noop_reports_ordered_timestamps() {
        let result = MockContext::new("rust", "noop").run(&noop, json!({})).await.unwrap();
        let started = result.output("started_us").unwrap().as_u64().unwrap();
        assert!(result.output("ended_us").unwrap().as_u64().unwrap() >= started);
    }
}
