//! Token streaming (PROTOCOL.md §6): what reaches the server and a WebSocket
//! subscriber, and what a misbehaving stream endpoint cannot do to an activity.

use std::time::Duration;

use kruxiaflow_worker::prelude::*;
use kruxiaflow_worker_testing::{Endpoint, FakeServer, Fault, NewActivity, Outcome, StreamFrame, StreamSubscriber};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::common::{RunningWorker, activity, config};

/// Streams `params.text` one character per `send`, then completes with it as `text`.
fn spell() -> impl Activity {
    activity("spell", |params, ctx| async move {
        let text = params["text"].as_str().unwrap_or_default().to_owned();
        let stream = ctx.stream();
        for piece in text.chars() {
            stream.send(piece.to_string());
        }
        Ok(ActivityResult::value("text", text))
    })
}

fn streamed(text: &str) -> NewActivity {
    NewActivity::new("rust", "spell").params(json!({"text": text})).streaming(true)
}

fn registry(activity: impl Activity) -> ActivityRegistry {
    let mut registry = ActivityRegistry::new();
    registry.register(activity, "rust");
    registry
}

fn text_output(text: &str) -> serde_json::Map<String, Value> {
    serde_json::Map::from_iter([("text".to_owned(), json!(text))])
}

/// Position of the first request to `endpoint` for `id` in the server's log.
fn position(server: &FakeServer, id: Uuid, endpoint: Endpoint) -> usize {
    server
        .log()
        .all()
        .iter()
        .position(|r| r.activity_id == Some(id) && r.endpoint == endpoint)
        .unwrap_or_else(|| panic!("no {endpoint:?} request for {id}"))
}

fn count(server: &FakeServer, endpoint: Endpoint) -> usize {
    server.log().to(endpoint).len()
}

#[tokio::test]
async fn an_activity_that_did_not_opt_in_sends_no_streaming_request() {
    let server = FakeServer::start().await;
    let id = server.enqueue(NewActivity::new("rust", "spell").params(json!({"text": "quiet"})));
    server.set_stream_subscribers(id, 1);
    let worker = RunningWorker::start(config(&server), registry(spell()));
    let outcome = server.wait_for(id).await;
    worker.stop().await.unwrap();
    assert_eq!(outcome.completed().unwrap().output, text_output("quiet"));
    for endpoint in
        [Endpoint::StreamSubscribers, Endpoint::StreamToken, Endpoint::StreamComplete, Endpoint::StreamError]
    {
        assert_eq!(count(&server, endpoint), 0, "{endpoint:?}");
    }
}

#[tokio::test]
async fn without_a_subscriber_no_token_and_no_end_is_sent() {
    let server = FakeServer::start().await;
    let id = server.enqueue(streamed("nobody watches"));
    let worker = RunningWorker::start(config(&server), registry(spell()));
    let outcome = server.wait_for(id).await;
    worker.stop().await.unwrap();
    assert_eq!(outcome.completed().unwrap().output, text_output("nobody watches"));
    // One check when the handler starts and one when it ends (a client may have come
    // since); one more only if the attempt outlived the one-second re-check interval on
    // a slow machine.
    let checks = count(&server, Endpoint::StreamSubscribers);
    assert!((2..=3).contains(&checks), "{checks} subscriber checks");
    for endpoint in [Endpoint::StreamToken, Endpoint::StreamComplete, Endpoint::StreamError] {
        assert_eq!(count(&server, endpoint), 0, "{endpoint:?}");
    }
}

