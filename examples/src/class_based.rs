//! The guide's class-based sample: a struct activity whose configuration is set
//! before registration (`TextProcessor { max_length: 500, language: "es" }`).

use kruxiaflow_worker::prelude::*;

/// Parameters of [`TextProcessor`]: `{"text": s}`.
#[derive(Debug, serde::Deserialize)]
pub struct TextParams {
    /// The text to process.
    pub text: String,
}

/// Cuts text to `max_length` characters, upper-cases it and tags it with a language.
#[derive(Debug, Clone, kruxiaflow_worker::Activity)]
#[activity(name = "process_text")]
pub struct TextProcessor {
    /// Longest text processed, in characters.
    pub max_length: usize,
    /// Language tag added to the result.
    pub language: String,
}

impl Default for TextProcessor {
    /// The guide's defaults: `max_length=1000, language="en"`.
    fn default() -> Self {
        Self { max_length: 1000, language: "en".to_owned() }
    }
}

impl Execute for TextProcessor {
    type Params = TextParams;

    async fn execute(&self, params: TextParams, ctx: &ActivityContext) -> Result<ActivityResult, ActivityError> {
        // Characters, not bytes, as Python's `len` and slicing count them.
        let text: String = params.text.chars().take(self.max_length).collect();
        ctx.logger().info(format_args!("Processing {} chars in {}", text.chars().count(), self.language));
        Ok(ActivityResult::value(
            "result",
            serde_json::json!({"processed": text.to_uppercase(), "language": self.language}),
        ))
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
    async fn text_is_upper_cased_and_tagged_as_the_guide_does() {
        let processor = TextProcessor { max_length: 500, language: "es".into() };
        let mock = MockContext::new("rust", "process_text");
        let result = mock.run(&processor, json!({"text": "hola mundo"})).await.unwrap();
        assert_eq!(result.outputs().len(), 1);
        assert_eq!(result.output("result"), Some(&json!({"processed": "HOLA MUNDO", "language": "es"})));
        let logs: Vec<(LogLevel, String)> = mock.logs().into_iter().map(|l| (l.level, l.message)).collect();
        assert_eq!(logs, [(LogLevel::Info, "Processing 10 chars in es".to_owned())]);
    }

    #[tokio::test]
    async fn text_is_cut_to_max_length_characters() {
        let processor = TextProcessor { max_length: 500, language: "es".into() };
        let mock = MockContext::new("rust", "process_text");
        let long = "ñ".repeat(600);
        let result = mock.run(&processor, json!({"text": long})).await.unwrap();
        assert_eq!(result.output("result"), Some(&json!({"processed": "Ñ".repeat(500), "language": "es"})));
        assert_eq!(mock.logs()[0].message, "Processing 500 chars in es");
    }

    #[test]
    fn defaults_are_the_guides() {
        let processor = TextProcessor::default();
        assert_eq!((processor.max_length, processor.language.as_str()), (1000, "en"));
    }
}
