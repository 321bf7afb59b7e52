//! Captures `tracing` events emitted while an activity runs.

use std::fmt::{self, Write as _};
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::{Dispatch, Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

/// Severity of a captured line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    /// `trace!`
    Trace,
    /// `debug!` / `logger().debug`
    Debug,
    /// `info!` / `logger().info`
    Info,
    /// `warn!` / `logger().warning`
    Warning,
    /// `error!` / `logger().error`
    Error,
}

impl From<&Level> for LogLevel {
    fn from(level: &Level) -> Self {
        match *level {
            Level::TRACE => Self::Trace,
            Level::DEBUG => Self::Debug,
            Level::INFO => Self::Info,
            Level::WARN => Self::Warning,
            _ => Self::Error,
        }
    }
}

/// One captured log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// Severity.
    pub level: LogLevel,
    /// The message (other fields are left out).
    pub message: String,
}

struct CaptureLayer {
    lines: Arc<Mutex<Vec<LogLine>>>,
}

impl<S: Subscriber> Layer<S> for CaptureLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        // The per-call usage events are for traces, not the activity's log.
        if event.metadata().target() == "kruxiaflow_worker::gen_ai" {
            return;
        }
        let mut message = MessageVisitor(String::new());
        event.record(&mut message);
        let line = LogLine { level: event.metadata().level().into(), message: message.0 };
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).push(line);
    }
}

struct MessageVisitor(String);

impl Visit for MessageVisitor {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        }
    }
}

pub(super) fn subscriber(lines: Arc<Mutex<Vec<LogLine>>>) -> Dispatch {
    Dispatch::new(tracing_subscriber::registry().with(CaptureLayer { lines }))
}
