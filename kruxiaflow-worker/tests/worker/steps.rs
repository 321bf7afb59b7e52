//! Durable steps against the fake server: what a retry skips, what it costs, what
//! survives a timeout, a panic, a shutdown, and a server that will not store.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use kruxiaflow_worker::prelude::*;
use kruxiaflow_worker_testing::{Endpoint, FakeServer, Fault, NewActivity, RetrySettings, RetryStrategy, Status};
use rust_decimal::dec;
use serde_json::{Value, json};

use crate::common::{RunningWorker, activity, config, echo, eventually};
use crate::logs::capture;

const PRICE: Decimal = dec!(0.012);

fn paid(ctx: &ActivityContext, model: &str) {
    ctx.record_usage(UsageEntry::new("stand-in", model).input_tokens(10).cost_usd(PRICE));
}

/// How often each step of [`research`] ran on one worker.
#[derive(Default)]
struct Calls {
    plan: AtomicU32,
    draft: AtomicU32,
    publish: AtomicU32,
}

impl Calls {
    fn counts(&self) -> [u32; 3] {
        [&self.plan, &self.draft, &self.publish].map(|c| c.load(Ordering::SeqCst))
    }
}

/// Two paid steps and a publish step that fails on this worker unless `publish_works`.
fn research(calls: Arc<Calls>, publish_works: bool) -> impl Activity {
    activity("research", move |_params, ctx| {
        let calls = Arc::clone(&calls);
        async move {
            let plan: String = ctx
                .step("plan", || async {
                    calls.plan.fetch_add(1, Ordering::SeqCst);
                    paid(&ctx, "planner");
                    Ok("two parts".to_owned())
                })
                .await?;
            let draft: String = ctx
                .step("draft", || async {
                    calls.draft.fetch_add(1, Ordering::SeqCst);
                    paid(&ctx, "writer");
                    Ok(format!("a draft in {plan}"))
                })
                .await?;
            let url: String = ctx
                .step("publish", || async {
                    calls.publish.fetch_add(1, Ordering::SeqCst);
                    if publish_works {
                        Ok(format!("https://example.invalid/{}", draft.len()))
                    } else {
                        Err(ActivityError::retryable("PUBLISH_UNAVAILABLE", "the publish target answered 503"))
                    }
                })
                .await?;
            Ok(ActivityResult::value("url", url))
        }
    })
}

fn registry(activity: impl Activity) -> ActivityRegistry {
    let mut registry = ActivityRegistry::new();
    registry.register(activity, "rust");
    registry
}

/// Retries a second after a failure: long enough to stop the failing worker first.
fn retried_after_a_second() -> RetrySettings {
    RetrySettings { max_attempts: 5, strategy: RetryStrategy::Fixed, base_seconds: 1, factor: 1.0, max_seconds: 1 }
}

async fn first_failure(server: &FakeServer, id: Uuid) {
    server
        .wait_until(Duration::from_secs(10), || server.activity(id).filter(|a| !a.failures.is_empty()).map(drop))
        .await
        .expect("the first attempt failed");
}

#[tokio::test]
async fn a_retry_on_another_worker_skips_the_steps_a_failed_attempt_completed_and_counts_their_spend_once() {
    let server = FakeServer::start().await;
    let id = server.enqueue(NewActivity::new("rust", "research").retry(retried_after_a_second()));
    let (on_a, on_b) = (Arc::new(Calls::default()), Arc::new(Calls::default()));
    let a = RunningWorker::start(config(&server), registry(research(Arc::clone(&on_a), false)));
    first_failure(&server, id).await;
    a.stop().await.unwrap();
    server.advance_clock(Duration::from_secs(2));
    let b = RunningWorker::start(config(&server), registry(research(Arc::clone(&on_b), true)));
    let completed = server.wait_for(id).await.expect_completed();
    b.stop().await.unwrap();

    assert_eq!(on_a.counts(), [1, 1, 1]);
    assert_eq!(on_b.counts(), [0, 0, 1], "the second worker ran only the step that had failed");
    assert_eq!(completed.output["url"], "https://example.invalid/20");
    let failure = &server.activity(id).unwrap().failures[0];
    assert_eq!(failure.code, "PUBLISH_UNAVAILABLE");
    let models: Vec<&str> = failure.usage.iter().map(|u| u.model.as_str()).collect();
    assert_eq!(models, ["planner", "writer"], "the failure carried both paid calls");
    assert!(completed.usage.is_empty(), "the completion did not count them again");
    assert_eq!(completed.cost_usd, None);
}

