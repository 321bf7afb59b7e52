//! The guide's complete example: keyword sentiment analysis, a paid external API call,
//! and a configured batch processor that heartbeats per batch.

use std::collections::HashSet;
use std::time::Duration;

use kruxiaflow_worker::prelude::*;
use rust_decimal::dec;

/// Parameters of [`analyze_text`]: `{"text": s}`.
#[derive(Debug, serde::Deserialize)]
pub struct AnalyzeParams {
    /// Text to analyze.
    pub text: String,
}

const POSITIVE: [&str; 5] = ["good", "great", "excellent", "happy", "love"];
const NEGATIVE: [&str; 5] = ["bad", "terrible", "awful", "sad", "hate"];

/// Keyword sentiment exactly as the guide computes it: the distinct lower-cased
/// whitespace-separated words are matched against five positive and five negative
/// words; `result` is `{"sentiment", "confidence"}`.
#[activity]
pub async fn analyze_text(params: AnalyzeParams) -> ActivityResult {
    let lowered = params.text.to_lowercase();
    let words: HashSet<&str> = lowered.split_whitespace().collect();
    let positive = POSITIVE.iter().filter(|w| words.contains(*w)).count();
    let negative = NEGATIVE.iter().filter(|w| words.contains(*w)).count();
    let share = |count: usize| count as f64 / (positive + negative + 1) as f64;
    let (sentiment, confidence) = match positive.cmp(&negative) {
        std::cmp::Ordering::Greater => ("positive", share(positive)),
        std::cmp::Ordering::Less => ("negative", share(negative)),
        std::cmp::Ordering::Equal => ("neutral", 0.5),
    };
    ActivityResult::value("result", serde_json::json!({"sentiment": sentiment, "confidence": confidence}))
}

/// Parameters of [`call_external_api`]: `{"url": u, "method": "GET"}`.
#[derive(Debug, serde::Deserialize)]
pub struct ApiParams {
    /// URL to call; the answer must be JSON.
    pub url: String,
    /// HTTP method, `GET` when absent.
    #[serde(default = "default_method")]
    pub method: String,
}

fn default_method() -> String {
    "GET".to_owned()
}

/// Calls an external API; `result` is `{"status", "body"}` with the parsed JSON body,
/// and a successful call costs $0.001. An error status fails the attempt (retryably,
/// like the guide's raised exception).
#[activity]
pub async fn call_external_api(params: ApiParams) -> Result<ActivityResult, ActivityError> {
    let method = reqwest::Method::from_bytes(params.method.as_bytes()).map_err(|_| {
        ActivityError::terminal("INVALID_PARAMETERS", format!("method: {:?} is not an HTTP method", params.method))
    })?;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
    let response = client.request(method, &params.url).send().await?.error_for_status()?;
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await?;
    let cost = dec!(0.001); // $0.001 per request
    Ok(ActivityResult::value("result", serde_json::json!({"status": status, "body": body})).with_cost(cost))
}

/// Parameters of [`BatchProcessor`]: `{"items": ["x", ..]}`.
#[derive(Debug, serde::Deserialize)]
pub struct BatchParams {
    /// Strings to process.
    pub items: Vec<String>,
}

/// Upper-cases items in batches of `batch_size`, heartbeating and logging
/// `Processing batch k` before each; `result` is `{"processed": n, "items": [..]}`.
#[derive(Debug, Clone, kruxiaflow_worker::Activity)]
#[activity(name = "batch_process")]
pub struct BatchProcessor {
    /// Items per batch.
    pub batch_size: usize,
}

impl Default for BatchProcessor {
    /// The guide's default: `batch_size=100`.
    fn default() -> Self {
        Self { batch_size: 100 }
    }
}

impl Execute for BatchProcessor {
    type Params = BatchParams;

    async fn execute(&self, params: BatchParams, ctx: &ActivityContext) -> Result<ActivityResult, ActivityError> {
        if self.batch_size == 0 {
            return Err(ActivityError::terminal("INVALID_CONFIGURATION", "BatchProcessor.batch_size must be above 0"));
        }
        let mut results = Vec::with_capacity(params.items.len());
        for (index, batch) in params.items.chunks(self.batch_size).enumerate() {
            ctx.heartbeat().await?;
            ctx.logger().info(format_args!("Processing batch {}", index + 1));
            results.extend(batch.iter().map(|item| item.to_uppercase()));
        }
        Ok(ActivityResult::value("result", serde_json::json!({"processed": results.len(), "items": results})))
    }
}

/// Registers this example's activities under `worker`.
pub fn register(registry: &mut ActivityRegistry, worker: &str) {
    registry
        .register(analyze_text, worker)
        .register(call_external_api, worker)
        .register(BatchProcessor { batch_size: 50 }, worker);
}

