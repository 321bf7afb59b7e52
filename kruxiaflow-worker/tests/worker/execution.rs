//! What happens to one activity while it runs: parameters, timeouts, panics,
//! unknown names, lost leases and odd poll items.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use kruxiaflow_worker::prelude::*;
use kruxiaflow_worker::{CancelReason, decode_params};
use kruxiaflow_worker_testing::{Endpoint, FakeServer, NewActivity, RetrySettings};
use serde_json::json;

use crate::common::{RunningWorker, activity, config, echo, eventually};

#[derive(serde::Deserialize)]
struct Order {
    #[allow(dead_code)]
    items: Vec<Item>,
}

#[derive(serde::Deserialize)]
struct Item {
    #[allow(dead_code)]
    price: f64,
}

#[tokio::test]
async fn parameters_that_do_not_decode_fail_terminally_naming_the_field() {
    let server = FakeServer::start().await;
    let mut registry = ActivityRegistry::new();
    registry.register(
        activity("checkout", |params, ctx| async move {
            let _order: Order = decode_params(params, &ctx)?;
            Ok(ActivityResult::empty())
        }),
        "rust",
    );
    let params = json!({"items": [{"price": 1.0}, {"price": 2.5}, {"price": "x"}]});
    let id = server.enqueue(NewActivity::new("rust", "checkout").params(params));
    let worker = RunningWorker::start(config(&server), registry);

    let failure = server.wait_for(id).await.expect_failed();
    worker.stop().await.unwrap();

    assert_eq!(failure.code, "INVALID_PARAMETERS");
    assert!(!failure.retryable);
    assert_eq!(
        failure.message,
        "invalid parameters for activity 'rust.checkout' at items[2].price: invalid type: string \"x\", expected f64"
    );
}

#[tokio::test]
async fn timeout_cancels_the_handler_and_fails_retryable_with_timeout() {
    let server = FakeServer::start().await;
    let saw_cancel = Arc::new(AtomicBool::new(false));
    let mut registry = ActivityRegistry::new();
    let flag = saw_cancel.clone();
    registry.register(
        activity("slow", move |_p, ctx| {
            let flag = flag.clone();
            async move {
                let reason = ctx.cancelled().await;
                flag.store(reason == CancelReason::Timeout, Ordering::SeqCst);
                Err(ActivityError::terminal("GAVE_UP", "cancelled"))
            }
        }),
        "rust",
    );
    let id = server.enqueue(NewActivity::new("rust", "slow").timeout_seconds(1).retry(RetrySettings::attempts(1)));
    let worker = RunningWorker::start(config(&server), registry);

    let failure = server.wait_for(id).await.expect_failed();
    worker.stop().await.unwrap();

    assert!(saw_cancel.load(Ordering::SeqCst), "the handler saw a Timeout cancellation");
    assert_eq!(failure.code, "TIMEOUT", "the cancellation's failure replaces the handler's own error");
    assert!(failure.retryable);
    assert_eq!(failure.message, "Activity execution timed out after 1s");
}

#[tokio::test]
async fn a_handler_that_ignores_cancellation_is_aborted_after_the_grace_period() {
    let server = FakeServer::start().await;
    let finished = Arc::new(AtomicBool::new(false));
    let mut registry = ActivityRegistry::new();
    let flag = finished.clone();
    registry.register(
        activity("stubborn", move |_p, _ctx| {
            let flag = flag.clone();
            async move {
                tokio::time::sleep(Duration::from_secs(5)).await;
                flag.store(true, Ordering::SeqCst);
                Ok(ActivityResult::empty())
            }
        }),
        "rust",
    );
    let id = server.enqueue(NewActivity::new("rust", "stubborn").timeout_seconds(1).retry(RetrySettings::attempts(1)));
    let worker = RunningWorker::start(config(&server), registry);

    let failure = server.wait_for(id).await.expect_failed();
    worker.stop().await.unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;

    assert_eq!(failure.code, "TIMEOUT");
    assert!(!finished.load(Ordering::SeqCst), "the aborted handler never ran to its end");
}

#[tokio::test]
async fn a_panic_fails_retryable_with_panic_and_the_worker_keeps_working() {
    let server = FakeServer::start().await;
    let mut registry = ActivityRegistry::new();
    registry.register(activity("explodes", |_p, _c| async { panic!("index out of bounds") }), "rust");
    registry.register(echo(), "rust");
    let bad = server.enqueue(NewActivity::new("rust", "explodes").retry(RetrySettings::attempts(1)));
    let good = server.enqueue(NewActivity::new("rust", "echo").params(json!(1)));
    let worker = RunningWorker::start(config(&server), registry);

    let failure = server.wait_for(bad).await.expect_failed();
    let completion = server.wait_for(good).await.expect_completed();
    worker.stop().await.unwrap();

    assert_eq!(failure.code, "PANIC");
    assert!(failure.retryable);
    assert_eq!(failure.message, "the activity panicked: index out of bounds");
    assert_eq!(completion.output["echo"], 1);
}

