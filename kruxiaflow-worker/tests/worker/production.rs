//! What production does to a worker: a proxy answering for a server that restarts
//! behind it, a rotated secret, a streaming endpoint that refuses the worker's token.
//! Each test is named for the promise that must hold.

use std::time::Duration;

use kruxiaflow_worker::Credentials;
use kruxiaflow_worker::prelude::*;
use kruxiaflow_worker_testing::{Endpoint, FakeServer, Fault, NewActivity, RetrySettings};
use serde_json::json;

use crate::common::{RunningWorker, activity, config, echo, eventually};

fn registry(activity: impl Activity) -> ActivityRegistry {
    let mut registry = ActivityRegistry::new();
    registry.register(activity, "rust");
    registry
}

fn faulted(server: &FakeServer, endpoint: Endpoint, fault: Fault) -> usize {
    server.log().to(endpoint).iter().filter(|r| r.fault == Some(fault)).count()
}

#[tokio::test]
async fn a_proxys_404_on_a_completion_does_not_drop_the_finished_result() {
    let server = FakeServer::start().await;
    let id = server.enqueue(NewActivity::new("rust", "echo").params(json!({"n": 7})));
    server.faults().inject(Endpoint::Complete, Fault::ProxyStatus(404), 3);
    let worker = RunningWorker::start(config(&server), registry(echo()));

    let completion = server.wait_for(id).await.expect_completed();
    worker.stop().await.unwrap();

    assert_eq!(completion.output["echo"], json!({"n": 7}));
    assert_eq!(faulted(&server, Endpoint::Complete, Fault::ProxyStatus(404)), 3);
    assert_eq!(server.log().to(Endpoint::Complete).len(), 4, "three proxy answers, then the server's");
}

#[tokio::test]
async fn a_proxys_404_on_a_heartbeat_does_not_stop_that_leases_heartbeats() {
    let server = FakeServer::start().await;
    let held = activity("held", |_p, ctx| async move {
        ctx.cancelled().await;
        Ok(ActivityResult::empty())
    });
    let id = server.enqueue(NewActivity::new("rust", "held"));
    // Every try of one heartbeat (the first and its four retries) gets the proxy's 404.
    server.faults().inject(Endpoint::Heartbeat, Fault::ProxyStatus(404), 5);
    let config = WorkerConfig { heartbeat_interval: Duration::from_secs(1), ..config(&server) };
    let worker = RunningWorker::start(config, registry(held));

    let heartbeats_after_the_404s = || {
        let log = server.log().to(Endpoint::Heartbeat);
        let last_404 = log.iter().rposition(|r| r.fault == Some(Fault::ProxyStatus(404)));
        last_404.map_or(0, |at| log[at + 1..].iter().filter(|r| r.status == 200).count())
    };
    eventually("two heartbeats after the proxy's 404s", || heartbeats_after_the_404s() >= 2).await;
    assert_eq!(server.activity(id).unwrap().claims, 1);
    worker.stop().await.unwrap();
    assert_eq!(faulted(&server, Endpoint::Heartbeat, Fault::ProxyStatus(404)), 5);
}

#[tokio::test]
async fn a_proxys_404s_at_startup_are_waited_out() {
    let server = FakeServer::start().await;
    let id = server.enqueue(NewActivity::new("rust", "echo"));
    server.faults().inject(Endpoint::Poll, Fault::ProxyStatus(404), 5);
    let worker = RunningWorker::start(config(&server), registry(echo()));

    server.wait_for(id).await.expect_completed();
    worker.stop().await.unwrap();
    assert_eq!(faulted(&server, Endpoint::Poll, Fault::ProxyStatus(404)), 5);
}

#[tokio::test]
async fn a_proxys_401s_from_the_token_endpoint_at_startup_are_waited_out() {
    let server = FakeServer::builder().auth("my-worker", "s3cret").start().await;
    let id = server.enqueue(NewActivity::new("rust", "echo"));
    server.faults().inject(Endpoint::Token, Fault::ProxyStatus(401), 3);
    let worker = RunningWorker::start(config(&server).with_credentials("my-worker", "s3cret"), registry(echo()));

    server.wait_for(id).await.expect_completed();
    worker.stop().await.unwrap();
    assert_eq!(faulted(&server, Endpoint::Token, Fault::ProxyStatus(401)), 3);
}