#[tokio::test]
async fn an_activity_that_uses_no_step_makes_no_record_request() {
    let server = FakeServer::start().await;
    let worker = RunningWorker::start(config(&server), registry(echo()));
    let id = server.enqueue(NewActivity::new("rust", "echo").params(json!({"a": 1})));
    server.wait_for(id).await.expect_completed();
    worker.stop().await.unwrap();
    assert_eq!(server.log().to(Endpoint::FileDownload).len(), 0);
    assert_eq!(server.log().to(Endpoint::FileUpload).len(), 0);
}

#[tokio::test]
async fn a_first_attempt_reads_once_and_writes_once_per_step_and_the_activitys_own_files_never_show_the_record() {
    let server = FakeServer::start().await;
    let steps = activity("steps", |_params, ctx| async move {
        let small: u32 = ctx.step("small", || async { Ok(7) }).await?;
        let large: String = ctx.step("large", || async { Ok("x".repeat(4096)) }).await?;
        let last: bool = ctx.step("last", || async { Ok(true) }).await?;
        Ok(ActivityResult::value("sum", json!([small, large.len(), last])))
    });
    let worker = RunningWorker::start(config(&server), registry(steps));
    let workflow_id = Uuid::now_v7();
    let activity = NewActivity::new("rust", "steps").key("write_up").workflow_id(workflow_id);
    let id = server.enqueue(activity);
    assert_eq!(server.wait_for(id).await.expect_completed().output["sum"], json!([7, 4096, true]));
    worker.stop().await.unwrap();

    assert_eq!(server.log().to(Endpoint::FileDownload).len(), 1, "one read, on first use");
    assert_eq!(server.log().to(Endpoint::FileUpload).len(), 4, "a record write per step, and the large value's file");
    let mut stored: Vec<(String, String)> =
        server.files().all().into_iter().map(|f| (f.activity_key, f.filename)).collect();
    stored.sort();
    assert_eq!(
        stored,
        [("write_up.steps".to_owned(), format!("{id}.0.json")), ("write_up.steps".to_owned(), format!("{id}.json"))],
        "nothing under the activity's own key"
    );
    let record: Value =
        serde_json::from_slice(&server.files().bytes(workflow_id, "write_up.steps", &format!("{id}.json")).unwrap())
            .unwrap();
    assert_eq!(record["steps"]["small"]["value"], 7);
    assert_eq!(record["steps"]["large"]["file"], format!("{id}.0.json"));
    assert_eq!(record["steps"]["large"]["bytes"], 4098);
    assert_eq!(server.files().replaced(), (2, record_sizes_before_the_last(&record)), "two records replaced");
}

/// The sizes of the first two versions of a record whose third version is `record`:
/// the record after step 1, and after step 2.
fn record_sizes_before_the_last(record: &Value) -> u64 {
    let mut versions = Vec::new();
    let mut partial = record.clone();
    for step in ["last", "large"] {
        partial["steps"].as_object_mut().unwrap().remove(step);
        if step == "large" {
            partial["files"] = json!(1);
        }
        versions.push(serde_json::to_vec(&partial).unwrap().len() as u64);
    }
    versions.iter().sum()
}

#[tokio::test]
async fn a_record_write_failing_transiently_is_retried_and_acknowledged_before_the_step_returns() {
    let server = Arc::new(FakeServer::start().await);
    server.faults().inject(Endpoint::FileUpload, Fault::Status(503), 2);
    let seen = Arc::clone(&server);
    let step = activity("one_step", move |_params, ctx| {
        let server = Arc::clone(&seen);
        async move {
            let value: u32 = ctx.step("only", || async { Ok(42) }).await?;
            let record =
                server.files().get(ctx.workflow_id(), "one_step.steps", &format!("{}.json", ctx.activity_id()));
            Ok(ActivityResult::value("recorded_before_return", record.is_some())
                .with_output(ActivityOutput::value("value", value)))
        }
    });
    let worker = RunningWorker::start(config(&server), registry(step));
    let id = server.enqueue(NewActivity::new("rust", "one_step"));
    let completed = server.wait_for(id).await.expect_completed();
    worker.stop().await.unwrap();
    assert_eq!(completed.output["recorded_before_return"], true);
    assert_eq!(completed.output["value"], 42);
    assert_eq!(server.log().to(Endpoint::FileUpload).len(), 3, "two 503s, then the write");
}