#[tokio::test]
async fn an_unknown_activity_fails_retryable_listing_what_is_registered() {
    let server = FakeServer::start().await;
    let mut registry = ActivityRegistry::new();
    registry.register(echo(), "rust");
    registry.register(activity("double", |_p, _c| async { Ok(ActivityResult::empty()) }), "rust");
    let id = server.enqueue(NewActivity::new("rust", "translate").retry(RetrySettings::attempts(1)));
    let config = config(&server);
    let worker_id = config.worker_id.clone();
    let worker = RunningWorker::start(config, registry);

    let failure = server.wait_for(id).await.expect_failed();
    worker.stop().await.unwrap();

    assert_eq!(failure.code, "ACTIVITY_NOT_FOUND");
    assert!(failure.retryable);
    assert_eq!(
        failure.message,
        format!(
            "no activity 'translate' is registered for worker type 'rust' on worker {worker_id}; registered: [echo, double]"
        )
    );
}

#[tokio::test]
async fn a_heartbeat_409_stops_the_handler_and_nothing_is_reported() {
    let server = FakeServer::start().await;
    let started = Arc::new(AtomicBool::new(false));
    let cancelled = Arc::new(AtomicBool::new(false));
    let mut registry = ActivityRegistry::new();
    let (started_flag, cancelled_flag) = (started.clone(), cancelled.clone());
    registry.register(
        activity("long", move |_p, ctx| {
            let (started, cancelled) = (started_flag.clone(), cancelled_flag.clone());
            async move {
                started.store(true, Ordering::SeqCst);
                let reason = ctx.cancelled().await;
                cancelled.store(reason == CancelReason::LeaseLost, Ordering::SeqCst);
                Ok(ActivityResult::value("late", true))
            }
        }),
        "rust",
    );
    // A 3 s lease means a heartbeat every second.
    let id = server.enqueue(NewActivity::new("rust", "long").timeout_seconds(3));
    let worker = RunningWorker::start(config(&server), registry);

    eventually("the handler starts", || started.load(Ordering::SeqCst)).await;
    assert!(server.reassign(id));
    eventually("the handler is cancelled for a lost lease", || cancelled.load(Ordering::SeqCst)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    worker.stop().await.unwrap();

    let heartbeats = server.log().to(Endpoint::Heartbeat);
    assert_eq!(heartbeats.last().unwrap().status, 409);
    let reports = server.log().reports(id);
    assert!(reports.is_empty(), "nothing may be reported after losing the lease: {reports:?}");
}

#[tokio::test]
async fn heartbeats_keep_the_default_lease_alive_for_an_activity_that_outlives_it() {
    let server = FakeServer::builder().sweep_interval(Duration::from_millis(50)).start().await;
    let mut registry = ActivityRegistry::new();
    registry.register(
        activity("steady", |_p, _c| async {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            Ok(ActivityResult::value("done", true))
        }),
        "rust",
    );
    // No timeout: the server's lease is 60 s while the worker allows 300 s. The fake's
    // clock runs about 200 times faster than real time, so the run lasts ~300 server
    // seconds and only heartbeats keep the lease.
    let id = server.enqueue(NewActivity::new("rust", "steady").retry(RetrySettings::attempts(1)));
    let config = WorkerConfig { heartbeat_interval: Duration::from_millis(100), ..config(&server) };
    let worker = RunningWorker::start(config, registry);
    let fast_clock = async {
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            server.advance_clock(Duration::from_secs(10));
        }
    };

    let outcome = tokio::select! {
        outcome = server.wait_for(id) => outcome,
        () = fast_clock => unreachable!(),
    };
    worker.stop().await.unwrap();

    assert_eq!(outcome.expect_completed().attempts, 1, "never reclaimed or swept");
    assert!(server.log().to(Endpoint::Heartbeat).iter().filter(|r| r.status == 200).count() >= 5);
}