#[tokio::test]
async fn a_rotated_client_secret_file_is_read_again_when_the_server_refuses_the_old_secret() {
    let server = FakeServer::builder().auth("my-worker", "first").start().await;
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("client-secret");
    std::fs::write(&secret_file, "first\n").unwrap();
    let credentials = Credentials::from_secret_file("my-worker", &secret_file).unwrap();
    let worker =
        RunningWorker::start(WorkerConfig { credentials: Some(credentials), ..config(&server) }, registry(echo()));
    let before = server.enqueue(NewActivity::new("rust", "echo"));
    server.wait_for(before).await.expect_completed();

    // The operator rotates the secret: the mount changes in place, old tokens go.
    server.rotate_client_secret("second");
    std::fs::write(&secret_file, "second\n").unwrap();
    server.revoke_tokens();
    let after = server.enqueue(NewActivity::new("rust", "echo"));
    server.wait_for(after).await.expect_completed();
    worker.stop().await.unwrap();

    let statuses: Vec<u16> = server.log().to(Endpoint::Token).iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 401, 200], "the old secret refused once, then the file's new one taken");
}

#[tokio::test]
async fn a_streaming_endpoint_refusing_the_token_disables_the_stream_and_fetches_no_token() {
    let server = FakeServer::builder().auth("my-worker", "s3cret").start().await;
    server.faults().inject(Endpoint::StreamSubscribers, Fault::Status(401), 1000);
    let talker = activity("talker", |_p, ctx| async move {
        let stream = ctx.stream();
        for word in ["a", "b", "c"] {
            stream.send(word);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(ActivityResult::value("said", "abc"))
    });
    let ids: Vec<_> = (0..5).map(|_| server.enqueue(NewActivity::new("rust", "talker").streaming(true))).collect();
    let worker = RunningWorker::start(config(&server).with_credentials("my-worker", "s3cret"), registry(talker));

    for id in ids {
        server.wait_for(id).await.expect_completed();
    }
    worker.stop().await.unwrap();

    assert_eq!(server.log().to(Endpoint::Token).len(), 1, "the stream's 401s cost no token fetch");
    assert!(faulted(&server, Endpoint::StreamSubscribers, Fault::Status(401)) >= 5, "every stream was refused");
}

#[tokio::test]
async fn ten_thousand_heartbeats_in_a_loop_cost_the_server_one_request() {
    let server = FakeServer::start().await;
    let beater = activity("beater", |_p, ctx| async move {
        for _ in 0..10_000 {
            ctx.heartbeat().await?;
        }
        Ok(ActivityResult::empty())
    });
    let id = server.enqueue(NewActivity::new("rust", "beater"));
    let worker = RunningWorker::start(config(&server), registry(beater));
    server.wait_for(id).await.expect_completed();
    worker.stop().await.unwrap();
    assert_eq!(server.log().to(Endpoint::Heartbeat).len(), 1, "the first call goes out, the rest are answered here");
}

#[tokio::test]
async fn a_lost_lease_still_surfaces_through_throttled_heartbeats() {
    let server = FakeServer::start().await;
    let (tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
    let beater = activity("beater", move |_p, ctx| {
        let tx = tx.clone();
        async move {
            loop {
                if let Err(error) = ctx.heartbeat().await {
                    let _ = tx.send(error.code().to_owned());
                    return Err(error);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    });
    let id = server.enqueue(NewActivity::new("rust", "beater"));
    let config = WorkerConfig { heartbeat_interval: Duration::from_secs(1), ..config(&server) };
    let worker = RunningWorker::start(config, registry(beater));
    server.wait_until(Duration::from_secs(10), || server.running_activities().contains(&id).then_some(())).await;
    assert!(server.reassign(id));
    let code = tokio::time::timeout(Duration::from_secs(10), seen.recv()).await.expect("the loss surfaces").unwrap();
    worker.stop().await.unwrap();
    assert_eq!(code, "LEASE_LOST");
    let beats = server.log().to(Endpoint::Heartbeat).len();
    assert!(beats <= 4, "at most one heartbeat a second while the loop ran: {beats}");
}

/// Sends a token, then blocks its thread (as CPU-bound code does) until released.
fn stuck_streamer() -> impl Activity {
    activity("stuck", |_p, ctx| async move {
        ctx.stream().send("thinking…");
        ctx.stream().flush().await;
        std::thread::sleep(Duration::from_secs(3));
        Ok(ActivityResult::value("said", "late"))
    })
}

fn position(server: &FakeServer, id: uuid::Uuid, endpoint: Endpoint) -> Option<usize> {
    server.log().all().iter().position(|r| r.activity_id == Some(id) && r.endpoint == endpoint)
}

#[tokio::test]
async fn a_shutdown_during_streaming_ends_the_stream_before_the_failure_is_reported() {
    let server = FakeServer::start().await;
    let stuck = NewActivity::new("rust", "stuck").streaming(true);
    let id = server.enqueue(stuck.retry(RetrySettings::attempts(1)));
    server.set_stream_subscribers(id, 1);
    let worker = RunningWorker::start(config(&server), registry(stuck_streamer()));
    eventually("the token is sent", || position(&server, id, Endpoint::StreamToken).is_some()).await;
    worker.handle.shutdown_now();
    worker.join().await.unwrap();

    let outcome = server.wait_for(id).await;
    assert_eq!(outcome.failed().unwrap().code, "WORKER_SHUTDOWN");
    let ended = position(&server, id, Endpoint::StreamError).expect("subscribers are told");
    let failed = position(&server, id, Endpoint::Fail).unwrap();
    assert!(ended < failed, "ws/error (#{ended}) before /fail (#{failed})");
}

#[tokio::test]
async fn a_slow_streaming_endpoint_still_ends_the_stream_before_the_completion() {
    let server = FakeServer::start().await;
    let talker = activity("talker", |_p, ctx| async move {
        for word in ["one ", "two ", "three"] {
            ctx.stream().send(word);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(ActivityResult::value("said", "one two three"))
    });
    let id = server.enqueue(NewActivity::new("rust", "talker").streaming(true));
    server.set_stream_subscribers(id, 1);
    server.faults().set_latency(Endpoint::StreamToken, Duration::from_secs(5));
    let worker = RunningWorker::start(config(&server), registry(talker));
    server.wait_for(id).await.expect_completed();
    worker.stop().await.unwrap();

    let ended = position(&server, id, Endpoint::StreamComplete).expect("subscribers are told");
    let completed = position(&server, id, Endpoint::Complete).unwrap();
    assert!(ended < completed, "ws/complete (#{ended}) before /complete (#{completed})");
}

#[tokio::test]
async fn a_stream_whose_first_send_overflows_still_ends_before_the_completion() {
    let server = FakeServer::start().await;
    let flood = activity("flood", |_p, ctx| async move {
        ctx.stream().send("x".repeat(2 * 1024 * 1024));
        Ok(ActivityResult::value("said", "too much"))
    });
    let id = server.enqueue(NewActivity::new("rust", "flood").streaming(true));
    server.set_stream_subscribers(id, 1);
    let worker = RunningWorker::start(config(&server), registry(flood));
    server.wait_for(id).await.expect_completed();
    worker.stop().await.unwrap();

    let ended = position(&server, id, Endpoint::StreamComplete).expect("subscribers are told");
    let completed = position(&server, id, Endpoint::Complete).unwrap();
    assert!(ended < completed, "ws/complete (#{ended}) before /complete (#{completed})");
    assert_eq!(server.log().to(Endpoint::StreamToken).len(), 0, "the text over the cap is dropped");
}
