//! PROTOCOL.md §2: the token endpoint, bearer checks, dev mode.

use std::time::Duration;

use kruxiaflow_worker_testing::FakeServer;
use serde_json::json;

use crate::common::{Api, WORKER_ID};

async fn auth_server() -> (FakeServer, Api) {
    let server = FakeServer::builder().auth("my-worker", "s3cret").start().await;
    let api = Api::new(&server);
    (server, api)
}

async fn token(api: &Api) -> String {
    let reply = api
        .post(
            "/api/v1/oauth/token",
            json!({"grant_type": "client_credentials", "client_id": "my-worker", "client_secret": "s3cret"}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json()["token_type"], "Bearer");
    reply.json()["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn client_credentials_get_a_token_that_opens_protected_routes() {
    let (server, api) = auth_server().await;
    let token = token(&api).await;
    let authed = Api::new(&server).with_token(&token);
    let reply = authed.poll("vectors", WORKER_ID, 1).await;
    assert_eq!(server.tokens_issued(), 1);
    assert_eq!((reply.status, reply.json()), (200, &json!({"activities": [], "count": 0})));
}

#[tokio::test]
async fn form_encoded_token_requests_are_accepted() {
    let (_s, api) = auth_server().await;
    let reply = api
        .post_raw(
            "/api/v1/oauth/token",
            Some("application/x-www-form-urlencoded"),
            "grant_type=client_credentials&client_id=my-worker&client_secret=s3cret",
        )
        .await;
    assert_eq!(reply.status, 200);
    let wrong = api
        .post_raw(
            "/api/v1/oauth/token",
            Some("application/x-www-form-urlencoded"),
            "grant_type=client_credentials&client_id=my-worker&client_secret=wrong",
        )
        .await;
    wrong.assert_error(401, "UNAUTHORIZED", "Unauthorized: Invalid client credentials");
}

#[tokio::test]
async fn token_requests_in_other_encodings_are_a_plain_text_415() {
    let (_s, api) = auth_server().await;
    api.post_raw("/api/v1/oauth/token", Some("text/plain"), "hi").await.assert_text(
        415,
        "Content-Type must be application/json or application/x-www-form-urlencoded, got: text/plain",
    );
}

#[tokio::test]
async fn missing_grant_fields_are_listed_in_one_400() {
    let (_s, api) = auth_server().await;
    api.post("/api/v1/oauth/token", json!({"grant_type": "client_credentials"})).await.assert_error(
        400,
        "BAD_REQUEST",
        "Bad request: client_id is required for client_credentials grant, client_secret is required for client_credentials grant",
    );
    api.post("/api/v1/oauth/token", json!({"client_id": "x"}))
        .await
        .assert_text(400, "Invalid JSON: Failed to deserialize the JSON body into the target type");
}

#[tokio::test]
async fn a_missing_or_non_bearer_header_is_401_with_the_expected_form() {
    let (server, api) = auth_server().await;
    let message = "Unauthorized: Missing or invalid Authorization header. Expected: Authorization: Bearer <token>";
    api.poll("vectors", WORKER_ID, 1).await.assert_error(401, "UNAUTHORIZED", message);
    let basic = api
        .send(
            api.http
                .post(format!("{}/api/v1/workers/poll", server.url()))
                .header("Authorization", "Basic abc")
                .json(&json!({})),
        )
        .await;
    basic.assert_error(401, "UNAUTHORIZED", message);
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let (server, api) = auth_server().await;
    let token = token(&api).await;
    let reply = api
        .send(
            api.http
                .post(format!("{}/api/v1/workers/poll", server.url()))
                .header("Authorization", format!("BEARER {token}"))
                .json(&json!({"worker": "v", "worker_id": "w"})),
        )
        .await;
    assert_eq!(reply.status, 200);
}

#[tokio::test]
async fn expired_and_unknown_tokens_are_told_apart() {
    let (server, api) = auth_server().await;
    let token = token(&api).await;
    server.expire_tokens();
    Api::new(&server).with_token(&token).poll("v", WORKER_ID, 1).await.assert_error(
        401,
        "UNAUTHORIZED",
        "Unauthorized: Invalid token: Expired token",
    );
    server.revoke_tokens();
    Api::new(&server).with_token(&token).poll("v", WORKER_ID, 1).await.assert_error(
        401,
        "UNAUTHORIZED",
        "Unauthorized: Invalid token: Invalid token: InvalidToken",
    );
}

#[tokio::test]
async fn tokens_expire_after_their_lifetime_plus_leeway() {
    let server =
        FakeServer::builder().auth("my-worker", "s3cret").token_lifetime(Duration::from_secs(10)).start().await;
    let api = Api::new(&server);
    let token = token(&api).await;
    let authed = Api::new(&server).with_token(&token);
    server.advance_clock(Duration::from_secs(65));
    assert_eq!(authed.poll("v", WORKER_ID, 1).await.status, 200, "within the 60 s leeway");
    server.advance_clock(Duration::from_secs(10));
    assert_eq!(authed.poll("v", WORKER_ID, 1).await.status, 401);
}

#[tokio::test]
async fn dev_mode_needs_no_token_but_still_rejects_a_bad_one() {
    let server = FakeServer::start().await;
    assert_eq!(Api::new(&server).poll("v", WORKER_ID, 1).await.status, 200);
    Api::new(&server).with_token("forged").poll("v", WORKER_ID, 1).await.assert_error(
        401,
        "UNAUTHORIZED",
        "Unauthorized: Invalid token: Invalid token: InvalidToken",
    );
    let health = Api::new(&server).get("/health").await;
    assert_eq!(health.json(), &json!({"status": "ok", "insecure_dev": true}));
}

#[tokio::test]
async fn a_wrong_method_is_405_after_authentication() {
    let (server, api) = auth_server().await;
    assert_eq!(api.get("/api/v1/workers/poll").await.status, 401, "authentication runs first");
    let token = token(&api).await;
    let reply = Api::new(&server).with_token(&token).get("/api/v1/workers/poll").await;
    assert_eq!((reply.status, reply.text.as_str()), (405, ""));
}
