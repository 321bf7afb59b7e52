//! Replays every exchange captured from the real server against the fake and checks
//! the answer: same status, same content type, and the same body once run-specific
//! values (tokens, timestamps) are set aside.

use std::time::Duration;

use kruxiaflow_worker::OutputType;
use kruxiaflow_worker_testing::conformance::{Exchange, load_exchanges, shape_mismatch};
use kruxiaflow_worker_testing::{FakeServer, NewActivity, RetrySettings};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::common::{Api, WORKER_ID};

const RENDER: &str = "01a21807-f246-7352-a110-2137c6b5b3c0";
const RENDER_WORKFLOW: &str = "01a21807-ee5f-7b80-a762-f0fe3b47b512";
const GREET: &str = "01a21807-f241-7566-9729-af7f20c06a10";
const GREET_WORKFLOW: &str = "01a21807-ee5b-7300-8cac-0817c49dbc60";

/// What has to happen before an exchange, to put the queue where the capture was.
#[derive(Clone, Copy)]
enum Step {
    ClaimBoth,
    CompleteGreet,
    FailRenderRetryable,
    WaitOutBackoff,
    SeedReport,
}

fn steps(name: &str) -> &'static [Step] {
    use Step::*;
    match name {
        "poll-empty"
        | "heartbeat-ok"
        | "heartbeat-wrong-worker"
        | "complete-ok-usage"
        | "complete-negative-cost"
        | "complete-output-not-object"
        | "complete-wrong-worker"
        | "fail-invalid"
        | "fail-retryable"
        | "fail-terminal" => &[ClaimBoth],
        "heartbeat-after-complete" | "complete-repeat-same-worker" | "fail-after-complete" => {
            &[ClaimBoth, CompleteGreet]
        }
        "heartbeat-after-requeue" | "fail-repeat" => &[ClaimBoth, FailRenderRetryable],
        "poll-retried-item" => &[ClaimBoth, FailRenderRetryable, WaitOutBackoff],
        "file-download" => &[SeedReport],
        _ => &[],
    }
}

/// The two workflows of the capture, with their ids.
fn enqueue_capture(server: &FakeServer) {
    let retry = RetrySettings { max_attempts: 3, ..RetrySettings::default() };
    let mut render = NewActivity::new("vectors", "render")
        .key("render_report")
        .workflow_id(RENDER_WORKFLOW.parse().unwrap())
        .params(json!({"rows": [1, 2, 3], "title": "Q3"}))
        .timeout_seconds(120)
        .retry(retry)
        .output("summary", OutputType::Value)
        .output("report.txt", OutputType::File);
    render.activity_id = Some(RENDER.parse().unwrap());
    let mut greet = NewActivity::new("vectors", "echo")
        .key("greet")
        .workflow_id(GREET_WORKFLOW.parse().unwrap())
        .params(json!({"count": 3, "message": "hello from Rust"}));
    greet.activity_id = Some(GREET.parse().unwrap());
    server.enqueue(render);
    server.enqueue(greet);
}

async fn prepare(exchange: &Exchange) -> (FakeServer, Api) {
    let auth = exchange.name.starts_with("token-") || exchange.name.starts_with("auth-");
    let mut builder = FakeServer::builder().unknown_model("acme", "nonexistent-1");
    if auth {
        builder = builder.auth("my-worker", "s3cret-from-seed-client");
    }
    let server = builder.start().await;
    // The OAuth-mode captures come from a second server whose queue was empty.
    if !auth {
        enqueue_capture(&server);
    }
    let api = Api::new(&server);
    for step in steps(&exchange.name) {
        let render: Uuid = RENDER.parse().unwrap();
        match step {
            Step::ClaimBoth => assert_eq!(api.claim("vectors", WORKER_ID, 2).await.len(), 2),
            Step::CompleteGreet => assert_eq!(
                api.complete(GREET.parse().unwrap(), WORKER_ID, json!({"echoed": "hello"})).await.status,
                200
            ),
            Step::FailRenderRetryable => assert_eq!(api.fail(render, WORKER_ID, true).await.json()["will_retry"], true),
            Step::WaitOutBackoff => server.advance_clock(Duration::from_secs(3)),
            Step::SeedReport => {
                server.files().seed(
                    RENDER_WORKFLOW.parse().unwrap(),
                    "render_report",
                    "report.txt",
                    b"3 rows rendered\n",
                    Some("text/plain"),
                );
            }
        }
    }
    (server, api)
}

