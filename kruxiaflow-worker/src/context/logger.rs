//! The activity logger: `tracing` events that carry the activity's identity.

use std::fmt::Display;

use uuid::Uuid;

use super::ActivityInfo;

/// Emits `tracing` events with target `kruxiaflow_worker::activity`, each carrying the
/// activity id, workflow id and key, so lines can be found by activity even outside
/// the worker's span.
///
/// ```
/// # use kruxiaflow_worker::context::ActivityInfo;
/// # fn demo(ctx: &kruxiaflow_worker::ActivityContext) {
/// ctx.logger().info("starting");
/// ctx.logger().warning(format_args!("{} items skipped", 3));
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ActivityLogger {
    activity_id: Uuid,
    workflow_id: Uuid,
    activity_key: String,
}

macro_rules! log_at {
    ($self:ident, $level:expr, $message:ident) => {
        tracing::event!(
            target: "kruxiaflow_worker::activity",
            $level,
            activity_id = %$self.activity_id,
            workflow_id = %$self.workflow_id,
            activity_key = %$self.activity_key,
            "{}",
            $message
        )
    };
}

impl ActivityLogger {
    pub(super) fn new(info: &ActivityInfo) -> Self {
        Self { activity_id: info.activity_id, workflow_id: info.workflow_id, activity_key: info.activity_key.clone() }
    }

    /// Detail useful when debugging.
    pub fn debug(&self, message: impl Display) {
        log_at!(self, tracing::Level::DEBUG, message);
    }

    /// Normal progress.
    pub fn info(&self, message: impl Display) {
        log_at!(self, tracing::Level::INFO, message);
    }

    /// Something odd that did not stop the activity.
    pub fn warning(&self, message: impl Display) {
        log_at!(self, tracing::Level::WARN, message);
    }

    /// Something failed.
    pub fn error(&self, message: impl Display) {
        log_at!(self, tracing::Level::ERROR, message);
    }
}
