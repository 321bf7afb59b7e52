//! `anyhow::Error`, `anyhow::Result` and `Box<dyn Error + Send + Sync>` as an
//! activity's error type, with and without `output = ...`.
use kruxiaflow_worker::prelude::*;

#[activity]
async fn with_anyhow(params: serde_json::Value) -> Result<ActivityResult, anyhow::Error> {
    let _ = params;
    anyhow::bail!("no luck")
}

#[activity]
async fn with_anyhow_result() -> anyhow::Result<ActivityResult> {
    Ok(ActivityResult::empty())
}

#[activity]
async fn with_box() -> Result<ActivityResult, Box<dyn std::error::Error + Send + Sync>> {
    Err("boxed".into())
}

#[activity(output = "n")]
async fn with_output() -> Result<u32, Box<dyn std::error::Error + Send + Sync + 'static>> {
    Ok(1)
}

fn main() {
    let mut registry = ActivityRegistry::new();
    registry
        .register(with_anyhow, "rust")
        .register(with_anyhow_result, "rust")
        .register(with_box, "rust")
        .register(with_output, "rust");
}
