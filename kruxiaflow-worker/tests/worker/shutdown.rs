//! Graceful shutdown: stop claiming, drain, fail the rest as WORKER_SHUTDOWN.

use std::time::Duration;

use kruxiaflow_worker::prelude::*;
use kruxiaflow_worker_testing::{Endpoint, FakeServer, NewActivity, RetrySettings, Status};

use crate::common::{RunningWorker, activity, config, eventually};

fn registry() -> ActivityRegistry {
    let mut registry = ActivityRegistry::new();
    registry.register(
        activity("quick", |_p, _c| async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            Ok(ActivityResult::value("done", true))
        }),
        "rust",
    );
    // Ignores cancellation: only the abort after the grace period stops it.
    registry.register(
        activity("endless", |_p, _c| async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(ActivityResult::empty())
        }),
        "rust",
    );
    registry
}

#[tokio::test]
async fn shutdown_drains_quick_activities_and_fails_slow_ones_as_worker_shutdown() {
    let server = FakeServer::start().await;
    let once = || RetrySettings::attempts(1);
    let quick: Vec<_> = (0..3).map(|_| server.enqueue(NewActivity::new("rust", "quick").retry(once()))).collect();
    let slow: Vec<_> = (0..3).map(|_| server.enqueue(NewActivity::new("rust", "endless").retry(once()))).collect();
    let config = WorkerConfig { shutdown_timeout: Duration::from_millis(600), ..config(&server) };
    let worker_id = config.worker_id.clone();
    let worker = RunningWorker::start(config, registry());

    eventually("all six are claimed", || server.running_claims(&worker_id) == 6).await;
    worker.stop().await.unwrap();

    for id in quick {
        assert_eq!(server.activity(id).unwrap().status, Status::Completed);
    }
    for id in slow {
        let failure = server.activity(id).unwrap().outcome.unwrap().expect_failed();
        assert_eq!((failure.code.as_str(), failure.retryable), ("WORKER_SHUTDOWN", true));
    }
    assert_eq!(server.running_claims(&worker_id), 0, "nothing is left waiting for a lease to expire");
}

#[tokio::test]
async fn no_polls_are_made_after_shutdown_is_requested() {
    let server = FakeServer::start().await;
    let worker = RunningWorker::start(config(&server), registry());
    eventually("the worker polls", || !server.log().to(Endpoint::Poll).is_empty()).await;

    worker.stop().await.unwrap();
    let polls_at_stop = server.log().to(Endpoint::Poll).len();
    server.enqueue(NewActivity::new("rust", "quick"));
    tokio::time::sleep(Duration::from_millis(200)).await;

    assert_eq!(server.log().to(Endpoint::Poll).len(), polls_at_stop);
    assert_eq!(server.activities()[0].status, Status::Pending);
}

#[tokio::test]
async fn a_second_shutdown_request_skips_the_drain() {
    let server = FakeServer::start().await;
    let id = server.enqueue(NewActivity::new("rust", "endless").retry(RetrySettings::attempts(1)));
    // A drain this long would time the test out if it were not skipped.
    let config = WorkerConfig { shutdown_timeout: Duration::from_secs(3600), ..config(&server) };
    let worker_id = config.worker_id.clone();
    let worker = RunningWorker::start(config, registry());
    eventually("the activity is claimed", || server.running_claims(&worker_id) == 1).await;

    worker.handle.shutdown();
    worker.handle.shutdown_now();
    worker.join().await.unwrap();

    let failure = server.activity(id).unwrap().outcome.unwrap().expect_failed();
    assert_eq!(failure.code, "WORKER_SHUTDOWN");
}

#[tokio::test]
async fn shutdown_waits_for_a_report_that_meets_transient_errors() {
    let server = FakeServer::start().await;
    server.faults().inject(Endpoint::Fail, kruxiaflow_worker_testing::Fault::Status(503), 3);
    let id = server.enqueue(NewActivity::new("rust", "endless").retry(RetrySettings::attempts(1)));
    let config = WorkerConfig { shutdown_timeout: Duration::from_millis(100), ..config(&server) };
    let worker_id = config.worker_id.clone();
    let worker = RunningWorker::start(config, registry());
    eventually("the activity is claimed", || server.running_claims(&worker_id) == 1).await;

    worker.stop().await.unwrap();

    assert_eq!(server.activity(id).unwrap().status, Status::Failed, "the report was flushed before run returned");
}

#[tokio::test]
async fn dropping_the_run_future_stops_the_worker_without_a_panic() {
    let server = FakeServer::start().await;
    let manager = WorkerManager::new(config(&server), registry());
    let running = tokio::spawn(async move {
        tokio::time::timeout(Duration::from_millis(200), manager.run(std::future::pending())).await
    });
    let ended = running.await.expect("dropping a running worker does not panic");
    assert!(ended.is_err(), "the worker ran until its future was dropped");
}
