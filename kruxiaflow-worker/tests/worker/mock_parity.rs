//! `MockContext::report` is exactly what the worker sends, case by case, as observed
//! at the fake server.

use std::time::Duration;

use kruxiaflow_worker::CancelReason;
use kruxiaflow_worker::prelude::*;
use kruxiaflow_worker_testing::{FakeServer, MockContext, NewActivity, RetrySettings};
use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::common::{RunningWorker, config};

/// One activity whose behaviour the parameters choose.
struct Cases;

impl Activity for Cases {
    fn name(&self) -> &str {
        "cases"
    }

    async fn run(&self, params: Value, ctx: ActivityContext) -> Result<ActivityResult, ActivityError> {
        ctx.add_cost(Decimal::new(2, 3));
        ctx.record_usage(UsageEntry::new("openai", "gpt-4o-mini").input_tokens(10).output_tokens(2));
        match params["case"].as_str().unwrap_or_default() {
            "ok" => Ok(ActivityResult::value("n", 1).with_cost(Decimal::new(1, 3))),
            "terminal" => Err(ActivityError::terminal("BAD_INPUT", "no")),
            "retryable" => Err(ActivityError::retryable("UPSTREAM", "503 from upstream")),
            "result_error" => Ok(ActivityResult::error("empty text", "VALIDATION_ERROR", false)),
            "nan" => Ok(ActivityResult::value("ratio", f64::INFINITY)),
            "panic" => panic!("boom"),
            other => Err(ActivityError::terminal("UNKNOWN_CASE", other.to_owned())),
        }
    }
}

#[tokio::test]
async fn the_mocks_report_is_what_the_worker_sends_for_every_case() {
    let server = FakeServer::start().await;
    let config = config(&server);
    let mut registry = ActivityRegistry::new();
    registry.register(Cases, "rust");
    let cases = ["ok", "terminal", "retryable", "result_error", "nan", "panic"];
    // One attempt each: a retried failure would be reported again.
    let enqueue = |case: &str| {
        server
            .enqueue(NewActivity::new("rust", "cases").params(json!({"case": case})).retry(RetrySettings::attempts(1)))
    };
    let ids: Vec<_> = cases.iter().map(|case| enqueue(case)).collect();
    let worker = RunningWorker::start(config.clone(), registry);
    for id in &ids {
        server.wait_for(*id).await;
    }
    worker.stop().await.unwrap();

    for (case, id) in cases.iter().zip(ids) {
        let sent = server.log().reports(id);
        assert_eq!(sent.len(), 1, "{case}");
        let mock = MockContext::builder("rust", "cases").worker_id(&config.worker_id).build();
        let outcome = mock.run(&Cases, json!({"case": case})).await;
        let report = mock.report(&outcome).expect("the mock reports what the worker reports");
        assert_eq!(sent[0].path.rsplit('/').next(), Some(report.endpoint()), "{case}");
        assert_eq!(sent[0].body.as_ref(), Some(&report.to_json()), "{case}");
    }
}

#[tokio::test]
async fn the_mock_reports_nothing_after_a_lost_lease() {
    let mock = MockContext::builder("rust", "cases").cancel_after_heartbeats(1).build();
    let ctx = mock.context();
    assert!(ctx.heartbeat().await.is_err());
    let outcome = mock.run(&Cases, json!({"case": "ok"})).await;
    assert!(outcome.is_ok(), "the handler itself returned");
    assert_eq!(mock.report(&outcome), None, "the worker sends nothing once the lease is lost");
}

/// Waits until cancelled; then, with `{"heartbeat": true}`, waits for the test's go
/// and heartbeats until a heartbeat fails (a lost lease surfaces within an interval),
/// and fails as a handler stopped early does.
struct Waits {
    /// Told `true` when the handler starts, `false` when it is cancelled.
    events: tokio::sync::mpsc::UnboundedSender<bool>,
    go: std::sync::Arc<tokio::sync::Notify>,
}

impl Activity for Waits {
    fn name(&self) -> &str {
        "waits"
    }

