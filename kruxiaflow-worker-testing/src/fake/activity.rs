//! Activities as a test sees them: what is enqueued, and how it ended.

use std::time::Duration;

use kruxiaflow_worker::{OutputDefinition, OutputType};

use super::usage::Usage;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use uuid::Uuid;

/// An activity to put in the fake server's queue.
///
/// ```
/// use kruxiaflow_worker_testing::{NewActivity, RetrySettings};
/// use serde_json::json;
///
/// let activity = NewActivity::new("rust", "my_activity")
///     .params(json!({"input": 21}))
///     .timeout_seconds(120)
///     .retry(RetrySettings::attempts(3));
/// assert_eq!(activity.activity_key, "my_activity");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NewActivity {
    /// Worker type.
    pub worker: String,
    /// Activity name (may be empty, as the server allows).
    pub activity_name: String,
    /// Key in the workflow (defaults to the name).
    pub activity_key: String,
    /// Fixed activity id; random UUIDv7 when `None`.
    pub activity_id: Option<Uuid>,
    /// Fixed workflow id; random UUIDv7 when `None`.
    pub workflow_id: Option<Uuid>,
    /// Parameters sent to the worker.
    pub parameters: Value,
    /// `timeout_seconds` (lease and execution timeout); `None` sends `null`.
    pub timeout_seconds: Option<i64>,
    /// Retry policy; `None` means the server default (3 retries).
    pub retry: Option<RetrySettings>,
    /// Signal data; `Some(Value::Null)` sends an explicit `null`.
    pub signal_data: Option<Value>,
    /// Declared outputs; `None` omits the key.
    pub output_definitions: Option<Vec<OutputDefinition>>,
    /// Extra settings keys (`cache` is always present).
    pub settings: Map<String, Value>,
    /// Delay before the activity becomes claimable.
    #[serde(with = "secs_f64")]
    pub delay: Duration,
    /// Keys overwritten in the poll item as sent, to test how a worker copes with odd
    /// items (for example `{"workflow_id": "not-a-uuid"}`).
    pub item_overrides: Map<String, Value>,
}

impl Default for NewActivity {
    /// An activity of worker `rust` with no name; the key defaults to the name, or to
    /// `activity` when there is none.
    fn default() -> Self {
        Self {
            worker: "rust".to_owned(),
            activity_name: String::new(),
            activity_key: String::new(),
            activity_id: None,
            workflow_id: None,
            parameters: json!({}),
            timeout_seconds: None,
            retry: None,
            signal_data: None,
            output_definitions: None,
            settings: Map::new(),
            delay: Duration::ZERO,
            item_overrides: Map::new(),
        }
    }
}

impl NewActivity {
    /// An activity of `worker` named `activity_name`, with `{}` parameters.
    pub fn new(worker: impl Into<String>, activity_name: impl Into<String>) -> Self {
        Self { worker: worker.into(), activity_name: activity_name.into(), ..Self::default() }.with_default_key()
    }

    /// Fills an empty key with the name (or `activity` when that is empty too).
    pub(crate) fn with_default_key(mut self) -> Self {
        if self.activity_key.is_empty() {
            self.activity_key =
                if self.activity_name.is_empty() { "activity".to_owned() } else { self.activity_name.clone() };
        }
        self
    }

    /// Sets the parameters.
    pub fn params(mut self, parameters: Value) -> Self {
        self.parameters = parameters;
        self
    }

    /// Sets the activity key.
    pub fn key(mut self, activity_key: impl Into<String>) -> Self {
        self.activity_key = activity_key.into();
        self
    }

    /// Sets the workflow id.
    pub fn workflow_id(mut self, workflow_id: Uuid) -> Self {
        self.workflow_id = Some(workflow_id);
        self
    }

    /// Sets `timeout_seconds`.
    pub fn timeout_seconds(mut self, seconds: i64) -> Self {
        self.timeout_seconds = Some(seconds);
        self
    }

    /// Sets the retry policy.
    pub fn retry(mut self, retry: RetrySettings) -> Self {
        self.retry = Some(retry);
        self
    }

    /// Sets signal data.
    pub fn signal_data(mut self, data: Value) -> Self {
        self.signal_data = Some(data);
        self
    }

    /// Declares an output.
    pub fn output(mut self, name: impl Into<String>, output_type: OutputType) -> Self {
        self.output_definitions.get_or_insert_with(Vec::new).push(OutputDefinition { name: name.into(), output_type });
        self
    }

    /// Opts the activity in to token streaming, as the activity-level `streaming: true`
    /// of a workflow definition does (the server puts it in `settings.streaming`).
    ///
    /// ```
    /// use kruxiaflow_worker_testing::NewActivity;
    ///
    /// let chat = NewActivity::new("rust", "llm_chat").streaming(true);
    /// assert_eq!(chat.settings["streaming"], serde_json::json!(true));
    /// ```
    pub fn streaming(self, enabled: bool) -> Self {
        self.setting("streaming", Value::Bool(enabled))
    }

    /// Sets one key of the activity's `settings`.
    pub fn setting(mut self, key: impl Into<String>, value: Value) -> Self {
        self.settings.insert(key.into(), value);
        self
    }

    /// Delays the activity.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Overwrites `key` in the poll item as sent (see [`item_overrides`](Self::item_overrides)).
    pub fn override_item(mut self, key: impl Into<String>, value: Value) -> Self {
        self.item_overrides.insert(key.into(), value);
        self
    }

