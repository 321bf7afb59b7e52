//! PROTOCOL.md §6: the worker-side streaming endpoints, with in-memory counters.

use futures_util::StreamExt;
use kruxiaflow_worker_testing::{Endpoint, FakeServer, Fault, NewActivity, StreamFrame, StreamSubscriber};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
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
    let count = api.get(&format!("/api/v1/activities/{done}/ws/subscribers")).await;
    assert_eq!(count.json(), &json!({"count": 0}), "the pretended subscriber left with the end");
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
    dev.faults().inject(Endpoint::StreamToken, Fault::ShuttingDown, 1);
    Api::new(&dev)
        .post(&format!("/api/v1/activities/{id}/ws/token"), json!({"text": "x", "index": 0}))
        .await
        .assert_error(503, "service_unavailable", "Server is shutting down, please retry later");
}

#[tokio::test]
async fn a_websocket_subscriber_is_counted_gets_each_token_then_the_complete_and_is_closed() {
    let server = FakeServer::start().await;
    let id = Uuid::now_v7();
    let api = Api::new(&server);
    let subscribers = format!("/api/v1/activities/{id}/ws/subscribers");
    let mut subscriber = StreamSubscriber::connect(&server.url(), id, None).await.unwrap();
    assert_eq!(api.get(&subscribers).await.json(), &json!({"count": 1}));

    let reply = api.post(&format!("/api/v1/activities/{id}/ws/token"), json!({"text": "Hel", "index": 0})).await;
    assert_eq!(reply.json(), &json!({"subscribers": 1}));
    assert_eq!(subscriber.next_frame().await.unwrap(), Some(StreamFrame::Token { text: "Hel".into(), index: 0 }));
    api.post(&format!("/api/v1/activities/{id}/ws/complete"), json!({"result": {"text": "Hello"}})).await;
    assert_eq!(
        subscriber.next_frame().await.unwrap(),
        Some(StreamFrame::Complete { result: json!({"text": "Hello"}) })
    );
    assert_eq!(subscriber.next_frame().await.unwrap(), None, "the socket is closed after the end");
    assert_eq!(api.get(&subscribers).await.json(), &json!({"count": 0}));
}

#[tokio::test]
async fn frames_carry_the_real_servers_fields() {
    let server = FakeServer::start().await;
    let id = Uuid::now_v7();
    let url = format!("{}/api/v1/activities/{id}/ws", server.url()).replacen("http", "ws", 1);
    let (mut socket, _) = tokio_tungstenite::connect_async(url.as_str()).await.unwrap();
    let api = Api::new(&server);
    api.post(&format!("/api/v1/activities/{id}/ws/token"), json!({"text": "a", "index": 7})).await;
    api.post(&format!("/api/v1/activities/{id}/ws/error"), json!({"error": "rate limit exceeded"})).await;
    let mut frames = Vec::new();
    while let Some(Ok(Message::Text(text))) = socket.next().await {
        frames.push(serde_json::from_str::<Value>(&text).unwrap());
    }
    assert_eq!(frames.len(), 2);
    let timestamp = |frame: &mut Value| frame.as_object_mut().unwrap().remove("timestamp").unwrap();
    assert!(timestamp(&mut frames[0]).as_str().unwrap().ends_with('Z'));
    assert!(timestamp(&mut frames[1]).as_str().unwrap().ends_with('Z'));
    assert_eq!(frames[0], json!({"type": "token", "text": "a", "index": 7}));
    assert_eq!(frames[1], json!({"type": "error", "activity_id": id, "error": "rate limit exceeded"}));
}

