//! MockContext: records what an activity did, and cancels it on demand.

use std::time::Duration;

use kruxiaflow_worker::prelude::*;
use kruxiaflow_worker::stream::StreamEnd;
use kruxiaflow_worker::{CancelReason, decode_params};
use kruxiaflow_worker_testing::{LogLevel, LogLine, MockContext, Streamed};
use rust_decimal::Decimal;
use serde_json::{Value, json};

/// Heartbeats once per item until cancelled, logging through both APIs.
struct LongRunning;

#[derive(serde::Deserialize)]
struct Items {
    items: Vec<String>,
}

impl Activity for LongRunning {
    fn name(&self) -> &str {
        "long_running"
    }

    async fn run(&self, params: Value, ctx: ActivityContext) -> Result<ActivityResult, ActivityError> {
        let Items { items } = decode_params(params, &ctx)?;
        ctx.logger().info(format_args!("processing {} items", items.len()));
        let mut done = 0;
        for _ in &items {
            if ctx.is_cancelled() {
                tracing::warn!(done, "stopping early");
                return Err(ActivityError::retryable("CANCELLED", format!("stopped after {done}")));
            }
            ctx.heartbeat().await?;
            done += 1;
        }
        ctx.record_usage(UsageEntry::new("openai", "gpt-4o-mini").input_tokens(10));
        ctx.add_cost(Decimal::new(5, 3));
        ctx.logger().debug("done");
        Ok(ActivityResult::value("done", done))
    }
}

fn items(n: usize) -> Value {
    json!({"items": vec!["x"; n]})
}

#[tokio::test]
async fn records_heartbeats_logs_usage_and_cost() {
    let mock = MockContext::new("rust", "long_running");
    let result = mock.run(&LongRunning, items(3)).await.unwrap();

    assert_eq!(result.output("done"), Some(&json!(3)));
    assert_eq!(mock.heartbeats(), 3);
    assert_eq!(
        mock.logs(),
        [
            LogLine { level: LogLevel::Info, message: "processing 3 items".into() },
            LogLine { level: LogLevel::Debug, message: "done".into() },
        ]
    );
    assert_eq!(mock.spend().cost, Some(Decimal::new(5, 3)));
    assert_eq!(mock.spend().usage[0].model, "gpt-4o-mini");
}

#[tokio::test]
async fn cancel_after_heartbeats_acts_as_a_lost_lease() {
    let mock = MockContext::builder("rust", "long_running").cancel_after_heartbeats(2).build();
    let error = mock.run(&LongRunning, items(5)).await.unwrap_err();

    assert_eq!(error.code(), "LEASE_LOST");
    assert_eq!(mock.heartbeats(), 2);
    assert_eq!(mock.context().cancel_reason(), Some(CancelReason::LeaseLost));
}

struct WaitsForCancel;

impl Activity for WaitsForCancel {
    fn name(&self) -> &str {
        "waits"
    }

    async fn run(&self, _params: Value, ctx: ActivityContext) -> Result<ActivityResult, ActivityError> {
        let reason = ctx.cancelled().await;
        tracing::info!("cancelled: {reason}");
        Ok(ActivityResult::value("reason", format!("{reason:?}")))
    }
}

#[tokio::test]
async fn cancel_after_a_delay_cancels_with_requested() {
    let mock = MockContext::builder("rust", "waits").cancel_after(Duration::from_millis(50)).build();
    let result = mock.run(&WaitsForCancel, json!({})).await.unwrap();

    assert_eq!(result.output("reason"), Some(&json!("Requested")));
    assert_eq!(mock.logs()[0].message, "cancelled: cancellation was requested");
}

#[tokio::test]
async fn a_test_can_cancel_a_run_with_any_reason() {
    let mock = MockContext::new("rust", "waits");
    let run = mock.run(&WaitsForCancel, json!({}));
    mock.cancel(CancelReason::Shutdown);
    assert_eq!(run.await.unwrap().output("reason"), Some(&json!("Shutdown")));
}