/// A tiny JSON API on `127.0.0.1` for [`call_external_api`] to call in the demo and in
/// tests, so nothing reaches outside the machine. Returns its base URL.
pub async fn start_local_api() -> std::io::Result<String> {
    use axum::{Json, Router, routing::get};
    let app =
        Router::new().route("/quote", get(|| async { Json(serde_json::json!({"quote": "Flow like water."})) })).route(
            "/echo",
            axum::routing::any(|method: axum::http::Method| async move {
                Json(serde_json::json!({"method": method.as_str()}))
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kruxiaflow_worker_testing::MockContext;
    use serde_json::json;

    async fn sentiment(text: &str) -> serde_json::Value {
        let mock = MockContext::new("rust", "analyze_text");
        let result = mock.run(&analyze_text, json!({"text": text})).await.unwrap();
        assert_eq!(result.outputs().len(), 1);
        result.output("result").unwrap().clone()
    }

    #[tokio::test]
    async fn sentiment_is_computed_exactly_as_the_guide_does() {
        // Distinct words: "love" once although written twice; "great," keeps its comma
        // and so does not count, as Python's split() leaves it.
        assert_eq!(
            sentiment("I love love this Great product").await,
            json!({"sentiment": "positive", "confidence": 2.0 / 3.0})
        );
        assert_eq!(sentiment("great, but terrible").await, json!({"sentiment": "negative", "confidence": 0.5}));
        assert_eq!(sentiment("sad bad day, happy").await, json!({"sentiment": "negative", "confidence": 0.5}));
        assert_eq!(sentiment("good and bad").await, json!({"sentiment": "neutral", "confidence": 0.5}));
        assert_eq!(sentiment("").await, json!({"sentiment": "neutral", "confidence": 0.5}));
    }

    #[tokio::test]
    async fn the_api_call_returns_status_and_body_and_costs_a_tenth_of_a_cent() {
        let url = start_local_api().await.unwrap();
        let mock = MockContext::new("rust", "call_external_api");
        let result = mock.run(&call_external_api, json!({"url": format!("{url}/quote")})).await.unwrap();
        assert_eq!(result.outputs().len(), 1);
        assert_eq!(result.output("result"), Some(&json!({"status": 200, "body": {"quote": "Flow like water."}})));
        assert_eq!(result.cost(), Some(dec!(0.001)));

        let posted = mock.run(&call_external_api, json!({"url": format!("{url}/echo"), "method": "POST"})).await;
        assert_eq!(posted.unwrap().output("result"), Some(&json!({"status": 200, "body": {"method": "POST"}})));
    }

    #[tokio::test]
    async fn an_error_status_fails_retryably_without_cost_and_a_bad_method_terminally() {
        let url = start_local_api().await.unwrap();
        let mock = MockContext::new("rust", "call_external_api");
        let error = mock.run(&call_external_api, json!({"url": format!("{url}/missing")})).await.unwrap_err();
        assert_eq!((error.code(), error.is_retryable()), ("EXECUTION_ERROR", true));
        assert_eq!(error.cost(), None);
        assert_eq!(mock.spend().cost, None);

        let error = mock.run(&call_external_api, json!({"url": url, "method": "NOT A METHOD"})).await.unwrap_err();
        assert_eq!((error.code(), error.is_retryable()), ("INVALID_PARAMETERS", false));
        assert_eq!(error.message(), "method: \"NOT A METHOD\" is not an HTTP method");
    }

    #[tokio::test]
    async fn batches_heartbeat_and_log_once_each_as_the_guide_does() {
        let mock = MockContext::new("rust", "batch_process");
        let items: Vec<String> = (0..120).map(|i| format!("item{i}")).collect();
        let upper: Vec<String> = (0..120).map(|i| format!("ITEM{i}")).collect();
        let result = mock.run(&BatchProcessor { batch_size: 50 }, json!({"items": items})).await.unwrap();
        assert_eq!(result.outputs().len(), 1);
        assert_eq!(result.output("result"), Some(&json!({"processed": 120, "items": upper})));
        assert_eq!(mock.heartbeats(), 3);
        let messages: Vec<String> = mock.logs().into_iter().map(|l| l.message).collect();
        assert_eq!(messages, ["Processing batch 1", "Processing batch 2", "Processing batch 3"]);
    }

    #[tokio::test]
    async fn a_zero_batch_size_is_a_terminal_configuration_error() {
        let mock = MockContext::new("rust", "batch_process");
        let error = mock.run(&BatchProcessor { batch_size: 0 }, json!({"items": ["a"]})).await.unwrap_err();
        assert_eq!((error.code(), error.is_retryable()), ("INVALID_CONFIGURATION", false));
    }
}
