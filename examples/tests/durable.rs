//! Durable steps across worker processes (the `durable` example binary): a retry on
//! a second process, a process killed with SIGKILL in the middle of a step, a
//! checkpointed batch killed at item 60.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use kruxiaflow_worker::Decimal;
use kruxiaflow_worker_examples::durable::CALL_PRICE;
use kruxiaflow_worker_testing::{FakeServer, NewActivity, RetrySettings, RetryStrategy, Usage};
use serde_json::{Value, json};
use support::WorkerProcess;
use uuid::Uuid;

fn start(server: &FakeServer) -> WorkerProcess {
    WorkerProcess::start(env!("CARGO_BIN_EXE_durable"), server, &[])
}

/// The lines the steps appended to `trace`.
fn traced(trace: &Path) -> Vec<String> {
    std::fs::read_to_string(trace).unwrap_or_default().lines().map(str::to_owned).collect()
}

fn trace_file(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("trace.txt")
}

async fn until_traced(server: &FakeServer, trace: &Path, line: &str) {
    let seen =
        server.wait_until(Duration::from_secs(30), || traced(trace).iter().any(|l| l == line).then_some(())).await;
    assert!(seen.is_some(), "{line:?} never traced: {:?}", traced(trace));
}

fn total_cost<'a>(usage: impl IntoIterator<Item = &'a Usage>) -> Decimal {
    usage.into_iter().filter_map(|u| u.cost_usd).sum()
}

#[tokio::test]
async fn a_second_worker_process_runs_only_the_step_that_failed_and_the_spend_is_reported_once() {
    let server = FakeServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let trace = trace_file(&dir);
    // The retry waits a second: time to stop the first process before it could take it.
    let retry =
        RetrySettings { max_attempts: 3, strategy: RetryStrategy::Fixed, base_seconds: 1, factor: 1.0, max_seconds: 1 };
    let params = json!({"topic": "durable steps", "publish_fails_first": true, "trace": trace});
    let id = server.enqueue(NewActivity::new("rust", "research").params(params).retry(retry));
    let mut first = start(&server);
    server
        .wait_until(Duration::from_secs(30), || server.activity(id).filter(|a| !a.failures.is_empty()).map(drop))
        .await
        .expect("the first attempt failed");
    first.kill();
    server.advance_clock(Duration::from_secs(2));
    let _second = start(&server);
    let completed = server.wait_for(id).await.expect_completed();

    assert_eq!(traced(&trace), ["plan", "draft", "publish", "publish"], "steps 1 and 2 ran once, step 3 twice");
    let activity = server.activity(id).unwrap();
    assert_ne!(completed.worker_id, activity.failures[0].worker_id.clone().unwrap(), "two processes");
    let reported = activity.failures.iter().flat_map(|f| &f.usage).chain(&completed.usage);
    assert_eq!(total_cost(reported), CALL_PRICE * Decimal::from(2), "two paid calls, each reported once");
}

#[tokio::test]
async fn a_worker_killed_during_step_3_is_resumed_by_a_fresh_worker_that_reports_the_killed_steps_spend() {
    let server = FakeServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let trace = trace_file(&dir);
    let params = json!({"topic": "kill -9", "publish_hangs_first": true, "trace": trace});
    let id = server.enqueue(
        NewActivity::new("rust", "research").params(params).timeout_seconds(60).retry(RetrySettings::attempts(3)),
    );
    let mut killed = start(&server);
    until_traced(&server, &trace, "publish").await;
    killed.kill();
    // The lease runs out: the next poll takes the activity over.
    server.advance_clock(Duration::from_secs(61));
    let _fresh = start(&server);
    let completed = server.wait_for(id).await.expect_completed();

    assert_eq!(traced(&trace), ["plan", "draft", "publish", "publish"]);
    assert_eq!(server.activity(id).unwrap().failures, [], "the killed attempt reported nothing");
    let models: Vec<&str> = completed.usage.iter().map(|u| u.model.as_str()).collect();
    assert_eq!(models, ["stand-in-1", "stand-in-1"], "the fresh attempt reported the killed attempt's two calls");
    assert_eq!(total_cost(&completed.usage), CALL_PRICE * Decimal::from(2));
}

#[tokio::test]
async fn a_checkpointed_batch_of_100_killed_at_item_60_resumes_at_60() {
    let server = FakeServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let trace = trace_file(&dir);
    let workflow_id = Uuid::now_v7();
    let params = json!({"items": 100, "hang_at": 60, "trace": trace});
    let id = server.enqueue(
        NewActivity::new("rust", "batch")
            .workflow_id(workflow_id)
            .params(params)
            .timeout_seconds(60)
            .retry(RetrySettings::attempts(3)),
    );
    let mut killed = start(&server);
    let checkpoint = || {
        let record = server.files().bytes(workflow_id, "batch.steps", &format!("{id}.json"))?;
        serde_json::from_slice::<Value>(&record).ok().map(|r| r["checkpoint"]["value"].clone())
    };
    let saved = server.wait_until(Duration::from_secs(30), || checkpoint().filter(|c| *c == 60)).await;
    assert_eq!(saved, Some(json!(60)), "the first process saved its progress up to item 60");
    killed.kill();
    server.advance_clock(Duration::from_secs(61));
    let _fresh = start(&server);
    let completed = server.wait_for(id).await.expect_completed();

    assert_eq!(completed.output["started_at"], 60);
    assert_eq!(completed.output["processed"], 40);
    let expected: Vec<String> = (0..100).map(|item| format!("item {item}")).collect();
    assert_eq!(traced(&trace), expected, "every item processed once, in order");
}
