//! Every accepted signature and return shape.
use kruxiaflow_worker::prelude::*;

#[derive(serde::Deserialize, serde::Serialize)]
pub struct Params {
    input: i64,
}

#[derive(Debug)]
struct MyError;

impl std::fmt::Display for MyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("my error")
    }
}

impl std::error::Error for MyError {}

#[activity]
async fn params_and_context(params: Params, ctx: ActivityContext) -> ActivityResult {
    let _ = ctx;
    ActivityResult::value("n", params.input)
}

#[activity]
async fn context_and_params(ctx: &ActivityContext, params: serde_json::Value) -> ActivityResult {
    let _ = (ctx, params);
    ActivityResult::empty()
}

#[activity]
async fn only_params(params: std::collections::BTreeMap<String, String>) -> ActivityResult {
    ActivityResult::value("n", params.len())
}

#[activity]
async fn only_context(ctx: kruxiaflow_worker::ActivityContext) -> ActivityResult {
    let _ = ctx;
    ActivityResult::empty()
}

#[activity]
async fn no_arguments() -> ActivityResult {
    ActivityResult::empty()
}

#[activity]
async fn activity_error(params: Params) -> Result<ActivityResult, ActivityError> {
    Ok(ActivityResult::value("n", params.input))
}

#[activity]
async fn std_error(params: Params) -> Result<ActivityResult, MyError> {
    if params.input < 0 { Err(MyError) } else { Ok(ActivityResult::empty()) }
}

#[activity(output = "value")]
async fn serializable(params: Params) -> Params {
    params
}

#[activity(output = "value")]
async fn serializable_result(params: Params) -> Result<Vec<i64>, MyError> {
    Ok(vec![params.input])
}

#[activity]
async fn patterns(Params { input }: Params, _ctx: &ActivityContext) -> ActivityResult {
    ActivityResult::value("n", input)
}

/// Attributes carry over.
#[activity]
#[allow(unused_variables)]
pub async fn with_attributes(params: Params) -> ActivityResult {
    let unused = 1;
    ActivityResult::empty()
}

fn main() {
    let mut registry = ActivityRegistry::new();
    registry
        .register(params_and_context, "rust")
        .register(context_and_params, "rust")
        .register(only_params, "rust")
        .register(only_context, "rust")
        .register(no_arguments, "rust")
        .register(activity_error, "rust")
        .register(std_error, "rust")
        .register(serializable, "rust")
        .register(serializable_result, "rust")
        .register(patterns, "rust")
        .register(with_attributes, "rust");
    assert_eq!(registry.len(), 11);
}
