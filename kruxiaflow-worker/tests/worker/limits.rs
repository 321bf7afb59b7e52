//! Rate limits, concurrency caps, per-type pools and local retries: a provider's
//! limits handled in the worker instead of by failing activities.

use std::sync::Mutex;
use std::time::Duration;

use kruxiaflow_worker::CancelReason;
use kruxiaflow_worker::prelude::*;
use kruxiaflow_worker::rate_limit::{RateLimit, codes};
use kruxiaflow_worker_testing::{Endpoint, FakeServer, MockContext, NewActivity, RetrySettings};
use serde_json::json;
use tokio::time::Instant;

use crate::common::{RunningWorker, config, eventually};

/// The most intervals of `spans` that overlap at one instant.
fn most_at_once(spans: &[(Instant, Instant)]) -> usize {
    let mut edges: Vec<(Instant, i32)> = spans.iter().flat_map(|&(start, end)| [(start, 1), (end, -1)]).collect();
    // At the same instant an end comes before a start: touching is not overlapping.
    edges.sort_by_key(|&(at, delta)| (at, delta));
    let (mut now, mut most) = (0i32, 0i32);
    for (_, delta) in edges {
        now += delta;
        most = most.max(now);
    }
    most as usize
}

static CAPPED: Mutex<Vec<(Instant, Instant)>> = Mutex::new(Vec::new());

#[activity(max_concurrency = 4)]
async fn capped() -> ActivityResult {
    let start = Instant::now();
    tokio::time::sleep(Duration::from_millis(60)).await;
    CAPPED.lock().unwrap().push((start, Instant::now()));
    ActivityResult::value("ok", true)
}

#[tokio::test]
async fn a_cap_of_4_with_20_claimed_activities_never_runs_more_than_4_handlers_at_once() {
    let server = FakeServer::start().await;
    let config = WorkerConfig { max_concurrent_activities: 32, poll_max_activities: 20, ..config(&server) };
    let worker_id = config.worker_id.clone();
    let mut registry = ActivityRegistry::new();
    registry.register(capped, "rust");
    let ids: Vec<Uuid> = (0..20).map(|_| server.enqueue(NewActivity::new("rust", "capped"))).collect();
    let worker = RunningWorker::start(config, registry);
    for id in &ids {
        server.wait_for(*id).await.expect_completed();
    }
    worker.stop().await.unwrap();
    let spans = CAPPED.lock().unwrap().clone();
    assert_eq!(spans.len(), 20);
    assert_eq!(most_at_once(&spans), 4, "the cap, reached and never passed");
    // The waiting attempts held their slots: all 20 were claimed at once, none failed.
    assert_eq!(server.max_concurrent_claims(&worker_id), 20);
    assert_eq!(server.log().to(Endpoint::Fail), []);
}

#[tokio::test(start_paused = true)]
async fn sixty_acquisitions_of_a_30_per_second_limit_take_two_seconds() {
    let mock = MockContext::builder("rust", "llm").rate_limit("rpm", RateLimit::per_second(30)).build();
    let ctx = mock.context();
    let started = Instant::now();
    for _ in 0..60 {
        ctx.rate_limit("rpm").acquire(1).await.unwrap();
    }
    assert_eq!(started.elapsed(), Duration::from_secs(2), "an empty bucket, filling at 30 a second");
}

#[tokio::test(start_paused = true)]
async fn an_acquisition_that_cannot_fit_the_deadline_fails_at_once_and_takes_nothing() {
    let mock = MockContext::builder("rust", "llm")
        .timeout(Duration::from_secs(1))
        .rate_limit("rpm", RateLimit::per_minute(60))
        .build();
    let ctx = mock.context();
    let started = Instant::now();
    let error = ctx.rate_limit("rpm").acquire(2).await.unwrap_err();
    assert_eq!(started.elapsed(), Duration::ZERO, "failed before waiting");
    assert_eq!((error.code(), error.is_retryable()), (codes::RATE_LIMITED, true));
    assert_eq!(error.message(), "rate limit \"rpm\": 2 units would take 2s, past the attempt's deadline");
    ctx.rate_limit("rpm").acquire(1).await.unwrap();
    assert_eq!(started.elapsed(), Duration::from_secs(1), "the refused units were never taken");
}