#[tokio::test(flavor = "current_thread")]
async fn a_step_the_server_will_not_record_still_returns_its_value_with_one_warning() {
    let (captured, _guard) = capture();
    let server = FakeServer::start().await;
    server.faults().inject(Endpoint::FileUpload, Fault::Status(500), 10_000);
    let step = activity("one_step", |_params, ctx| async move {
        let value: u32 = ctx.step("only", || async { Ok(42) }).await?;
        Ok(ActivityResult::value("value", value))
    });
    let worker = RunningWorker::start(config(&server), registry(step));
    // 2 s to the deadline: the write is given up after a quarter of it.
    let id = server.enqueue(NewActivity::new("rust", "one_step").timeout_seconds(2));
    assert_eq!(server.wait_for(id).await.expect_completed().output["value"], 42);
    worker.stop().await.unwrap();
    let warnings: Vec<String> = captured.lines().into_iter().filter(|l| l.contains("could not be recorded")).collect();
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert!(warnings[0].contains("WARN") && warnings[0].contains("step \"only\" completed"), "{}", warnings[0]);
    assert_eq!(server.files().all(), []);
}

#[tokio::test(flavor = "current_thread")]
async fn an_unreadable_record_is_retried_then_the_attempt_runs_every_step_with_a_warning() {
    let (captured, _guard) = capture();
    let server = FakeServer::start().await;
    server.faults().inject(Endpoint::FileDownload, Fault::ProxyStatus(502), 10_000);
    let calls = Arc::new(Calls::default());
    let worker = RunningWorker::start(config(&server), registry(research(Arc::clone(&calls), true)));
    let id = server.enqueue(NewActivity::new("rust", "research").timeout_seconds(2));
    server.wait_for(id).await.expect_completed();
    worker.stop().await.unwrap();
    assert_eq!(calls.counts(), [1, 1, 1]);
    assert!(server.log().to(Endpoint::FileDownload).len() > 1, "the read was retried");
    let warnings: Vec<String> = captured.lines().into_iter().filter(|l| l.contains("could not be read")).collect();
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert!(warnings[0].contains("this attempt runs every step"), "{}", warnings[0]);
}

#[tokio::test(flavor = "current_thread")]
async fn a_damaged_record_is_ignored_with_a_warning_and_replaced() {
    let (captured, _guard) = capture();
    let server = FakeServer::start().await;
    let (workflow_id, key) = (Uuid::now_v7(), "research");
    let activity = NewActivity::new("rust", "research").workflow_id(workflow_id);
    let id = server.enqueue(activity);
    server.files().seed(workflow_id, &format!("{key}.steps"), &format!("{id}.json"), b"{\"kruxiaflow_steps\":1,", None);
    let calls = Arc::new(Calls::default());
    let worker = RunningWorker::start(config(&server), registry(research(Arc::clone(&calls), true)));
    server.wait_for(id).await.expect_completed();
    worker.stop().await.unwrap();
    assert_eq!(calls.counts(), [1, 1, 1]);
    let warnings: Vec<String> = captured.lines().into_iter().filter(|l| l.contains("is ignored")).collect();
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert!(warnings[0].contains("it is not JSON of a step record"), "{}", warnings[0]);
    let record = server.files().bytes(workflow_id, &format!("{key}.steps"), &format!("{id}.json")).unwrap();
    assert_eq!(
        serde_json::from_slice::<Value>(&record).unwrap()["steps"]["publish"]["value"],
        "https://example.invalid/20"
    );
}

