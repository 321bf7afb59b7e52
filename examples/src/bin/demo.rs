//! The demo: every example activity run by a real worker against the fake server
//! embedded in this process, so it needs nothing installed and no server running.
//!
//! ```text
//! cargo run -p kruxiaflow-worker-examples --bin demo
//! ```
//!
//! It enqueues every sample of the Python guide (its inputs, expecting its exact
//! outputs), then the SDK's own examples, one activity with bad parameters, an
//! `llm_chat` answer streamed from a local stand-in model to a WebSocket subscriber,
//! an `llm_chat` call to a model that first answers 429 (waited out in the attempt),
//! and a `research` activity whose paid durable steps its retry skips; runs a worker
//! over them, prints how each ended and what the subscriber saw, and
//! exits 0 when every outcome is the expected one.
#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::time::Duration;

use kruxiaflow_worker::prelude::*;
use kruxiaflow_worker::rate_limit::RateLimit;
use kruxiaflow_worker_examples::guide::{self, Surroundings};
use kruxiaflow_worker_examples::llm_chat::stand_in::{Answer, Reply, StandInModel};
use kruxiaflow_worker_examples::llm_chat::{ChatDefaults, LlmChat, REQUESTS_LIMIT};
use kruxiaflow_worker_examples::{class_based, complete, context, decorators, durable, files, quickstart, results};
use kruxiaflow_worker_testing::{
    FakeServer, NewActivity, Outcome, Received, RetrySettings, StreamFrame, StreamSubscriber,
};
use rust_decimal::dec;
use serde_json::{Value, json};

/// One demo activity and the outcome it must have.
struct Case {
    activity: NewActivity,
    expect: Box<dyn Fn(&Outcome) -> bool>,
}

fn completed(check: impl Fn(&serde_json::Map<String, Value>) -> bool + 'static) -> Box<dyn Fn(&Outcome) -> bool> {
    Box::new(move |o| o.completed().is_some_and(|c| check(&c.output)))
}

fn failed(code: &'static str, retryable: bool) -> Box<dyn Fn(&Outcome) -> bool> {
    Box::new(move |o| o.failed().is_some_and(|f| f.code == code && f.retryable == retryable))
}

fn case(name: &str, params: Value, expect: Box<dyn Fn(&Outcome) -> bool>) -> Case {
    // One attempt each, so failures show at once instead of after the server's retries.
    let activity = NewActivity::new("rust", name).params(params).retry(RetrySettings::attempts(1));
    Case { activity, expect }
}

/// What the stand-in model answers `llm_chat` in the demo.
const STORY: &str = "Once upon a time, a worker streamed every word to whoever was watching.";

/// What the busy stand-in model answers once it takes the request.
const BUSY_ANSWER: &str = "Not any more.";

fn cases(around: &Surroundings, (model_url, busy_model_url): (&str, &str)) -> Vec<Case> {
    // The guide's samples first, each with its exact outputs and cost...
    let guide = guide::samples(around).into_iter().map(|sample| Case {
        activity: sample.activity.retry(RetrySettings::attempts(1)),
        expect: Box::new(move |o| {
            o.completed()
                .is_some_and(|c| Value::Object(c.output.clone()) == sample.outputs && c.cost_usd == sample.cost)
        }),
    });
    // ...then the SDK's own examples.
    let extras = vec![
        case("single_value", json!({"text": "hello"}), completed(|o| o["length"] == 5)),
        case(
            "multiple_outputs",
            json!({"text": "the quick brown fox"}),
            completed(|o| o["summary"] == "4 words" && o["count"] == 4),
        ),
        Case {
            activity: NewActivity::new("rust", "with_cost").params(json!({"text": "summarize me"})),
            expect: Box::new(|o| o.completed().is_some_and(|c| c.cost_usd == Some(dec!(0.015)) && c.usage.len() == 1)),
        },
        case("validate_input", json!({"text": ""}), failed("VALIDATION_ERROR", false)),
        case("returns_error", json!({"text": "ok"}), failed("UPSTREAM_UNAVAILABLE", true)),
        case("parse_number", json!({"value": "twelve"}), failed("EXECUTION_ERROR", true)),
        case("log_levels", json!({}), completed(|o| o["logged"] == 5)),
        case("show_ids", json!({}), completed(|o| o["activity_key"] == "show_ids")),
        case("my_activity", json!({"input": "twenty-one"}), failed("INVALID_PARAMETERS", false)),
        Case {
            activity: NewActivity::new("rust", "llm_chat")
                .params(json!({"prompt": "Tell a story", "base_url": model_url, "model": "stand-in-1"}))
                .streaming(true)
                .retry(RetrySettings::attempts(1)),
            expect: completed(|o| o["text"] == STORY),
        },
        // A model over its limit answers 429 with Retry-After: the attempt waits it out
        // and asks again, claimed once, completed once.
        Case {
            activity: NewActivity::new("rust", "llm_chat")
                .params(json!({"prompt": "Are you busy?", "base_url": busy_model_url, "model": "stand-in-1"}))
                .retry(RetrySettings::attempts(1)),
            expect: Box::new(|o| o.completed().is_some_and(|c| c.output["text"] == BUSY_ANSWER && c.attempts == 1)),
        },
        // Two paid steps, then a publish step that fails once: the retry skips the paid
        // steps, and their spend is reported once, with the failure.
        Case {
            activity: NewActivity::new("rust", "research")
                .params(json!({"topic": "durable steps", "publish_fails_first": true}))
                .retry(RetrySettings::attempts(2)),
            expect: Box::new(|o| {
                o.completed().is_some_and(|c| c.attempts == 2 && c.usage.is_empty() && c.cost_usd.is_none())
            }),
        },
    ];
    guide.chain(extras).collect()
}

