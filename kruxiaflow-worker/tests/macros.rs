//! `#[activity]` and `#[derive(Activity)]` at run time, through MockContext: every
//! accepted signature shape, every return shape, and the bad-parameter message.

use kruxiaflow_worker::CancelReason;
use kruxiaflow_worker::prelude::*;
use kruxiaflow_worker_testing::MockContext;
use rust_decimal::Decimal;
use serde_json::{Value, json};

#[derive(serde::Deserialize, serde::Serialize)]
struct Double {
    input: i64,
}

/// Doubles its input.
#[activity]
async fn my_activity(params: Double, ctx: ActivityContext) -> ActivityResult {
    ctx.logger().info("doubling");
    ActivityResult::value("result", params.input * 2)
}

#[activity(name = "custom_name")]
async fn my_func(params: Value, ctx: &ActivityContext) -> Result<ActivityResult, ActivityError> {
    let _ = ctx.activity_id();
    Ok(ActivityResult::value("output", params))
}

#[activity]
async fn context_first(ctx: &ActivityContext, params: Double) -> ActivityResult {
    ActivityResult::value("key", format!("{}:{}", ctx.activity_key(), params.input))
}

#[activity]
async fn params_only(params: std::collections::HashMap<String, i64>) -> ActivityResult {
    ActivityResult::value("sum", params.values().sum::<i64>())
}

#[activity]
async fn context_only(ctx: ActivityContext) -> ActivityResult {
    ActivityResult::value("cancelled", ctx.is_cancelled())
}

#[activity]
async fn nothing() -> ActivityResult {
    ActivityResult::value("ok", true)
}

#[derive(Debug, thiserror::Error)]
#[error("upstream said no")]
struct UpstreamError;

#[activity]
async fn std_error(params: Double) -> Result<ActivityResult, UpstreamError> {
    if params.input < 0 { Err(UpstreamError) } else { Ok(ActivityResult::empty()) }
}

#[activity(output = "doubled")]
async fn plain_output(params: Double) -> i64 {
    params.input * 2
}

#[activity(output = "items")]
async fn result_output(params: Double) -> Result<Vec<i64>, ActivityError> {
    if params.input == 0 {
        return Err(ActivityError::terminal("EMPTY", "nothing to list"));
    }
    Ok((0..params.input).collect())
}

#[activity(output = "parsed")]
async fn question_mark(params: Value) -> Result<i64, ActivityError> {
    Ok(params["n"].as_str().unwrap_or_default().parse::<i64>()?)
}

#[activity]
async fn mut_binding(mut params: Double) -> ActivityResult {
    params.input += 1;
    ActivityResult::value("n", params.input)
}

mod nested {
    use super::*;

    /// Visible from the parent module, like the function was.
    #[activity]
    pub(crate) async fn in_a_module(params: Double) -> ActivityResult {
        ActivityResult::value("n", params.input)
    }
}

async fn run(activity: &impl Activity, params: Value) -> Result<ActivityResult, ActivityError> {
    MockContext::new("rust", activity.name()).run(activity, params).await
}

#[tokio::test]
async fn params_and_owned_context() {
    let mock = MockContext::new("rust", "my_activity");
    let result = mock.run(&my_activity, json!({"input": 21})).await.unwrap();
    assert_eq!(result.output("result"), Some(&json!(42)));
    assert_eq!(mock.logs()[0].message, "doubling");
    assert_eq!(my_activity.name(), "my_activity");
    assert_eq!(my_activity.description(), Some("Doubles its input."));
}

#[tokio::test]
async fn renamed_with_a_value_and_borrowed_context() {
    let result = run(&my_func, json!([1, 2])).await.unwrap();
    assert_eq!(my_func.name(), "custom_name");
    assert_eq!(result.output("output"), Some(&json!([1, 2])));
}

#[tokio::test]
async fn context_before_params() {
    let mock = MockContext::builder("rust", "context_first").activity_key("k").build();
    let result = mock.run(&context_first, json!({"input": 3})).await.unwrap();
    assert_eq!(result.output("key"), Some(&json!("k:3")));
}

