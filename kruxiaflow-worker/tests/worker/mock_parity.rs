//! `MockContext::report` is exactly what the worker sends, case by case, as observed
//! at the fake server.

use kruxiaflow_worker::prelude::*;
use kruxiaflow_worker_testing::{Endpoint, FakeServer, MockContext, NewActivity, RetrySettings};
use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::common::{RunningWorker, config};

/// One activity whose behaviour the parameters choose.
struct Cases;

impl Activity for Cases {
    fn name(&self) -> &str {
        "cases"
    }

    async fn run(&self, params: Value, ctx: ActivityContext) -> Result<ActivityResult, ActivityError> {
        ctx.add_cost(Decimal::new(2, 3));
        ctx.record_usage(UsageEntry::new("openai", "gpt-4o-mini").input_tokens(10).output_tokens(2));
        match params["case"].as_str().unwrap_or_default() {
            "ok" => Ok(ActivityResult::value("n", 1).with_cost(Decimal::new(1, 3))),
            "terminal" => Err(ActivityError::terminal("BAD_INPUT", "no")),
            "retryable" => Err(ActivityError::retryable("UPSTREAM", "503 from upstream")),
            "result_error" => Ok(ActivityResult::error("empty text", "VALIDATION_ERROR", false)),
            "nan" => Ok(ActivityResult::value("ratio", f64::INFINITY)),
            "panic" => panic!("boom"),
            other => Err(ActivityError::terminal("UNKNOWN_CASE", other.to_owned())),
        }
    }
}

#[tokio::test]
async fn the_mocks_report_is_what_the_worker_sends_for_every_case() {
    let server = FakeServer::start().await;
    let config = config(&server);
    let mut registry = ActivityRegistry::new();
    registry.register(Cases, "rust");
    let cases = ["ok", "terminal", "retryable", "result_error", "nan", "panic"];
    // One attempt each: a retried failure would be reported again.
    let enqueue = |case: &str| {
        server
            .enqueue(NewActivity::new("rust", "cases").params(json!({"case": case})).retry(RetrySettings::attempts(1)))
    };
    let ids: Vec<_> = cases.iter().map(|case| enqueue(case)).collect();
    let worker = RunningWorker::start(config.clone(), registry);
    for id in &ids {
        server.wait_for(*id).await;
    }
    worker.stop().await.unwrap();

    for (case, id) in cases.iter().zip(ids) {
        let sent: Vec<_> = server
            .log()
            .all()
            .into_iter()
            .filter(|r| r.activity_id == Some(id) && matches!(r.endpoint, Endpoint::Complete | Endpoint::Fail))
            .collect();
        assert_eq!(sent.len(), 1, "{case}");
        let mock = MockContext::builder("rust", "cases").worker_id(&config.worker_id).build();
        let outcome = mock.run(&Cases, json!({"case": case})).await;
        let report = mock.report(&outcome).expect("the mock reports what the worker reports");
        assert_eq!(sent[0].path.rsplit('/').next(), Some(report.endpoint()), "{case}");
        assert_eq!(sent[0].body.as_ref(), Some(&report.to_json()), "{case}");
    }
}

#[tokio::test]
async fn neither_the_mock_nor_the_worker_reports_after_a_lost_lease() {
    let mock = MockContext::builder("rust", "cases").cancel_after_heartbeats(1).build();
    let ctx = mock.context();
    assert!(ctx.heartbeat().await.is_err());
    let outcome = mock.run(&Cases, json!({"case": "ok"})).await;
    assert!(outcome.is_ok(), "the handler itself returned");
    assert_eq!(mock.report(&outcome), None, "the worker sends nothing once the lease is lost");
}
