//! The smallest worker: one activity that doubles its input.

use kruxiaflow_worker::prelude::*;

/// Parameters of [`my_activity`].
#[derive(Debug, serde::Deserialize)]
pub struct Double {
    /// The number to double.
    pub input: i64,
}

/// Doubles its input.
#[activity]
pub async fn my_activity(params: Double, ctx: ActivityContext) -> ActivityResult {
    ctx.logger().info(format_args!("doubling {}", params.input));
    ActivityResult::value("result", params.input * 2)
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
    async fn doubles_the_input() {
        let result = MockContext::new("rust", "my_activity").run(&my_activity, json!({"input": 21})).await.unwrap();
        assert_eq!(result.output("result"), Some(&json!(42)));
    }

    #[tokio::test]
    async fn rejects_an_input_that_is_not_a_number() {
        let error = MockContext::new("rust", "my_activity").run(&my_activity, json!({"input": "x"})).await.unwrap_err();
        assert_eq!(error.code(), "INVALID_PARAMETERS");
    }
}
