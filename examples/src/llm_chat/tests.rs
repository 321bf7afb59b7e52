//! `llm_chat` against the stand-in model, through a `MockContext`.

use std::time::Duration;

use kruxiaflow_worker::stream::StreamEnd;
use kruxiaflow_worker_testing::{LogLevel, MockContext};
use serde_json::json;

use super::stand_in::{Answer, Reply, StandInModel, Stop};
use super::*;

const ANSWER: &str = "Rust workers stream tokens as they come.";

fn chat() -> LlmChat {
    LlmChat::new(ChatDefaults { model: Some("stand-in-1".into()), ..ChatDefaults::from_lookup(|_| None) })
}

async fn model(replies: Vec<Reply>) -> StandInModel {
    StandInModel::start(replies).await.unwrap()
}

fn mock() -> MockContext {
    MockContext::builder("rust", "llm_chat").streaming(true).build()
}

#[tokio::test]
async fn each_piece_of_the_answer_is_streamed_and_the_whole_answer_returned_with_its_usage() {
    let model = model(vec![Reply::Stream(Answer::words(ANSWER))]).await;
    let mock = mock();
    let params = json!({"prompt": "How do Rust workers stream?", "system": "Be brief.", "base_url": model.base_url(),
                        "api_key": "sk-test"});
    let result = mock.run(&chat(), params).await.unwrap();

    assert_eq!(result.output("text"), Some(&json!(ANSWER)));
    let streamed = mock.streamed();
    let pieces: Vec<&str> = streamed.increments.iter().map(|(_, text)| text.as_str()).collect();
    assert_eq!(pieces, ["Rust", " workers", " stream", " tokens", " as", " they", " come."]);
    assert_eq!(streamed.end, Some(StreamEnd::Complete(serde_json::Map::from_iter([("text".into(), json!(ANSWER))]))));
    assert_eq!(mock.spend().usage, [UsageEntry::new("openai", "stand-in-1").input_tokens(12).output_tokens(7)]);

    let received = model.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].authorization.as_deref(), Some("Bearer sk-test"));
    assert_eq!(
        received[0].body,
        json!({
            "model": "stand-in-1",
            "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "How do Rust workers stream?"}],
            "stream": true,
            "stream_options": {"include_usage": true},
        })
    );
}

#[tokio::test]
async fn parameters_override_the_workers_defaults_and_messages_go_as_given() {
    let model = model(vec![Reply::Stream(Answer::words("ok"))]).await;
    let activity = LlmChat::new(ChatDefaults::from_lookup(|name| match name {
        "OPENAI_BASE_URL" => Some(model.base_url().to_owned()),
        "OPENAI_MODEL" => Some("default-model".to_owned()),
        "LLM_PROVIDER" => Some("vllm".to_owned()),
        _ => None,
    }));
    let messages = json!([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
                          {"role": "user", "content": "bye"}]);
    let mock = mock();
    let params = json!({"messages": messages, "model": "chosen", "max_tokens": 5, "temperature": 0.5});
    mock.run(&activity, params).await.unwrap();
    let body = &model.received()[0].body;
    assert_eq!(
        (&body["model"], &body["messages"], &body["max_tokens"], &body["temperature"]),
        (&json!("chosen"), &messages, &json!(5), &json!(0.5))
    );
    assert_eq!(model.received()[0].authorization, None, "no key configured, none sent");
    assert_eq!(mock.spend().usage[0].provider, "vllm");
}

#[tokio::test]
async fn an_error_mid_answer_fails_the_attempt_retryably_after_streaming_what_came() {
    let answer = Answer::words(ANSWER).stopping_after(2, Stop::Error("the GPU fell over".into()));
    let model = model(vec![Reply::Stream(answer)]).await;
    let mock = mock();
    let error = mock.run(&chat(), json!({"prompt": "hi", "base_url": model.base_url()})).await.unwrap_err();
    assert_eq!((error.code(), error.is_retryable()), ("LLM_STREAM_ERROR", true));
    assert_eq!(error.message(), format!("{}/chat/completions failed mid-answer: the GPU fell over", model.base_url()));
    assert_eq!(mock.streamed().text(), "Rust workers");
    assert_eq!(mock.streamed().end, Some(StreamEnd::Error(error.message().to_owned())));
}

