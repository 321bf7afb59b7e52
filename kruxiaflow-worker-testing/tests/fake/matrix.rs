//! PROTOCOL.md §7.6, one test per row of the conflict matrix.

use std::time::Duration;

use kruxiaflow_worker_testing::{NewActivity, RetrySettings, Status};
use serde_json::json;

use crate::common::{Api, WORKER_ID, claimed};

const OTHER: &str = "someone_else";
const HEARTBEAT_OK: &str = r#"{"acknowledged":true,"next_heartbeat_seconds":30}"#;

fn activity() -> NewActivity {
    NewActivity::new("vectors", "echo")
}

#[tokio::test]
async fn row_no_such_id_answers_404_to_everything() {
    let (_server, api, _) = claimed(activity()).await;
    let unknown = uuid::Uuid::new_v4();
    let message = format!("Not found: Activity '{unknown}' not found");
    api.heartbeat(unknown, WORKER_ID).await.assert_error(404, "NOT_FOUND", &message);
    api.complete(unknown, WORKER_ID, json!({})).await.assert_error(404, "NOT_FOUND", &message);
    api.fail(unknown, WORKER_ID, true).await.assert_error(404, "NOT_FOUND", &message);
}

#[tokio::test]
async fn row_running_claimed_by_caller_accepts_heartbeat_complete_and_fail() {
    let (server, api, id) = claimed(activity()).await;
    let heartbeat = api.heartbeat(id, WORKER_ID).await;
    assert_eq!((heartbeat.status, heartbeat.text.as_str()), (200, HEARTBEAT_OK));
    let complete = api.complete(id, WORKER_ID, json!({"n": 1})).await;
    assert_eq!((complete.status, complete.json()), (200, &json!({"acknowledged": true})));

    let (server2, api2, id2) = claimed(activity().retry(RetrySettings::attempts(2))).await;
    let fail = api2.fail(id2, WORKER_ID, true).await;
    assert_eq!((fail.status, fail.json()), (200, &json!({"acknowledged": true, "will_retry": true})));
    assert_eq!(server.activity(id).unwrap().status, Status::Completed);
    assert_eq!(server2.activity(id2).unwrap().status, Status::Pending);
}

#[tokio::test]
async fn row_running_with_an_expired_lease_not_yet_reclaimed_still_accepts_the_claimer() {
    let (server, api, id) = claimed(activity().timeout_seconds(5)).await;
    server.advance_clock(Duration::from_secs(30));
    assert_eq!(api.heartbeat(id, WORKER_ID).await.status, 200, "renewed in the grace window");
    server.advance_clock(Duration::from_secs(30));
    assert_eq!(api.complete(id, WORKER_ID, json!({})).await.status, 200);
}

#[tokio::test]
async fn row_live_claimed_by_another_or_nobody_answers_409_claimed_by_different_worker() {
    let conflict = "Conflict: Activity claimed by different worker";
    let (server, api, id) = claimed(activity()).await;
    api.heartbeat(id, OTHER).await.assert_error(409, "CONFLICT", conflict);
    api.complete(id, OTHER, json!({})).await.assert_error(409, "CONFLICT", conflict);
    api.fail(id, OTHER, true).await.assert_error(409, "CONFLICT", conflict);

    // Requeued after a retryable failure: nobody holds it, so the old claimer conflicts.
    let (_s, api, requeued) = claimed(activity().retry(RetrySettings::attempts(3))).await;
    assert_eq!(api.fail(requeued, WORKER_ID, true).await.status, 200);
    api.heartbeat(requeued, WORKER_ID).await.assert_error(409, "CONFLICT", conflict);
    api.complete(requeued, WORKER_ID, json!({})).await.assert_error(409, "CONFLICT", conflict);
    api.fail(requeued, WORKER_ID, true).await.assert_error(409, "CONFLICT", conflict);
    drop(server);
}

