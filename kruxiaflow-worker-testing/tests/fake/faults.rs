//! Fault injection, one fault kind per test.

use std::time::{Duration, Instant};

use kruxiaflow_worker_testing::{Endpoint, FakeServer, Fault, NewActivity, Status};
use serde_json::json;
use uuid::Uuid;

use crate::common::{Api, WORKER_ID, claimed};

#[tokio::test]
async fn a_status_fault_answers_with_the_servers_envelope_and_changes_nothing() {
    let (server, api, id) = claimed(NewActivity::new("vectors", "a")).await;
    server.faults().inject(Endpoint::Complete, Fault::Status(500), 1);
    api.complete(id, WORKER_ID, json!({})).await.assert_error(500, "INTERNAL_ERROR", "Internal server error");
    assert_eq!(server.activity(id).unwrap().status, Status::Running);
    assert_eq!(api.complete(id, WORKER_ID, json!({})).await.status, 200, "only the next call was faulted");
}

#[tokio::test]
async fn the_shutdown_fault_is_the_lowercase_503() {
    let (server, api, id) = claimed(NewActivity::new("vectors", "a")).await;
    server.faults().inject(Endpoint::Heartbeat, Fault::ShuttingDown, 1);
    api.heartbeat(id, WORKER_ID).await.assert_error(
        503,
        "service_unavailable",
        "Server is shutting down, please retry later",
    );
}

#[tokio::test]
async fn shutting_down_mode_answers_503_after_authentication_and_spares_public_routes() {
    let server = FakeServer::builder().auth("me", "secret").start().await;
    server.set_shutting_down(true);
    let api = Api::new(&server);
    assert_eq!(api.poll("v", WORKER_ID, 1).await.status, 401, "an unauthenticated caller still gets 401");
    let token = api
        .post(
            "/api/v1/oauth/token",
            json!({"grant_type": "client_credentials", "client_id": "me", "client_secret": "secret"}),
        )
        .await;
    assert_eq!(token.status, 200, "the token route is public");
    let authed = Api::new(&server).with_token(token.json()["access_token"].as_str().unwrap());
    authed.poll("v", WORKER_ID, 1).await.assert_error(
        503,
        "service_unavailable",
        "Server is shutting down, please retry later",
    );
}

#[tokio::test]
async fn error_after_commit_applies_the_report_then_answers_500() {
    let (server, api, id) = claimed(NewActivity::new("vectors", "a")).await;
    server.faults().inject(Endpoint::Complete, Fault::ErrorAfterCommit, 1);
    api.complete(id, WORKER_ID, json!({"kept": true})).await.assert_error(
        500,
        "INTERNAL_ERROR",
        "Internal server error",
    );
    assert_eq!(server.wait_for(id).await.expect_completed().output["kept"], true);
}

#[tokio::test]
async fn drop_after_commit_claims_the_poll_but_loses_the_answer() {
    let server = FakeServer::start().await;
    let id = server.enqueue(NewActivity::new("vectors", "a"));
    server.faults().inject(Endpoint::Poll, Fault::DropAfterCommit, 1);
    let sent = reqwest::Client::new()
        .post(format!("{}/api/v1/workers/poll", server.url()))
        .json(&json!({"worker": "vectors", "worker_id": WORKER_ID}))
        .send()
        .await;
    let failed = match sent {
        Err(_) => true,
        Ok(response) => response.bytes().await.is_err(),
    };
    assert!(failed, "the client must not get a complete answer");
    let snapshot = server.activity(id).unwrap();
    assert_eq!((snapshot.status, snapshot.claimed_by.as_deref()), (Status::Running, Some(WORKER_ID)));
    let logged = &server.log().to(Endpoint::Poll)[0];
    assert_eq!(logged.status, 0, "logged as dropped");
    assert_eq!(logged.claimed, vec![id], "the log says what the lost answer claimed");
}

#[tokio::test]
async fn drop_before_commit_changes_nothing() {
    let (server, _api, id) = claimed(NewActivity::new("vectors", "a")).await;
    server.faults().inject(Endpoint::Complete, Fault::DropBeforeCommit, 1);
    let sent = reqwest::Client::new()
        .post(format!("{}/api/v1/activities/{id}/complete", server.url()))
        .json(&json!({"worker_id": WORKER_ID, "output": {}}))
        .send()
        .await;
    assert!(sent.is_err() || sent.unwrap().bytes().await.is_err());
    assert_eq!(server.activity(id).unwrap().status, Status::Running);
}

#[tokio::test]
async fn a_truncated_body_is_shorter_than_its_content_length() {
    let server = FakeServer::start().await;
    let workflow_id = Uuid::now_v7();
    server.files().seed(workflow_id, "k", "big.bin", &vec![7u8; 100_000], None);
    server.faults().inject(Endpoint::FileDownload, Fault::TruncateBody, 1);
    let response = reqwest::get(format!("{}/api/v1/workflows/{workflow_id}/activities/k/files/big.bin", server.url()))
        .await
        .unwrap();
    assert_eq!(response.headers()["content-length"], "100000");
    assert!(response.bytes().await.is_err(), "the body ends early");
}