async fn replay(server: &FakeServer, api: &Api, exchange: &Exchange) -> (u16, reqwest::header::HeaderMap, String) {
    let request = &exchange.request;
    let url = format!("{}{}", server.url(), request.path);
    let mut builder = api.http.request(request.method.parse().unwrap(), url);
    for (name, value) in &request.headers {
        let value = if value == "Bearer <token>" && exchange.name == "auth-ok-poll" {
            let token = api
                .post("/api/v1/oauth/token", json!({"grant_type": "client_credentials", "client_id": "my-worker", "client_secret": "s3cret-from-seed-client"}))
                .await;
            format!("Bearer {}", token.json()["access_token"].as_str().unwrap())
        } else {
            value.clone()
        };
        builder = builder.header(name, value);
    }
    builder = match &request.body {
        Value::Null => builder,
        Value::String(raw) => builder.body(raw.clone()),
        json => builder.body(serde_json::to_vec(json).unwrap()),
    };
    let response = builder.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap())
}

/// Sets aside values that differ on every run.
fn normalize(name: &str, mut body: Value) -> Value {
    for key in ["access_token", "created_at"] {
        if let Some(value) = body.get_mut(key) {
            *value = json!("<varies>");
        }
    }
    if name == "file-upload-no-content-type" {
        // The capture's client sent a form content type; ours sends none, stored as null.
        body["content_type"] = json!("<varies>");
    }
    if name == "auth-bad-token" {
        // The detail names the JWT decoding error; the fake's tokens are not JWTs.
        let message = body["error"]["message"].as_str().unwrap_or_default();
        let prefix = "Unauthorized: Invalid token: Invalid token: ";
        assert!(message.starts_with(prefix), "{message}");
        body["error"]["message"] = json!(prefix);
    }
    body
}

#[tokio::test]
async fn the_fake_answers_every_captured_request_as_the_real_server_did() {
    let exchanges = load_exchanges(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/protocol")).unwrap();
    assert!(exchanges.len() >= 35, "fixtures missing: {}", exchanges.len());
    for exchange in &exchanges {
        let (server, api) = prepare(exchange).await;
        let (status, headers, text) = replay(&server, &api, exchange).await;
        let name = &exchange.name;
        let expected = &exchange.response;
        assert_eq!(status, expected.status, "{name}: status (body {text:?})");
        let content_type = headers.get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
        match expected.body_kind.as_str() {
            "json" => {
                assert_eq!(content_type, "application/json", "{name}: content type");
                let actual: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{name}: not JSON: {text}"));
                if let Some(mismatch) = shape_mismatch(&expected.body, &actual) {
                    panic!("{name}: shape differs at {mismatch}");
                }
                assert_eq!(normalize(name, actual), normalize(name, expected.body.clone()), "{name}: body");
            }
            "text" => {
                assert_eq!(Some(&content_type), expected.headers.get("content-type"), "{name}: content type");
                let captured = expected.body.as_str().unwrap();
                if name == "file-download" {
                    assert_eq!(text, captured);
                    for header in ["content-disposition", "content-length"] {
                        assert_eq!(headers[header].to_str().unwrap(), expected.headers[header], "{name}: {header}");
                    }
                } else {
                    // Framework rejections: the same message up to the parser's detail.
                    let head = captured.split(": ").next().unwrap();
                    assert!(text.starts_with(head), "{name}: {text:?} does not start with {head:?}");
                }
            }
            _ => assert!(text.is_empty(), "{name}: expected an empty body, got {text:?}"),
        }
    }
}