#[tokio::test]
async fn an_answer_cut_off_without_done_fails_retryably() {
    let model = model(vec![Reply::Stream(Answer::words(ANSWER).stopping_after(3, Stop::Cut))]).await;
    let error = mock().run(&chat(), json!({"prompt": "hi", "base_url": model.base_url()})).await.unwrap_err();
    assert_eq!((error.code(), error.is_retryable()), ("LLM_STREAM_INTERRUPTED", true));
    assert_eq!(
        error.message(),
        format!("{}/chat/completions ended its answer without [DONE] after 19 characters", model.base_url())
    );
}

#[test]
fn rate_limits_and_server_errors_are_retryable_refusals_are_not() {
    let cases = [
        (429, "Rate limit reached", "LLM_RATE_LIMITED", true),
        (503, "overloaded", "LLM_UNAVAILABLE", true),
        (401, "Incorrect API key provided", "LLM_UNAUTHORIZED", false),
        (400, "model not found", "LLM_REQUEST_REFUSED", false),
    ];
    for (status, message, code, retryable) in cases {
        let body = json!({"error": {"message": message}}).to_string();
        let error = refused("http://model/v1/chat/completions", status, &body);
        assert_eq!((error.code(), error.is_retryable()), (code, retryable), "{status}");
        assert_eq!(error.message(), format!("http://model/v1/chat/completions answered {status}: {message}"));
    }
}

#[tokio::test]
async fn a_refusal_is_not_retried_and_leaves_the_stream_empty() {
    let model = model(vec![Reply::Status(401, "Incorrect API key provided".to_owned())]).await;
    let mock = mock();
    let error = mock.run(&chat(), json!({"prompt": "hi", "base_url": model.base_url()})).await.unwrap_err();
    assert_eq!((error.code(), error.is_retryable()), ("LLM_UNAUTHORIZED", false));
    assert_eq!(model.received().len(), 1);
    assert_eq!(mock.local_retries(), []);
    assert_eq!(mock.streamed().increments, []);
}

#[tokio::test]
async fn a_429_is_waited_out_in_the_attempt_as_its_retry_after_says() {
    let model = model(vec![
        Reply::RateLimited { retry_after_secs: 0 },
        Reply::RateLimited { retry_after_secs: 0 },
        Reply::Stream(Answer::words(ANSWER)),
    ])
    .await;
    let mock = mock();
    let result = mock.run(&chat(), json!({"prompt": "hi", "base_url": model.base_url()})).await.unwrap();
    assert_eq!(result.output("text"), Some(&json!(ANSWER)));
    assert_eq!(model.received().len(), 3, "two refused requests, then the answer");
    let retries = mock.local_retries();
    let retries: Vec<(&str, Duration)> = retries.iter().map(|r| (r.error.code(), r.delay)).collect();
    assert_eq!(retries, [("LLM_RATE_LIMITED", Duration::ZERO); 2], "the Retry-After, not a backoff");
    assert_eq!(mock.streamed().text(), ANSWER, "the answer once");
}

#[tokio::test]
async fn an_answer_that_failed_after_streaming_is_not_retried_in_the_attempt() {
    let answer = Answer::words(ANSWER).stopping_after(2, Stop::Error("the GPU fell over".into()));
    let model = model(vec![Reply::Stream(answer), Reply::Stream(Answer::words(ANSWER))]).await;
    let mock = mock();
    let error = mock.run(&chat(), json!({"prompt": "hi", "base_url": model.base_url()})).await.unwrap_err();
    assert_eq!(error.code(), "LLM_STREAM_ERROR");
    assert_eq!(model.received().len(), 1, "a watcher saw part of an answer: no second one in this attempt");
    assert_eq!(mock.local_retries(), []);
}