#[tokio::test]
async fn a_map_of_params_only() {
    let result = run(&params_only, json!({"a": 1, "b": 2})).await.unwrap();
    assert_eq!(result.output("sum"), Some(&json!(3)));
}

#[tokio::test]
async fn context_only_and_no_arguments_ignore_the_parameters() {
    let mock = MockContext::new("rust", "context_only");
    mock.cancel(CancelReason::Requested);
    assert_eq!(mock.run(&context_only, json!("anything")).await.unwrap().output("cancelled"), Some(&json!(true)));
    assert_eq!(run(&nothing, json!(null)).await.unwrap().output("ok"), Some(&json!(true)));
}

#[tokio::test]
async fn a_std_error_becomes_a_retryable_execution_error() {
    let error = run(&std_error, json!({"input": -1})).await.unwrap_err();
    assert_eq!((error.code(), error.message(), error.is_retryable()), ("EXECUTION_ERROR", "upstream said no", true));
}

#[tokio::test]
async fn output_turns_a_serializable_value_into_one_named_output() {
    assert_eq!(run(&plain_output, json!({"input": 4})).await.unwrap().output("doubled"), Some(&json!(8)));
    assert_eq!(run(&result_output, json!({"input": 3})).await.unwrap().output("items"), Some(&json!([0, 1, 2])));
    let error = run(&result_output, json!({"input": 0})).await.unwrap_err();
    assert_eq!(error.code(), "EMPTY");
    let error = run(&question_mark, json!({"n": "x"})).await.unwrap_err();
    assert_eq!((error.code(), error.message()), ("EXECUTION_ERROR", "invalid digit found in string"));
}

#[tokio::test]
async fn patterns_and_modules_work() {
    assert_eq!(run(&mut_binding, json!({"input": 1})).await.unwrap().output("n"), Some(&json!(2)));
    assert_eq!(run(&nested::in_a_module, json!({"input": 5})).await.unwrap().output("n"), Some(&json!(5)));
}

#[tokio::test]
async fn the_typed_body_stays_callable_without_json() {
    let mock = MockContext::new("rust", "my_activity");
    let result = my_activity.call(Double { input: 5 }, mock.context()).await;
    assert_eq!(result.output("result"), Some(&json!(10)));
    assert_eq!(plain_output.call(Double { input: 1 }).await, 2);
}

#[derive(serde::Deserialize)]
struct Order {
    #[allow(dead_code)]
    items: Vec<Line>,
}

#[derive(serde::Deserialize)]
struct Line {
    #[allow(dead_code)]
    price: Decimal,
}

#[activity]
async fn checkout(params: Order) -> ActivityResult {
    ActivityResult::value("lines", params.items.len())
}

#[tokio::test]
async fn bad_parameters_name_the_activity_the_path_and_what_was_expected() {
    let params = json!({"items": [{"price": "1.50"}, {"price": "2"}, {"price": true}]});
    let error = run(&checkout, params).await.unwrap_err();
    assert_eq!(error.code(), "INVALID_PARAMETERS");
    assert!(!error.is_retryable());
    assert_eq!(
        error.message(),
        "invalid parameters for activity 'rust.checkout' at items[2].price: invalid type: boolean `true`, expected a Decimal type representing a fixed-point number"
    );
    let missing = run(&checkout, json!({"lines": []})).await.unwrap_err();
    assert_eq!(
        missing.message(),
        "invalid parameters for activity 'rust.checkout' at the top level: missing field `items`"
    );
}

#[derive(serde::Deserialize)]
struct TextParams {
    text: String,
}

/// Cuts text to a configured length.
#[derive(Activity)]
#[activity(name = "process_text")]
struct TextProcessor {
    max_length: usize,
    language: String,
}

impl Execute for TextProcessor {
    type Params = TextParams;

    async fn execute(&self, p: TextParams, _ctx: &ActivityContext) -> Result<ActivityResult, ActivityError> {
        let cut: String = p.text.chars().take(self.max_length).collect();
        Ok(ActivityResult::values(vec![
            ActivityOutput::value("text", cut),
            ActivityOutput::value("language", &self.language),
        ]))
    }
}

#[derive(Activity)]
struct BatchProcessor;

