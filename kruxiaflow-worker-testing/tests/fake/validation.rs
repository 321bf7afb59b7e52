//! PROTOCOL.md §4 and §3.3: field validation (422 envelopes) and framework
//! rejections (plain text), one rule per test.

use kruxiaflow_worker_testing::{FakeServer, NewActivity, RetrySettings};
use serde_json::json;

use crate::common::{Api, WORKER_ID, claimed};

async fn api() -> (FakeServer, Api) {
    let server = FakeServer::start().await;
    let api = Api::new(&server);
    (server, api)
}

#[tokio::test]
async fn poll_reports_every_invalid_field_together() {
    let (_s, api) = api().await;
    let reply = api.post("/api/v1/workers/poll", json!({"worker": "", "worker_id": "", "max_activities": 0})).await;
    reply.assert_validation(json!({
        "max_activities": ["max_activities must be at least 1"],
        "worker": ["Worker type cannot be empty"],
        "worker_id": ["Worker ID cannot be empty"],
    }));
}

#[tokio::test]
async fn poll_refuses_more_than_100() {
    let (_s, api) = api().await;
    api.poll("vectors", WORKER_ID, 101)
        .await
        .assert_validation(json!({"max_activities": ["max_activities must be at most 100"]}));
    assert_eq!(api.poll("vectors", WORKER_ID, 100).await.status, 200);
}

#[tokio::test]
async fn poll_defaults_max_activities_to_one() {
    let (server, api) = api().await;
    server.enqueue(NewActivity::new("vectors", "a"));
    server.enqueue(NewActivity::new("vectors", "b"));
    let reply = api.post("/api/v1/workers/poll", json!({"worker": "vectors", "worker_id": WORKER_ID})).await;
    assert_eq!(reply.json()["count"], 1);
}

#[tokio::test]
async fn poll_with_a_missing_field_is_a_plain_text_422() {
    let (_s, api) = api().await;
    api.post("/api/v1/workers/poll", json!({"worker": "vectors"}))
        .await
        .assert_text(422, "Failed to deserialize the JSON body into the target type: missing field `worker_id`");
}

#[tokio::test]
async fn poll_with_a_negative_or_fractional_count_is_a_plain_text_422() {
    let (_s, api) = api().await;
    for bad in [json!(-1), json!(5.5)] {
        api.post("/api/v1/workers/poll", json!({"worker": "v", "worker_id": "w", "max_activities": bad}))
            .await
            .assert_text(422, "Failed to deserialize the JSON body into the target type");
    }
}

#[tokio::test]
async fn a_body_that_is_not_json_is_a_plain_text_400() {
    let (_s, api) = api().await;
    api.post_raw("/api/v1/workers/poll", Some("application/json"), "{not json")
        .await
        .assert_text(400, "Failed to parse the request body as JSON");
}

