//! `llm_chat` end to end: a real worker against the fake server, the stand-in model
//! answering, and a chat client subscribed over the fake server's WebSocket.

use std::time::Duration;

use kruxiaflow_worker::prelude::*;
use kruxiaflow_worker_examples::llm_chat::stand_in::{Answer, Reply, StandInModel};
use kruxiaflow_worker_examples::llm_chat::{ChatDefaults, LlmChat};
use kruxiaflow_worker_testing::{Endpoint, FakeServer, NewActivity, RetrySettings, StreamFrame, StreamSubscriber};
use serde_json::{Value, json};

const ANSWER: &str = "Streaming keeps a chat window alive while the model thinks, one token at a time.";

#[tokio::test]
async fn a_subscriber_sees_the_answer_in_order_and_a_complete_equal_to_the_output() {
    let model =
        StandInModel::start(vec![Reply::Stream(Answer::words(ANSWER).paced(Duration::from_millis(5)))]).await.unwrap();
    let server = FakeServer::start().await;
    let id = server.enqueue(
        NewActivity::new("rust", "llm_chat")
            .params(json!({"prompt": "Why stream?", "base_url": model.base_url(), "model": "stand-in-1"}))
            .streaming(true)
            .retry(RetrySettings::attempts(1)),
    );
    let subscriber = StreamSubscriber::connect(&server.url(), id, None).await.unwrap();

    let config = WorkerConfig { poll_interval: Duration::from_millis(10), ..WorkerConfig::new(server.url()) };
    let mut registry = ActivityRegistry::new();
    registry.register(LlmChat::new(ChatDefaults::from_lookup(|_| None)), &config.worker);
    let manager = WorkerManager::new(config, registry);
    let handle = manager.handle();
    let worker = tokio::spawn(manager.run(std::future::pending()));
    let received = subscriber.until_end().await.unwrap();
    let outcome = server.wait_for_timeout(id, Duration::from_secs(30)).await.expect("llm_chat settled");
    handle.shutdown();
    worker.await.unwrap().unwrap();

    let completion = outcome.completed().unwrap_or_else(|| panic!("llm_chat did not complete: {outcome:?}"));
    assert_eq!(Value::Object(completion.output.clone()), json!({"text": ANSWER}));
    assert_eq!(received.text(), ANSWER);
    let indexes: Vec<u32> = received.tokens.iter().map(|(index, _)| *index).collect();
    assert_eq!(indexes, (0..indexes.len() as u32).collect::<Vec<_>>());
    assert_eq!(received.end, Some(StreamFrame::Complete { result: Value::Object(completion.output.clone()) }));
    assert_eq!(completion.usage, [UsageEntry::new("openai", "stand-in-1").input_tokens(12).output_tokens(15)]);
    // The end went out before the completion.
    let requests = server.log().all();
    let at = |endpoint| requests.iter().position(|r| r.endpoint == endpoint && r.activity_id == Some(id)).unwrap();
    assert!(at(Endpoint::StreamComplete) < at(Endpoint::Complete));
}