impl Execute for BatchProcessor {
    type Params = Value;

    async fn execute(&self, _p: Value, _ctx: &ActivityContext) -> Result<ActivityResult, ActivityError> {
        Ok(ActivityResult::empty())
    }
}

#[derive(Activity)]
enum Mode {
    Fast,
    #[allow(dead_code)]
    Careful(u32),
}

impl Execute for Mode {
    type Params = ();

    async fn execute(&self, _p: (), _ctx: &ActivityContext) -> Result<ActivityResult, ActivityError> {
        Ok(ActivityResult::value("fast", matches!(self, Mode::Fast)))
    }
}

#[derive(Activity)]
struct Scaled<T: Copy + Into<f64> + Send + Sync + 'static>(T);

impl<T: Copy + Into<f64> + Send + Sync + 'static> Execute for Scaled<T> {
    type Params = f64;

    async fn execute(&self, x: f64, _ctx: &ActivityContext) -> Result<ActivityResult, ActivityError> {
        Ok(ActivityResult::value("scaled", x * self.0.into()))
    }
}

#[tokio::test]
async fn derived_activities_use_their_configuration() {
    let processor = TextProcessor { max_length: 5, language: "es".into() };
    assert_eq!(processor.name(), "process_text");
    assert_eq!(processor.description(), Some("Cuts text to a configured length."));
    let result = run(&processor, json!({"text": "hola mundo"})).await.unwrap();
    assert_eq!(result.output("text"), Some(&json!("hola ")));
    assert_eq!(result.output("language"), Some(&json!("es")));
}

#[tokio::test]
async fn derived_names_default_to_snake_case_for_structs_enums_and_generics() {
    assert_eq!(BatchProcessor.name(), "batch_processor");
    assert_eq!(Mode::Fast.name(), "mode");
    assert_eq!(run(&Mode::Fast, json!(null)).await.unwrap().output("fast"), Some(&json!(true)));
    let scaled = Scaled(2.5f32);
    assert_eq!(scaled.name(), "scaled");
    assert_eq!(run(&scaled, json!(4.0)).await.unwrap().output("scaled"), Some(&json!(10.0)));
}

#[tokio::test]
async fn derived_activities_reject_bad_parameters_the_same_way() {
    let processor = TextProcessor { max_length: 5, language: "es".into() };
    let error = run(&processor, json!({"text": 3})).await.unwrap_err();
    assert_eq!(
        error.message(),
        "invalid parameters for activity 'rust.process_text' at text: invalid type: integer `3`, expected a string"
    );
}

#[test]
fn macro_activities_register_like_the_python_decorator() {
    let mut registry = ActivityRegistry::new();
    registry
        .register(my_activity, "rust")
        .register(my_func, "rust")
        .register(TextProcessor { max_length: 500, language: "es".into() }, "rust");
    assert_eq!(registry.activity_types(), ["rust.my_activity", "rust.custom_name", "rust.process_text"]);
}

#[derive(Debug)]
struct Outage;

impl std::fmt::Display for Outage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("upstream is down")
    }
}

impl std::error::Error for Outage {}

#[activity]
async fn fails_with_anyhow() -> anyhow::Result<ActivityResult> {
    use anyhow::Context;
    Err(Outage).context("fetching the quote")
}

#[activity(output = "n")]
async fn fails_with_a_box() -> Result<u32, Box<dyn std::error::Error + Send + Sync>> {
    Err(Box::new(Outage))
}

#[tokio::test]
async fn anyhow_and_boxed_errors_fail_retryably_with_their_whole_chain() {
    let error = MockContext::new("rust", "fails_with_anyhow").run(&fails_with_anyhow, json!({})).await.unwrap_err();
    assert_eq!(
        (error.code(), error.message(), error.is_retryable()),
        ("EXECUTION_ERROR", "fetching the quote: upstream is down", true)
    );
    let error = MockContext::new("rust", "fails_with_a_box").run(&fails_with_a_box, json!({})).await.unwrap_err();
    assert_eq!((error.code(), error.message(), error.is_retryable()), ("EXECUTION_ERROR", "upstream is down", true));
}