#[tokio::test]
async fn a_missing_content_type_is_a_plain_text_415() {
    let (_s, api) = api().await;
    api.post_raw("/api/v1/workers/poll", None, r#"{"worker":"x","worker_id":"y"}"#)
        .await
        .assert_text(415, "Expected request with `Content-Type: application/json`");
}

#[tokio::test]
async fn a_bad_uuid_in_the_path_is_a_plain_text_400() {
    let (_s, api) = api().await;
    api.post("/api/v1/activities/not-a-uuid/heartbeat", json!({"worker_id": "w"}))
        .await
        .assert_text(400, "Invalid URL");
}

#[tokio::test]
async fn heartbeat_needs_a_worker_id() {
    let (_s, api, id) = claimed(NewActivity::new("vectors", "a")).await;
    api.heartbeat(id, "").await.assert_validation(json!({"worker_id": ["Worker ID cannot be empty"]}));
}

#[tokio::test]
async fn complete_output_must_be_an_object() {
    let (_s, api, id) = claimed(NewActivity::new("vectors", "a")).await;
    for bad in [json!(null), json!([1]), json!("just a string"), json!(3)] {
        api.complete(id, WORKER_ID, bad).await.assert_validation(json!({"output": ["Output must be a JSON object"]}));
    }
    assert_eq!(api.complete(id, WORKER_ID, json!({})).await.status, 200, "{{}} is a valid output");
}

#[tokio::test]
async fn complete_without_output_is_a_plain_text_422() {
    let (_s, api, id) = claimed(NewActivity::new("vectors", "a")).await;
    api.post(&format!("/api/v1/activities/{id}/complete"), json!({"worker_id": WORKER_ID}))
        .await
        .assert_text(422, "Failed to deserialize the JSON body into the target type: missing field `output`");
}

#[tokio::test]
async fn cost_must_be_non_negative() {
    let (_s, api, id) = claimed(NewActivity::new("vectors", "a")).await;
    let body = json!({"worker_id": WORKER_ID, "output": {}, "cost_usd": "-1"});
    api.post(&format!("/api/v1/activities/{id}/complete"), body)
        .await
        .assert_validation(json!({"cost_usd": ["Cost must be non-negative"]}));
}

#[tokio::test]
async fn decimals_are_accepted_as_strings_or_numbers_but_not_as_words() {
    let (server, api, id) = claimed(NewActivity::new("vectors", "a")).await;
    let path = format!("/api/v1/activities/{id}/complete");
    api.post(&path, json!({"worker_id": WORKER_ID, "output": {}, "cost_usd": "abc"}))
        .await
        .assert_text(422, "Failed to deserialize the JSON body into the target type");
    let reply = api.post(&path, json!({"worker_id": WORKER_ID, "output": {}, "cost_usd": 0.015})).await;
    assert_eq!(reply.status, 200);
    let cost = server.wait_for(id).await.expect_completed().cost_usd;
    assert_eq!(cost, Some(rust_decimal::Decimal::new(15, 3)));
}

#[tokio::test]
async fn usage_entries_need_provider_and_model_and_unsigned_counts() {
    let (_s, api, id) = claimed(NewActivity::new("vectors", "a")).await;
    let path = format!("/api/v1/activities/{id}/complete");
    let body = json!({"worker_id": WORKER_ID, "output": {}, "usage": [{"provider": "", "model": ""}]});
    api.post(&path, body).await.assert_validation(json!({
        "usage[0].model": ["Model cannot be empty"],
        "usage[0].provider": ["Provider cannot be empty"],
    }));
    let body =
        json!({"worker_id": WORKER_ID, "output": {}, "usage": [{"provider": "p", "model": "m", "input_tokens": -1}]});
    api.post(&path, body).await.assert_text(422, "Failed to deserialize the JSON body into the target type");
}

#[tokio::test]
async fn unknown_models_get_a_warning_and_the_completion_still_lands() {
    let server = FakeServer::builder().unknown_model("acme", "nonexistent-1").start().await;
    let id = server.enqueue(NewActivity::new("vectors", "a"));
    let api = Api::new(&server);
    api.claim("vectors", WORKER_ID, 1).await;
    let body = json!({"worker_id": WORKER_ID, "output": {}, "cost_usd": "0.0040",
        "usage": [{"provider": "acme", "model": "nonexistent-1", "input_tokens": 1200, "output_tokens": 50}]});
    let reply = api.post(&format!("/api/v1/activities/{id}/complete"), body).await;
    assert_eq!(
        reply.json(),
        &json!({"acknowledged": true, "warnings": [
            "unknown model 'acme/nonexistent-1': not in the llm_models catalog; its usage will be recorded with cost 0 \u{2014} supply cost_usd per entry or update the catalog"
        ]})
    );
    server.wait_for(id).await.expect_completed();
}

#[tokio::test]
async fn fail_needs_a_code_and_a_message() {
    let (_s, api, id) = claimed(NewActivity::new("vectors", "a")).await;
    let body = json!({"worker_id": WORKER_ID, "error": {"code": "", "message": "", "retryable": true}});
    api.post(&format!("/api/v1/activities/{id}/fail"), body).await.assert_validation(json!({
        "error.code": ["Error code cannot be empty"],
        "error.message": ["Error message cannot be empty"],
    }));
}

#[tokio::test]
async fn fail_without_retryable_is_a_plain_text_422() {
    let (_s, api, id) = claimed(NewActivity::new("vectors", "a")).await;
    let body = json!({"worker_id": WORKER_ID, "error": {"code": "X", "message": "y"}});
    api.post(&format!("/api/v1/activities/{id}/fail"), body)
        .await
        .assert_text(422, "Failed to deserialize the JSON body into the target type");
}

#[tokio::test]
async fn will_retry_is_retryable_and_retries_left() {
    let (_s, api, id) = claimed(NewActivity::new("vectors", "a").retry(RetrySettings::attempts(2))).await;
    assert_eq!(api.fail(id, WORKER_ID, true).await.json()["will_retry"], true);
    assert_eq!(api.claim("vectors", WORKER_ID, 1).await, [id], "same id on retry");
    assert_eq!(api.fail(id, WORKER_ID, true).await.json()["will_retry"], false, "retries used up");
    let (_s, api, id) = claimed(NewActivity::new("vectors", "a").retry(RetrySettings::attempts(5))).await;
    assert_eq!(api.fail(id, WORKER_ID, false).await.json()["will_retry"], false, "not retryable");
}

#[tokio::test]
async fn an_unknown_route_is_404_without_authentication() {
    let server = FakeServer::builder().auth("me", "secret").start().await;
    Api::new(&server).get("/api/v1/nope").await.assert_error(
        404,
        "NOT_FOUND",
        "Not found: The requested resource was not found",
    );
}