#[tokio::test]
async fn requests_acquire_the_workers_rate_limit_first() {
    let model = model(vec![Reply::Stream(Answer::words("ok"))]).await;
    let mock = MockContext::builder("rust", "llm_chat").build();
    let limited = chat().limited_by(REQUESTS_LIMIT);
    let error = mock.run(&limited, json!({"prompt": "hi", "base_url": model.base_url()})).await.unwrap_err();
    assert_eq!(error.code(), "RATE_LIMIT_UNKNOWN", "a limit the worker never registered");
    assert_eq!(model.received().len(), 0);
    let mock = MockContext::builder("rust", "llm_chat").rate_limit(REQUESTS_LIMIT, RateLimit::per_second(1000)).build();
    mock.run(&limited, json!({"prompt": "hi", "base_url": model.base_url()})).await.unwrap();
    assert_eq!(model.received().len(), 1);
}

#[tokio::test]
async fn a_call_without_a_usage_chunk_records_no_usage_and_says_so() {
    let model = model(vec![Reply::Stream(Answer::words("short").without_usage())]).await;
    let mock = mock();
    let result = mock.run(&chat(), json!({"prompt": "hi", "base_url": model.base_url()})).await.unwrap();
    assert_eq!(result.output("text"), Some(&json!("short")));
    assert_eq!(mock.spend().usage, []);
    let warnings: Vec<String> =
        mock.logs().into_iter().filter(|line| line.level >= LogLevel::Warning).map(|line| line.message).collect();
    assert_eq!(warnings, ["the API sent no usage chunk; no usage is recorded for this call"]);
}

#[tokio::test]
async fn bad_parameters_are_terminal_and_name_what_is_missing() {
    let cases = [
        (json!({}), "a prompt or a non-empty messages list is required"),
        (json!({"messages": []}), "a prompt or a non-empty messages list is required"),
        (
            json!({"prompt": "a", "messages": [{"role": "user", "content": "b"}]}),
            "give either messages or prompt, not both",
        ),
    ];
    for (params, message) in cases {
        let error = mock().run(&chat(), params).await.unwrap_err();
        assert_eq!((error.code(), error.message(), error.is_retryable()), ("INVALID_PARAMETERS", message, false));
    }
    let without_model = LlmChat::new(ChatDefaults::from_lookup(|_| None));
    let error = mock().run(&without_model, json!({"prompt": "hi"})).await.unwrap_err();
    assert_eq!(error.message(), "no model: set the model parameter, or OPENAI_MODEL for the worker");
    let error = mock().run(&chat(), json!({"prompt": "hi", "modle": "typo"})).await.unwrap_err();
    assert_eq!(error.code(), "INVALID_PARAMETERS");
    assert!(error.message().contains("unknown field `modle`"), "{}", error.message());
}

#[test]
fn the_api_key_is_never_printed() {
    let defaults = ChatDefaults::from_lookup(|name| (name == "OPENAI_API_KEY").then(|| "sk-secret".to_owned()));
    assert_eq!(defaults.base_url, OPENAI_BASE_URL);
    assert!(!format!("{defaults:?}").contains("sk-secret"));
}

#[test]
fn the_workers_api_key_goes_only_to_the_workers_base_url() {
    let defaults = ChatDefaults {
        model: Some("m".into()),
        ..ChatDefaults::from_lookup(|name| (name == "OPENAI_API_KEY").then(|| "sk-worker".to_owned()))
    };
    let chat = LlmChat::new(defaults);
    let params = |extra: serde_json::Value| {
        let mut params = json!({"prompt": "hi"});
        params.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        serde_json::from_value::<ChatParams>(params).unwrap()
    };
    let own = chat.call(params(json!({}))).unwrap();
    assert_eq!(
        (own.url.as_str(), own.api_key.as_deref()),
        ("https://api.openai.com/v1/chat/completions", Some("sk-worker"))
    );
    let same = chat.call(params(json!({"base_url": "https://api.openai.com/v1/"}))).unwrap();
    assert_eq!(same.api_key.as_deref(), Some("sk-worker"), "the worker's own URL, written with a slash");
    let elsewhere = chat.call(params(json!({"base_url": "https://collector.example/v1"}))).unwrap();
    assert_eq!((elsewhere.url.as_str(), elsewhere.api_key), ("https://collector.example/v1/chat/completions", None));
    let theirs =
        chat.call(params(json!({"base_url": "https://collector.example/v1", "api_key": "sk-theirs"}))).unwrap();
    assert_eq!(theirs.api_key.as_deref(), Some("sk-theirs"));
}
