//! PROTOCOL.md §6: the worker-side streaming endpoints, with in-memory counters.

use kruxiaflow_worker_testing::{Endpoint, FakeServer, Fault};
use serde_json::json;
use uuid::Uuid;

use crate::common::Api;

#[tokio::test]
async fn subscribers_counts_what_the_test_set() {
    let server = FakeServer::start().await;
    let id = Uuid::now_v7();
    let api = Api::new(&server);
    assert_eq!(api.get(&format!("/api/v1/activities/{id}/ws/subscribers")).await.json(), &json!({"count": 0}));
    server.set_stream_subscribers(id, 2);
    assert_eq!(api.get(&format!("/api/v1/activities/{id}/ws/subscribers")).await.json(), &json!({"count": 2}));
}

#[tokio::test]
async fn tokens_are_recorded_in_order_and_answered_with_the_subscriber_count() {
    let server = FakeServer::start().await;
    let id = Uuid::now_v7();
    server.set_stream_subscribers(id, 3);
    let api = Api::new(&server);
    for (index, text) in ["Hel", "lo"].iter().enumerate() {
        let reply = api.post(&format!("/api/v1/activities/{id}/ws/token"), json!({"text": text, "index": index})).await;
        assert_eq!((reply.status, reply.json()), (200, &json!({"subscribers": 3})));
    }
    assert_eq!(server.stream(id).tokens, [(0, "Hel".to_owned()), (1, "lo".to_owned())]);
}

#[tokio::test]
async fn a_token_without_its_index_is_a_plain_text_422() {
    let server = FakeServer::start().await;
    Api::new(&server)
        .post(&format!("/api/v1/activities/{}/ws/token", Uuid::now_v7()), json!({"text": "x"}))
        .await
        .assert_text(422, "Failed to deserialize the JSON body into the target type");
}

#[tokio::test]
async fn complete_and_error_answer_200_with_an_empty_body_and_close_the_subscribers() {
    let server = FakeServer::start().await;
    let (done, broken) = (Uuid::now_v7(), Uuid::now_v7());
    server.set_stream_subscribers(done, 1);
    let api = Api::new(&server);
    let reply = api.post(&format!("/api/v1/activities/{done}/ws/complete"), json!({"result": {"text": "Hello"}})).await;
    assert_eq!((reply.status, reply.text.as_str()), (200, ""));
    assert_eq!(server.stream(done).completed, Some(json!({"text": "Hello"})));
    assert_eq!(server.stream(done).subscribers, 0);
    let reply =
        api.post(&format!("/api/v1/activities/{broken}/ws/error"), json!({"error": "rate limit exceeded"})).await;
    assert_eq!((reply.status, reply.text.as_str()), (200, ""));
    assert_eq!(server.stream(broken).error.as_deref(), Some("rate limit exceeded"));
}

#[tokio::test]
async fn streaming_routes_are_protected_and_faultable() {
    let server = FakeServer::builder().auth("me", "secret").start().await;
    let id = Uuid::now_v7();
    Api::new(&server).get(&format!("/api/v1/activities/{id}/ws/subscribers")).await.assert_error(
        401,
        "UNAUTHORIZED",
        "Unauthorized: Missing or invalid Authorization header. Expected: Authorization: Bearer <token>",
    );
    let dev = FakeServer::start().await;
    dev.inject(Endpoint::Streaming, Fault::ShuttingDown, 1);
    Api::new(&dev)
        .post(&format!("/api/v1/activities/{id}/ws/token"), json!({"text": "x", "index": 0}))
        .await
        .assert_error(503, "service_unavailable", "Server is shutting down, please retry later");
}
