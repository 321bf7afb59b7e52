//! The guide's quick start: `my_activity` doubles `input`.

use kruxiaflow_worker::prelude::*;

/// Parameters of [`my_activity`]: `{"input": n}`.
#[derive(Debug, serde::Deserialize)]
pub struct Double {
    /// The number to double: an integer or a decimal number, as in the guide.
    pub input: serde_json::Number,
}

/// Doubles its input: `result` is `input * 2`, an integer for an integer input.
#[activity]
pub async fn my_activity(params: Double) -> ActivityResult {
    match params.input.as_i64().and_then(|n| n.checked_mul(2)) {
        Some(doubled) => ActivityResult::value("result", doubled),
        // Python's numbers never overflow; past i64 the double is a float, like
        // Python's `float * 2`.
        None => ActivityResult::value("result", params.input.as_f64().unwrap_or(f64::NAN) * 2.0),
    }
}

/// Registers this example's activities under `worker`.
pub fn register(registry: &mut ActivityRegistry, worker: &str) {
    registry.register(my_activity, worker);
}

#[cfg(test)]
mod tests {
    use super::*;
    use kruxiaflow_worker_testing::MockContext;
    use serde_json::json;

    #[tokio::test]
    async fn doubles_the_input_as_the_guide_does() {
        let mock = MockContext::new("rust", "my_activity");
        let result = mock.run(&my_activity, json!({"input": 21})).await.unwrap();
        assert_eq!(result.output("result"), Some(&json!(42)));
        let result = mock.run(&my_activity, json!({"input": 1.25})).await.unwrap();
        assert_eq!(result.output("result"), Some(&json!(2.5)));
        let result = mock.run(&my_activity, json!({"input": i64::MAX})).await.unwrap();
        assert_eq!(result.output("result"), Some(&json!(i64::MAX as f64 * 2.0)));
    }

    #[tokio::test]
    async fn rejects_an_input_that_is_not_a_number() {
        let error = MockContext::new("rust", "my_activity").run(&my_activity, json!({"input": "x"})).await.unwrap_err();
        assert_eq!(error.code(), "INVALID_PARAMETERS");
    }
}
