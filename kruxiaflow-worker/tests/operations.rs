//! What an operator sees: `/metrics`, `/healthz` and `/readyz` of a worker run against
//! the fake server. Its own test binary, because the Prometheus recorder is global to
//! the process: nothing else here may record while the counts are checked.

use std::sync::LazyLock;
use std::time::Duration;

use kruxiaflow_worker::prelude::*;
use kruxiaflow_worker::{WorkerHandle, WorkerManager};
use kruxiaflow_worker_testing::{Endpoint, FakeServer, Fault, NewActivity, RetrySettings};
use rust_decimal::dec;
use tokio::sync::{Mutex, Notify};

mod support;
use support::{config, get, held, listener, parse, still, until, value};

/// Every metric family the worker exports, as the README's table lists them.
const FAMILIES: [&str; 16] = [
    "kruxiaflow_worker_activities_finished_total",
    "kruxiaflow_worker_activities_in_flight",
    "kruxiaflow_worker_activities_started_total",
    "kruxiaflow_worker_activity_duration_seconds",
    "kruxiaflow_worker_concurrency_waiting",
    "kruxiaflow_worker_cost_usd_total",
    "kruxiaflow_worker_heartbeats_total",
    "kruxiaflow_worker_llm_tokens_total",
    "kruxiaflow_worker_local_retries_total",
    "kruxiaflow_worker_poll_duration_seconds",
    "kruxiaflow_worker_polls_total",
    "kruxiaflow_worker_rate_limit_wait_seconds",
    "kruxiaflow_worker_rate_limit_waiting",
    "kruxiaflow_worker_reports_pending",
    "kruxiaflow_worker_rpc_retries_total",
    "kruxiaflow_worker_slots_free",
];

/// A histogram's series named after their family.
fn family(name: &str) -> &str {
    ["_bucket", "_count", "_sum"].iter().find_map(|suffix| name.strip_suffix(suffix)).unwrap_or(name)
}

/// One test at a time: they share the process's recorder and counters without a
/// worker label.
static SERIAL: Mutex<()> = Mutex::const_new(());

/// Lets `slow` go on once the test has taken its lease away.
static RELEASE_SLOW: LazyLock<Notify> = LazyLock::new(Notify::new);

/// Completes with a cost and LLM usage, after two heartbeats of its own (the second
/// within the heartbeat interval, so it is answered without a request).
#[activity]
async fn paid(ctx: &ActivityContext) -> Result<ActivityResult, ActivityError> {
    ctx.heartbeat().await?;
    ctx.heartbeat().await?;
    let usage = UsageEntry::new("anthropic", "claude-sonnet-5").input_tokens(100).output_tokens(20);
    Ok(ActivityResult::value("ok", true).with_cost(dec!(0.25)).with_usage([usage]))
}

/// Fails terminally with its own code.
#[activity]
async fn refuse() -> Result<ActivityResult, ActivityError> {
    Err(ActivityError::terminal("BAD_INPUT", "no"))
}

/// Waits for the test, then heartbeats: after a reassignment that heartbeat is a 409.
#[activity]
async fn slow(ctx: &ActivityContext) -> Result<ActivityResult, ActivityError> {
    RELEASE_SLOW.notified().await;
    ctx.heartbeat().await?;
    Ok(ActivityResult::value("ok", true))
}

/// One at a time; acquires the rate limit `ops-rps`, and fails its first try with a
/// retryable error it retries in the attempt.
#[activity(max_concurrency = 1, local_retries = 1)]
async fn limited(ctx: &ActivityContext) -> Result<ActivityResult, ActivityError> {
    // A whole period's worth each time: four tries take longer than the runs leave
    // the bucket to fill, so some of them wait.
    ctx.rate_limit("ops-rps").acquire(100).await?;
    tokio::time::sleep(Duration::from_millis(100)).await;
    if ctx.spend_snapshot().cost.is_none() {
        ctx.add_cost(dec!(0.01));
        return Err(ActivityError::retryable("BUSY", "try again").retry_after(Duration::from_millis(1)));
    }
    Ok(ActivityResult::value("ok", true))
}

fn registry(worker: &str) -> ActivityRegistry {
    let mut registry = ActivityRegistry::new();
    registry.register(paid, worker).register(refuse, worker).register(slow, worker).register(held, worker);
    registry.register(limited, worker);
    registry
}

fn start(server: &FakeServer, worker: &str) -> (WorkerHandle, tokio::task::JoinHandle<Result<(), WorkerError>>) {
    let manager = WorkerManager::new(config(server, worker), registry(worker))
        .rate_limit("ops-rps", kruxiaflow_worker::rate_limit::RateLimit::per(100, Duration::from_millis(200)));
    let handle = manager.handle();
    (handle, tokio::spawn(manager.run(std::future::pending())))
}

