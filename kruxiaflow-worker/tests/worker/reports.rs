//! Reports reach the server exactly once, whatever the network does.

use kruxiaflow_worker::prelude::*;
use kruxiaflow_worker_testing::{Endpoint, FakeServer, Fault, NewActivity, RetrySettings};
use rust_decimal::Decimal;
use serde_json::json;

use crate::common::{RunningWorker, activity, config, echo};

#[tokio::test]
async fn completes_an_activity_with_its_output_cost_and_usage() {
    let server = FakeServer::start().await;
    let mut registry = ActivityRegistry::new();
    registry.register(
        activity("priced", |_params, ctx| async move {
            ctx.record_usage(UsageEntry::new("anthropic", "claude-sonnet-5").input_tokens(1200).output_tokens(50));
            Ok(ActivityResult::value("summary", "3 rows rendered").with_cost(Decimal::new(40, 4)))
        }),
        "rust",
    );
    let id = server.enqueue(NewActivity::new("rust", "priced"));
    let worker = RunningWorker::start(config(&server), registry);

    let completion = server.wait_for(id).await.expect_completed();
    worker.stop().await.unwrap();

    assert_eq!(completion.output, json!({"summary": "3 rows rendered"}).as_object().unwrap().clone());
    assert_eq!(completion.cost_usd, Some(Decimal::new(40, 4)));
    assert_eq!(completion.usage[0].input_tokens, 1200);
    let sent = &server.log().to(Endpoint::Complete)[0];
    assert_eq!(sent.body.as_ref().unwrap()["cost_usd"], "0.0040", "decimals go on the wire as strings");
}

#[tokio::test]
async fn completion_that_meets_503_a_reset_and_a_500_arrives_exactly_once() {
    let server = FakeServer::start().await;
    server.faults().inject(Endpoint::Complete, Fault::ShuttingDown, 1);
    server.faults().inject(Endpoint::Complete, Fault::DropBeforeCommit, 1);
    server.faults().inject(Endpoint::Complete, Fault::Status(500), 1);
    let mut registry = ActivityRegistry::new();
    registry.register(echo(), "rust");
    let id = server.enqueue(NewActivity::new("rust", "echo").params(json!({"n": 7})));
    let worker = RunningWorker::start(config(&server), registry);

    let completion = server.wait_for(id).await.expect_completed();
    worker.stop().await.unwrap();

    assert_eq!(completion.output["echo"], json!({"n": 7}));
    let statuses: Vec<u16> = server.log().to(Endpoint::Complete).iter().map(|r| r.status).collect();
    assert_eq!(statuses, [503, 0, 500, 200], "retried through each fault, then delivered once");
    assert!(server.log().to(Endpoint::Fail).is_empty(), "a failed delivery never turns into a failure");
}

#[tokio::test]
async fn completion_committed_before_a_500_is_confirmed_by_the_idempotent_retry() {
    let server = FakeServer::start().await;
    server.faults().inject(Endpoint::Complete, Fault::ErrorAfterCommit, 1);
    server.faults().inject(Endpoint::Complete, Fault::DropAfterCommit, 1);
    let mut registry = ActivityRegistry::new();
    registry.register(echo(), "rust");
    let id = server.enqueue(NewActivity::new("rust", "echo").params(json!("first")));
    let worker = RunningWorker::start(config(&server), registry);

    let completion = server.wait_for(id).await.expect_completed();
    crate::common::eventually("the retried completion is acknowledged", || {
        server.log().to(Endpoint::Complete).iter().any(|r| r.status == 200)
    })
    .await;
    worker.stop().await.unwrap();

    assert_eq!(completion.output["echo"], "first");
    assert_eq!(completion.attempts, 1);
    let statuses: Vec<u16> = server.log().to(Endpoint::Complete).iter().map(|r| r.status).collect();
    assert_eq!(statuses, [500, 0, 200], "each retry confirms the one committed completion");
}