fn registry(worker: &str) -> ActivityRegistry {
    let mut registry = ActivityRegistry::new();
    quickstart::register(&mut registry, worker);
    decorators::register(&mut registry, worker);
    class_based::register(&mut registry, worker);
    results::register(&mut registry, worker);
    context::register(&mut registry, worker);
    files::register(&mut registry, worker);
    complete::register(&mut registry, worker);
    durable::register(&mut registry, worker);
    // Only what the activity's parameters say: no key from this shell goes anywhere.
    registry.register(LlmChat::new(ChatDefaults::from_lookup(|_| None)).limited_by(REQUESTS_LIMIT), worker);
    registry
}

/// A chat client's view: each increment as it arrived, then how the stream ended.
fn describe_stream(received: &Received) -> String {
    let end = match &received.end {
        Some(StreamFrame::Complete { result }) => format!("complete {result}"),
        Some(StreamFrame::Error { error }) => format!("error {error:?}"),
        _ => "no end".to_owned(),
    };
    let pieces: Vec<&str> = received.tokens.iter().map(|(_, text)| text.as_str()).collect();
    format!("{} increments {pieces:?}, then {end}", pieces.len())
}

fn describe(outcome: &Outcome) -> (String, String, String) {
    let shorten =
        |s: String| if s.chars().count() > 80 { format!("{}…", s.chars().take(79).collect::<String>()) } else { s };
    match outcome {
        Outcome::Completed(c) => (
            "completed".to_owned(),
            c.cost_usd.map(|d| format!("${d}")).unwrap_or_default(),
            shorten(Value::Object(c.output.clone()).to_string()),
        ),
        Outcome::Failed(f) => (
            format!("failed {}", f.code),
            f.cost_usd.map(|d| format!("${d}")).unwrap_or_default(),
            shorten(format!("{} ({})", f.message, if f.retryable { "retryable" } else { "terminal" })),
        ),
    }
}

/// How the durable-steps row went, attempt by attempt: what each paid and which steps
/// it ran; whether the retry ran only the failed step and the spend was counted once.
fn describe_retry(server: &FakeServer, id: uuid::Uuid) -> bool {
    let Some(activity) = server.activity(id) else { return false };
    let Some(Outcome::Completed(completed)) = &activity.outcome else { return false };
    let paid =
        |usage: &[kruxiaflow_worker_testing::Usage]| -> Decimal { usage.iter().filter_map(|u| u.cost_usd).sum() };
    let spend: Vec<Decimal> =
        activity.failures.iter().map(|f| paid(&f.usage)).chain([paid(&completed.usage)]).collect();
    for (n, (failure, cost)) in activity.failures.iter().zip(&spend).enumerate() {
        println!(
            "research attempt {}: paid ${cost} for {} calls, then failed {}",
            n + 1,
            failure.usage.len(),
            failure.code
        );
    }
    let skipped = completed.usage.is_empty();
    println!(
        "research attempt {}: paid ${} ({}), published {}",
        activity.failures.len() + 1,
        spend.last().copied().unwrap_or_default(),
        if skipped { "the paid steps were skipped" } else { "the paid steps ran again" },
        completed.output["url"]
    );
    let total: Decimal = spend.iter().sum();
    println!("research spend reported in total: ${total} (two calls at ${})", durable::CALL_PRICE);
    skipped && total == durable::CALL_PRICE * Decimal::from(2)
}

