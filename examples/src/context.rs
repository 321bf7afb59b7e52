//! The activity context: logging, heartbeats, and the activity's identity.

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

/// Parameters of [`long_running`].
#[derive(Debug, serde::Deserialize)]
pub struct Work {
    /// How many items to process.
    pub items: u32,
}

/// Processes items, heartbeating every 10 and stopping early when cancelled.
#[activity]
pub async fn long_running(params: Work, ctx: &ActivityContext) -> Result<ActivityResult, ActivityError> {
    for item in 0..params.items {
        if ctx.is_cancelled() {
            return Err(ActivityError::retryable("CANCELLED", format!("stopped after {item} items")));
        }
        if item % 10 == 0 {
            ctx.heartbeat().await?;
        }
        tokio::task::yield_now().await;
    }
    Ok(ActivityResult::value("processed", params.items))
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
    async fn heartbeats_every_ten_items() {
        let mock = MockContext::new("rust", "long_running");
        mock.run(&long_running, json!({"items": 35})).await.unwrap();
        assert_eq!(mock.heartbeats(), 4);
    }

    #[tokio::test]
    async fn a_lost_lease_stops_the_loop() {
        let mock = MockContext::new("rust", "long_running").cancel_after_heartbeats(2);
        let error = mock.run(&long_running, json!({"items": 100})).await.unwrap_err();
        assert_eq!(error.code(), "LEASE_LOST");
    }

    #[tokio::test]
    async fn reports_its_identity() {
        let id = uuid::Uuid::now_v7();
        let mock = MockContext::new("rust", "show_ids").activity_id(id).activity_key("whoami");
        let result = mock.run(&show_ids, json!({})).await.unwrap();
        assert_eq!(result.output("activity_id"), Some(&json!(id)));
        assert_eq!(result.output("activity_key"), Some(&json!("whoami")));
    }
}