#[tokio::test]
async fn failure_report_is_retried_and_a_409_after_its_commit_counts_as_settled() {
    let server = FakeServer::start().await;
    server.faults().inject(Endpoint::Fail, Fault::Status(502), 2);
    server.faults().inject(Endpoint::Fail, Fault::ErrorAfterCommit, 1);
    let mut registry = ActivityRegistry::new();
    registry.register(
        activity("rejects", |_p, _c| async {
            Err(ActivityError::terminal("VALIDATION_ERROR", "rows must be non-empty"))
        }),
        "rust",
    );
    let id = server.enqueue(NewActivity::new("rust", "rejects"));
    let worker = RunningWorker::start(config(&server), registry);

    let failure = server.wait_for(id).await.expect_failed();
    crate::common::eventually("the fail retry is answered", || server.log().to(Endpoint::Fail).len() == 4).await;
    worker.stop().await.unwrap();

    assert_eq!((failure.code.as_str(), failure.retryable), ("VALIDATION_ERROR", false));
    let statuses: Vec<u16> = server.log().to(Endpoint::Fail).iter().map(|r| r.status).collect();
    assert_eq!(statuses, [502, 502, 500, 409], "fail is not idempotent: the repeat gets 409 and is dropped");
}

#[tokio::test]
async fn usage_and_cost_recorded_during_execution_ride_on_the_failure() {
    let server = FakeServer::start().await;
    let mut registry = ActivityRegistry::new();
    registry.register(
        activity("spends_then_fails", |_p, ctx| async move {
            ctx.record_usage(UsageEntry::new("openai", "gpt-4o-mini").input_tokens(800));
            ctx.add_cost(Decimal::new(1, 3));
            Err(ActivityError::terminal("UPSTREAM_5XX", "render service returned 503"))
        }),
        "rust",
    );
    let id = server.enqueue(NewActivity::new("rust", "spends_then_fails"));
    let worker = RunningWorker::start(config(&server), registry);

    let failure = server.wait_for(id).await.expect_failed();
    worker.stop().await.unwrap();

    assert_eq!(failure.cost_usd, Some(Decimal::new(1, 3)));
    assert_eq!(failure.usage.len(), 1);
    assert_eq!(failure.usage[0].model, "gpt-4o-mini");
}

#[tokio::test]
async fn a_report_the_server_refuses_is_resent_so_the_activity_still_settles() {
    let server = FakeServer::start().await;
    let mut registry = ActivityRegistry::new();
    registry.register(
        activity("negative_cost", |_p, _c| async {
            Ok(ActivityResult::value("ok", true).with_cost(Decimal::new(-1, 0)))
        }),
        "rust",
    );
    let id = server.enqueue(NewActivity::new("rust", "negative_cost"));
    let worker = RunningWorker::start(config(&server), registry);

    let completion = server.wait_for(id).await.expect_completed();
    worker.stop().await.unwrap();

    assert_eq!(completion.output["ok"], true);
    assert_eq!(completion.cost_usd, None);
    let statuses: Vec<u16> = server.log().to(Endpoint::Complete).iter().map(|r| r.status).collect();
    assert_eq!(statuses, [422, 200]);
}

#[tokio::test]
async fn retryable_failures_are_retried_by_the_server_and_complete_later() {
    let server = FakeServer::start().await;
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let mut registry = ActivityRegistry::new();
    let counter = calls.clone();
    registry.register(
        activity("flaky", move |_p, _c| {
            let attempt = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            async move {
                if attempt < 3 {
                    Err(ActivityError::retryable("UPSTREAM_5XX", format!("attempt {attempt} failed")))
                } else {
                    Ok(ActivityResult::value("attempt", attempt))
                }
            }
        }),
        "rust",
    );
    let id = server.enqueue(NewActivity::new("rust", "flaky").retry(RetrySettings::attempts(3)));
    let worker = RunningWorker::start(config(&server), registry);

    let completion = server.wait_for(id).await.expect_completed();
    worker.stop().await.unwrap();

    assert_eq!(completion.output["attempt"], 3);
    assert_eq!(completion.attempts, 3);
    assert_eq!(server.activity(id).unwrap().failures.len(), 2);
}