#[tokio::test]
async fn an_unknown_limit_and_more_units_than_a_period_grants_are_terminal_errors_naming_them() {
    let mock = MockContext::builder("rust", "llm").rate_limit("tpm", RateLimit::per_minute(1000)).build();
    let ctx = mock.context();
    let unknown = ctx.rate_limit("rpm").acquire(1).await.unwrap_err();
    assert_eq!((unknown.code(), unknown.is_retryable()), (codes::RATE_LIMIT_UNKNOWN, false));
    assert_eq!(unknown.message(), "no rate limit named \"rpm\" is registered on this worker; registered: [tpm]");
    let large = ctx.rate_limit("tpm").acquire(1001).await.unwrap_err();
    assert_eq!((large.code(), large.is_retryable()), (codes::RATE_LIMIT_TOO_LARGE, false));
    assert_eq!(large.message(), "rate limit \"tpm\" grants at most 1000 units per 60s; 1001 were asked for at once");
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_wait_stops_and_gives_its_units_back() {
    let mock = MockContext::builder("rust", "llm").rate_limit("rps", RateLimit::per_second(1)).build();
    let ctx = mock.context();
    let waiting = tokio::spawn({
        let ctx = ctx.clone();
        async move { ctx.rate_limit("rps").acquire(1).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    mock.cancel(CancelReason::Shutdown);
    let error = waiting.await.unwrap().unwrap_err();
    assert_eq!(error.code(), codes::RATE_LIMIT_CANCELLED);
    assert_eq!(error.message(), "stopped waiting for rate limit \"rps\": the worker is shutting down");
    let started = Instant::now();
    let fresh = MockContext::builder("rust", "llm").rate_limit("rps", RateLimit::per_second(1)).build();
    fresh.context().rate_limit("rps").acquire(1).await.unwrap();
    assert_eq!(started.elapsed(), Duration::from_secs(1));
}

static TRIES: Mutex<Vec<Instant>> = Mutex::new(Vec::new());

#[activity(local_retries = 3)]
async fn flaky(ctx: &ActivityContext) -> Result<ActivityResult, ActivityError> {
    let tries = {
        let mut tries = TRIES.lock().unwrap();
        tries.push(Instant::now());
        tries.len()
    };
    ctx.record_usage(UsageEntry::new("stand-in", "model").input_tokens(10));
    if tries < 3 {
        return Err(ActivityError::retryable("LLM_RATE_LIMITED", "429").retry_after(Duration::from_millis(300)));
    }
    Ok(ActivityResult::value("tries", tries))
}

#[tokio::test]
async fn a_handler_failing_twice_with_retry_after_then_succeeding_is_claimed_once_completed_once_and_ran_three_times() {
    let server = FakeServer::start().await;
    let mut registry = ActivityRegistry::new();
    registry.register(flaky, "rust");
    let worker = RunningWorker::start(config(&server), registry);
    let id = server.enqueue(NewActivity::new("rust", "flaky").retry(RetrySettings::attempts(1)));
    let completed = server.wait_for(id).await.expect_completed();
    worker.stop().await.unwrap();
    assert_eq!(completed.output["tries"], 3);
    assert_eq!(server.activity(id).unwrap().claims, 1);
    assert_eq!(server.log().reports(id).len(), 1, "one report: the completion");
    assert_eq!(completed.usage.len(), 3, "every try's usage, reported once");
    let tries = TRIES.lock().unwrap().clone();
    for pair in tries.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(gap >= Duration::from_millis(300) && gap < Duration::from_millis(1300), "waited {gap:?}");
    }
}

#[activity(local_retries = 5)]
async fn refusing(p: serde_json::Value) -> Result<ActivityResult, ActivityError> {
    match p["how"].as_str() {
        Some("terminal") => Err(ActivityError::terminal("BAD_INPUT", "never again")),
        Some("slow") => Err(ActivityError::retryable("BUSY", "later").retry_after(Duration::from_secs(3600))),
        _ => Err(ActivityError::retryable("BUSY", "later").retry_after(Duration::from_millis(1))),
    }
}

#[tokio::test]
async fn terminal_errors_and_waits_past_the_deadline_are_not_retried_locally() {
    let mock = MockContext::new("rust", "refusing");
    assert_eq!(mock.run(&refusing, json!({"how": "terminal"})).await.unwrap_err().code(), "BAD_INPUT");
    assert_eq!(mock.run(&refusing, json!({"how": "slow"})).await.unwrap_err().code(), "BUSY");
    assert_eq!(mock.local_retries(), [], "neither was retried");
    let error = mock.run(&refusing, json!({})).await.unwrap_err();
    assert_eq!(error.code(), "BUSY");
    let delays: Vec<Duration> = mock.local_retries().iter().map(|r| r.delay).collect();
    assert_eq!(delays, [Duration::from_millis(1); 5], "five local retries, then the failure");
}

#[tokio::test(start_paused = true)]
async fn a_local_retry_skips_the_steps_the_first_try_completed_without_reading_the_server_again() {
    #[activity(local_retries = 1)]
    async fn two_steps(ctx: &ActivityContext) -> Result<ActivityResult, ActivityError> {
        let first: u32 = ctx.step("first", || async { Ok(1) }).await?;
        let second: u32 = ctx
            .step("second", || async {
                if ctx.spend_snapshot().usage.is_empty() {
                    ctx.record_usage(UsageEntry::new("p", "m"));
                    return Err(ActivityError::retryable("FLAKY", "once"));
                }
                Ok(2)
            })
            .await?;
        Ok(ActivityResult::value("sum", first + second))
    }
    let mock = MockContext::new("rust", "two_steps");
    let result = mock.run(&two_steps, json!({})).await.unwrap();
    assert_eq!(result.output("sum"), Some(&json!(3)));
    assert_eq!(mock.steps_ran(), ["first", "second"]);
    assert_eq!(mock.steps_skipped(), ["first"]);
    let (reads, _) = mock.record_requests();
    assert_eq!(reads, 1);
    assert_eq!(mock.local_retries().len(), 1);
    assert!(mock.local_retries()[0].delay >= Duration::from_millis(500), "the backoff, without retry_after");
}

static POOLED: Mutex<Vec<(Instant, Instant)>> = Mutex::new(Vec::new());

#[activity]
async fn pooled() -> ActivityResult {
    let start = Instant::now();
    tokio::time::sleep(Duration::from_millis(40)).await;
    POOLED.lock().unwrap().push((start, Instant::now()));
    ActivityResult::value("ok", true)
}

#[tokio::test]
async fn a_pool_of_2_for_a_worker_type_never_has_more_than_2_of_that_type_claimed() {
    let server = FakeServer::start().await;
    let config = WorkerConfig { max_concurrent_activities: 16, ..config(&server) }.max_activities_for("llm", 2);
    let worker_id = config.worker_id.clone();
    let mut registry = ActivityRegistry::new();
    registry.register(pooled, "llm");
    let ids: Vec<Uuid> = (0..10).map(|_| server.enqueue(NewActivity::new("llm", "pooled"))).collect();
    let worker = RunningWorker::start(config, registry);
    for id in &ids {
        server.wait_for(*id).await.expect_completed();
    }
    worker.stop().await.unwrap();
    assert_eq!(server.max_concurrent_claims(&worker_id), 2, "the rest stayed on the server");
    assert_eq!(most_at_once(&POOLED.lock().unwrap()), 2);
    let asked: Vec<u64> =
        server.log().to(Endpoint::Poll).iter().filter_map(|p| p.body.as_ref()?["max_activities"].as_u64()).collect();
    assert!(asked.iter().all(|&n| n <= 2), "polls asked for {asked:?}");
    eventually("nothing left", || server.running_activities().is_empty()).await;
}
