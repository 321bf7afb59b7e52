//! Traces against a real OTLP receiver on 127.0.0.1 that decodes what it gets with the
//! OpenTelemetry protobuf types: one trace per workflow across worker processes, the
//! attempt span's attributes, and a collector that never answers.

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::header::CONTENT_TYPE;
use axum::routing::post;
use kruxiaflow_worker::prelude::*;
use kruxiaflow_worker_examples::llm_chat::stand_in::{Answer, Reply, StandInModel};
use kruxiaflow_worker_examples::llm_chat::{ChatDefaults, LlmChat};
use kruxiaflow_worker_testing::{FakeServer, NewActivity, RetrySettings, RetryStrategy};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::json;
use support::WorkerProcess;
use tokio_util::task::AbortOnDropHandle;

/// An OTLP/HTTP traces endpoint keeping every span it is sent.
struct Receiver {
    url: String,
    spans: Arc<Mutex<Vec<Span>>>,
    _server: AbortOnDropHandle<()>,
}

impl Receiver {
    async fn start() -> Self {
        async fn traces(State(spans): State<Arc<Mutex<Vec<Span>>>>, headers: HeaderMap, body: Bytes) -> Vec<u8> {
            let json = headers.get(CONTENT_TYPE).is_some_and(|t| t.as_bytes().starts_with(b"application/json"));
            let request: ExportTraceServiceRequest = if json {
                serde_json::from_slice(&body).expect("an OTLP JSON request")
            } else {
                ExportTraceServiceRequest::decode(body).expect("an OTLP protobuf request")
            };
            let received = request.resource_spans.into_iter().flat_map(|r| r.scope_spans).flat_map(|s| s.spans);
            spans.lock().unwrap().extend(received);
            ExportTraceServiceResponse::default().encode_to_vec()
        }
        let spans = Arc::new(Mutex::new(Vec::new()));
        let app = axum::Router::new().route("/v1/traces", post(traces)).with_state(Arc::clone(&spans));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url, spans, _server: AbortOnDropHandle::new(server) }
    }

    /// The spans named `activity ...`, once there are `count` of them.
    async fn attempts(&self, count: usize) -> Vec<Span> {
        for _ in 0..1000 {
            let attempts: Vec<Span> =
                self.spans.lock().unwrap().iter().filter(|s| s.name.starts_with("activity ")).cloned().collect();
            if attempts.len() >= count {
                return attempts;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("fewer than {count} attempt spans arrived: {:#?}", self.spans.lock().unwrap());
    }
}

impl Receiver {
    /// The spans whose parent is `parent`, by start time, once there are `count`.
    async fn children(&self, parent: &[u8], count: usize) -> Vec<Span> {
        for _ in 0..1000 {
            let mut children: Vec<Span> =
                self.spans.lock().unwrap().iter().filter(|s| s.parent_span_id == parent).cloned().collect();
            if children.len() >= count {
                children.sort_by_key(|s| s.start_time_unix_nano);
                return children;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("fewer than {count} children of {}", hex(parent));
    }
}

/// A span's attributes as strings (numbers and booleans shown as such).
fn attributes(attributes: &[KeyValue]) -> BTreeMap<String, String> {
    attributes
        .iter()
        .map(|kv| {
            let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(Any::StringValue(s)) => s.clone(),
                Some(Any::IntValue(i)) => i.to_string(),
                Some(Any::DoubleValue(d)) => d.to_string(),
                Some(Any::BoolValue(b)) => b.to_string(),
                other => format!("{other:?}"),
            };
            (kv.key.clone(), value)
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn a_workflow_of_three_activities_on_two_worker_processes_is_one_trace_with_the_workflow_id() {
    let receiver = Receiver::start().await;
    let server = FakeServer::start().await;
    let endpoint = receiver.url.clone();
    let start = |worker: &str, protocol: &str| {
        let env = [
            ("KRUXIAFLOW_WORKER", worker),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
        ];
        WorkerProcess::start(env!("CARGO_BIN_EXE_durable"), &server, &env)
    };
    // One sends protobuf, the other JSON: the receiver reads both.
    let (alpha, beta) = (start("alpha", "http/protobuf"), start("beta", "http/json"));
    let workflow_id = Uuid::now_v7();
    let retry_at_once =
        RetrySettings { max_attempts: 2, strategy: RetryStrategy::Fixed, base_seconds: 0, factor: 1.0, max_seconds: 0 };
    let research = NewActivity::new("alpha", "research")
        .key("research")
        .workflow_id(workflow_id)
        .params(json!({"topic": "traces", "publish_fails_first": true}))
        .retry(retry_at_once);
    let batch = NewActivity::new("beta", "batch").key("batch").workflow_id(workflow_id).params(json!({"items": 3}));
    let again = NewActivity::new("alpha", "batch").key("again").workflow_id(workflow_id).params(json!({"items": 1}));
    let ids = [server.enqueue(research), server.enqueue(batch), server.enqueue(again)];
    for id in ids {
        server.wait_for(id).await.expect_completed();
    }
    let attempts = receiver.attempts(4).await;
    assert_eq!(attempts.len(), 4, "three activities, one of them retried");
    assert!(
        attempts.iter().all(|s| hex(&s.trace_id) == workflow_id.simple().to_string()),
        "one trace: the workflow id"
    );
    let workers: std::collections::BTreeSet<String> =
        attempts.iter().map(|s| attributes(&s.attributes)["kruxiaflow.worker_id"].clone()).collect();
    assert_eq!(workers, [alpha.worker_id.clone(), beta.worker_id.clone()].into(), "from both processes");

    let failed = attempts.iter().find(|s| attributes(&s.attributes)["kruxiaflow.outcome"] == "failed").unwrap();
    let attrs = attributes(&failed.attributes);
    assert_eq!(failed.name, "activity research");
    let expected = [
        ("kruxiaflow.workflow_id", workflow_id.to_string()),
        ("kruxiaflow.activity_id", ids[0].to_string()),
        ("kruxiaflow.activity_key", "research".to_owned()),
        ("kruxiaflow.activity_name", "research".to_owned()),
        ("kruxiaflow.worker", "alpha".to_owned()),
        ("kruxiaflow.worker_id", alpha.worker_id.clone()),
        ("kruxiaflow.outcome", "failed".to_owned()),
        ("kruxiaflow.error.code", "PUBLISH_UNAVAILABLE".to_owned()),
        ("kruxiaflow.error.message", "the publish target answered 503".to_owned()),
        ("kruxiaflow.error.retryable", "true".to_owned()),
        ("error.type", "PUBLISH_UNAVAILABLE".to_owned()),
        ("kruxiaflow.cost_usd", "0.024".to_owned()),
        ("gen_ai.usage.input_tokens", "420".to_owned()),
        ("gen_ai.usage.output_tokens", "940".to_owned()),
    ];
    for (key, value) in expected {
        assert_eq!(attrs.get(key), Some(&value), "{key} in {attrs:#?}");
    }
    let status = failed.status.as_ref().unwrap();
    assert_eq!((status.code, status.message.as_str()), (2, "PUBLISH_UNAVAILABLE: the publish target answered 503"));
    // One event per LLM call, with its own usage, on the span it was made in (here
    // the steps, children of the attempt).
    let steps = receiver.children(&failed.span_id, 3).await;
    let calls: Vec<BTreeMap<String, String>> = steps
        .iter()
        .chain([failed])
        .flat_map(|s| &s.events)
        .filter(|e| e.name == "gen_ai.usage")
        .map(|e| attributes(&e.attributes))
        .collect();
    assert_eq!(calls.len(), 2);
    assert_eq!(
        calls
            .iter()
            .map(|c| (c["gen_ai.request.model"].as_str(), c["gen_ai.usage.input_tokens"].as_str()))
            .collect::<Vec<_>>(),
        [("stand-in-1", "120"), ("stand-in-1", "300")]
    );
    let completed = attempts.iter().filter(|s| attributes(&s.attributes)["kruxiaflow.outcome"] == "completed").count();
    assert_eq!(completed, 3);
    // Durable steps are child spans: the retry skipped the two paid ones.
    let retried = attempts
        .iter()
        .find(|s| s.name == "activity research" && attributes(&s.attributes)["kruxiaflow.outcome"] == "completed")
        .unwrap();
    for (attempt, expected) in [
        (failed, [("plan", "false"), ("draft", "false"), ("publish", "false")]),
        (retried, [("plan", "true"), ("draft", "true"), ("publish", "false")]),
    ] {
        let steps = receiver.children(&attempt.span_id, 3).await;
        let seen: Vec<(String, String)> = steps
            .iter()
            .map(|s| {
                let attrs = attributes(&s.attributes);
                (attrs["kruxiaflow.step"].clone(), attrs["kruxiaflow.step.skipped"].clone())
            })
            .collect();
        let expected: Vec<(String, String)> =
            expected.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect();
        assert_eq!(seen, expected);
    }
    drop((alpha, beta));
}

#[tokio::test(flavor = "current_thread")]
async fn traceparent_names_the_attempt_span_and_a_dead_collector_neither_slows_nor_holds_the_worker() {
    use tracing_subscriber::layer::SubscriberExt;

    #[activity]
    async fn traced(ctx: &ActivityContext) -> ActivityResult {
        // The activity's own span: a child of its attempt in the trace.
        tracing::info_span!("my_call").in_scope(|| tracing::info!("working"));
        ActivityResult::value("traceparent", ctx.traceparent())
    }

    let model = StandInModel::start(vec![Reply::Stream(Answer::words("traced"))]).await.unwrap();
    // A collector that accepts connections and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_url = format!("http://{}/v1/traces", silent.local_addr().unwrap());
    let receiver = Receiver::start().await;
    for (url, answers) in [(format!("{}/v1/traces", receiver.url), true), (silent_url, false)] {
        let (layer, tracing) = kruxiaflow_worker::otel::layer_exporting_to(&url).unwrap();
        let _subscriber = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));
        let server = FakeServer::start().await;
        let mut registry = ActivityRegistry::new();
        registry.register(traced, "rust");
        registry.register(LlmChat::new(ChatDefaults::from_lookup(|_| None)), "rust");
        let manager = WorkerManager::new(WorkerConfig::new(server.url()), registry);
        let handle = manager.handle();
        let worker = tokio::spawn(manager.run(std::future::pending()));
        let ids: Vec<Uuid> = (0..20).map(|_| server.enqueue(NewActivity::new("rust", "traced"))).collect();
        let chat = NewActivity::new("rust", "llm_chat")
            .params(json!({"prompt": "hi", "base_url": model.base_url(), "model": "stand-in-1"}));
        let chat = server.enqueue(chat);
        let mut parents = Vec::new();
        for id in &ids {
            let completed = server.wait_for(*id).await.expect_completed();
            parents.push(completed.output["traceparent"].as_str().unwrap().to_owned());
        }
        server.wait_for(chat).await.expect_completed();
        handle.shutdown();
        worker.await.unwrap().unwrap();
        let flushed = tokio::time::timeout(Duration::from_secs(5), tracing.shutdown(Duration::from_secs(1))).await;
        assert_eq!(flushed, Ok(answers), "the flush is bounded, and says whether it got through");
        if answers {
            let attempts = receiver.attempts(20).await;
            for parent in parents {
                let span = attempts
                    .iter()
                    .find(|s| parent == format!("00-{}-{}-01", hex(&s.trace_id), hex(&s.span_id)))
                    .unwrap_or_else(|| panic!("no span for {parent}"));
                assert_eq!(span.name, "activity traced");
                let own = receiver.children(&span.span_id, 1).await;
                assert_eq!(own.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["my_call"]);
            }
            // llm_chat sent the model its attempt span's traceparent.
            let sent = model.received()[0].traceparent.clone().expect("a traceparent header");
            let chat_span = receiver.attempts(21).await.into_iter().find(|s| s.name == "activity llm_chat").unwrap();
            assert_eq!(sent, format!("00-{}-{}-01", hex(&chat_span.trace_id), hex(&chat_span.span_id)));
        }
    }
    drop(silent);
}

// Two threads: the test waits for the process synchronously while the fake server,
// on this runtime, answers the worker's last requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_log_lines_inside_an_attempt_carry_its_trace_and_span_ids() {
    let receiver = Receiver::start().await;
    let server = FakeServer::start().await;
    let env = [
        ("KRUXIAFLOW_WORKER", "logged"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url.as_str()),
        ("KRUXIAFLOW_LOG_FORMAT", "json"),
        ("RUST_LOG", "info"),
    ];
    let mut worker = WorkerProcess::start_capturing_stderr(env!("CARGO_BIN_EXE_durable"), &server, &env);
    let workflow_id = Uuid::now_v7();
    let id = server.enqueue(NewActivity::new("logged", "batch").workflow_id(workflow_id).params(json!({"items": 1})));
    server.wait_for(id).await.expect_completed();
    let attempt = receiver.attempts(1).await.remove(0);
    worker.terminate();
    worker.wait(Duration::from_secs(10));
    let stderr = worker.stderr();
    let finished = stderr
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|line| line["fields"]["message"] == "activity finished")
        .unwrap_or_else(|| panic!("no 'activity finished' line in:\n{stderr}"));
    assert_eq!(finished["span"]["trace_id"], workflow_id.simple().to_string());
    assert_eq!(finished["span"]["span_id"], hex(&attempt.span_id));
}

#[tokio::test]
async fn a_protocol_this_build_does_not_speak_stops_the_worker_at_start_naming_it() {
    let server = FakeServer::start().await;
    let env = [("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9"), ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")];
    let mut worker = WorkerProcess::start_capturing_stderr(env!("CARGO_BIN_EXE_durable"), &server, &env);
    let status = worker.wait(Duration::from_secs(10));
    assert!(!status.success());
    let stderr = worker.stderr();
    assert!(stderr.contains("cannot start: cannot export traces over OTLP"), "{stderr}");
    assert!(stderr.to_lowercase().contains("grpc"), "{stderr}");
}

#[tokio::test(flavor = "current_thread")]
async fn heartbeats_and_what_a_token_stream_sent_are_events_of_the_attempt() {
    use tracing_subscriber::layer::SubscriberExt;

    #[activity]
    async fn streamed(ctx: &ActivityContext) -> ActivityResult {
        for word in ["one ", "two ", "three"] {
            ctx.stream().send(word);
            tokio::time::sleep(Duration::from_millis(600)).await;
        }
        ActivityResult::value("done", true)
    }

    let receiver = Receiver::start().await;
    let (layer, tracing) = kruxiaflow_worker::otel::layer_exporting_to(&format!("{}/v1/traces", receiver.url)).unwrap();
    let _subscriber = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));
    let server = FakeServer::start().await;
    let mut registry = ActivityRegistry::new();
    registry.register(streamed, "rust");
    let config = WorkerConfig { heartbeat_interval: Duration::from_secs(1), ..WorkerConfig::new(server.url()) };
    let manager = WorkerManager::new(config, registry);
    let handle = manager.handle();
    let worker = tokio::spawn(manager.run(std::future::pending()));
    let id = server.enqueue(NewActivity::new("rust", "streamed").streaming(true));
    server.set_stream_subscribers(id, 1);
    server.wait_for(id).await.expect_completed();
    handle.shutdown();
    worker.await.unwrap().unwrap();
    assert!(tracing.shutdown(Duration::from_secs(5)).await);
    let attempt = receiver.attempts(1).await.remove(0);
    let events: Vec<(String, BTreeMap<String, String>)> =
        attempt.events.iter().map(|e| (e.name.clone(), attributes(&e.attributes))).collect();
    let beats = events.iter().filter(|(name, _)| name == "heartbeat").count();
    assert!(beats >= 1, "heartbeats as events: {events:#?}");
    assert!(events.iter().filter(|(name, _)| name == "heartbeat").all(|(_, a)| a["result"] == "ok"));
    let ended: Vec<&BTreeMap<String, String>> =
        events.iter().filter(|(name, _)| name == "token stream ended").map(|(_, a)| a).collect();
    assert_eq!(ended.len(), 1, "{events:#?}");
    assert_eq!(ended[0]["bytes"], "13");
    assert_eq!(ended[0]["watched"], "true");
}