#[tokio::test]
async fn an_activity_already_running_here_is_not_started_twice() {
    let server = FakeServer::start().await;
    let runs = Arc::new(AtomicU32::new(0));
    let mut registry = ActivityRegistry::new();
    let counter = runs.clone();
    registry.register(
        activity("once", move |_p, _c| {
            counter.fetch_add(1, Ordering::SeqCst);
            async {
                tokio::time::sleep(Duration::from_millis(800)).await;
                Ok(ActivityResult::value("ran", true))
            }
        }),
        "rust",
    );
    let id = server.enqueue(NewActivity::new("rust", "once"));
    let worker = RunningWorker::start(config(&server), registry);

    eventually("the activity starts", || runs.load(Ordering::SeqCst) == 1).await;
    // The lease expires under the running handler; our own next poll reclaims it.
    server.advance_clock(Duration::from_secs(61));
    eventually("the worker's poll reclaims it", || server.activity(id).unwrap().claims == 2).await;
    server.wait_for(id).await.expect_completed();
    worker.stop().await.unwrap();

    assert_eq!(runs.load(Ordering::SeqCst), 1, "one execution for one activity id");
}

#[tokio::test]
async fn an_activity_handed_out_again_while_running_here_keeps_its_heartbeats() {
    let server = FakeServer::start().await;
    let mut registry = ActivityRegistry::new();
    registry.register(
        activity("long", |_p, _c| async {
            tokio::time::sleep(Duration::from_millis(2500)).await;
            Ok(ActivityResult::value("ran", true))
        }),
        "rust",
    );
    let id = server.enqueue(NewActivity::new("rust", "long"));
    let config = WorkerConfig { heartbeat_interval: Duration::from_millis(200), ..config(&server) };
    let worker = RunningWorker::start(config, registry);

    eventually("the activity runs", || server.running_activities().contains(&id)).await;
    server.advance_clock(Duration::from_secs(61));
    eventually("the worker's poll reclaims it", || server.activity(id).unwrap().claims == 2).await;
    let beats = || server.log().to(Endpoint::Heartbeat).iter().filter(|r| r.activity_id == Some(id)).count();
    let after_reclaim = beats();
    eventually("heartbeats go on for the attempt still running", || beats() >= after_reclaim + 2).await;
    let completion = server.wait_for(id).await.expect_completed();
    worker.stop().await.unwrap();

    assert_eq!(completion.output["ran"], true);
}

#[tokio::test]
async fn an_odd_poll_item_is_failed_without_stranding_the_rest_of_the_batch() {
    let server = FakeServer::start().await;
    let mut registry = ActivityRegistry::new();
    registry.register(echo(), "rust");
    let good_before = server.enqueue(NewActivity::new("rust", "echo").params(json!("a")));
    let odd = server.enqueue(NewActivity::new("rust", "echo").override_item("workflow_id", json!("not-a-uuid")));
    let good_after = server.enqueue(NewActivity::new("rust", "echo").params(json!("b")));
    let worker = RunningWorker::start(config(&server), registry);

    let failure = server.wait_for(odd).await.expect_failed();
    server.wait_for(good_before).await.expect_completed();
    server.wait_for(good_after).await.expect_completed();
    worker.stop().await.unwrap();

    assert_eq!(failure.code, "INVALID_ACTIVITY");
    assert!(!failure.retryable);
    assert!(failure.message.starts_with("the worker could not parse this activity: "), "{}", failure.message);
}

#[tokio::test]
async fn the_context_carries_ids_signal_settings_and_output_definitions() {
    let server = FakeServer::start().await;
    let mut registry = ActivityRegistry::new();
    registry.register(
        activity("introspect", |_p, ctx| async move {
            Ok(ActivityResult::value(
                "seen",
                json!({
                    "workflow_id": ctx.workflow_id(),
                    "activity_id": ctx.activity_id(),
                    "key": ctx.activity_key(),
                    "signal": ctx.signal(),
                    "settings": ctx.settings(),
                    "outputs": ctx.output_definitions().len(),
                    "has_deadline": ctx.deadline().is_some(),
                }),
            ))
        }),
        "rust",
    );
    let workflow_id = uuid::Uuid::now_v7();
    let id = server.enqueue(
        NewActivity::new("rust", "introspect")
            .key("look_around")
            .workflow_id(workflow_id)
            .signal_data(json!({"approved": true}))
            .timeout_seconds(120)
            .output("summary", OutputType::Value),
    );
    let worker = RunningWorker::start(config(&server), registry);

    let completion = server.wait_for(id).await.expect_completed();
    worker.stop().await.unwrap();

    assert_eq!(
        completion.output["seen"],
        json!({
            "workflow_id": workflow_id, "activity_id": id, "key": "look_around",
            "signal": {"approved": true}, "settings": {"timeout_seconds": 120, "cache": false},
            "outputs": 1, "has_deadline": true,
        })
    );
}