#[tokio::test]
async fn metrics_count_completions_failures_a_lost_lease_retries_spend_and_polls() {
    let _serial = SERIAL.lock().await;
    let server = FakeServer::start().await;
    let worker = "ops_metrics";
    let once = || RetrySettings::attempts(1);
    let paid_id = server.enqueue(NewActivity::new(worker, "paid").retry(once()));
    let refuse_id = server.enqueue(NewActivity::new(worker, "refuse").retry(once()));
    let slow_id = server.enqueue(NewActivity::new(worker, "slow").retry(once()));
    let limited_ids = [(); 2].map(|()| server.enqueue(NewActivity::new(worker, "limited").retry(once())));
    server.faults().inject(Endpoint::Poll, Fault::Status(500), 1);
    server.faults().inject(Endpoint::Complete, Fault::Status(503), 1);

    let (handle, run) = start(&server, worker);
    let base = listener(&handle).await;
    server.wait_for_timeout(paid_id, Duration::from_secs(10)).await.expect("paid settles");
    server.wait_for_timeout(refuse_id, Duration::from_secs(10)).await.expect("refuse settles");
    for id in limited_ids {
        server.wait_for_timeout(id, Duration::from_secs(10)).await.expect("limited settles").expect_completed();
    }
    server.wait_until(Duration::from_secs(10), || server.running_activities().contains(&slow_id).then_some(())).await;
    assert!(server.reassign(slow_id));
    RELEASE_SLOW.notify_one();
    // Abandoned: wait for the metric itself, since nothing reaches the server. (The
    // series of registered activities exist from the start, at 0.)
    let abandoned = [("worker", worker), ("activity", "slow"), ("outcome", "abandoned")];
    let finished = "kruxiaflow_worker_activities_finished_total";
    let mut samples = parse(&until(&base, "/metrics", 200).await);
    for _ in 0..500 {
        if value(&samples, finished, &abandoned) == 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        samples = parse(&get(&format!("{base}/metrics")).await.1);
    }
    // Pollers and attempts update metrics on the activities' threads while /metrics
    // is rendered, and a render is not one snapshot: hold the polls, then read the
    // metrics once they are still.
    server.faults().set_latency(Endpoint::Poll, Duration::from_secs(3600));
    let samples = still(&base).await;
    handle.shutdown();
    run.await.unwrap().unwrap();

    let started = "kruxiaflow_worker_activities_started_total";
    assert_eq!(value(&samples, started, &[("worker", worker), ("activity", "limited")]), 2.0);
    let capped = [("worker", worker), ("activity", "limited")];
    let retries = [capped[0], capped[1], ("code", "BUSY")];
    assert_eq!(value(&samples, "kruxiaflow_worker_local_retries_total", &retries), 2.0);
    assert_eq!(value(&samples, "kruxiaflow_worker_concurrency_waiting", &capped), 0.0, "the second waited, then ran");
    let rps = [("limit", "ops-rps")];
    assert_eq!(value(&samples, "kruxiaflow_worker_rate_limit_wait_seconds_count", &rps), 4.0, "two tries each");
    assert_eq!(value(&samples, "kruxiaflow_worker_rate_limit_waiting", &rps), 0.0);
    for activity in ["paid", "refuse", "slow"] {
        assert_eq!(value(&samples, started, &[("worker", worker), ("activity", activity)]), 1.0, "{activity}");
    }
    let completed = [("worker", worker), ("activity", "paid"), ("outcome", "completed")];
    assert_eq!(value(&samples, finished, &completed), 1.0);
    let failed = [("worker", worker), ("activity", "refuse"), ("outcome", "failed"), ("code", "BAD_INPUT")];
    assert_eq!(value(&samples, finished, &failed), 1.0);
    assert_eq!(value(&samples, finished, &abandoned), 1.0);
    let duration_count = "kruxiaflow_worker_activity_duration_seconds_count";
    assert_eq!(value(&samples, duration_count, &completed), 1.0);
    assert_eq!(
        value(&samples, duration_count, &[("worker", worker), ("activity", "refuse"), ("outcome", "failed")]),
        1.0
    );
    assert_eq!(value(&samples, duration_count, &abandoned), 1.0);

    assert_eq!(value(&samples, "kruxiaflow_worker_activities_in_flight", &[("worker", worker)]), 0.0);
    // Idle, with a poll in flight holding the free slots for what it may claim.
    assert_eq!(value(&samples, "kruxiaflow_worker_slots_free", &[]), 16.0);
    assert_eq!(value(&samples, "kruxiaflow_worker_reports_pending", &[]), 0.0);

    let polls = "kruxiaflow_worker_polls_total";
    assert_eq!(value(&samples, polls, &[("worker", worker), ("result", "error")]), 1.0);
    assert_eq!(value(&samples, polls, &[("worker", worker), ("result", "work")]), 1.0);
    let empty = value(&samples, polls, &[("worker", worker), ("result", "empty")]);
    let answered = value(&samples, "kruxiaflow_worker_poll_duration_seconds_count", &[("worker", worker)]);
    assert_eq!(answered, 2.0 + empty, "every poll is timed");

    let retries = "kruxiaflow_worker_rpc_retries_total";
    assert_eq!(value(&samples, retries, &[("endpoint", "poll")]), 1.0);
    assert_eq!(value(&samples, retries, &[("endpoint", "complete")]), 1.0);
    let heartbeats = "kruxiaflow_worker_heartbeats_total";
    assert_eq!(value(&samples, heartbeats, &[("result", "ok")]), 1.0);
    assert_eq!(value(&samples, heartbeats, &[("result", "lease_lost")]), 1.0);

    assert_eq!(value(&samples, "kruxiaflow_worker_cost_usd_total", &[("worker", worker), ("activity", "paid")]), 0.25);
    let tokens = "kruxiaflow_worker_llm_tokens_total";
    let model = [("provider", "anthropic"), ("model", "claude-sonnet-5")];
    assert_eq!(value(&samples, tokens, &[model[0], model[1], ("kind", "input")]), 100.0);
    assert_eq!(value(&samples, tokens, &[model[0], model[1], ("kind", "output")]), 20.0);

    let exported: std::collections::BTreeSet<&str> = samples.keys().map(|(name, _)| family(name)).collect();
    assert_eq!(exported, FAMILIES.into_iter().collect());
}

