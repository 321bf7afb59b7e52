//! Results and errors: one value, several outputs, cost and usage, and the three ways
//! to fail.

use kruxiaflow_worker::prelude::*;
use rust_decimal::dec;

/// Parameters shared by the examples below.
#[derive(Debug, serde::Deserialize)]
pub struct Text {
    /// Some text.
    pub text: String,
}

/// One named value.
#[activity]
pub async fn single_value(params: Text) -> ActivityResult {
    ActivityResult::value("length", params.text.len())
}

/// Several named outputs.
#[activity]
pub async fn multiple_outputs(params: Text) -> ActivityResult {
    let words = params.text.split_whitespace().count();
    ActivityResult::values(vec![
        ActivityOutput::value("summary", format!("{words} words")),
        ActivityOutput::value("count", words),
    ])
}

/// A result with a cost ($0.015) and the usage of one LLM call.
#[activity]
pub async fn with_cost(params: Text) -> ActivityResult {
    let usage =
        UsageEntry::new("anthropic", "claude-sonnet-5").input_tokens(params.text.len() as u32).output_tokens(120);
    ActivityResult::value("summary", "a short summary").with_cost(dec!(0.015)).with_usage([usage])
}

/// Fails without retries via an error result (the Python SDK's form).
#[activity]
pub async fn validate_input(params: Text) -> ActivityResult {
    if params.text.trim().is_empty() {
        return ActivityResult::error("text must not be empty", "VALIDATION_ERROR", false);
    }
    ActivityResult::value("valid", true)
}

/// Fails by returning an `ActivityError` (the idiomatic form).
#[activity]
pub async fn returns_error(params: Text) -> Result<ActivityResult, ActivityError> {
    if params.text.len() > 10_000 {
        return Err(ActivityError::terminal("TOO_LONG", "text is longer than 10000 bytes"));
    }
    Err(ActivityError::retryable("UPSTREAM_UNAVAILABLE", "the scoring service is down"))
}

/// Parameters of [`parse_number`].
#[derive(Debug, serde::Deserialize)]
pub struct Number {
    /// A number, as text.
    pub value: String,
}

/// `?` on any error: a retryable `EXECUTION_ERROR` carrying the error's message.
#[activity]
pub async fn parse_number(params: Number) -> Result<ActivityResult, ActivityError> {
    let parsed: f64 = params.value.trim().parse()?;
    Ok(ActivityResult::value("value", parsed))
}

/// Registers this example's activities under `worker`.
pub fn register(registry: &mut ActivityRegistry, worker: &str) {
    registry
        .register(single_value, worker)
        .register(multiple_outputs, worker)
        .register(with_cost, worker)
        .register(validate_input, worker)
        .register(returns_error, worker)
        .register(parse_number, worker);
}

#[cfg(test)]
mod tests {
    use super::*;
    use kruxiaflow_worker_testing::MockContext;
    use serde_json::json;

    async fn run(activity: &impl Activity, params: serde_json::Value) -> Result<ActivityResult, ActivityError> {
        MockContext::new("rust", activity.name()).run(activity, params).await
    }

    #[tokio::test]
    async fn values_and_outputs() {
        let one = run(&single_value, json!({"text": "abc"})).await.unwrap();
        assert_eq!(one.output("length"), Some(&json!(3)));
        let many = run(&multiple_outputs, json!({"text": "a b c"})).await.unwrap();
        assert_eq!((many.output("summary"), many.output("count")), (Some(&json!("3 words")), Some(&json!(3))));
    }

    #[tokio::test]
    async fn cost_and_usage_are_reported_with_the_result() {
        let mock = MockContext::builder("rust", "with_cost").worker_id("w").build();
        let outcome = mock.run(&with_cost, json!({"text": "hello"})).await;
        let body = mock.report(&outcome).expect("reported").to_json();
        assert_eq!(body["cost_usd"], "0.015");
        assert_eq!(body["usage"][0]["input_tokens"], 5);
    }

    #[tokio::test]
    async fn the_three_ways_to_fail() {
        let result = run(&validate_input, json!({"text": " "})).await.unwrap();
        let failure = result.failure().unwrap();
        assert_eq!((failure.code(), failure.is_retryable()), ("VALIDATION_ERROR", false));

        let error = run(&returns_error, json!({"text": "ok"})).await.unwrap_err();
        assert_eq!((error.code(), error.is_retryable()), ("UPSTREAM_UNAVAILABLE", true));

        let error = run(&parse_number, json!({"value": "twelve"})).await.unwrap_err();
        assert_eq!(
            (error.code(), error.message(), error.is_retryable()),
            ("EXECUTION_ERROR", "invalid float literal", true)
        );
    }
}
