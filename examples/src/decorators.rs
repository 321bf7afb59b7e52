//! `#[activity]` on functions, the Rust form of the Python SDK's decorator: default
//! and custom names.

use kruxiaflow_worker::prelude::*;

/// Parameters of [`process_data`].
#[derive(Debug, serde::Deserialize)]
pub struct Items {
    /// Strings to process.
    pub items: Vec<String>,
}

/// Uppercases every item.
#[activity]
pub async fn process_data(params: Items) -> ActivityResult {
    let processed: Vec<String> = params.items.iter().map(|s| s.to_uppercase()).collect();
    ActivityResult::value("processed", processed)
}

/// Registered as `custom_name`, not `my_func`.
#[activity(name = "custom_name")]
pub async fn my_func(params: serde_json::Value, ctx: &ActivityContext) -> Result<ActivityResult, ActivityError> {
    ctx.logger().info(format_args!("called with {params}"));
    Ok(ActivityResult::value("output", "done"))
}

/// Registers this example's activities under `worker`.
pub fn register(registry: &mut ActivityRegistry, worker: &str) {
    registry.register(process_data, worker).register(my_func, worker);
}

#[cfg(test)]
mod tests {
    use super::*;
    use kruxiaflow_worker_testing::MockContext;
    use serde_json::json;

    #[tokio::test]
    async fn process_data_uppercases_the_list() {
        let mock = MockContext::new("rust", "process_data");
        let result = mock.run(&process_data, json!({"items": ["a", "b"]})).await.unwrap();
        assert_eq!(result.output("processed"), Some(&json!(["A", "B"])));
    }

    #[tokio::test]
    async fn my_func_is_registered_under_its_custom_name() {
        let mut registry = ActivityRegistry::new();
        register(&mut registry, "rust");
        assert_eq!(registry.activity_types(), ["rust.process_data", "rust.custom_name"]);
        let result = MockContext::new("rust", "custom_name").run(&my_func, json!({})).await.unwrap();
        assert_eq!(result.output("output"), Some(&json!("done")));
    }
}