#[test]
fn the_grafana_dashboard_charts_every_family_and_nothing_else() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/grafana-dashboard.json");
    let dashboard: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut charted = std::collections::BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            for (start, _) in expr.match_indices("kruxiaflow_worker_") {
                let name: String = expr[start..].chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect();
                charted.insert(family(&name).to_owned());
            }
        }
    }
    let families: std::collections::BTreeSet<String> = FAMILIES.iter().map(|f| (*f).to_owned()).collect();
    assert_eq!(charted, families);
}

#[tokio::test]
async fn readiness_follows_the_first_poll_an_outage_the_recovery_and_the_drain() {
    let _serial = SERIAL.lock().await;
    let server = FakeServer::start().await;
    let worker = "ops_health";
    // The first poll hangs until the request times out: alive, not ready yet.
    server.faults().inject(Endpoint::Poll, Fault::Hang, 1);
    let (handle, run) = start(&server, worker);
    let base = listener(&handle).await;
    assert_eq!(
        get(&format!("{base}/readyz")).await,
        (503, format!("no poll for worker type \"{worker}\" has succeeded yet\n"))
    );
    assert_eq!(get(&format!("{base}/healthz")).await, (200, "ok\n".to_owned()));

    // Ready once a poll succeeds.
    until(&base, "/readyz", 200).await;

    // An outage: polls fail, so not ready; still alive.
    server.stop().await;
    let body = until(&base, "/readyz", 503).await;
    assert_eq!(body, format!("polls for worker type \"{worker}\" are failing: the server is unreachable\n"));
    assert_eq!(get(&format!("{base}/healthz")).await, (200, "ok\n".to_owned()));

    // Recovery.
    server.restart().await;
    until(&base, "/readyz", 200).await;

    // Draining with an activity in flight: not ready, still alive.
    let held_id = server.enqueue(NewActivity::new(worker, "held"));
    server.wait_until(Duration::from_secs(10), || server.running_activities().contains(&held_id).then_some(())).await;
    handle.shutdown();
    assert_eq!(until(&base, "/readyz", 503).await, "shutting down\n");
    assert_eq!(get(&format!("{base}/healthz")).await, (200, "ok\n".to_owned()));
    assert_eq!(get(&format!("{base}/nothing")).await, (404, "served here: /metrics, /healthz, /readyz\n".to_owned()));
    handle.shutdown_now();
    run.await.unwrap().unwrap();
}

#[tokio::test]
async fn an_address_already_in_use_is_an_error_naming_the_variable() {
    let _serial = SERIAL.lock().await;
    let server = FakeServer::start().await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let config = WorkerConfig { metrics_addr: Some(addr), ..config(&server, "ops_bind") };
    let error = WorkerManager::new(config, registry("ops_bind")).run(std::future::pending()).await.unwrap_err();
    let message = format!("{error:?}");
    assert!(message.starts_with(&format!("cannot listen on {addr} (KRUXIAFLOW_WORKER_METRICS_ADDR): ")), "{message}");
}
