//! A struct activity: configuration lives in the struct, set before registration.

use kruxiaflow_worker::prelude::*;

/// Parameters of [`TextProcessor`].
#[derive(Debug, serde::Deserialize)]
pub struct TextParams {
    /// The text to process.
    pub text: String,
}

/// Cuts text to `max_length` characters and tags it with a language.
#[derive(Debug, Clone, kruxiaflow_worker::Activity)]
#[activity(name = "process_text")]
pub struct TextProcessor {
    /// Longest text returned, in characters.
    pub max_length: usize,
    /// Language tag added to the result.
    pub language: String,
}

impl Execute for TextProcessor {
    type Params = TextParams;

    async fn execute(&self, params: TextParams, ctx: &ActivityContext) -> Result<ActivityResult, ActivityError> {
        let total = params.text.chars().count();
        let text: String = params.text.chars().take(self.max_length).collect();
        if total > self.max_length {
            ctx.logger().warning(format_args!("cut {} characters", total - self.max_length));
        }
        Ok(ActivityResult::values(vec![
            ActivityOutput::value("text", text),
            ActivityOutput::value("language", &self.language),
            ActivityOutput::value("truncated", total > self.max_length),
        ]))
    }
}

/// Registers this example's activities under `worker`.
pub fn register(registry: &mut ActivityRegistry, worker: &str) {
    registry.register(TextProcessor { max_length: 500, language: "es".into() }, worker);
}

#[cfg(test)]
mod tests {
    use super::*;
    use kruxiaflow_worker_testing::{LogLevel, MockContext};
    use serde_json::json;

    #[tokio::test]
    async fn text_is_cut_to_the_configured_length() {
        let processor = TextProcessor { max_length: 4, language: "es".into() };
        let mock = MockContext::new("rust", "process_text");
        let result = mock.run(&processor, json!({"text": "hola mundo"})).await.unwrap();
        assert_eq!(result.output("text"), Some(&json!("hola")));
        assert_eq!(result.output("language"), Some(&json!("es")));
        assert_eq!(result.output("truncated"), Some(&json!(true)));
        assert_eq!(mock.logs()[0].level, LogLevel::Warning);
    }
}