/// One paid step, then trouble on the first attempt only (`trouble` runs when the
/// attempt is not resumed); counts the paid step's runs.
fn step_then(
    trouble: fn(ActivityContext) -> futures_util::future::BoxFuture<'static, ()>,
) -> (impl Activity, Arc<AtomicU32>) {
    let runs = Arc::new(AtomicU32::new(0));
    let counted = Arc::clone(&runs);
    let activity = activity("step_then", move |_params, ctx| {
        let runs = Arc::clone(&counted);
        async move {
            let value: String = ctx
                .step("paid", || async {
                    runs.fetch_add(1, Ordering::SeqCst);
                    paid(&ctx, "planner");
                    Ok("paid for".to_owned())
                })
                .await?;
            if !ctx.is_resumed().await {
                trouble(ctx.clone()).await;
            }
            Ok(ActivityResult::value("value", value))
        }
    });
    (activity, runs)
}

async fn resumed_after(trouble: fn(ActivityContext) -> futures_util::future::BoxFuture<'static, ()>, code: &str) {
    let server = FakeServer::start().await;
    let (activity, runs) = step_then(trouble);
    let worker = RunningWorker::start(config(&server), registry(activity));
    let id = server.enqueue(NewActivity::new("rust", "step_then").timeout_seconds(1).retry(RetrySettings::attempts(2)));
    let completed = server.wait_for(id).await.expect_completed();
    worker.stop().await.unwrap();
    let failures = server.activity(id).unwrap().failures;
    assert_eq!(failures.iter().map(|f| f.code.as_str()).collect::<Vec<_>>(), [code]);
    assert_eq!(runs.load(Ordering::SeqCst), 1, "the retry skipped the paid step");
    assert_eq!(failures[0].usage.len() + completed.usage.len(), 1, "its spend counted once");
    assert_eq!(completed.output["value"], "paid for");
}

#[tokio::test]
async fn a_step_completed_before_a_timeout_is_skipped_by_the_retry() {
    resumed_after(|_ctx| Box::pin(std::future::pending()), "TIMEOUT").await;
}

#[tokio::test]
async fn a_step_completed_before_a_panic_is_skipped_by_the_retry() {
    resumed_after(|_ctx| Box::pin(async { panic!("after the paid step") }), "PANIC").await;
}

#[tokio::test]
async fn a_step_completed_before_a_shutdown_is_skipped_by_the_next_worker() {
    let server = FakeServer::start().await;
    // Still running when the drain ends: the worker fails it with WORKER_SHUTDOWN.
    let (activity, runs) = step_then(|_ctx| Box::pin(std::future::pending()));
    let first = RunningWorker::start(config(&server), registry(activity));
    let id = server.enqueue(NewActivity::new("rust", "step_then").retry(RetrySettings::attempts(2)));
    eventually("the paid step ran", || runs.load(Ordering::SeqCst) == 1).await;
    first.stop().await.unwrap();
    let (activity, runs_on_second) = step_then(|_ctx| Box::pin(std::future::pending()));
    let second = RunningWorker::start(config(&server), registry(activity));
    let completed = server.wait_for(id).await.expect_completed();
    second.stop().await.unwrap();
    let failures = server.activity(id).unwrap().failures;
    assert_eq!(failures.iter().map(|f| f.code.as_str()).collect::<Vec<_>>(), ["WORKER_SHUTDOWN"]);
    assert_eq!(runs_on_second.load(Ordering::SeqCst), 0);
    assert_eq!(failures[0].usage.len() + completed.usage.len(), 1);
}

#[tokio::test]
async fn after_a_lost_lease_the_next_owner_skips_the_step_the_first_completed() {
    let server = FakeServer::start().await;
    let (activity, runs) = step_then(|ctx| {
        Box::pin(async move {
            ctx.cancelled().await;
        })
    });
    let worker = RunningWorker::start(config(&server), registry(activity));
    let id = server.enqueue(NewActivity::new("rust", "step_then").timeout_seconds(3).retry(RetrySettings::attempts(3)));
    eventually("the paid step ran", || runs.load(Ordering::SeqCst) == 1).await;
    assert!(server.reassign(id));
    let refused = || server.log().to(Endpoint::Heartbeat).iter().any(|h| h.activity_id == Some(id) && h.status == 409);
    server
        .wait_until(Duration::from_secs(10), || refused().then_some(()))
        .await
        .expect("a heartbeat learnt of the loss");
    // The other owner's lease runs out; the next poll takes the activity back.
    server.advance_clock(Duration::from_secs(4));
    let completed = server.wait_for(id).await.expect_completed();
    worker.stop().await.unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 1, "the next owner skipped the paid step");
    assert_eq!(server.activity(id).unwrap().failures, []);
    assert_eq!(completed.usage.len(), 1, "the lost attempt never reported its spend: the next one did, once");
}

