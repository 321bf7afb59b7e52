//! OAuth client credentials: one fetch for many callers, refresh before expiry and on 401.

use std::time::Duration;

use kruxiaflow_worker::prelude::*;
use kruxiaflow_worker_testing::{Endpoint, FakeServer, NewActivity};

use crate::common::{RunningWorker, activity, config, echo};

async fn auth_server(lifetime: Duration) -> FakeServer {
    FakeServer::builder()
        .auth("my-worker", "s3cret")
        .token_lifetime(lifetime)
        .token_leeway(Duration::ZERO)
        .start()
        .await
}

#[tokio::test]
async fn a_token_that_expires_mid_run_is_refreshed_without_a_failed_activity() {
    let server = auth_server(Duration::from_secs(3600)).await;
    let mut registry = ActivityRegistry::new();
    registry.register(echo(), "rust");
    let config = config(&server).with_credentials("my-worker", "s3cret");
    let worker = RunningWorker::start(config, registry);
    let first = server.enqueue(NewActivity::new("rust", "echo"));
    server.wait_for(first).await.expect_completed();

    server.expire_tokens();
    let second = server.enqueue(NewActivity::new("rust", "echo"));
    server.wait_for(second).await.expect_completed();
    worker.stop().await.unwrap();

    assert_eq!(server.log().to(Endpoint::Token).len(), 2, "one fetch at start, one after the 401");
    assert!(server.log().to(Endpoint::Fail).is_empty());
}

#[tokio::test]
async fn tokens_are_refreshed_before_they_expire() {
    let server = auth_server(Duration::from_secs(2)).await;
    let mut registry = ActivityRegistry::new();
    registry.register(echo(), "rust");
    let worker = RunningWorker::start(config(&server).with_credentials("my-worker", "s3cret"), registry);

    tokio::time::sleep(Duration::from_millis(2500)).await;
    worker.stop().await.unwrap();

    assert!(server.log().to(Endpoint::Token).len() >= 2, "the token was renewed at half-life");
    let refused: Vec<_> = server.log().all().into_iter().filter(|r| r.status == 401).collect();
    assert!(refused.is_empty(), "no request went out with an expired token: {refused:?}");
}

#[tokio::test]
async fn concurrent_callers_share_one_token_fetch() {
    let server = auth_server(Duration::from_secs(3600)).await;
    let mut registry = ActivityRegistry::new();
    registry.register(
        activity("beat", |_p, ctx| async move {
            ctx.heartbeat().await?;
            Ok(ActivityResult::empty())
        }),
        "rust",
    );
    registry.register(echo(), "other");
    registry.register(echo(), "third");
    for _ in 0..10 {
        server.enqueue(NewActivity::new("rust", "beat"));
    }
    let worker = RunningWorker::start(config(&server).with_credentials("my-worker", "s3cret"), registry);

    server.wait_until_idle().await;
    worker.stop().await.unwrap();

    assert_eq!(server.log().to(Endpoint::Token).len(), 1, "three pollers and ten heartbeats, one token fetch");
}

#[tokio::test]
async fn refused_credentials_stop_the_worker_at_startup_naming_the_variables_and_nothing_is_claimed() {
    let server = auth_server(Duration::from_secs(3600)).await;
    let mut registry = ActivityRegistry::new();
    registry.register(echo(), "rust");
    let id = server.enqueue(NewActivity::new("rust", "echo"));
    let worker = RunningWorker::start(config(&server).with_credentials("my-worker", "wrong"), registry);

    let error = tokio::time::timeout(Duration::from_secs(10), worker.join()).await.expect("fails fast").unwrap_err();
    assert_eq!(
        format!("{error:?}"),
        "cannot start: authentication failed: the token endpoint refused client 'my-worker' (401): Unauthorized: \
         Invalid client credentials; check KRUXIAFLOW_CLIENT_ID and KRUXIAFLOW_CLIENT_SECRET"
    );
    assert!(server.log().to(Endpoint::Poll).is_empty(), "no request without a token");
    assert!(server.log().to(Endpoint::Token).iter().all(|r| r.status == 401));
    assert_eq!(server.activity(id).unwrap().claims, 0);
}
