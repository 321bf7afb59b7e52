//! Helpers shared by the worker's integration tests.
#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use kruxiaflow_worker::prelude::*;
use kruxiaflow_worker::{RetryPolicy, WorkerHandle};
use kruxiaflow_worker_testing::FakeServer;
use serde_json::Value;
use tokio::task::JoinHandle;

/// A config tuned for tests: quick polls, short drains, unique worker id.
pub fn config(server: &FakeServer) -> WorkerConfig {
    WorkerConfig {
        worker_id: format!("worker_test_{}", uuid::Uuid::now_v7().simple()),
        poll_interval: Duration::from_millis(10),
        shutdown_timeout: Duration::from_millis(500),
        cancellation_grace: Duration::from_millis(300),
        http_timeout: Duration::from_secs(5),
        ..WorkerConfig::new(server.url())
    }
}

/// Retries quickly so fault tests stay fast.
pub fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        min_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(100),
        factor: 2.0,
        max_retries: 4,
    }
}

/// A worker running in the background of a test.
pub struct RunningWorker {
    pub handle: WorkerHandle,
    task: JoinHandle<Result<(), WorkerError>>,
}

impl RunningWorker {
    pub fn start(config: WorkerConfig, registry: ActivityRegistry) -> Self {
        let manager = WorkerManager::new(config, registry).with_retry_policy(fast_retry());
        let handle = manager.handle();
        let task = tokio::spawn(manager.run(std::future::pending()));
        Self { handle, task }
    }

    /// Graceful shutdown; returns what `run` returned.
    pub async fn stop(self) -> Result<(), WorkerError> {
        self.handle.shutdown();
        self.join().await
    }

    /// Waits for `run` to return (after a shutdown was requested some other way).
    pub async fn join(self) -> Result<(), WorkerError> {
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("worker did not stop within 30 s")
            .expect("worker task panicked")
    }
}

/// An activity made from a closure, for tests.
pub struct TestActivity<F> {
    name: &'static str,
    body: F,
}

pub fn activity<F, Fut>(name: &'static str, body: F) -> TestActivity<F>
where
    F: Fn(Value, ActivityContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<ActivityResult, ActivityError>> + Send + 'static,
{
    TestActivity { name, body }
}

impl<F, Fut> Activity for TestActivity<F>
where
    F: Fn(Value, ActivityContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<ActivityResult, ActivityError>> + Send + 'static,
{
    fn name(&self) -> &str {
        self.name
    }

    fn run(
        &self,
        params: Value,
        ctx: ActivityContext,
    ) -> impl Future<Output = Result<ActivityResult, ActivityError>> + Send {
        (self.body)(params, ctx)
    }
}

/// An activity that echoes its parameters as the output `echo`.
pub fn echo() -> impl Activity {
    activity("echo", |params, _ctx| async move { Ok(ActivityResult::value("echo", params)) })
}

/// Polls `check` every 10 ms for up to 10 s.
pub async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