#[tokio::test]
async fn row_completed_by_caller_is_idempotent_for_complete_and_already_completed_for_fail() {
    let (server, api, id) = claimed(activity()).await;
    assert_eq!(api.complete(id, WORKER_ID, json!({"first": true})).await.status, 200);
    assert_eq!(api.heartbeat(id, WORKER_ID).await.text, HEARTBEAT_OK);
    let repeat = api.complete(id, WORKER_ID, json!({"second": true})).await;
    assert_eq!((repeat.status, repeat.json()), (200, &json!({"acknowledged": true})));
    api.fail(id, WORKER_ID, true).await.assert_error(409, "CONFLICT", "Conflict: Activity already completed");
    let completion = server.wait_for(id).await;
    assert_eq!(completion.expect_completed().output, *json!({"first": true}).as_object().unwrap(), "first output wins");
}

#[tokio::test]
async fn row_completed_by_another_answers_200_to_heartbeat_and_409_to_reports() {
    let (_server, api, id) = claimed(activity()).await;
    assert_eq!(api.complete(id, WORKER_ID, json!({})).await.status, 200);
    let conflict = "Conflict: Activity claimed by different worker";
    assert_eq!(api.heartbeat(id, OTHER).await.text, HEARTBEAT_OK);
    api.complete(id, OTHER, json!({})).await.assert_error(409, "CONFLICT", conflict);
    api.fail(id, OTHER, true).await.assert_error(409, "CONFLICT", conflict);
}

#[tokio::test]
async fn row_failed_by_caller_answers_already_completed_even_though_it_failed() {
    let (_server, api, id) = claimed(activity()).await;
    let terminal = api.fail(id, WORKER_ID, false).await;
    assert_eq!(terminal.json(), &json!({"acknowledged": true, "will_retry": false}));
    assert_eq!(api.heartbeat(id, WORKER_ID).await.text, HEARTBEAT_OK);
    let settled = "Conflict: Activity already completed";
    api.complete(id, WORKER_ID, json!({})).await.assert_error(409, "CONFLICT", settled);
    api.fail(id, WORKER_ID, true).await.assert_error(409, "CONFLICT", settled);
}

#[tokio::test]
async fn row_failed_by_the_sweep_keeps_its_claimer_who_then_gets_already_completed() {
    let (server, api, id) = claimed(activity().timeout_seconds(5).retry(RetrySettings::attempts(1))).await;
    server.advance_clock(Duration::from_secs(6));
    assert_eq!(server.sweep(), (0, 1));
    assert_eq!(server.wait_for(id).await.expect_failed().code, "ACTIVITY_TIMEOUT");
    assert_eq!(api.heartbeat(id, WORKER_ID).await.text, HEARTBEAT_OK, "a heartbeat cannot tell it was timed out");
    api.complete(id, WORKER_ID, json!({})).await.assert_error(409, "CONFLICT", "Conflict: Activity already completed");
}

#[tokio::test]
async fn row_failed_by_another_answers_200_to_heartbeat_and_409_claimed_by_different_worker() {
    let (_server, api, id) = claimed(activity()).await;
    assert_eq!(api.fail(id, WORKER_ID, false).await.status, 200);
    let conflict = "Conflict: Activity claimed by different worker";
    assert_eq!(api.heartbeat(id, OTHER).await.text, HEARTBEAT_OK);
    api.complete(id, OTHER, json!({})).await.assert_error(409, "CONFLICT", conflict);
    api.fail(id, OTHER, false).await.assert_error(409, "CONFLICT", conflict);
}

#[tokio::test]
async fn reassignment_gives_the_original_claimer_409_on_heartbeat() {
    let (server, api, id) = claimed(activity()).await;
    assert!(server.reassign(id));
    api.heartbeat(id, WORKER_ID).await.assert_error(409, "CONFLICT", "Conflict: Activity claimed by different worker");
    let _ = Api::new(&server);
}
