//! The `kruxiaflow-fake-server` binary: starts, prints its address, serves a worker.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

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

#[tokio::test]
async fn the_binary_prints_its_address_and_serves_a_worker_end_to_end() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kruxiaflow-fake-server"))
        .args(["--port", "0"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let stdout = child.stdout.take().unwrap();
    let _child = KillOnDrop(child);
    let mut first_line = String::new();
    BufReader::new(stdout).read_line(&mut first_line).unwrap();
    let url = first_line
        .strip_prefix("kruxiaflow-fake-server listening on ")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("unexpected first line {first_line:?}"))
        .to_owned();
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
}
