//! The guide's `@activity` samples: `#[activity]` on functions, with the default name
//! (`process_data`) and a custom one (`my_func` registered as `custom_name`).

use kruxiaflow_worker::prelude::*;

/// Parameters of [`process_data`]: `{"data": ["a", "b"]}`.
#[derive(Debug, serde::Deserialize)]
pub struct Data {
    /// Strings to process.
    pub data: Vec<String>,
}

/// Upper-cases every item: `result` is the upper-cased list.
#[activity]
pub async fn process_data(params: Data) -> ActivityResult {
    let processed: Vec<String> = params.data.iter().map(|item| item.to_uppercase()).collect();
    ActivityResult::value("result", processed)
}

/// Registered as `custom_name`, not `my_func`; takes no parameters, `output` is `"done"`.
#[activity(name = "custom_name")]
pub async fn my_func() -> ActivityResult {
    ActivityResult::value("output", "done")
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
    async fn process_data_upper_cases_the_list() {
        let mock = MockContext::new("rust", "process_data");
        let result = mock.run(&process_data, json!({"data": ["a", "b"]})).await.unwrap();
        assert_eq!(result.outputs().len(), 1);
        assert_eq!(result.output("result"), Some(&json!(["A", "B"])));
    }

    #[tokio::test]
    async fn my_func_is_registered_under_its_custom_name() {
        let mut registry = ActivityRegistry::new();
        register(&mut registry, "rust");
        assert_eq!(registry.activity_types(), ["rust.process_data", "rust.custom_name"]);
        let result = MockContext::new("rust", "custom_name").run(&my_func, json!({})).await.unwrap();
        assert_eq!(result.outputs().len(), 1);
        assert_eq!(result.output("output"), Some(&json!("done")));
    }
}
