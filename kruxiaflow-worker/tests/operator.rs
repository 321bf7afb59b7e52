//! The operator listener under production's conditions: a busy worker under a liveness
//! probe, an autoscaler reading the free slots, scanners holding connections open. Its
//! own test binary, apart from `operations.rs`, whose exact counts these runs would
//! change (the Prometheus recorder is global to the process).

use std::time::Duration;

use kruxiaflow_worker::prelude::*;
use kruxiaflow_worker::{WorkerHandle, WorkerManager};
use kruxiaflow_worker_testing::{Endpoint, FakeServer, NewActivity, RetrySettings};
use tokio::sync::Mutex;

mod support;
use support::{config, get, held, listener, still, value};

/// One test at a time: they share the process's recorder.
static SERIAL: Mutex<()> = Mutex::const_new(());

fn start(
    config: WorkerConfig,
    registry: ActivityRegistry,
) -> (WorkerHandle, tokio::task::JoinHandle<Result<(), WorkerError>>) {
    let manager = WorkerManager::new(config, registry);
    let handle = manager.handle();
    (handle, tokio::spawn(manager.run(std::future::pending())))
}

#[tokio::test]
async fn slots_free_counts_only_the_slots_running_an_activity() {
    let _serial = SERIAL.lock().await;
    let server = FakeServer::start().await;
    let worker = "ops_slots";
    let running: Vec<_> = (0..3).map(|_| server.enqueue(NewActivity::new(worker, "held"))).collect();
    let mut registry = ActivityRegistry::new();
    registry.register(held, worker);
    let (handle, run) = start(config(&server, worker), registry);
    let base = listener(&handle).await;
    server
        .wait_until(Duration::from_secs(10), || {
            let now = server.running_activities();
            running.iter().all(|id| now.contains(id)).then_some(())
        })
        .await
        .expect("the three activities run");
    // Every later poll hangs, holding the 13 free slots while it is in flight.
    server.faults().set_latency(Endpoint::Poll, Duration::from_secs(3600));
    let samples = still(&base).await;
    assert_eq!(value(&samples, "kruxiaflow_worker_slots_free", &[]), 13.0);
    assert_eq!(value(&samples, "kruxiaflow_worker_activities_in_flight", &[("worker", worker)]), 3.0);
    handle.shutdown_now();
    run.await.unwrap().unwrap();
}

/// Blocks its activity thread, as CPU-bound or blocking code does, for 20 s.
#[activity]
async fn blocking() -> ActivityResult {
    std::thread::sleep(Duration::from_secs(20));
    ActivityResult::value("ok", true)
}

#[tokio::test]
async fn a_worker_whose_activity_threads_are_all_blocked_is_still_alive() {
    let _serial = SERIAL.lock().await;
    let server = FakeServer::start().await;
    let worker = "ops_blocked";
    let threads = std::thread::available_parallelism().map_or(2, usize::from);
    let blockers: Vec<_> = (0..threads).map(|_| server.enqueue(NewActivity::new(worker, "blocking"))).collect();
    let mut registry = ActivityRegistry::new();
    registry.register(blocking, worker);
    // A short HTTP timeout: a rule judging liveness by how long a poll has been in
    // flight would fail within 2 × 0.5 + 15 s.
    let config = WorkerConfig {
        http_timeout: Duration::from_millis(500),
        max_concurrent_activities: threads + 4,
        ..config(&server, worker)
    };
    let (handle, run) = start(config, registry);
    let base = listener(&handle).await;
    server
        .wait_until(Duration::from_secs(10), || {
            let running = server.running_activities();
            blockers.iter().all(|id| running.contains(id)).then_some(())
        })
        .await
        .expect("every activity thread blocks");
    tokio::time::sleep(Duration::from_secs(17)).await;
    assert_eq!(get(&format!("{base}/healthz")).await, (200, "ok\n".to_owned()));
    for id in &blockers {
        server
            .wait_for_timeout(*id, Duration::from_secs(10))
            .await
            .expect("the blocked activities finish")
            .expect_completed();
    }
    handle.shutdown();
    run.await.unwrap().unwrap();
}

#[tokio::test]
async fn activity_names_the_worker_did_not_register_share_one_label_value() {
    let _serial = SERIAL.lock().await;
    let server = FakeServer::start().await;
    let worker = "ops_names";
    let ids: Vec<_> = (0..300)
        .map(|n| server.enqueue(NewActivity::new(worker, format!("made_up_{n}")).retry(RetrySettings::attempts(1))))
        .collect();
    let mut registry = ActivityRegistry::new();
    registry.register(held, worker);
    let config = WorkerConfig { max_concurrent_activities: 32, poll_max_activities: 32, ..config(&server, worker) };
    let (handle, run) = start(config, registry);
    let base = listener(&handle).await;
    for id in ids {
        server.wait_for_timeout(id, Duration::from_secs(20)).await.expect("each one is failed").expect_failed();
    }
    server.faults().set_latency(Endpoint::Poll, Duration::from_secs(3600));
    let samples = still(&base).await;
    handle.shutdown_now();
    run.await.unwrap().unwrap();

    let labels =
        [("worker", worker), ("activity", "unregistered"), ("outcome", "failed"), ("code", "ACTIVITY_NOT_FOUND")];
    assert_eq!(value(&samples, "kruxiaflow_worker_activities_finished_total", &labels), 300.0);
    let named: Vec<_> =
        samples.keys().filter(|(_, labels)| labels.values().any(|v| v.starts_with("made_up_"))).collect();
    assert!(named.is_empty(), "{named:?}");
}