#[tokio::test]
async fn a_subscriber_who_leaves_is_no_longer_counted() {
    let server = FakeServer::start().await;
    let id = Uuid::now_v7();
    server.set_stream_subscribers(id, 2);
    let subscriber = StreamSubscriber::connect(&server.url(), id, None).await.unwrap();
    let api = Api::new(&server);
    let subscribers = format!("/api/v1/activities/{id}/ws/subscribers");
    assert_eq!(api.get(&subscribers).await.json(), &json!({"count": 3}));
    subscriber.close().await;
    // The server notices the close on its own schedule.
    let mut count = json!(null);
    for _ in 0..500 {
        count = api.get(&subscribers).await.json().clone();
        if count == json!({"count": 2}) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(count, json!({"count": 2}));
}

#[tokio::test]
async fn the_socket_takes_its_token_from_the_query_string_in_auth_mode() {
    let server = FakeServer::builder().auth("me", "secret").start().await;
    let id = Uuid::now_v7();
    let refused = StreamSubscriber::connect(&server.url(), id, None).await.unwrap_err();
    assert!(refused.to_string().contains("401"), "{refused}");
    let reply = Api::new(&server)
        .post(
            "/api/v1/oauth/token",
            json!({"grant_type": "client_credentials", "client_id": "me", "client_secret": "secret"}),
        )
        .await;
    let token = reply.json()["access_token"].as_str().unwrap().to_owned();
    StreamSubscriber::connect(&server.url(), id, Some(&token)).await.unwrap();
}

#[tokio::test]
async fn a_client_may_subscribe_by_workflow_and_activity_key() {
    let server = FakeServer::start().await;
    let workflow_id = Uuid::now_v7();
    let id = server.enqueue(NewActivity::new("rust", "chat").key("answer").workflow_id(workflow_id));
    let url = format!("{}/api/v1/workflows/{workflow_id}/activities/answer/ws", server.url()).replacen("http", "ws", 1);
    let (mut socket, _) = tokio_tungstenite::connect_async(url.as_str()).await.unwrap();
    Api::new(&server).post(&format!("/api/v1/activities/{id}/ws/token"), json!({"text": "hi", "index": 0})).await;
    let Some(Ok(Message::Text(text))) = socket.next().await else { panic!("no frame") };
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap()["text"], "hi");
    let unknown =
        format!("{}/api/v1/workflows/{workflow_id}/activities/other/ws", server.url()).replacen("http", "ws", 1);
    let refused = tokio_tungstenite::connect_async(unknown.as_str()).await.unwrap_err();
    assert!(refused.to_string().contains("404"), "{refused}");
}

/// A WebSocket endpoint that, like the real server (v0.8.3), sends the end frame and
/// then leaves the socket open.
async fn never_closing_server() -> String {
    use axum::extract::ws::{Message as AxumMessage, WebSocketUpgrade};
    let app = axum::Router::new().route(
        "/api/v1/activities/{id}/ws",
        axum::routing::get(|upgrade: WebSocketUpgrade| async move {
            upgrade.on_upgrade(|mut socket| async move {
                let token = json!({"type": "token", "text": "Hi", "index": 0});
                let complete = json!({"type": "complete", "result": {"text": "Hi"}});
                for frame in [token, complete] {
                    let _ = socket.send(AxumMessage::Text(frame.to_string().into())).await;
                }
                // Open for good: only the client's close ends it.
                while let Some(Ok(message)) = socket.recv().await {
                    if matches!(message, AxumMessage::Close(_)) {
                        break;
                    }
                }
            })
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

#[tokio::test]
async fn until_end_returns_at_the_end_frame_when_the_server_keeps_the_socket_open() {
    let url = never_closing_server().await;
    let subscriber = StreamSubscriber::connect(&url, Uuid::now_v7(), None).await.unwrap();
    let received = tokio::time::timeout(std::time::Duration::from_secs(5), subscriber.until_end())
        .await
        .expect("returns at the end frame")
        .unwrap();
    assert_eq!(received.text(), "Hi");
    assert_eq!(received.end, Some(StreamFrame::Complete { result: json!({"text": "Hi"}) }));
}

#[tokio::test]
async fn subscribing_by_key_waits_until_the_activity_is_scheduled() {
    let server = FakeServer::start().await;
    let workflow_id = Uuid::now_v7();
    let url = server.url();
    let subscribing = tokio::spawn(async move {
        let key = (workflow_id, "draft answer");
        StreamSubscriber::connect_by_key(&url, key, None, std::time::Duration::from_secs(10)).await
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!subscribing.is_finished(), "404 until the activity exists");
    let id = server.enqueue(NewActivity::new("rust", "chat").workflow_id(workflow_id).key("draft answer"));
    let subscriber = subscribing.await.unwrap().expect("connected once scheduled");
    let api = Api::new(&server);
    api.post(&format!("/api/v1/activities/{id}/ws/complete"), json!({"result": {"text": "ok"}})).await;
    let received = subscriber.until_end().await.unwrap();
    assert_eq!(received.end, Some(StreamFrame::Complete { result: json!({"text": "ok"}) }));
}

#[tokio::test]
async fn subscribing_by_key_gives_up_after_its_wait() {
    let server = FakeServer::start().await;
    let key = (Uuid::now_v7(), "never");
    let error = StreamSubscriber::connect_by_key(&server.url(), key, None, std::time::Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("404"), "{error}");
}

#[tokio::test]
async fn a_client_subscribing_after_the_end_gets_no_frame_and_an_open_socket_as_from_the_real_server() {
    let server = FakeServer::start().await;
    let id = Uuid::now_v7();
    let api = Api::new(&server);
    api.post(&format!("/api/v1/activities/{id}/ws/complete"), json!({"result": {"text": "done"}})).await;
    let mut late = StreamSubscriber::connect(&server.url(), id, None).await.unwrap();
    let waited = tokio::time::timeout(std::time::Duration::from_millis(500), late.next_frame()).await;
    assert!(waited.is_err(), "no frame and no close: {waited:?}");
}