#[tokio::test]
async fn a_subscriber_receives_the_exact_text_in_order_and_a_complete_equal_to_the_output() {
    let server = FakeServer::start().await;
    let text: String = (0..1000).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
    let id = server.enqueue(streamed(&text));
    let subscriber = StreamSubscriber::connect(&server.url(), id, None).await.unwrap();
    let worker = RunningWorker::start(config(&server), registry(spell()));
    let received = subscriber.until_end().await.unwrap();
    let outcome = server.wait_for(id).await;
    worker.stop().await.unwrap();

    let output = outcome.completed().unwrap().output.clone();
    assert_eq!(received.text(), text);
    let indexes: Vec<u32> = received.tokens.iter().map(|(index, _)| *index).collect();
    assert_eq!(indexes, (0..indexes.len() as u32).collect::<Vec<_>>());
    assert_eq!(received.end, Some(StreamFrame::Complete { result: Value::Object(output.clone()) }));
    assert_eq!(output, text_output(&text));
    let requests = count(&server, Endpoint::StreamToken);
    println!("1,000 one-character sends took {requests} ws/token requests");
    assert_eq!(requests, received.tokens.len());
    assert!(requests <= 50, "sends were not joined: {requests} requests");
}

#[tokio::test]
async fn a_subscriber_who_joins_mid_run_receives_the_rest() {
    let server = FakeServer::start().await;
    let ticking = activity("tick", |_params, ctx| async move {
        let stream = ctx.stream();
        let mut text = String::new();
        for tick in 0..30 {
            let token = format!("t{tick} ");
            stream.send(token.as_str());
            text.push_str(&token);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(ActivityResult::value("text", text))
    });
    let id = server.enqueue(NewActivity::new("rust", "tick").setting("streaming", json!({"enabled": true})));
    let worker = RunningWorker::start(config(&server), registry(ticking));
    // Join after the worker found nobody subscribed.
    let first_check =
        server.wait_until(Duration::from_secs(10), || (count(&server, Endpoint::StreamSubscribers) > 0).then_some(()));
    first_check.await.expect("the worker never checked for subscribers");
    let subscriber = StreamSubscriber::connect(&server.url(), id, None).await.unwrap();
    let received = subscriber.until_end().await.unwrap();
    let outcome = server.wait_for(id).await;
    worker.stop().await.unwrap();

    let full = outcome.completed().unwrap().output["text"].as_str().unwrap().to_owned();
    let rest = received.text();
    assert!(!rest.is_empty(), "the late subscriber received nothing");
    assert!(full.ends_with(&rest) && rest.len() < full.len(), "{rest:?} is not a later part of {full:?}");
    assert!(rest.starts_with('t'), "the rest starts mid-token: {rest:?}");
    assert_eq!(received.tokens[0].0, 0, "the first increment sent has index 0");
    assert_eq!(received.end, Some(StreamFrame::Complete { result: json!({"text": full}) }));
}

#[tokio::test]
async fn a_stream_endpoint_answering_500_neither_fails_the_activity_nor_loses_its_end() {
    let server = FakeServer::start().await;
    let id = server.enqueue(streamed("still fine"));
    server.set_stream_subscribers(id, 1);
    server.faults().inject(Endpoint::StreamToken, Fault::Status(500), 1000);
    let worker = RunningWorker::start(config(&server), registry(spell()));
    let outcome = server.wait_for(id).await;
    worker.stop().await.unwrap();
    assert_eq!(outcome.completed().unwrap().output, text_output("still fine"));
    // Three tries, then the stream gave up; the end still went out.
    assert_eq!(count(&server, Endpoint::StreamToken), 3);
    assert_eq!(server.stream(id).completed, Some(json!({"text": "still fine"})));
}

#[tokio::test]
async fn a_hanging_stream_endpoint_does_not_hold_the_activity_or_its_report() {
    let server = FakeServer::start().await;
    let id = server.enqueue(streamed("no wait"));
    server.set_stream_subscribers(id, 1);
    server.faults().inject(Endpoint::StreamToken, Fault::Hang, 1000);
    let worker = RunningWorker::start(config(&server), registry(spell()));
    let outcome = server.wait_for(id).await;
    // The token request never got an answer (answered requests are logged), yet the
    // handler returned and its completion arrived.
    assert_eq!(count(&server, Endpoint::StreamToken), 0);
    worker.stop().await.unwrap();
    assert_eq!(outcome.completed().unwrap().output, text_output("no wait"));
}

#[tokio::test]
async fn the_stream_ends_before_the_report_complete_before_complete_and_error_before_fail() {
    let server = FakeServer::start().await;
    let fails = activity("fails", |_params, ctx| async move {
        ctx.stream().send("partial");
        Err(ActivityError::terminal("MODEL_REFUSED", "the model refused"))
    });
    let mut registry = registry(spell());
    registry.register(fails, "rust");
    let done = server.enqueue(streamed("done"));
    let failed = server.enqueue(NewActivity::new("rust", "fails").streaming(true));
    server.set_stream_subscribers(done, 1);
    server.set_stream_subscribers(failed, 1);
    let worker = RunningWorker::start(config(&server), registry);
    let (done_outcome, failed_outcome) = (server.wait_for(done).await, server.wait_for(failed).await);
    worker.stop().await.unwrap();

    assert!(position(&server, done, Endpoint::StreamComplete) < position(&server, done, Endpoint::Complete));
    assert_eq!(server.stream(done).completed, Some(Value::Object(done_outcome.completed().unwrap().output.clone())));
    assert!(position(&server, failed, Endpoint::StreamError) < position(&server, failed, Endpoint::Fail));
    let Outcome::Failed(failure) = failed_outcome else { panic!("expected a failure") };
    assert_eq!(server.stream(failed).error.as_deref(), Some(failure.message.as_str()));
    assert_eq!(server.stream(failed).tokens, [(0, "partial".to_owned())]);
}

#[tokio::test]
async fn a_timed_out_attempt_ends_its_stream_with_an_error_before_failing() {
    let server = FakeServer::start().await;
    let stuck = activity("stuck", |_params, ctx| async move {
        ctx.stream().send("thinking");
        std::future::pending::<()>().await;
        Ok(ActivityResult::value("never", 0))
    });
    let id = server.enqueue(NewActivity::new("rust", "stuck").timeout_seconds(1).streaming(true));
    let subscriber = StreamSubscriber::connect(&server.url(), id, None).await.unwrap();
    let worker = RunningWorker::start(config(&server), registry(stuck));
    let received = subscriber.until_end().await.unwrap();
    let failures =
        server.wait_until(Duration::from_secs(10), || server.activity(id).and_then(|a| a.failures.first().cloned()));
    let failure = failures.await.expect("the timeout was never reported");
    worker.stop().await.unwrap();

    assert_eq!(failure.code, "TIMEOUT");
    assert_eq!(received.text(), "thinking");
    assert_eq!(received.end, Some(StreamFrame::Error { error: failure.message.clone() }));
    assert!(position(&server, id, Endpoint::StreamError) < position(&server, id, Endpoint::Fail));
}

#[tokio::test]
async fn an_attempt_cancelled_by_shutdown_ends_its_stream_with_an_error() {
    let server = FakeServer::start().await;
    let waits = activity("waits", |_params, ctx| async move {
        ctx.stream().send("started");
        ctx.cancelled().await;
        Err(ActivityError::retryable("CANCELLED", "stopped"))
    });
    let id = server.enqueue(NewActivity::new("rust", "waits").streaming(true));
    server.set_stream_subscribers(id, 1);
    let worker = RunningWorker::start(config(&server), registry(waits));
    let started = server.wait_until(Duration::from_secs(10), || (!server.stream(id).tokens.is_empty()).then_some(()));
    started.await.expect("the activity never streamed");
    worker.stop().await.unwrap();

    let failure = server.activity(id).unwrap().failures[0].clone();
    assert_eq!(failure.code, "WORKER_SHUTDOWN");
    assert_eq!(server.stream(id).error.as_deref(), Some(failure.message.as_str()));
    assert!(position(&server, id, Endpoint::StreamError) < position(&server, id, Endpoint::Fail));
}