#[tokio::test]
async fn checkpoints_are_coalesced_and_the_latest_is_written_before_a_retryable_failure() {
    let server = FakeServer::start().await;
    server.faults().set_latency(Endpoint::FileUpload, Duration::from_millis(50));
    let looped = activity("loop", |_params, ctx| async move {
        let start: u32 = ctx.last_checkpoint().await.unwrap_or(0);
        if start > 0 {
            return Ok(ActivityResult::value("resumed_at", start));
        }
        for item in 1..=200u32 {
            ctx.checkpoint(&item)?;
            tokio::task::yield_now().await;
        }
        Err(ActivityError::retryable("FLAKY", "failed after the loop"))
    });
    let worker = RunningWorker::start(config(&server), registry(looped));
    let id = server.enqueue(NewActivity::new("rust", "loop").retry(RetrySettings::attempts(2)));
    let completed = server.wait_for(id).await.expect_completed();
    worker.stop().await.unwrap();
    assert_eq!(completed.output["resumed_at"], 200);
    let writes = server.log().to(Endpoint::FileUpload).len();
    assert!(writes <= 4, "200 checkpoints in a loop cost {writes} writes");
    assert_eq!(server.activity(id).unwrap().status, Status::Completed);
}

mod mock {
    //! The rules that need no server, on a `MockContext`.

    use kruxiaflow_worker::steps::{MAX_STEPS, codes};
    use kruxiaflow_worker::{CancelReason, Spend};
    use kruxiaflow_worker_testing::{EarlierAttempt, MockContext};

    use super::*;

    fn spend(cents: i64) -> Spend {
        Spend { cost: Some(Decimal::new(cents, 2)), usage: vec![UsageEntry::new("stand-in", "planner")] }
    }

    #[tokio::test]
    async fn using_no_step_costs_no_request_and_a_checkpoint_alone_costs_one_read_and_one_write() {
        let mock = MockContext::new("rust", "plain");
        mock.context().record_usage(UsageEntry::new("p", "m"));
        assert_eq!(mock.record_requests(), (0, 0));
        let ctx = mock.context();
        for item in 0..1000 {
            ctx.checkpoint(&item).unwrap();
        }
        eventually("the checkpoint was written", || mock.recorded_checkpoint() == Some(json!(999))).await;
        assert_eq!(mock.record_requests(), (1, 1), "a thousand checkpoints saved at once are one write");
    }

    #[tokio::test]
    async fn a_step_name_is_taken_once_per_attempt_and_a_failed_step_frees_it() {
        let ctx = MockContext::new("rust", "names").context();
        assert_eq!(ctx.step("a", || async { Ok(1) }).await, Ok(1));
        let again = ctx.step("a", || async { Ok(2) }).await.unwrap_err();
        assert_eq!((again.code(), again.is_retryable()), (codes::STEP_NAME_INVALID, false));
        assert_eq!(again.message(), "step \"a\" was already taken in this attempt: each step needs a name of its own");
        let failed = ctx.step::<u32, _, _>("b", || async { Err(ActivityError::retryable("FLAKY", "try again")) }).await;
        assert_eq!(failed.unwrap_err().code(), "FLAKY");
        assert_eq!(ctx.step("b", || async { Ok(3) }).await, Ok(3), "a failed step is not taken");
        let empty = ctx.step("", || async { Ok(0) }).await.unwrap_err();
        assert_eq!(empty.message(), "step name \"\" is invalid: use 1 to 200 bytes");
    }

    #[tokio::test]
    async fn values_and_checkpoints_over_their_bounds_fail_terminally_naming_the_bound() {
        let ctx = MockContext::new("rust", "bounds").context();
        let huge = ctx.step("huge", || async { Ok("x".repeat(16 * 1024 * 1024)) }).await.unwrap_err();
        assert_eq!((huge.code(), huge.is_retryable()), (codes::STEP_VALUE_TOO_LARGE, false));
        assert_eq!(huge.message(), "step \"huge\": its value is 16777218 bytes as JSON; a step value may be 16777216");
        let checkpoint = ctx.checkpoint(&"x".repeat(64 * 1024)).unwrap_err();
        assert_eq!(checkpoint.code(), codes::CHECKPOINT_INVALID);
        assert_eq!(checkpoint.message(), "the checkpoint is 65538 bytes as JSON; a checkpoint may be 65536");
    }

