//! The report a worker would send for what a `MockContext` run returned.

use serde_json::Value;

/// A complete or fail request, exactly as the worker would send it.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    endpoint: &'static str,
    body: Value,
}

impl Report {
    pub(crate) fn of(report: &kruxiaflow_worker::__testing::Report) -> Self {
        Self { endpoint: report.endpoint(), body: report.to_json() }
    }

    /// `"complete"` or `"fail"`: the last segment of the path it goes to.
    pub fn endpoint(&self) -> &str {
        self.endpoint
    }

    /// The JSON body exactly as it is sent.
    pub fn to_json(&self) -> Value {
        self.body.clone()
    }

    /// Whether it completes the activity.
    pub fn is_completion(&self) -> bool {
        self.endpoint == "complete"
    }
}