#[tokio::test]
async fn the_context_carries_what_the_builder_set() {
    let id = uuid::Uuid::now_v7();
    let mock = MockContext::builder("rust", "introspect")
        .activity_id(id)
        .activity_key("look")
        .worker_id("worker_7")
        .signal(json!({"approved": true}))
        .settings(json!({"cache": false}))
        .output("report.txt", OutputType::File)
        .build();
    let ctx = mock.context();

    assert_eq!((ctx.activity_id(), ctx.activity_key(), ctx.worker_id()), (id, "look", "worker_7"));
    assert_eq!(ctx.signal(), Some(&json!({"approved": true})));
    assert_eq!(ctx.settings(), &json!({"cache": false}));
    assert_eq!(ctx.output_definitions()[0].output_type, OutputType::File);
}

struct Panics;

impl Activity for Panics {
    fn name(&self) -> &str {
        "panics"
    }

    async fn run(&self, _params: Value, _ctx: ActivityContext) -> Result<ActivityResult, ActivityError> {
        panic!("boom")
    }
}

#[tokio::test]
async fn a_panic_becomes_the_retryable_panic_error_a_worker_would_report() {
    let error = MockContext::new("rust", "panics").run(&Panics, json!({})).await.unwrap_err();
    assert_eq!((error.code(), error.message(), error.is_retryable()), ("PANIC", "the activity panicked: boom", true));
}

#[tokio::test]
async fn report_shows_the_exact_body_the_worker_would_post() {
    let mock = MockContext::builder("rust", "long_running").worker_id("worker_7").build();
    let outcome = mock.run(&LongRunning, items(1)).await;
    let report = mock.report(&outcome).expect("reported");

    assert_eq!(report.endpoint(), "complete");
    assert_eq!(
        report.to_json(),
        json!({
            "worker_id": "worker_7",
            "output": {"done": 1},
            "cost_usd": "0.005",
            "usage": [{"provider": "openai", "model": "gpt-4o-mini", "input_tokens": 10, "output_tokens": 0,
                       "cache_read_tokens": 0, "cache_creation_tokens": 0}],
        })
    );

    let bad = MockContext::builder("rust", "long_running").worker_id("worker_7").build();
    let outcome = bad.run(&LongRunning, json!({"items": "nope"})).await;
    assert_eq!(
        bad.report(&outcome).expect("reported").to_json(),
        json!({"worker_id": "worker_7", "error": {
            "code": "INVALID_PARAMETERS",
            "message": "invalid parameters for activity 'rust.long_running' at items: invalid type: string \"nope\", expected a sequence",
            "retryable": false,
        }})
    );
}

#[kruxiaflow_worker::activity]
async fn shout_file(params: Value, ctx: &ActivityContext) -> Result<ActivityResult, ActivityError> {
    let input = ctx.download_file(params["input"].as_str().unwrap_or_default()).await?;
    let text = tokio::fs::read_to_string(&input).await?;
    let out = ctx.temp_dir()?.join("result.txt");
    tokio::fs::write(&out, text.to_uppercase()).await?;
    Ok(ActivityResult::empty().with_output(ctx.file_output("result.txt", &out).await?))
}

#[tokio::test]
async fn seeded_files_download_and_uploads_are_recorded() {
    let builder = MockContext::builder("rust", "shout_file").activity_key("shout");
    let input = builder.reference("input.txt");
    let mock = builder.file(&input, "hello").build();
    let result = mock.run(&shout_file, json!({"input": input})).await.unwrap();

    assert_eq!(mock.uploaded("result.txt").as_deref(), Some(&b"HELLO"[..]));
    let upload = &mock.uploads()[0];
    assert_eq!(upload.content_type, "text/plain");
    assert_eq!(result.output("result.txt"), Some(&json!(upload.reference)));
    assert!(upload.reference.ends_with("/shout/result.txt"));
}