    /// The `settings` object as the server serializes it (§7.8): `timeout_seconds`,
    /// `retry`, extra keys, and `cache` always present.
    pub(crate) fn settings_json(&self) -> Value {
        let mut settings = Map::new();
        if let Some(timeout) = self.timeout_seconds {
            settings.insert("timeout_seconds".into(), json!(timeout));
        }
        if let Some(retry) = &self.retry {
            settings.insert("retry".into(), serde_json::to_value(retry).unwrap_or_default());
        }
        for (key, value) in &self.settings {
            settings.insert(key.clone(), value.clone());
        }
        settings.entry("cache").or_insert(Value::Bool(false));
        Value::Object(settings)
    }

    /// Backoff after the `n`-th attempt failed (1-based), per §7.4.
    pub(crate) fn backoff(&self, n: u32) -> Duration {
        let retry = self.retry.clone().unwrap_or_default();
        let seconds = match retry.strategy {
            RetryStrategy::Fixed => retry.base_seconds as f64,
            RetryStrategy::Exponential => retry.base_seconds as f64 * retry.factor.powi(n.saturating_sub(1) as i32),
        };
        Duration::from_secs_f64(seconds.min(retry.max_seconds as f64).max(0.0))
    }
}

/// `settings.retry` of an activity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetrySettings {
    /// Attempts in total (1 = no retries).
    pub max_attempts: u32,
    /// Exponential or fixed.
    pub strategy: RetryStrategy,
    /// First delay, in seconds.
    pub base_seconds: u64,
    /// Growth per attempt (exponential only).
    pub factor: f64,
    /// Cap on the delay, in seconds.
    pub max_seconds: u64,
}

impl Default for RetrySettings {
    fn default() -> Self {
        Self { max_attempts: 1, strategy: RetryStrategy::Exponential, base_seconds: 2, factor: 2.0, max_seconds: 300 }
    }
}

impl RetrySettings {
    /// `max_attempts` attempts with no delay between them (handy in tests).
    pub fn attempts(max_attempts: u32) -> Self {
        Self { max_attempts, base_seconds: 0, ..Self::default() }
    }
}

/// Backoff strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum RetryStrategy {
    /// `base × factor^(n−1)`, capped.
    #[default]
    Exponential,
    /// `base`, capped.
    Fixed,
}

/// Queue row status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Status {
    /// Claimable once `scheduled_for` has passed.
    Pending,
    /// Claimed by a worker.
    Running,
    /// Completed (terminal).
    Completed,
    /// Failed (terminal).
    Failed,
}

impl Status {
    /// Completed or failed.
    pub fn is_finished(self) -> bool {
        matches!(self, Self::Completed | Self::Failed)
    }
}

/// How an activity ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum Outcome {
    /// Completed by a worker.
    Completed(Completion),
    /// Failed terminally (by a worker, or by the lease sweep).
    Failed(Failure),
}

impl Outcome {
    /// The completion, if it completed.
    pub fn completed(&self) -> Option<&Completion> {
        match self {
            Self::Completed(c) => Some(c),
            Self::Failed(_) => None,
        }
    }

    /// The failure, if it failed.
    pub fn failed(&self) -> Option<&Failure> {
        match self {
            Self::Failed(f) => Some(f),
            Self::Completed(_) => None,
        }
    }

    /// The completion, or a panic naming the failure. Takes the outcome, so
    /// `server.wait_for(id).await.expect_completed()` is one expression.
    #[track_caller]
    pub fn expect_completed(self) -> Completion {
        match self {
            Self::Completed(c) => c,
            Self::Failed(f) => panic!("expected the activity to complete, but it failed: {} {}", f.code, f.message),
        }
    }

    /// The failure, or a panic showing the output. Takes the outcome, so
    /// `server.wait_for(id).await.expect_failed()` is one expression.
    #[track_caller]
    pub fn expect_failed(self) -> Failure {
        match self {
            Self::Failed(f) => f,
            Self::Completed(c) => panic!("expected the activity to fail, but it completed with {:?}", c.output),
        }
    }
}

/// A recorded completion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Completion {
    /// The `output` object.
    pub output: Map<String, Value>,
    /// `cost_usd`.
    pub cost_usd: Option<Decimal>,
    /// `usage` entries.
    pub usage: Vec<Usage>,
    /// Who completed it.
    pub worker_id: String,
    /// Claims made before it completed.
    pub attempts: u32,
}

/// A recorded failure (of one attempt, or the terminal one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    /// `error.code`.
    pub code: String,
    /// `error.message`.
    pub message: String,
    /// `error.retryable`.
    pub retryable: bool,
    /// Claims made up to this failure.
    pub attempts: u32,
    /// Who reported it (`None` for the sweep of an unclaimed row).
    pub worker_id: Option<String>,
    /// `cost_usd`.
    pub cost_usd: Option<Decimal>,
    /// `usage` entries.
    pub usage: Vec<Usage>,
}

/// The state of one queued activity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivitySnapshot {
    /// Queue id.
    pub activity_id: Uuid,
    /// Workflow id.
    pub workflow_id: Uuid,
    /// Activity key.
    pub activity_key: String,
    /// Activity name.
    pub activity_name: String,
    /// Current status.
    pub status: Status,
    /// Current claimer.
    pub claimed_by: Option<String>,
    /// Retries used.
    pub retry_count: u32,
    /// Times it was handed to a worker.
    pub claims: u32,
    /// Every failure reported, retried or not.
    pub failures: Vec<Failure>,
    /// The terminal outcome, once there is one.
    pub outcome: Option<Outcome>,
    /// Wall-clock time it was enqueued, in microseconds since the Unix epoch.
    pub enqueued_at_us: u64,
    /// Wall-clock time it settled (completed or failed terminally), likewise.
    pub settled_at_us: Option<u64>,
}

mod secs_f64 {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
    }
}