    async fn run(&self, params: Value, ctx: ActivityContext) -> Result<ActivityResult, ActivityError> {
        ctx.add_cost(Decimal::new(3, 3));
        let _ = self.events.send(true);
        ctx.cancelled().await;
        let _ = self.events.send(false);
        if params["heartbeat"] == true {
            self.go.notified().await;
            while ctx.heartbeat().await.is_ok() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        Err(ActivityError::retryable("STOPPED", "stopped when cancelled"))
    }
}

/// What the worker sent for `id`: `(endpoint, body)`, or `None`.
fn sent(server: &FakeServer, id: uuid::Uuid) -> Option<(String, Value)> {
    let reports = server.log().reports(id);
    assert!(reports.len() <= 1, "{reports:?}");
    reports.first().map(|r| (r.path.rsplit('/').next().unwrap().to_owned(), r.body.clone().unwrap()))
}

/// What the mock says a worker sends when the run is cancelled with `reason` and then,
/// with `heartbeat`, heartbeats into a lost lease.
async fn mock_sends(worker_id: &str, reason: CancelReason, heartbeat: bool) -> Option<(String, Value)> {
    let mut builder = MockContext::builder("rust", "waits").worker_id(worker_id).timeout(Duration::from_secs(1));
    if heartbeat {
        builder = builder.cancel_after_heartbeats(1);
    }
    let mock = std::sync::Arc::new(builder.build());
    let (events, mut event) = tokio::sync::mpsc::unbounded_channel();
    let go = std::sync::Arc::new(tokio::sync::Notify::new());
    let waits = Waits { events, go: std::sync::Arc::clone(&go) };
    let params = json!({"heartbeat": heartbeat});
    let run = tokio::spawn({
        let mock = std::sync::Arc::clone(&mock);
        async move { mock.run(&waits, params).await }
    });
    assert_eq!(event.recv().await, Some(true));
    mock.cancel(reason);
    assert_eq!(event.recv().await, Some(false));
    go.notify_one();
    let outcome = run.await.unwrap();
    mock.report(&outcome).map(|report| (report.endpoint().to_owned(), report.to_json()))
}

#[tokio::test]
async fn the_mock_and_the_worker_agree_on_timeouts_lost_leases_and_shutdowns() {
    let server = FakeServer::start().await;
    let config = WorkerConfig {
        heartbeat_interval: Duration::from_secs(1),
        cancellation_grace: Duration::from_secs(5),
        shutdown_timeout: Duration::ZERO,
        ..config(&server)
    };
    let (events, mut event) = tokio::sync::mpsc::unbounded_channel();
    let go = std::sync::Arc::new(tokio::sync::Notify::new());
    let mut registry = ActivityRegistry::new();
    registry.register(Waits { events, go: std::sync::Arc::clone(&go) }, "rust");
    let once = || RetrySettings::attempts(1);
    let waits =
        |heartbeat: bool| NewActivity::new("rust", "waits").params(json!({"heartbeat": heartbeat})).retry(once());
    let worker = RunningWorker::start(config.clone(), registry);

    // A timeout.
    let timed_out = server.enqueue(waits(false).timeout_seconds(1));
    server.wait_for(timed_out).await;
    assert_eq!((event.recv().await, event.recv().await), (Some(true), Some(false)));
    let expected = mock_sends(&config.worker_id, CancelReason::Timeout, false).await;
    assert_eq!(sent(&server, timed_out), expected);
    assert_eq!(expected.unwrap().1["error"]["message"], "Activity execution timed out after 1s");

    // A lease lost after a timeout, in the handler's grace: a heartbeat gets 409.
    let lost_late = server.enqueue(waits(true).timeout_seconds(1));
    assert_eq!((event.recv().await, event.recv().await), (Some(true), Some(false)));
    assert!(server.reassign(lost_late));
    go.notify_one();
    server.wait_until(Duration::from_secs(10), || (server.running_claims(&config.worker_id) == 0).then_some(())).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(sent(&server, lost_late), None, "nothing after a lost lease");
    assert_eq!(mock_sends(&config.worker_id, CancelReason::Timeout, true).await, None);

    // A lease lost while running: the keeper's heartbeat gets 409.
    let lost = server.enqueue(waits(false));
    assert_eq!(event.recv().await, Some(true));
    assert!(server.reassign(lost));
    assert_eq!(event.recv().await, Some(false));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(sent(&server, lost), None);
    assert_eq!(mock_sends(&config.worker_id, CancelReason::LeaseLost, false).await, None);

    // A shutdown.
    let shut = server.enqueue(waits(false));
    assert_eq!(event.recv().await, Some(true));
    worker.handle.shutdown_now();
    worker.join().await.unwrap();
    let expected = mock_sends(&config.worker_id, CancelReason::Shutdown, false).await;
    assert_eq!(sent(&server, shut), expected);
    assert_eq!(expected.unwrap().1["error"]["code"], "WORKER_SHUTDOWN");
}
