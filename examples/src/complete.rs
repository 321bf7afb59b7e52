//! A complete worker: text analysis, a paid external API call, and a configured batch
//! processor that heartbeats per batch.

use std::time::Duration;

use kruxiaflow_worker::prelude::*;
use rust_decimal::Decimal;

/// Parameters of [`analyze_text`].
#[derive(Debug, serde::Deserialize)]
pub struct AnalyzeParams {
    /// Text to analyze.
    pub text: String,
}

const POSITIVE: &[&str] = &["good", "great", "excellent", "happy", "love", "wonderful"];
const NEGATIVE: &[&str] = &["bad", "terrible", "awful", "sad", "hate", "poor"];

/// Keyword sentiment: counts positive and negative words.
#[activity]
pub async fn analyze_text(params: AnalyzeParams) -> ActivityResult {
    let words: Vec<String> =
        params.text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect();
    let positive = words.iter().filter(|w| POSITIVE.contains(&w.as_str())).count();
    let negative = words.iter().filter(|w| NEGATIVE.contains(&w.as_str())).count();
    let sentiment = match positive.cmp(&negative) {
        std::cmp::Ordering::Greater => "positive",
        std::cmp::Ordering::Less => "negative",
        std::cmp::Ordering::Equal => "neutral",
    };
    ActivityResult::values(vec![
        ActivityOutput::value("sentiment", sentiment),
        ActivityOutput::value("word_count", words.len()),
        ActivityOutput::value("positive", positive),
        ActivityOutput::value("negative", negative),
    ])
}

/// Parameters of [`call_external_api`].
#[derive(Debug, serde::Deserialize)]
pub struct ApiParams {
    /// URL to fetch (JSON).
    pub url: String,
}

/// Cost of one call to the external API.
pub const API_CALL_COST: Decimal = Decimal::from_parts(1, 0, 0, false, 3);

/// Fetches JSON from an external API; each call costs $0.001, recorded even when the
/// call fails, because failed attempts spend money too.
#[activity]
pub async fn call_external_api(params: ApiParams, ctx: &ActivityContext) -> Result<ActivityResult, ActivityError> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
    ctx.add_cost(API_CALL_COST);
    let response = client.get(&params.url).send().await?.error_for_status()?;
    let body: serde_json::Value = response.json().await?;
    Ok(ActivityResult::value("data", body))
}

/// Parameters of [`BatchProcessor`].
#[derive(Debug, serde::Deserialize)]
pub struct BatchParams {
    /// Numbers to process.
    pub items: Vec<i64>,
}

/// Sums items in batches of `batch_size`, heartbeating after each batch.
#[derive(Debug, Clone, kruxiaflow_worker::Activity)]
#[activity(name = "batch_process")]
pub struct BatchProcessor {
    /// Items per batch.
    pub batch_size: usize,
}

impl Execute for BatchProcessor {
    type Params = BatchParams;

    async fn execute(&self, params: BatchParams, ctx: &ActivityContext) -> Result<ActivityResult, ActivityError> {
        let mut total = 0i64;
        let mut batches = 0usize;
        for batch in params.items.chunks(self.batch_size.max(1)) {
            total += batch.iter().sum::<i64>();
            batches += 1;
            ctx.heartbeat().await?;
        }
        Ok(ActivityResult::values(vec![
            ActivityOutput::value("total", total),
            ActivityOutput::value("batches", batches),
        ]))
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
    let app = Router::new().route("/quote", get(|| async { Json(serde_json::json!({"quote": "Flow like water."})) }));
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

    #[tokio::test]
    async fn sentiment_follows_the_keywords() {
        let mock = MockContext::new("rust", "analyze_text");
        let result = mock.run(&analyze_text, json!({"text": "A great, wonderful day. Bad coffee."})).await.unwrap();
        assert_eq!(result.output("sentiment"), Some(&json!("positive")));
        assert_eq!(result.output("word_count"), Some(&json!(6)));
    }

    #[tokio::test]
    async fn the_api_call_costs_a_tenth_of_a_cent_even_when_it_fails() {
        let url = start_local_api().await.unwrap();
        let mock = MockContext::new("rust", "call_external_api");
        let result = mock.run(&call_external_api, json!({"url": format!("{url}/quote")})).await.unwrap();
        assert_eq!(result.output("data"), Some(&json!({"quote": "Flow like water."})));
        assert_eq!(mock.spend().cost, Some(Decimal::new(1, 3)));

        let failing = MockContext::new("rust", "call_external_api");
        let error = failing.run(&call_external_api, json!({"url": format!("{url}/missing")})).await.unwrap_err();
        assert_eq!(error.code(), "EXECUTION_ERROR");
        assert_eq!(failing.spend().cost, Some(Decimal::new(1, 3)));
    }

    #[tokio::test]
    async fn batches_heartbeat_once_each() {
        let mock = MockContext::new("rust", "batch_process");
        let items: Vec<i64> = (1..=120).collect();
        let result = mock.run(&BatchProcessor { batch_size: 50 }, json!({"items": items})).await.unwrap();
        assert_eq!(result.output("total"), Some(&json!(7260)));
        assert_eq!(result.output("batches"), Some(&json!(3)));
        assert_eq!(mock.heartbeats(), 3);
    }
}
