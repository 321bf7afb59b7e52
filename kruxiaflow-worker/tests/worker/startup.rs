//! Startup: what can never work stops the worker at once, naming the variable to fix;
//! what may be transient (no server yet) is waited out.

use std::time::Duration;

use kruxiaflow_worker::prelude::*;
use kruxiaflow_worker_testing::{Endpoint, FakeServer, NewActivity};

use crate::common::{RunningWorker, config, echo};

fn registry() -> ActivityRegistry {
    let mut registry = ActivityRegistry::new();
    registry.register(echo(), "rust");
    registry
}

async fn fails_fast(worker: RunningWorker) -> String {
    let joined = tokio::time::timeout(Duration::from_secs(10), worker.join()).await.expect("the worker stops at once");
    format!("{:?}", joined.unwrap_err())
}

#[tokio::test]
async fn an_api_url_with_a_path_stops_the_worker_naming_the_variable() {
    let server = FakeServer::start().await;
    let api_url = format!("{}/api/v1", server.url());
    let worker = RunningWorker::start(WorkerConfig { api_url: api_url.clone(), ..config(&server) }, registry());
    assert_eq!(
        fails_fast(worker).await,
        format!(
            "cannot start: {api_url}/api/v1/workers/poll answered 404: the server has no such route; \
             KRUXIAFLOW_API_URL ({api_url}) must be the server's base URL, without a path such as /api/v1"
        )
    );
}

#[tokio::test]
async fn a_server_that_demands_a_token_stops_a_worker_without_credentials() {
    let server = FakeServer::builder().auth("my-worker", "s3cret").start().await;
    let worker = RunningWorker::start(config(&server), registry());
    assert_eq!(
        fails_fast(worker).await,
        "cannot start: the server requires authentication: set KRUXIAFLOW_CLIENT_ID and KRUXIAFLOW_CLIENT_SECRET \
         (or WorkerConfig::credentials)"
    );
}

#[tokio::test]
async fn an_unparsable_api_url_is_a_configuration_error() {
    let server = FakeServer::start().await;
    for bad in ["http://exa mple.com", "http://127.0.0.1:99999"] {
        let worker = RunningWorker::start(WorkerConfig { api_url: bad.to_owned(), ..config(&server) }, registry());
        assert_eq!(
            fails_fast(worker).await,
            format!("api_url must be an http:// or https:// URL with a valid host and port, got {bad:?}")
        );
    }
}

#[tokio::test]
async fn a_server_that_starts_after_the_worker_is_waited_for() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}");
    let config = WorkerConfig { api_url: url, ..config(&FakeServer::start().await) };
    let worker = RunningWorker::start(config, registry());
    // Connections are refused for a while: the worker keeps trying.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let server = FakeServer::builder().port(port).start().await;
    let id = server.enqueue(NewActivity::new("rust", "echo"));
    server.wait_for(id).await.expect_completed();
    assert!(!server.log().to(Endpoint::Poll).is_empty());
    worker.stop().await.unwrap();
}
