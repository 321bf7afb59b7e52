//! The activity context: logging, heartbeats (the guide's `long_running`), and the
//! activity's identity.

use kruxiaflow_worker::prelude::*;

/// Logs at every level; lines carry the activity's ids.
#[activity]
pub async fn log_levels(ctx: &ActivityContext) -> ActivityResult {
    ctx.logger().debug("details for debugging");
    ctx.logger().info("normal progress");
    ctx.logger().warning("something odd, carrying on");
    ctx.logger().error("something failed");
    tracing::info!("plain tracing works too");
    ActivityResult::value("logged", 5)
}

/// Parameters of [`long_running`]: `{"items": [..]}`.
#[derive(Debug, serde::Deserialize)]
pub struct Work {
    /// The items to process, of any JSON type.
    pub items: Vec<serde_json::Value>,
}

/// The guide's heartbeat sample: heartbeats (and logs `Processed i/N`) every 10 items;
/// `result` is `{"processed": N}`. A lost lease ends it at the next heartbeat.
#[activity]
pub async fn long_running(params: Work, ctx: &ActivityContext) -> Result<ActivityResult, ActivityError> {
    let total = params.items.len();
    for (i, item) in params.items.iter().enumerate() {
        if i % 10 == 0 {
            ctx.heartbeat().await?;
            ctx.logger().info(format_args!("Processed {i}/{total}"));
        }
        process(item).await;
    }
    Ok(ActivityResult::value("result", serde_json::json!({"processed": total})))
}

/// Stands in for real work on one item.
async fn process(_item: &serde_json::Value) {
    tokio::task::yield_now().await;
}

/// Reports the workflow id, activity id and key it runs as.
#[activity]
pub async fn show_ids(ctx: &ActivityContext) -> ActivityResult {
    ActivityResult::values(vec![
        ActivityOutput::value("workflow_id", ctx.workflow_id()),
        ActivityOutput::value("activity_id", ctx.activity_id()),
        ActivityOutput::value("activity_key", ctx.activity_key()),
    ])
}

/// Registers this example's activities under `worker`.
pub fn register(registry: &mut ActivityRegistry, worker: &str) {
    registry.register(log_levels, worker).register(long_running, worker).register(show_ids, worker);
}

#[cfg(test)]
mod tests {
    use super::*;
    use kruxiaflow_worker_testing::{LogLevel, MockContext};
    use serde_json::json;

    #[tokio::test]
    async fn logs_at_every_level() {
        let mock = MockContext::new("rust", "log_levels");
        mock.run(&log_levels, json!({})).await.unwrap();
        let levels: Vec<LogLevel> = mock.logs().iter().map(|l| l.level).collect();
        assert_eq!(levels, [LogLevel::Debug, LogLevel::Info, LogLevel::Warning, LogLevel::Error, LogLevel::Info]);
    }

    #[tokio::test]
    async fn heartbeats_and_logs_every_ten_items_as_the_guide_does() {
        let mock = MockContext::new("rust", "long_running");
        let items: Vec<u32> = (0..25).collect();
        let result = mock.run(&long_running, json!({"items": items})).await.unwrap();
        assert_eq!(result.outputs().len(), 1);
        assert_eq!(result.output("result"), Some(&json!({"processed": 25})));
        assert_eq!(mock.heartbeats(), 3);
        let messages: Vec<String> = mock.logs().into_iter().map(|l| l.message).collect();
        assert_eq!(messages, ["Processed 0/25", "Processed 10/25", "Processed 20/25"]);
    }

    #[tokio::test]
    async fn a_lost_lease_stops_the_loop() {
        let mock = MockContext::builder("rust", "long_running").cancel_after_heartbeats(2).build();
        let items = vec!["x"; 100];
        let error = mock.run(&long_running, json!({"items": items})).await.unwrap_err();
        assert_eq!(error.code(), "LEASE_LOST");
    }

    #[tokio::test]
    async fn reports_its_identity() {
        let id = uuid::Uuid::now_v7();
        let mock = MockContext::builder("rust", "show_ids").activity_id(id).activity_key("whoami").build();
        let result = mock.run(&show_ids, json!({})).await.unwrap();
        assert_eq!(result.output("activity_id"), Some(&json!(id)));
        assert_eq!(result.output("activity_key"), Some(&json!("whoami")));
    }
}
