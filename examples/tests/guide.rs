//! Every sample of the Python guide, run by the registry of the example binary that
//! serves it, through a real worker against the fake server: same activity names, same
//! parameters, the exact same outputs and cost.

use std::time::Duration;

use kruxiaflow_worker::prelude::*;
use kruxiaflow_worker_examples::complete::start_local_api;
use kruxiaflow_worker_examples::guide::{BINARIES, GuideSample, INPUT_FILE_TEXT, Register, Surroundings, samples};
use kruxiaflow_worker_testing::{FakeServer, Outcome, RetrySettings};
use serde_json::Value;

async fn surroundings(server: &FakeServer) -> Surroundings {
    let workflow_id = uuid::Uuid::now_v7();
    server.files().seed(workflow_id, "upstream", "input.txt", INPUT_FILE_TEXT.as_bytes(), Some("text/plain"));
    Surroundings {
        local_api: start_local_api().await.unwrap(),
        workflow_id,
        input_file: format!("postgres://{workflow_id}/upstream/input.txt"),
    }
}

/// Runs `register`'s activities over `samples` and returns each sample's outcome.
async fn run_binary(server: &FakeServer, register: Register, samples: &[GuideSample]) -> Vec<Outcome> {
    let ids: Vec<_> =
        samples.iter().map(|s| server.enqueue(s.activity.clone().retry(RetrySettings::attempts(1)))).collect();
    let config = WorkerConfig { poll_interval: Duration::from_millis(10), ..WorkerConfig::new(server.url()) };
    let mut registry = ActivityRegistry::new();
    register(&mut registry, &config.worker);
    let manager = WorkerManager::new(config, registry);
    let handle = manager.handle();
    let worker = tokio::spawn(manager.run(std::future::pending()));
    let mut outcomes = Vec::new();
    for id in ids {
        let outcome = server.wait_for_timeout(id, Duration::from_secs(30)).await;
        outcomes.push(outcome.unwrap_or_else(|| panic!("activity {id} did not settle in 30 s")));
    }
    handle.shutdown();
    worker.await.unwrap().unwrap();
    outcomes
}

#[tokio::test]
async fn every_guide_sample_runs_unchanged_against_its_example_binary() {
    let mut checked = Vec::new();
    for (binary, register) in BINARIES {
        let server = FakeServer::start().await;
        let around = surroundings(&server).await;
        let mine: Vec<GuideSample> = samples(&around).into_iter().filter(|s| s.binary == binary).collect();
        let outcomes = run_binary(&server, register, &mine).await;
        for (sample, outcome) in mine.iter().zip(outcomes) {
            let name = &sample.activity.activity_name;
            let completed =
                outcome.completed().unwrap_or_else(|| panic!("{binary}/{name} did not complete: {outcome:?}"));
            assert_eq!(Value::Object(completed.output.clone()), sample.outputs, "{binary}/{name}");
            assert_eq!(completed.cost_usd, sample.cost, "{binary}/{name}");
            checked.push(format!("{binary}/{name}"));
        }
        if binary == "files" {
            let workflow_id = around.workflow_id;
            let stored = server.files().bytes(workflow_id, "process_file", "result.txt");
            assert_eq!(stored.as_deref(), Some(INPUT_FILE_TEXT.to_uppercase().as_bytes()));
        }
    }
    assert_eq!(
        checked,
        [
            "quickstart/my_activity",
            "decorators/process_data",
            "decorators/custom_name",
            "class_based/process_text",
            "context/long_running",
            "files/process_file",
            "complete/analyze_text",
            "complete/call_external_api",
            "complete/batch_process",
        ]
    );
}

/// The `complete` binary prints its worker type and activities at start as the guide's
/// does, serves a guide sample, and exits 0 on SIGTERM.
#[tokio::test]
async fn the_complete_binary_announces_itself_and_serves_the_guide() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let server = FakeServer::start().await;
    let mut child = complete_binary(&server)
        .env("KRUXIAFLOW_WORKER", "my-rust-worker")
        .env("KRUXIAFLOW_WORKER_POLL_INTERVAL", "0.01")
        .env("RUST_LOG", "off")
        .stdout(Stdio::piped())
        .spawn()
        .expect("the complete example starts");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut lines = [String::new(), String::new()];
    for line in &mut lines {
        stdout.read_line(line).unwrap();
    }
    assert_eq!(
        lines,
        [
            "Worker: my-rust-worker\n",
            "Activities: [\"my-rust-worker.analyze_text\", \"my-rust-worker.call_external_api\", \
             \"my-rust-worker.batch_process\"]\n",
        ]
    );

    let id = server.enqueue(
        kruxiaflow_worker_testing::NewActivity::new("my-rust-worker", "analyze_text")
            .params(serde_json::json!({"text": "a sad day"})),
    );
    let outcome = server.wait_for_timeout(id, Duration::from_secs(30)).await.expect("analyze_text settles");
    let completed = outcome.completed().unwrap_or_else(|| panic!("{outcome:?}"));
    assert_eq!(
        Value::Object(completed.output.clone()),
        serde_json::json!({"result": {"sentiment": "negative", "confidence": 0.5}})
    );

    let status = terminate(child).await;
    assert_eq!(status.code(), Some(0), "{status}");
}

/// `KRUXIAFLOW_LOG_FORMAT=json`: one JSON object per log line on standard error. The
/// test then closes its end of that pipe, as a dying log shipper would: the worker
/// must go on and still stop cleanly.
#[tokio::test]
async fn json_logs_are_one_object_per_line() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let server = FakeServer::start().await;
    let mut child = complete_binary(&server)
        .env("KRUXIAFLOW_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the complete example starts");
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let started = tokio::task::spawn_blocking(move || {
        stderr.lines().map(Result::unwrap).find(|line| line.contains("worker started")).expect("a start line")
    })
    .await
    .unwrap();
    let status = terminate(child).await;
    assert_eq!(status.code(), Some(0), "{status}");

    let line: Value = serde_json::from_str(&started).unwrap_or_else(|e| panic!("{e}: {started}"));
    assert_eq!(line["level"], "INFO", "{line}");
    assert_eq!(line["fields"]["message"], "worker started", "{line}");
    assert_eq!(line["fields"]["api_url"], server.url(), "{line}");
}

/// The `complete` example binary, pointed at `server`.
fn complete_binary(server: &FakeServer) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_complete"));
    command.env("KRUXIAFLOW_API_URL", server.url());
    command
}

/// Sends SIGTERM (through `kill`, so no unsafe code is needed) and returns the exit
/// status; the child is killed and the test fails if it has not exited within 30 s.
async fn terminate(mut child: std::process::Child) -> std::process::ExitStatus {
    let sent = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(sent.success());
    let limit = Duration::from_secs(30);
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if tokio::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the process did not exit within {limit:?} of SIGTERM");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
