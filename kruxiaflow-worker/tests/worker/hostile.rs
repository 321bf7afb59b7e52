//! The worker's promises under a hostile server, network or activity: one test per
//! attack, each named for the behaviour that must hold.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use kruxiaflow_worker::prelude::*;
use kruxiaflow_worker_testing::{Endpoint, FakeServer, Fault, NewActivity, RetrySettings};
use serde_json::json;

use crate::common::{RunningWorker, activity, config, echo, eventually};
use crate::scripted::{ScriptedServer, TokenMode, item};

const GOOD_A: &str = "0193b2c4-0000-7000-8000-00000000000a";
const DEEP: &str = "0193b2c4-0000-7000-8000-0000000000d1";
const HUGE: &str = "0193b2c4-0000-7000-8000-0000000000d2";
const SURROGATE: &str = "0193b2c4-0000-7000-8000-0000000000d3";

fn scripted_config(server: &ScriptedServer) -> WorkerConfig {
    WorkerConfig {
        poll_interval: Duration::from_millis(10),
        shutdown_timeout: Duration::from_millis(500),
        cancellation_grace: Duration::from_millis(200),
        report_flush_timeout: Duration::from_millis(500),
        ..WorkerConfig::new(&server.url)
    }
}

#[tokio::test]
async fn poison_items_fail_alone_and_the_rest_of_their_batch_runs() {
    let server = FakeServer::start().await;
    let good = [server.enqueue(NewActivity::new("rust", "echo").params(json!({"n": 1})))];
    let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
    for (id, parameters) in [(DEEP, deep.as_str()), (HUGE, "1e400"), (SURROGATE, r#""\ud800""#)] {
        server.faults().inject_raw_poll_item(item(id, "echo", parameters));
    }
    let mut registry = ActivityRegistry::new();
    registry.register(echo(), "rust");
    let config = WorkerConfig { max_concurrent_activities: 8, poll_max_activities: 8, ..config(&server) };
    let worker = RunningWorker::start(config, registry);

    let completion = server.wait_for(good[0]).await.expect_completed();
    let failed = |id: &str| {
        let id = id.parse().unwrap();
        server.log().to(Endpoint::Fail).into_iter().find(|r| r.activity_id == Some(id)).and_then(|r| r.body)
    };
    eventually("every poison item is failed", || [DEEP, HUGE, SURROGATE].iter().all(|id| failed(id).is_some())).await;
    worker.stop().await.unwrap();

    assert_eq!(completion.output["echo"], json!({"n": 1}));
    for (id, detail) in [(DEEP, "recursion limit exceeded"), (HUGE, "number out of range"), (SURROGATE, "hex escape")] {
        let body = failed(id).unwrap();
        assert_eq!(body["error"]["code"], "INVALID_ACTIVITY");
        assert_eq!(body["error"]["retryable"], false);
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.starts_with("the worker could not parse this activity: "), "{message}");
        assert!(message.contains(detail), "{id}: {message}");
    }
}

