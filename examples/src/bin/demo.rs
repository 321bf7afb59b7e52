//! The demo: a worker run end to end against the fake server embedded in this process,
//! so it needs nothing installed and no server running.
//!
//! ```text
//! cargo run -p kruxiaflow-worker-examples --bin demo
//! ```
//!
//! It enqueues a few activities (one with bad parameters on purpose), runs a worker
//! over them, prints what each ended with, and exits 0 when every outcome is the
//! expected one.
#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::time::Duration;

use kruxiaflow_worker::prelude::*;
use kruxiaflow_worker_testing::{FakeServer, NewActivity, Outcome, RetrySettings};
use serde_json::{Value, json};

#[derive(serde::Deserialize)]
struct Double {
    input: i64,
}

/// Doubles its input.
#[activity]
async fn my_activity(params: Double) -> ActivityResult {
    ActivityResult::value("result", params.input * 2)
}

#[derive(serde::Deserialize)]
struct Items {
    items: Vec<String>,
}

/// Uppercases a list of strings.
#[activity]
async fn process_data(params: Items, ctx: &ActivityContext) -> ActivityResult {
    ctx.logger().info(format_args!("processing {} items", params.items.len()));
    let upper: Vec<String> = params.items.iter().map(|s| s.to_uppercase()).collect();
    ActivityResult::value("processed", upper)
}

/// What one demo activity should end with.
struct Case {
    label: &'static str,
    activity: NewActivity,
    expect: fn(&Outcome) -> bool,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            label: "my_activity {input: 21}",
            activity: NewActivity::new("rust", "my_activity").params(json!({"input": 21})),
            expect: |o| o.completed().is_some_and(|c| c.output["result"] == 42),
        },
        Case {
            label: "process_data {items: [a, b, c]}",
            activity: NewActivity::new("rust", "process_data").params(json!({"items": ["a", "b", "c"]})),
            expect: |o| o.completed().is_some_and(|c| c.output["processed"] == json!(["A", "B", "C"])),
        },
        Case {
            label: "my_activity {input: \"x\"} (bad parameters)",
            activity: NewActivity::new("rust", "my_activity").params(json!({"input": "x"})),
            expect: |o| o.failed().is_some_and(|f| f.code == "INVALID_PARAMETERS" && !f.retryable),
        },
        Case {
            label: "translate (not registered)",
            activity: NewActivity::new("rust", "translate").retry(RetrySettings::attempts(1)),
            expect: |o| o.failed().is_some_and(|f| f.code == "ACTIVITY_NOT_FOUND"),
        },
    ]
}

fn describe(outcome: &Outcome) -> (String, String) {
    match outcome {
        Outcome::Completed(c) => ("completed".to_owned(), Value::Object(c.output.clone()).to_string()),
        Outcome::Failed(f) => (format!("failed {}", f.code), f.message.clone()),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let server = FakeServer::start().await;
    let config = WorkerConfig { poll_interval: Duration::from_millis(20), ..WorkerConfig::new(server.url()) };
    let mut registry = ActivityRegistry::new();
    registry.register(my_activity, &config.worker).register(process_data, &config.worker);
    println!("fake server at {}; worker polling for {:?}\n", server.url(), registry.activity_types());

    let cases: Vec<(Case, uuid::Uuid)> = cases()
        .into_iter()
        .map(|case| {
            let id = server.enqueue(case.activity.clone());
            (case, id)
        })
        .collect();
    let manager = WorkerManager::new(config, registry);
    let handle = manager.handle();
    let worker = tokio::spawn(manager.run(std::future::pending()));
    server.wait_until_idle().await;
    handle.shutdown();
    let stopped = worker.await;

    let mut all_as_expected = true;
    println!("{:<45} {:<28} {:<4} output / error", "activity", "outcome", "ok");
    for (case, id) in &cases {
        let outcome = server.activity(*id).and_then(|a| a.outcome).expect("every activity settled");
        let ok = (case.expect)(&outcome);
        all_as_expected &= ok;
        let (status, detail) = describe(&outcome);
        println!("{:<45} {:<28} {:<4} {detail}", case.label, status, if ok { "yes" } else { "NO" });
    }
    match stopped {
        Ok(Ok(())) if all_as_expected => {
            println!("\nevery activity ended as expected");
            ExitCode::SUCCESS
        }
        Ok(Ok(())) => {
            println!("\nsome activities did not end as expected");
            ExitCode::FAILURE
        }
        other => {
            println!("\nthe worker failed: {other:?}");
            ExitCode::FAILURE
        }
    }
}