#[tokio::main]
async fn main() -> ExitCode {
    let server = FakeServer::start().await;
    let local_api = match complete::start_local_api().await {
        Ok(url) => url,
        Err(error) => {
            eprintln!("cannot start the local API the demo calls: {error}");
            return ExitCode::FAILURE;
        }
    };
    let model =
        match StandInModel::start(vec![Reply::Stream(Answer::words(STORY).paced(Duration::from_millis(20)))]).await {
            Ok(model) => model,
            Err(error) => {
                eprintln!("cannot start the stand-in model the demo streams from: {error}");
                return ExitCode::FAILURE;
            }
        };
    let busy = vec![Reply::RateLimited { retry_after_secs: 1 }, Reply::Stream(Answer::words(BUSY_ANSWER))];
    let busy_model = match StandInModel::start(busy).await {
        Ok(model) => model,
        Err(error) => {
            eprintln!("cannot start the busy stand-in model: {error}");
            return ExitCode::FAILURE;
        }
    };
    let workflow_id = uuid::Uuid::now_v7();
    server.files().seed(workflow_id, "upstream", "input.txt", guide::INPUT_FILE_TEXT.as_bytes(), Some("text/plain"));
    let around =
        Surroundings { local_api, workflow_id, input_file: format!("postgres://{workflow_id}/upstream/input.txt") };

    let config = WorkerConfig { poll_interval: Duration::from_millis(20), ..WorkerConfig::new(server.url()) };
    let registry = registry(&config.worker);
    println!("fake server at {}; worker registered {} activities\n", server.url(), registry.len());
    let cases: Vec<(Case, uuid::Uuid)> = cases(&around, (model.base_url(), busy_model.base_url()))
        .into_iter()
        .map(|case| {
            let id = server.enqueue(case.activity.clone());
            (case, id)
        })
        .collect();
    // A chat client watching the streamed answer, subscribed before the worker starts.
    let chat = cases.iter().find(|(case, _)| case.activity.activity_name == "llm_chat").map(|(_, id)| *id);
    let subscriber =
        match StreamSubscriber::connect(&server.url(), chat.expect("the demo streams llm_chat"), None).await {
            Ok(subscriber) => tokio::spawn(subscriber.until_end()),
            Err(error) => {
                eprintln!("cannot subscribe to the llm_chat stream: {error}");
                return ExitCode::FAILURE;
            }
        };
    let manager = WorkerManager::new(config, registry).rate_limit(REQUESTS_LIMIT, RateLimit::per_second(20));
    let handle = manager.handle();
    let worker = tokio::spawn(manager.run(std::future::pending()));
    server.wait_until_idle().await;
    handle.shutdown();
    let stopped = worker.await;

    let mut all_as_expected = true;
    println!("{:<20} {:<30} {:<8} {:<3} output / error", "activity", "outcome", "cost", "ok");
    for (case, id) in &cases {
        let outcome = server.activity(*id).and_then(|a| a.outcome).expect("every activity settled");
        let ok = (case.expect)(&outcome);
        all_as_expected &= ok;
        let (status, cost, detail) = describe(&outcome);
        println!(
            "{:<20} {status:<30} {cost:<8} {:<3} {detail}",
            case.activity.activity_name,
            if ok { "yes" } else { "NO" }
        );
    }
    let asked = busy_model.received().len();
    println!(
        "llm_chat's busy model answered 429 with Retry-After: 1, then the answer: asked {asked} times in one attempt"
    );
    let research = cases.iter().find(|(case, _)| case.activity.activity_name == "research").map(|(_, id)| *id);
    let durable = describe_retry(&server, research.expect("the demo runs research"));
    let stored = server.files().all().iter().any(|f| f.filename == "result.txt");
    println!("\nfile output stored by the fake server: {}", if stored { "result.txt" } else { "MISSING" });
    let streamed = match subscriber.await {
        Ok(Ok(received)) => {
            println!("llm_chat's WebSocket subscriber received {}", describe_stream(&received));
            received.text() == STORY && received.end == Some(StreamFrame::Complete { result: json!({"text": STORY}) })
        }
        other => {
            println!("llm_chat's WebSocket subscriber failed: {other:?}");
            false
        }
    };
    match stopped {
        Ok(Ok(())) if all_as_expected && stored && streamed && durable && asked == 2 => {
            println!("every activity ended as expected");
            ExitCode::SUCCESS
        }
        Ok(Ok(())) => {
            println!("some activities did not end as expected");
            ExitCode::FAILURE
        }
        other => {
            println!("the worker failed: {other:?}");
            ExitCode::FAILURE
        }
    }
}
