//! PROTOCOL.md §7: claims, leases, reclaim, sweep, retries and ordering.

use std::time::Duration;

use kruxiaflow_worker_testing::{FakeServer, NewActivity, RetrySettings, RetryStrategy, Status};
use serde_json::json;

use crate::common::{Api, WORKER_ID, claimed};

#[tokio::test]
async fn polls_are_fifo_across_activity_names_and_never_filtered_by_name() {
    let server = FakeServer::start().await;
    let ids: Vec<_> =
        ["a", "b", "", "c"].iter().map(|name| server.enqueue(NewActivity::new("vectors", *name))).collect();
    server.enqueue(NewActivity::new("other_type", "a"));
    assert_eq!(Api::new(&server).claim("vectors", WORKER_ID, 10).await, ids);
}

#[tokio::test]
async fn poll_items_have_the_documented_keys() {
    let server = FakeServer::start().await;
    server.enqueue(NewActivity::new("vectors", "echo").params(json!({"m": 1})));
    let reply = Api::new(&server).poll("vectors", WORKER_ID, 1).await;
    let item = &reply.json()["activities"][0];
    let mut keys: Vec<&str> = item.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "activity_id",
            "activity_key",
            "activity_name",
            "parameters",
            "settings",
            "timeout_seconds",
            "worker",
            "workflow_id"
        ],
        "output_definitions and signal_data are omitted when absent"
    );
    assert_eq!(item["settings"], json!({"cache": false}));
    assert_eq!(item["timeout_seconds"], json!(null));
}

#[tokio::test]
async fn signal_data_null_is_sent_as_an_explicit_null() {
    let server = FakeServer::start().await;
    server.enqueue(NewActivity::new("vectors", "a").signal_data(json!(null)));
    let reply = Api::new(&server).poll("vectors", WORKER_ID, 1).await;
    let item = reply.json()["activities"][0].as_object().unwrap().clone();
    assert_eq!(item.get("signal_data"), Some(&json!(null)));
}

#[tokio::test]
async fn an_expired_lease_is_reclaimed_by_the_next_poll_with_a_retry_counted() {
    let (server, api, id) = claimed(NewActivity::new("vectors", "a").timeout_seconds(10)).await;
    assert!(api.claim("vectors", "worker_b", 1).await.is_empty(), "the lease still holds");
    server.advance_clock(Duration::from_secs(11));
    assert_eq!(api.claim("vectors", "worker_b", 1).await, [id]);
    let snapshot = server.activity(id).unwrap();
    assert_eq!((snapshot.retry_count, snapshot.claimed_by.as_deref()), (1, Some("worker_b")));
}

#[tokio::test]
async fn a_lease_without_retries_left_is_not_reclaimed_but_swept_as_activity_timeout() {
    let (server, api, id) = claimed(NewActivity::new("vectors", "a").retry(RetrySettings::attempts(1))).await;
    server.advance_clock(Duration::from_secs(61));
    assert!(api.claim("vectors", "worker_b", 1).await.is_empty());
    assert_eq!(server.sweep(), (0, 1));
    assert_eq!(server.activity(id).unwrap().status, Status::Failed);
}

#[tokio::test]
async fn the_sweep_requeues_expired_leases_with_retries_left_without_backoff() {
    let (server, api, id) = claimed(NewActivity::new("vectors", "a")).await;
    server.advance_clock(Duration::from_secs(61));
    assert_eq!(server.sweep(), (1, 0));
    assert_eq!(server.activity(id).unwrap().status, Status::Pending);
    assert_eq!(api.claim("vectors", "worker_b", 1).await, [id]);
}

#[tokio::test]
async fn a_retried_failure_waits_out_its_exponential_backoff() {
    let retry = RetrySettings {
        max_attempts: 4,
        strategy: RetryStrategy::Exponential,
        base_seconds: 2,
        factor: 2.0,
        max_seconds: 300,
    };
    let (server, api, id) = claimed(NewActivity::new("vectors", "a").retry(retry)).await;
    for (attempt, backoff) in [(1, 2), (2, 4), (3, 8)] {
        assert_eq!(api.fail(id, WORKER_ID, true).await.json()["will_retry"], true, "attempt {attempt}");
        server.advance_clock(Duration::from_millis(backoff * 1000 - 100));
        assert!(api.claim("vectors", WORKER_ID, 1).await.is_empty(), "still backing off after attempt {attempt}");
        server.advance_clock(Duration::from_millis(200));
        assert_eq!(api.claim("vectors", WORKER_ID, 1).await, [id]);
    }
}

#[tokio::test]
async fn without_a_retry_policy_the_default_is_three_retries() {
    let (server, api, id) = claimed(NewActivity::new("vectors", "a")).await;
    for _ in 0..3 {
        assert_eq!(api.fail(id, WORKER_ID, true).await.json()["will_retry"], true);
        server.advance_clock(Duration::from_secs(301));
        assert_eq!(api.claim("vectors", WORKER_ID, 1).await, [id]);
    }
    assert_eq!(api.fail(id, WORKER_ID, true).await.json()["will_retry"], false);
    assert_eq!(server.wait_for(id).await.expect_failed().attempts, 4);
}

#[tokio::test]
async fn a_delayed_activity_is_invisible_until_due() {
    let server = FakeServer::start().await;
    let id = server.enqueue(NewActivity::new("vectors", "a").delay(Duration::from_secs(30)));
    let api = Api::new(&server);
    assert!(api.claim("vectors", WORKER_ID, 1).await.is_empty());
    server.advance_clock(Duration::from_secs(31));
    assert_eq!(api.claim("vectors", WORKER_ID, 1).await, [id]);
}

#[tokio::test]
async fn heartbeats_renew_the_full_lease() {
    let (server, api, id) = claimed(NewActivity::new("vectors", "a").timeout_seconds(10)).await;
    server.advance_clock(Duration::from_secs(8));
    assert_eq!(api.heartbeat(id, WORKER_ID).await.status, 200);
    server.advance_clock(Duration::from_secs(8));
    assert!(api.claim("vectors", "worker_b", 1).await.is_empty(), "renewed at 8 s, valid until 18 s");
}

#[tokio::test]
async fn a_typo_in_an_enqueued_activity_is_a_400_naming_the_field() {
    let server = kruxiaflow_worker_testing::FakeServer::start().await;
    let api = crate::common::Api::new(&server);
    let typo = serde_json::json!({"worker": "rust", "activity_name": "chat", "setings": {"streaming": true}});
    let reply = api.post("/_fake/activities", typo).await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert!(
        reply.message().starts_with("Bad request: unknown field `setings`, expected one of"),
        "{}",
        reply.message()
    );
    let nested = serde_json::json!({"activity": {"worker": "rust", "retry": {"max_atempts": 2}}, "count": 1});
    let reply = api.post("/_fake/activities/batch", nested).await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert!(reply.message().contains("unknown field `max_atempts`"), "{}", reply.message());
    assert!(reply.message().ends_with("at activity.retry.max_atempts"), "{}", reply.message());
    assert!(server.activities().is_empty(), "nothing was enqueued");
}