    #[tokio::test]
    async fn thousands_of_distinct_step_names_stop_at_the_record_bound_with_a_terminal_error() {
        let mock = MockContext::new("rust", "many");
        let ctx = mock.context();
        for n in 0..MAX_STEPS {
            ctx.step(&format!("item-{n}"), || async { Ok(n) }).await.unwrap();
        }
        let full = ctx.step("one-more", || async { Ok(0) }).await.unwrap_err();
        assert_eq!((full.code(), full.is_retryable()), (codes::STEP_RECORD_FULL, false));
        assert!(full.message().contains("would hold more than 1000 steps"), "{}", full.message());
        assert_eq!(mock.recorded_steps().len(), MAX_STEPS);
    }

    #[tokio::test]
    async fn a_resumed_attempt_reports_the_spend_of_steps_whose_attempt_was_killed_and_only_theirs() {
        let killed = EarlierAttempt::new().step_with_spend("plan", "p", spend(3)).killed();
        let mock = MockContext::builder("rust", "carry").resumed_from(killed).build();
        let ctx = mock.context();
        assert_eq!(ctx.step("plan", || async { Ok("again".to_owned()) }).await.unwrap(), "p");
        assert_eq!(mock.spend(), spend(3), "never reported, so this attempt reports it");

        let reported = EarlierAttempt::new().step_with_spend("plan", "p", spend(3));
        let mock = MockContext::builder("rust", "carry").resumed_from(reported).build();
        mock.context().step("plan", || async { Ok("again".to_owned()) }).await.unwrap();
        assert_eq!(mock.spend(), Spend::default(), "reported with the earlier failure");
    }

    #[tokio::test]
    async fn a_recorded_value_that_no_longer_fits_the_code_runs_the_step_again() {
        let earlier = EarlierAttempt::new().step("count", "not a number");
        let mock = MockContext::builder("rust", "changed").resumed_from(earlier).build();
        let count: u32 = mock.capture(mock.context().step("count", || async { Ok(5) })).await.unwrap();
        assert_eq!(count, 5);
        assert_eq!(mock.steps_ran(), ["count"]);
        assert_eq!(mock.recorded_steps()["count"], 5);
        let warning = &mock.logs()[0];
        assert!(warning.message.contains("does not fit this code's type"), "{}", warning.message);
    }

    #[tokio::test]
    async fn after_a_lost_lease_steps_still_return_but_write_nothing() {
        let mock = MockContext::new("rust", "lost");
        let ctx = mock.context();
        ctx.step("before", || async { Ok(1) }).await.unwrap();
        mock.cancel(CancelReason::LeaseLost);
        assert_eq!(ctx.step("after", || async { Ok(2) }).await, Ok(2));
        assert_eq!(mock.recorded_steps().keys().collect::<Vec<_>>(), ["before"]);
        assert_eq!(mock.record_requests(), (1, 1));
    }

    #[tokio::test]
    async fn spend_inside_a_step_is_that_steps_even_when_steps_run_concurrently() {
        let mock = MockContext::new("rust", "both");
        let ctx = mock.context();
        let (a, b) = tokio::join!(
            ctx.step("a", || async {
                ctx.add_cost(Decimal::new(1, 2));
                tokio::task::yield_now().await;
                Ok(1)
            }),
            ctx.step("b", || async {
                ctx.add_cost(Decimal::new(20, 2));
                tokio::task::yield_now().await;
                Ok(2)
            })
        );
        assert_eq!((a, b), (Ok(1), Ok(2)));
        let cost = |name| mock.recorded_spend(name).and_then(|s| s.cost);
        assert_eq!((cost("a"), cost("b")), (Some(Decimal::new(1, 2)), Some(Decimal::new(20, 2))));
        assert_eq!(mock.spend().cost, Some(Decimal::new(21, 2)));
    }
}