#[tokio::test]
async fn server_numbers_near_the_integer_limits_panic_nothing() {
    let server = ScriptedServer::start().await;
    server.token_mode(TokenMode::Valid(u64::MAX));
    let huge_timeout =
        item(GOOD_A, "echo", "{}").replace(r#""timeout_seconds":30"#, &format!(r#""timeout_seconds":{}"#, i64::MAX));
    server.answer_next_poll(&format!(r#"{{"activities":[{huge_timeout}]}}"#));
    let mut registry = ActivityRegistry::new();
    registry.register(echo(), "rust");
    let config = scripted_config(&server).with_credentials("worker", "secret");
    let worker = RunningWorker::start(config, registry);

    eventually("the activity is reported", || !server.reports(GOOD_A).is_empty()).await;
    let polls_then = server.requests_ending("/poll").len();
    eventually("the poller keeps polling", || server.requests_ending("/poll").len() > polls_then + 3).await;
    worker.stop().await.unwrap();

    assert!(server.reports(GOOD_A)[0].0.ends_with("/complete"));
    assert_eq!(server.tokens_issued().len(), 1, "a lifetime of u64::MAX seconds is clamped, not overflowed");
}

#[tokio::test]
async fn a_valid_token_keeps_being_used_while_the_token_endpoint_hangs() {
    let server = ScriptedServer::start().await;
    server.token_mode(TokenMode::Valid(8));
    server.token_mode(TokenMode::Hang);
    let mut registry = ActivityRegistry::new();
    registry.register(echo(), "rust");
    let config = WorkerConfig { poll_interval: Duration::from_millis(50), ..scripted_config(&server) }
        .with_credentials("worker", "secret");
    let worker = RunningWorker::start(config, registry);
    eventually("a token was issued", || server.tokens_issued().len() == 1).await;

    // Past the refresh point (half of the 8 s lifetime): the refresh hangs.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let refreshes = server.requests_ending("/oauth/token").len();
    let polls_before = server.requests_ending("/poll").len();
    server.answer_next_poll(&format!(r#"{{"activities":[{}]}}"#, item(GOOD_A, "echo", r#"{"late":true}"#)));
    eventually("the activity is completed on the old token", || !server.reports(GOOD_A).is_empty()).await;
    let polls_after = server.requests_ending("/poll").len();
    let started = Instant::now();
    let stopped = worker.stop().await;

    assert_eq!(refreshes, 2, "one refresh started, and it hangs");
    assert!(polls_after > polls_before, "polls keep flowing after the refresh point");
    assert_eq!(server.reports(GOOD_A)[0].1["output"]["echo"], json!({"late": true}));
    assert!(stopped.is_ok(), "{stopped:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "shutdown waited on the token fetch: {:?}", started.elapsed());
}

#[tokio::test]
async fn a_completion_survives_a_token_endpoint_that_refuses_for_a_while() {
    let server = FakeServer::builder().auth("worker", "secret").start().await;
    let release = Arc::new(tokio::sync::Notify::new());
    let mut registry = ActivityRegistry::new();
    let gate = Arc::clone(&release);
    registry.register(
        activity("gated", move |_p, _ctx| {
            let gate = Arc::clone(&gate);
            async move {
                gate.notified().await;
                Ok(ActivityResult::value("done", true))
            }
        }),
        "rust",
    );
    let id = server.enqueue(NewActivity::new("rust", "gated"));
    let worker = RunningWorker::start(config(&server).with_credentials("worker", "secret"), registry);
    eventually("the activity runs", || server.running_activities().contains(&id)).await;

    server.revoke_tokens();
    server.faults().inject(Endpoint::Token, Fault::Status(401), 5);
    release.notify_one();
    let completion = server.wait_for(id).await.expect_completed();
    worker.stop().await.unwrap();

    assert_eq!(completion.output["done"], true);
    assert_eq!(completion.attempts, 1, "the finished result was delivered, not re-run");
    let refused = server.log().to(Endpoint::Token).iter().filter(|r| r.status == 401).count();
    assert_eq!(refused, 5);
}

#[tokio::test]
async fn a_completion_survives_a_token_endpoint_answering_an_html_page() {
    let server = FakeServer::builder().auth("worker", "secret").start().await;
    let mut registry = ActivityRegistry::new();
    registry.register(echo(), "rust");
    let worker = RunningWorker::start(config(&server).with_credentials("worker", "secret"), registry);
    eventually("the worker has a token", || server.tokens_issued() == 1).await;

    // From now on the next token requests get a login page; the one activity's
    // completion needs a fresh token.
    server.revoke_tokens();
    server.faults().inject(Endpoint::Token, Fault::HtmlPage, 5);
    let id = server.enqueue(NewActivity::new("rust", "echo").params(json!("kept")));
    let completion = server.wait_for(id).await.expect_completed();
    worker.stop().await.unwrap();

    assert_eq!(completion.output["echo"], "kept");
    assert_eq!(completion.attempts, 1);
    let pages = server.log().to(Endpoint::Token).iter().filter(|r| r.fault == Some(Fault::HtmlPage)).count();
    assert_eq!(pages, 5);
}

#[tokio::test]
async fn shutdown_with_a_frozen_server_ends_within_the_bound_and_names_the_undelivered() {
    let server = FakeServer::start().await;
    let mut registry = ActivityRegistry::new();
    registry.register(echo(), "rust");
    let config = WorkerConfig {
        shutdown_timeout: Duration::from_millis(500),
        cancellation_grace: Duration::from_millis(200),
        report_flush_timeout: Duration::from_millis(500),
        ..config(&server)
    };
    let bound = config.shutdown_bound();
    // The activity finishes at once, but its completion never gets an answer.
    server.faults().set_latency(Endpoint::Complete, Duration::from_secs(3600));
    let id = server.enqueue(NewActivity::new("rust", "echo"));
    let worker = RunningWorker::start(config, registry);
    eventually("the completion is on its way", || server.running_activities().contains(&id)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Then the whole server freezes.
    server.faults().set_latency(Endpoint::Poll, Duration::from_secs(3600));
    server.faults().set_latency(Endpoint::Heartbeat, Duration::from_secs(3600));
    tokio::time::sleep(Duration::from_millis(100)).await;

    let started = Instant::now();
    let result = worker.stop().await;
    let took = started.elapsed();

    match result {
        Err(WorkerError::ReportsUndelivered { activity_ids }) => assert_eq!(activity_ids, [id]),
        other => panic!("expected the undelivered report to be named, got {other:?}"),
    }
    assert!(took < bound + Duration::from_secs(3), "shutdown took {took:?}; the bound is {bound:?}");
}

#[tokio::test]
async fn an_output_over_the_servers_body_limit_fails_terminally() {
    let server = FakeServer::start().await;
    let mut registry = ActivityRegistry::new();
    registry.register(
        activity("huge", |_p, _ctx| async move { Ok(ActivityResult::value("text", "x".repeat(51 * 1024 * 1024))) }),
        "rust",
    );
    let id = server.enqueue(NewActivity::new("rust", "huge"));
    let worker = RunningWorker::start(config(&server), registry);
    let failure = server.wait_for(id).await.expect_failed();
    worker.stop().await.unwrap();

    assert_eq!((failure.code.as_str(), failure.retryable), ("OUTPUT_TOO_LARGE", false));
    assert!(failure.message.contains("over the server's limit of 52428800 bytes"), "{}", failure.message);
    assert!(server.log().to(Endpoint::Complete).is_empty(), "nothing over the limit is sent");
}

#[tokio::test]
async fn a_413_on_a_completion_settles_it_as_output_too_large() {
    let server = FakeServer::start().await;
    server.faults().inject(Endpoint::Complete, Fault::Status(413), 1);
    let mut registry = ActivityRegistry::new();
    registry.register(echo(), "rust");
    let id = server.enqueue(NewActivity::new("rust", "echo"));
    let worker = RunningWorker::start(config(&server), registry);
    let failure = server.wait_for(id).await.expect_failed();
    worker.stop().await.unwrap();

    assert_eq!((failure.code.as_str(), failure.retryable), ("OUTPUT_TOO_LARGE", false));
}

#[tokio::test]
async fn nan_and_infinite_outputs_fail_as_invalid_output_naming_the_output() {
    let server = FakeServer::start().await;
    let mut registry = ActivityRegistry::new();
    registry
        .register(activity("ratio", |_p, _ctx| async move { Ok(ActivityResult::value("ratio", f64::NAN)) }), "rust");
    let id = server.enqueue(NewActivity::new("rust", "ratio"));
    let worker = RunningWorker::start(config(&server), registry);
    let failure = server.wait_for(id).await.expect_failed();
    worker.stop().await.unwrap();

    assert_eq!((failure.code.as_str(), failure.retryable), ("INVALID_OUTPUT", false));
    assert_eq!(
        failure.message,
        "output 'ratio' cannot be serialized to JSON: NaN is not a JSON number (JSON has no NaN or infinity)"
    );
}

#[tokio::test]
async fn a_file_download_slower_than_the_http_timeout_succeeds_while_it_moves() {
    let server = FakeServer::start().await;
    let workflow_id = uuid::Uuid::now_v7();
    server.files().seed(workflow_id, "input", "data.bin", &[7u8; 250_000], None);
    // 2.5 s of transfer with a 1 s HTTP timeout: only a stall would be an error.
    server.faults().set_bandwidth(Endpoint::FileDownload, 100_000);
    let reference = format!("postgres://{workflow_id}/input/data.bin");
    let mut registry = ActivityRegistry::new();
    registry.register(
        activity("fetch", |p, ctx| async move {
            let path = ctx.download_file(p["file"].as_str().unwrap()).await?;
            Ok(ActivityResult::value("bytes", std::fs::metadata(path)?.len()))
        }),
        "rust",
    );
    let id = server.enqueue(NewActivity::new("rust", "fetch").params(json!({"file": reference})));
    let worker =
        RunningWorker::start(WorkerConfig { http_timeout: Duration::from_secs(1), ..config(&server) }, registry);
    let completion = server.wait_for(id).await.expect_completed();
    worker.stop().await.unwrap();

    assert_eq!(completion.output["bytes"], 250_000);
}

#[tokio::test]
async fn a_redirect_is_never_followed_so_the_secret_stays_home() {
    let elsewhere = ScriptedServer::start().await;
    let server = ScriptedServer::start().await;
    server.token_mode(TokenMode::Redirect(format!("{}/api/v1/oauth/token", elsewhere.url)));
    let mut registry = ActivityRegistry::new();
    registry.register(echo(), "rust");
    let worker = RunningWorker::start(scripted_config(&server).with_credentials("worker", "s3cret"), registry);
    // A redirect before the first successful poll can never be worked around: the
    // worker stops, naming the variable to fix.
    let error = tokio::time::timeout(Duration::from_secs(10), worker.join()).await.expect("fails fast").unwrap_err();
    let message = format!("{error:?}");
    assert!(message.starts_with("cannot start: "), "{message}");
    assert!(
        message.ends_with("the worker follows no redirects: point KRUXIAFLOW_API_URL at the final address"),
        "{message}"
    );

    assert_eq!(server.requests_ending("/oauth/token").len(), 1);
    assert!(elsewhere.requests().is_empty(), "the other origin got {:?}", elsewhere.requests());
    assert!(server.requests_ending("/poll").is_empty(), "nothing goes out without a token");
}

#[tokio::test]
async fn over_delivered_items_wait_for_a_slot_and_are_settled_at_shutdown() {
    let server = FakeServer::start().await;
    // One attempt each, so the shutdown failure settles them.
    let sleepy = || NewActivity::new("rust", "sleepy").retry(RetrySettings::attempts(1));
    let ids: Vec<_> = (0..3).map(|_| server.enqueue(sleepy())).collect();
    server.faults().set_over_delivery(2);
    let started = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&started);
    let mut registry = ActivityRegistry::new();
    registry.register(
        activity("sleepy", move |_p, ctx| {
            counter.fetch_add(1, Ordering::SeqCst);
            async move {
                ctx.cancelled().await;
                Err(ActivityError::retryable("STOPPED", "cancelled"))
            }
        }),
        "rust",
    );
    let config = WorkerConfig { max_concurrent_activities: 1, poll_max_activities: 1, ..config(&server) };
    let bound = config.shutdown_bound();
    let worker = RunningWorker::start(config, registry);
    eventually("one activity runs", || started.load(Ordering::SeqCst) == 1).await;
    eventually("all three are claimed by the one poll", || {
        ids.iter().all(|id| server.running_activities().contains(id))
    })
    .await;

    let stopping = Instant::now();
    worker.stop().await.unwrap();
    let took = stopping.elapsed();

    assert_eq!(started.load(Ordering::SeqCst), 1, "the concurrency bound held");
    for id in ids {
        let failure = server.wait_for(id).await.expect_failed();
        assert_eq!(failure.code, "WORKER_SHUTDOWN", "{id}");
    }
    assert!(took < bound + Duration::from_secs(3), "shutdown took {took:?}");
}

#[tokio::test]
async fn activities_blocking_their_threads_do_not_stop_other_activities_heartbeats() {
    let server = FakeServer::start().await;
    let mut registry = ActivityRegistry::new();
    registry.register(
        activity("blocker", |_p, _ctx| async move {
            std::thread::sleep(Duration::from_secs(5));
            Ok(ActivityResult::value("blocked", true))
        }),
        "rust",
    );
    registry.register(
        activity("patient", |_p, _ctx| async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok(ActivityResult::value("patient", true))
        }),
        "rust",
    );
    let blockers: Vec<_> = (0..2).map(|_| server.enqueue(NewActivity::new("rust", "blocker"))).collect();
    // An 8 s lease, renewed every 2.7 s, while both blockers hold their threads for 5 s.
    let patient = server.enqueue(NewActivity::new("rust", "patient").timeout_seconds(8));
    let worker = RunningWorker::start(WorkerConfig { max_concurrent_activities: 8, ..config(&server) }, registry);

    let completion = server.wait_for(patient).await.expect_completed();
    for id in blockers {
        assert_eq!(server.wait_for(id).await.expect_completed().attempts, 1);
    }
    worker.stop().await.unwrap();

    assert_eq!(completion.attempts, 1, "the lease was kept while the activity threads were blocked");
    assert_eq!(completion.output["patient"], true);
}

#[tokio::test]
async fn a_handler_stuck_in_blocking_code_cannot_keep_the_worker_from_stopping() {
    let server = FakeServer::start().await;
    let mut registry = ActivityRegistry::new();
    registry.register(
        activity("stuck", |_p, _ctx| async move {
            std::thread::sleep(Duration::from_secs(30));
            Ok(ActivityResult::empty())
        }),
        "rust",
    );
    let id = server.enqueue(NewActivity::new("rust", "stuck").timeout_seconds(1).retry(RetrySettings::attempts(1)));
    let worker = RunningWorker::start(config(&server), registry);
    let failure = server.wait_for(id).await.expect_failed();
    let stopping = Instant::now();
    worker.stop().await.unwrap();

    // The handler's own task never runs again: only the worker's runtime can settle it.
    assert_eq!(failure.code, "TIMEOUT");
    assert_eq!(failure.message, "Activity execution timed out after 1s");
    assert!(stopping.elapsed() < Duration::from_secs(10), "stopping took {:?}", stopping.elapsed());
}

#[tokio::test]
async fn at_shutdown_the_worker_settles_what_activity_threads_blocked_in_handlers_cannot() {
    let server = FakeServer::start().await;
    let (answered, started) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut registry = ActivityRegistry::new();
    let quick_ran = Arc::clone(&answered);
    registry.register(
        activity("quick", move |_p, _ctx| {
            quick_ran.fetch_add(1, Ordering::SeqCst);
            async move { Ok(ActivityResult::value("answer", 42)) }
        }),
        "rust",
    );
    let counted = Arc::clone(&started);
    registry.register(
        activity("blocker", move |_p, _ctx| {
            counted.fetch_add(1, Ordering::SeqCst);
            async move {
                std::thread::sleep(Duration::from_secs(20));
                Ok(ActivityResult::empty())
            }
        }),
        "rust",
    );
    let config = WorkerConfig { max_concurrent_activities: 64, ..config(&server) };
    let bound = config.shutdown_bound();
    // The quick activity's completion gets no answer until the HTTP timeout (5 s), and
    // meanwhile handlers block the threads of the activities' runtime.
    server.faults().inject(Endpoint::Complete, Fault::Hang, 1);
    let quick = server.enqueue(NewActivity::new("rust", "quick"));
    let worker = RunningWorker::start(config, registry);
    eventually("the quick activity ran", || answered.load(Ordering::SeqCst) == 1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let threads = std::thread::available_parallelism().map_or(2, usize::from);
    let blockers: Vec<_> = (0..threads)
        .map(|_| server.enqueue(NewActivity::new("rust", "blocker").retry(RetrySettings::attempts(1))))
        .collect();
    eventually("a blocker runs", || started.load(Ordering::SeqCst) > 0).await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    let stopping = Instant::now();
    let result = worker.stop().await;
    let took = stopping.elapsed();

    assert!(result.is_ok(), "every report was delivered: {result:?}");
    assert!(took < Duration::from_secs(3), "shutdown took {took:?}; the bound is {bound:?}");
    // Delivered again from the worker's runtime, before the first request timed out.
    assert_eq!(server.activity(quick).unwrap().outcome.unwrap().expect_completed().output["answer"], 42);
    assert_eq!(server.log().to(Endpoint::Complete).len(), 1, "the hanging request is never answered");
    // Each blocker was claimed by a poller on a thread not yet blocked, and is failed
    // for the server to retry.
    for id in blockers {
        assert_eq!(server.activity(id).unwrap().outcome.unwrap().expect_failed().code, "WORKER_SHUTDOWN", "{id}");
    }
}

#[tokio::test]
async fn the_retry_of_an_attempt_stuck_in_blocking_code_runs_on_this_worker() {
    let server = FakeServer::start().await;
    let calls = Arc::new(AtomicUsize::new(0));
    let mut registry = ActivityRegistry::new();
    let counted = Arc::clone(&calls);
    registry.register(
        activity("stuck_once", move |_p, _ctx| {
            let call = counted.fetch_add(1, Ordering::SeqCst);
            async move {
                if call == 0 {
                    std::thread::sleep(Duration::from_secs(8));
                }
                Ok(ActivityResult::value("call", call))
            }
        }),
        "rust",
    );
    let id =
        server.enqueue(NewActivity::new("rust", "stuck_once").timeout_seconds(2).retry(RetrySettings::attempts(2)));
    let worker = RunningWorker::start(config(&server), registry);
    let completion = server.wait_for(id).await.expect_completed();
    worker.stop().await.unwrap();

    // The first attempt was failed as a timeout while its handler still blocked its
    // thread; the server's retry came back to this worker and was not refused as a
    // duplicate of it.
    assert_eq!(completion.attempts, 2);
    assert_eq!(completion.output["call"], 1);
    let failures = server.activity(id).unwrap().failures;
    assert_eq!(failures.iter().map(|f| f.code.as_str()).collect::<Vec<_>>(), ["TIMEOUT"]);
}

#[tokio::test]
async fn strings_from_the_server_cannot_forge_log_lines() {
    let logs = Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
    let writer = {
        let logs = Arc::clone(&logs);
        move || LogWriter(Arc::clone(&logs))
    };
    let subscriber = tracing_subscriber::fmt().with_writer(writer).with_ansi(false).finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let server = FakeServer::start().await;
    let mut registry = ActivityRegistry::new();
    registry.register(echo(), "rust");
    let forged = "x\nERROR forged line\u{1b}[31m";
    let id = server.enqueue(NewActivity::new("rust", forged));
    let worker = RunningWorker::start(config(&server), registry);
    server.wait_for(id).await.expect_failed();
    worker.stop().await.unwrap();

    let text = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    assert!(text.contains(r"x\nERROR forged line\u{1b}[31m"), "the name is logged escaped:\n{text}");
    assert!(!text.contains('\u{1b}'), "no raw escape reaches the log");
    assert!(!text.lines().any(|line| line.starts_with("ERROR forged")), "no forged line:\n{text}");
}

struct LogWriter(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_lost_lease_stops_the_retries_of_a_timeouts_report() {
    let server = FakeServer::start().await;
    server.faults().inject(Endpoint::Fail, Fault::Status(503), 100_000);
    let mut registry = ActivityRegistry::new();
    registry.register(
        activity("slow", |_p, ctx| async move {
            ctx.cancelled().await;
            Err(ActivityError::retryable("STOPPED", "cancelled"))
        }),
        "rust",
    );
    let id = server.enqueue(NewActivity::new("rust", "slow").timeout_seconds(1));
    let worker = RunningWorker::start(config(&server), registry);
    eventually("the TIMEOUT report is being retried", || server.log().to(Endpoint::Fail).len() >= 3).await;

    // Polls fail from now on, so this worker cannot claim the activity again.
    server.faults().inject(Endpoint::Poll, Fault::Status(503), 100_000);
    assert!(server.reassign(id), "the fake hands the activity to someone else");
    eventually("the worker stops retrying", || {
        server.log().to(Endpoint::Heartbeat).iter().any(|r| r.activity_id == Some(id) && r.status == 409)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let retries = server.log().to(Endpoint::Fail).len();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let later = server.log().to(Endpoint::Fail).len();
    let stopped = worker.stop().await;

    assert_eq!(later, retries, "no report is sent on a lease the worker no longer holds");
    assert!(stopped.is_ok(), "a dropped report is not an undelivered one: {stopped:?}");
}
