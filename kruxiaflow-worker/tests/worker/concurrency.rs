//! Bounded concurrency, batch claims, and polling every worker type.

use std::time::Duration;

use kruxiaflow_worker::prelude::*;
use kruxiaflow_worker_testing::{Endpoint, FakeServer, NewActivity};
use serde_json::json;

use crate::common::{RunningWorker, activity, config, echo};

#[tokio::test]
async fn concurrency_never_exceeds_the_configured_bound_measured_at_the_server() {
    let server = FakeServer::start().await;
    let mut registry = ActivityRegistry::new();
    registry.register(
        activity("nap", |_p, _c| async {
            tokio::time::sleep(Duration::from_millis(150)).await;
            Ok(ActivityResult::empty())
        }),
        "rust",
    );
    for _ in 0..15 {
        server.enqueue(NewActivity::new("rust", "nap"));
    }
    let config = WorkerConfig { max_concurrent_activities: 3, poll_max_activities: 10, ..config(&server) };
    let worker_id = config.worker_id.clone();
    let worker = RunningWorker::start(config, registry);

    let outcomes = server.wait_until_idle().await;
    worker.stop().await.unwrap();

    assert_eq!(outcomes.len(), 15);
    assert!(outcomes.iter().all(|(_, outcome)| outcome.completed().is_some()));
    assert_eq!(server.max_concurrent_claims(&worker_id), 3, "all slots used, never more");
    for poll in server.log().to(Endpoint::Poll) {
        let asked = poll.body.unwrap()["max_activities"].as_u64().unwrap();
        assert!((1..=3).contains(&asked), "a poll claimed {asked} with only 3 slots");
    }
}

#[tokio::test]
async fn every_worker_type_in_the_registry_is_polled() {
    let server = FakeServer::start().await;
    let mut registry = ActivityRegistry::new();
    registry.register(echo(), "rust");
    registry.register(echo(), "gpu");
    let on_rust = server.enqueue(NewActivity::new("rust", "echo").params(json!("r")));
    let on_gpu = server.enqueue(NewActivity::new("gpu", "echo").params(json!("g")));
    let worker = RunningWorker::start(config(&server), registry);

    let rust = server.wait_for(on_rust).await.expect_completed().output["echo"].clone();
    let gpu = server.wait_for(on_gpu).await.expect_completed().output["echo"].clone();
    worker.stop().await.unwrap();

    assert_eq!((rust, gpu), (json!("r"), json!("g")));
}

#[tokio::test]
async fn a_poll_failure_is_retried_with_backoff_and_claims_resume() {
    let server = FakeServer::start().await;
    server.faults().inject(Endpoint::Poll, kruxiaflow_worker_testing::Fault::Status(503), 12);
    let mut registry = ActivityRegistry::new();
    registry.register(echo(), "rust");
    let id = server.enqueue(NewActivity::new("rust", "echo"));
    let worker = RunningWorker::start(config(&server), registry);

    server.wait_for(id).await.expect_completed();
    worker.stop().await.unwrap();

    let polls = server.log().to(Endpoint::Poll);
    assert!(polls.iter().filter(|p| p.status == 503).count() == 12);
}
