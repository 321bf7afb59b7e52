//! The `kruxiaflow-fake-server` binary: starts, prints its address, serves a worker,
//! and on SIGTERM exits cleanly, removing its file directory.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kruxiaflow_worker::prelude::*;
use serde_json::{Value, json};

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[derive(serde::Deserialize)]
struct Double {
    input: i64,
}

#[activity]
async fn my_activity(params: Double) -> ActivityResult {
    ActivityResult::value("result", params.input * 2)
}

/// Sends SIGTERM (through `kill`, so no unsafe code is needed) and waits for the exit.
fn terminate(child: &mut Child) -> std::process::ExitStatus {
    let sent = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(sent.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "the fake server did not exit within 10 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts the binary on a free port; returns it, its standard output after the first
/// line, and the URL that line gives.
fn start() -> (KillOnDrop, BufReader<std::process::ChildStdout>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kruxiaflow-fake-server"))
        .args(["--port", "0"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let child = KillOnDrop(child);
    let mut first_line = String::new();
    stdout.read_line(&mut first_line).unwrap();
    let url = first_line
        .strip_prefix("kruxiaflow-fake-server listening on ")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("unexpected first line {first_line:?}"))
        .to_owned();
    (child, stdout, url)
}

#[tokio::test]
async fn the_binary_prints_its_address_and_serves_a_worker_end_to_end() {
    let (mut child, mut stdout, url) = start();
    let mut second_line = String::new();
    stdout.read_line(&mut second_line).unwrap();
    let files_dir = PathBuf::from(
        second_line
            .strip_prefix("files are kept in ")
            .and_then(|rest| rest.strip_suffix(" until the server stops\n"))
            .unwrap_or_else(|| panic!("unexpected second line {second_line:?}")),
    );
    assert!(files_dir.is_dir(), "{}", files_dir.display());
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");

    let http = reqwest::Client::new();
    let enqueued: Value = http
        .post(format!("{url}/_fake/activities"))
        .json(&json!({"worker": "rust", "activity_name": "my_activity", "parameters": {"input": 21}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = enqueued["activity_id"].as_str().unwrap().to_owned();

    let config = WorkerConfig { poll_interval: Duration::from_millis(10), ..WorkerConfig::new(&url) };
    let mut registry = ActivityRegistry::new();
    registry.register(my_activity, "rust");
    let manager = WorkerManager::new(config, registry);
    let handle = manager.handle();
    let worker = tokio::spawn(manager.run(std::future::pending()));

    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let activity = loop {
        let activity: Value =
            http.get(format!("{url}/_fake/activities/{id}")).send().await.unwrap().json().await.unwrap();
        if activity["status"] == "completed" || tokio::time::Instant::now() > deadline {
            break activity;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    handle.shutdown();
    worker.await.unwrap().unwrap();

    assert_eq!(activity["status"], "completed", "{activity}");
    assert_eq!(activity["outcome"]["output"]["result"], 42);

    let status = terminate(&mut child.0);
    assert_eq!(status.code(), Some(0), "{status}");
    assert!(!files_dir.exists(), "{} is left behind after SIGTERM", files_dir.display());
}

#[tokio::test]
async fn a_reader_may_stop_after_the_first_line() {
    let (mut child, stdout, url) = start();
    drop(stdout); // the pipe closes after the first line

    tokio::time::sleep(Duration::from_millis(200)).await;
    let answer = reqwest::get(format!("{url}/_fake/activities")).await.expect("the server is still up");
    assert_eq!(answer.status().as_u16(), 200);
    assert_eq!(child.0.try_wait().unwrap(), None, "the server is still running");
    assert_eq!(terminate(&mut child.0).code(), Some(0));
}

#[tokio::test]
async fn the_binary_serves_websocket_subscribers() {
    let (mut child, _stdout, url) = start();
    let id = uuid::Uuid::now_v7();
    let subscriber = kruxiaflow_worker_testing::StreamSubscriber::connect(&url, id, None).await.unwrap();
    let http = reqwest::Client::new();
    let stream = format!("{url}/api/v1/activities/{id}/ws");
    http.post(format!("{stream}/token")).json(&json!({"text": "Hi", "index": 0})).send().await.unwrap();
    http.post(format!("{stream}/complete")).json(&json!({"result": {"text": "Hi"}})).send().await.unwrap();
    let received = subscriber.until_end().await.unwrap();
    assert_eq!(received.tokens, [(0, "Hi".to_owned())]);
    assert_eq!(received.end, Some(kruxiaflow_worker_testing::StreamFrame::Complete { result: json!({"text": "Hi"}) }));
    terminate(&mut child.0);
}

#[test]
fn help_lists_every_admin_route_and_every_field_an_activity_takes() {
    let output = Command::new(env!("CARGO_BIN_EXE_kruxiaflow-fake-server")).arg("--help").output().unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    let routes = ["/_fake/activities ", "/_fake/activities/batch", "/_fake/activities/{id}", "/_fake/stats"];
    for route in routes.into_iter().chain(["/_fake/requests", "/_fake/files", "/_fake/sweep"]) {
        assert!(help.contains(route), "{route} missing from --help");
    }
    // Every field of NewActivity, as its JSON says.
    let fields = serde_json::to_value(kruxiaflow_worker_testing::NewActivity::default()).unwrap();
    for field in fields.as_object().unwrap().keys() {
        assert!(help.contains(&format!("\n  {field} ")), "{field} missing from --help");
    }
}