#[tokio::test]
async fn latency_delays_the_endpoint() {
    let server = FakeServer::start().await;
    server.faults().set_latency(Endpoint::Poll, Duration::from_millis(300));
    let started = Instant::now();
    Api::new(&server).poll("v", WORKER_ID, 1).await;
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn restart_keeps_state_and_closes_open_connections() {
    let (server, api, id) = claimed(NewActivity::new("vectors", "a")).await;
    server.restart().await;
    assert_eq!(api.complete(id, WORKER_ID, json!({"after": "restart"})).await.status, 200, "same port, same queue");
    assert_eq!(server.wait_for(id).await.expect_completed().output["after"], "restart");
}

#[tokio::test]
async fn a_stopped_server_refuses_connections() {
    let server = FakeServer::start().await;
    server.stop().await;
    assert!(reqwest::get(format!("{}/health", server.url())).await.is_err());
}

#[tokio::test]
async fn injected_faults_are_counted() {
    let (server, api, id) = claimed(NewActivity::new("vectors", "a")).await;
    server.faults().inject(Endpoint::Heartbeat, Fault::Status(503), 2);
    api.heartbeat(id, WORKER_ID).await;
    api.heartbeat(id, WORKER_ID).await;
    api.heartbeat(id, WORKER_ID).await;
    assert_eq!(server.faults().injected()[&Fault::Status(503)], 2);
}

#[tokio::test]
async fn a_hanging_endpoint_never_answers() {
    let server = FakeServer::start().await;
    server.faults().inject(Endpoint::Token, Fault::Hang, 1);
    let api = Api::new(&server);
    let token = api.post("/api/v1/oauth/token", json!({"grant_type": "client_credentials"}));
    assert!(tokio::time::timeout(Duration::from_millis(300), token).await.is_err(), "it answered");
}

#[tokio::test]
async fn a_redirect_points_at_another_origin_and_changes_nothing() {
    let (server, api, id) = claimed(NewActivity::new("vectors", "a")).await;
    server.faults().inject(Endpoint::Complete, Fault::Redirect, 1);
    let no_redirects = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let api = Api { http: no_redirects, ..api };
    let reply = api
        .send(
            api.http
                .post(format!("{}/api/v1/activities/{id}/complete", api.base))
                .json(&json!({"worker_id": WORKER_ID, "output": {}})),
        )
        .await;
    assert_eq!(reply.status, 307);
    assert_eq!(server.activity(id).unwrap().status, Status::Running);
    assert_eq!(kruxiaflow_worker_testing::REDIRECT_LOCATION, "http://127.0.0.2:9/elsewhere");
}

#[tokio::test]
async fn an_html_page_is_a_200_that_is_not_json() {
    let server = FakeServer::start().await;
    server.faults().inject(Endpoint::Token, Fault::HtmlPage, 1);
    let reply = Api::new(&server).post("/api/v1/oauth/token", json!({"grant_type": "client_credentials"})).await;
    assert_eq!((reply.status, reply.content_type.as_str()), (200, "text/html; charset=utf-8"));
    assert!(reply.json.is_none());
    assert_eq!(reply.text, "<html><body><h1>Please sign in</h1></body></html>");
}

#[tokio::test]
async fn a_raw_poll_item_is_sent_byte_for_byte_after_the_claimed_ones() {
    let server = FakeServer::start().await;
    let id = server.enqueue(NewActivity::new("vectors", "a"));
    let raw = r#"{"activity_id":"0193b2c4-0000-7000-8000-0000000000d2","parameters":1e400}"#;
    server.faults().inject_raw_poll_item(raw);
    let api = Api::new(&server);
    let reply = api.poll("vectors", WORKER_ID, 10).await;
    assert_eq!(reply.status, 200);
    assert!(reply.text.starts_with(r#"{"activities":[{"#), "{}", reply.text);
    assert!(reply.text.contains(&id.to_string()));
    assert!(reply.text.ends_with(&format!(r#",{raw}],"count":1}}"#)), "{}", reply.text);
    let empty = api.poll("vectors", WORKER_ID, 10).await;
    assert_eq!(empty.text, r#"{"activities":[],"count":0}"#, "one poll per raw item");
}

#[tokio::test]
async fn over_delivery_claims_more_than_asked_for() {
    let server = FakeServer::start().await;
    for _ in 0..4 {
        server.enqueue(NewActivity::new("vectors", "a"));
    }
    server.faults().set_over_delivery(2);
    let claimed = Api::new(&server).claim("vectors", WORKER_ID, 1).await;
    assert_eq!(claimed.len(), 3);
    assert_eq!(server.log().to(Endpoint::Poll)[0].claimed, claimed);
    server.faults().set_over_delivery(0);
    let next = Api::new(&server).claim("vectors", WORKER_ID, 1).await;
    assert_eq!(next.len(), 1, "0 restores the protocol's behaviour");
}

#[tokio::test]
async fn a_slow_link_sends_the_body_at_the_set_rate() {
    let server = FakeServer::start().await;
    let workflow_id = Uuid::now_v7();
    server.files().seed(workflow_id, "input", "data.bin", &[7u8; 30_000], None);
    server.faults().set_bandwidth(Endpoint::FileDownload, 100_000);
    let started = Instant::now();
    let reply =
        Api::new(&server).get(&format!("/api/v1/workflows/{workflow_id}/activities/input/files/data.bin")).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.text.len(), 30_000);
    // Three pieces of 10,000 bytes, each after a tenth of a second.
    assert!(started.elapsed() >= Duration::from_millis(300), "{:?}", started.elapsed());
}
