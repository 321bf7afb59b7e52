//! What the worker puts on the wire has the shape of the requests captured from
//! real clients (field names, decimals as strings, optional fields omitted).

use kruxiaflow_worker::prelude::*;
use kruxiaflow_worker_testing::conformance::{load_exchanges, shape_mismatch};
use kruxiaflow_worker_testing::{Endpoint, FakeServer, NewActivity, RetrySettings};
use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::common::{RunningWorker, activity, config};

fn captured_request(name: &str) -> Value {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../kruxiaflow-worker-testing/tests/fixtures/protocol");
    let exchanges = load_exchanges(dir).unwrap();
    exchanges.into_iter().find(|e| e.name == name).unwrap_or_else(|| panic!("no fixture {name}")).request.body
}

#[tokio::test]
async fn poll_heartbeat_complete_and_fail_bodies_match_the_captured_shapes() {
    let server = FakeServer::start().await;
    let mut registry = ActivityRegistry::new();
    registry.register(
        activity("echo", |params, ctx| async move {
            ctx.heartbeat().await?;
            ctx.record_usage(UsageEntry::new("acme", "nonexistent-1").input_tokens(1200).output_tokens(50));
            Ok(ActivityResult::value("echoed", params["message"].clone()).with_cost(Decimal::new(40, 4)))
        }),
        "vectors",
    );
    registry.register(
        activity("render", |_p, _c| async {
            Err(ActivityError::retryable("UPSTREAM_5XX", "render service returned 503").with_cost(Decimal::new(1, 3)))
        }),
        "vectors",
    );
    let greet = server.enqueue(NewActivity::new("vectors", "echo").params(json!({"message": "hello from Rust"})));
    let render = server.enqueue(NewActivity::new("vectors", "render").retry(RetrySettings::attempts(1)));
    let worker = RunningWorker::start(config(&server), registry);
    server.wait_for(greet).await.expect_completed();
    server.wait_for(render).await.expect_failed();
    worker.stop().await.unwrap();

    let sent = |endpoint: Endpoint| server.log().to(endpoint)[0].body.clone().unwrap();
    let pairs = [
        ("poll-two-items", sent(Endpoint::Poll)),
        ("heartbeat-ok", sent(Endpoint::Heartbeat)),
        ("complete-ok-usage", sent(Endpoint::Complete)),
        ("fail-retryable", sent(Endpoint::Fail)),
    ];
    for (fixture, body) in pairs {
        if let Some(mismatch) = shape_mismatch(&captured_request(fixture), &body) {
            panic!("{fixture}: our request differs at {mismatch}: {body}");
        }
    }
}