#[tokio::test]
async fn a_file_that_was_not_seeded_is_not_found() {
    let mock = MockContext::new("rust", "shout_file");
    let missing = mock.reference("missing.txt");
    let error = mock.run(&shout_file, json!({"input": missing})).await.unwrap_err();
    assert_eq!((error.code(), error.message()), ("FILE_NOT_FOUND", format!("file not found: {missing}").as_str()));
}

/// Streams its words, then completes with the sentence (or fails when told to).
struct Story;

impl Activity for Story {
    fn name(&self) -> &str {
        "story"
    }

    async fn run(&self, params: Value, ctx: ActivityContext) -> Result<ActivityResult, ActivityError> {
        let stream = ctx.stream();
        for word in ["Once ", "upon ", "a ", "time"] {
            stream.send(word);
        }
        stream.flush().await;
        if params["fail"] == true {
            return Err(ActivityError::terminal("MODEL_REFUSED", "the model refused"));
        }
        Ok(ActivityResult::value("text", "Once upon a time"))
    }
}

#[tokio::test]
async fn a_mock_records_each_send_and_the_end_a_worker_would_send() {
    let mock = MockContext::builder("rust", "story").streaming(true).build();
    mock.run(&Story, json!({})).await.unwrap();
    let streamed = mock.streamed();
    assert_eq!(
        streamed.increments,
        [(0, "Once ".to_owned()), (1, "upon ".to_owned()), (2, "a ".to_owned()), (3, "time".to_owned())]
    );
    assert_eq!(streamed.text(), "Once upon a time");
    let output = serde_json::Map::from_iter([("text".to_owned(), json!("Once upon a time"))]);
    assert_eq!(streamed.end, Some(StreamEnd::Complete(output)));
    assert!(mock.context().stream().is_enabled());
}

#[tokio::test]
async fn a_failing_mock_ends_its_stream_with_the_failure_message() {
    let mock = MockContext::builder("rust", "story").streaming(true).subscribers(3).build();
    mock.run(&Story, json!({"fail": true})).await.unwrap_err();
    assert_eq!(mock.streamed().end, Some(StreamEnd::Error("the model refused".to_owned())));
}

#[tokio::test]
async fn a_mock_without_subscribers_or_opt_in_records_nothing() {
    let unwatched = MockContext::builder("rust", "story").streaming(true).subscribers(0).build();
    unwatched.run(&Story, json!({})).await.unwrap();
    assert_eq!(unwatched.streamed(), Streamed::default());
    assert!(unwatched.context().stream().is_enabled());

    let not_opted_in = MockContext::new("rust", "story");
    not_opted_in.run(&Story, json!({})).await.unwrap();
    assert_eq!(not_opted_in.streamed(), Streamed::default());
    assert!(!not_opted_in.context().stream().is_enabled());
}

#[tokio::test]
async fn the_context_an_activity_gets_is_the_one_the_builder_described() {
    let builder = MockContext::builder("rust", "described")
        .activity_key("step")
        .settings(json!({"model": "small"}))
        .signal(json!({"approved": true}))
        .cancel_after_heartbeats(1);
    let reference = builder.reference("in.txt");
    let mock = builder.file(&reference, "seeded bytes").build();
    let ctx = mock.context();
    assert_eq!(ctx.info().activity_key, "step");
    assert_eq!(ctx.info().settings, json!({"model": "small"}));
    assert_eq!(ctx.info().signal, Some(json!({"approved": true})));
    assert_eq!(mock.reference("in.txt"), reference);
    let path = ctx.download_file(&reference).await.unwrap();
    assert_eq!(std::fs::read_to_string(path).unwrap(), "seeded bytes");
    assert_eq!(ctx.heartbeat().await.unwrap_err().code(), "LEASE_LOST");
    assert_eq!(mock.heartbeats(), 1);
}
