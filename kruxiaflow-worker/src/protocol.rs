//! Wire types of the Kruxia Flow worker API (v1), and nothing else.
//!
//! Field names, optionality and encodings follow the captured exchanges with the real
//! server: decimals are sent as JSON strings, optional fields are omitted rather than
//! sent as `null`, and usage token counts are always present.

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

/// Body of `POST /api/v1/workers/poll`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollRequest {
    /// Worker type whose queue is polled (`worker:` in workflow definitions).
    pub worker: String,
    /// Identifies this worker process; recorded by the server as the claimer.
    pub worker_id: String,
    /// How many activities to claim at most (1..=100).
    pub max_activities: u32,
}

/// Body of a successful poll. Items stay raw JSON so that each one is parsed on its
/// own: one odd item must never strand the rest of a batch the server already claimed.
#[derive(Debug, Clone, Deserialize)]
pub struct PollResponse {
    /// The claimed activities, unparsed: neither nesting depth, numbers out of range
    /// nor bad escapes inside one item can fail the whole answer.
    pub activities: Vec<Box<serde_json::value::RawValue>>,
}

/// An activity claimed by a poll: the server has already set it `running` for us.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingActivity {
    /// Queue row id; the same for every retry of the activity.
    pub activity_id: Uuid,
    /// The workflow run this activity belongs to.
    pub workflow_id: Uuid,
    /// The activity's key in its workflow definition.
    pub activity_key: String,
    /// Worker type.
    pub worker: String,
    /// Activity name; may be empty when the definition names none.
    pub activity_name: String,
    /// Parameters with templates already resolved by the server.
    #[serde(default)]
    pub parameters: Value,
    /// The activity's settings from its definition (`null` when absent).
    #[serde(default)]
    pub settings: Value,
    /// Timeout, and so the lease length; `None` means the server default lease (60 s).
    #[serde(default)]
    pub timeout_seconds: Option<i64>,
    /// Declared outputs; absent unless the definition declares `outputs:`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_definitions: Option<Vec<OutputDefinition>>,
    /// Data of the signal the activity waited for. `Some(Value::Null)` means the
    /// signal was sent without data; `None` means there was no signal.
    #[serde(default, deserialize_with = "present_value", skip_serializing_if = "Option::is_none")]
    pub signal_data: Option<Value>,
}

/// Keeps an explicit JSON `null` distinct from a missing key.
fn present_value<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

/// One declared output of an activity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputDefinition {
    /// Output name, as referenced by downstream templates.
    pub name: String,
    /// Whether the output is a value, a file or a folder.
    #[serde(rename = "type")]
    pub output_type: OutputType,
}

/// Kind of an activity output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum OutputType {
    /// A JSON value.
    Value,
    /// A file in workflow storage, reported by its reference string.
    File,
    /// A folder in workflow storage (declared by the protocol, unsupported by servers).
    Folder,
}

/// Body of `POST /api/v1/activities/{id}/heartbeat`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatRequest {
    /// The claimer's worker id.
    pub worker_id: String,
}

/// Answer to a heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatResponse {
    /// Always `true` on 200.
    pub acknowledged: bool,
    /// The server's suggested interval (always 30 upstream).
    #[serde(default)]
    pub next_heartbeat_seconds: Option<u64>,
}

/// Body of `POST /api/v1/activities/{id}/complete`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompleteRequest {
    /// The claimer's worker id.
    pub worker_id: String,
    /// Named outputs; must be a JSON object.
    pub output: Map<String, Value>,
    /// Cost not covered by `usage` entries (the whole cost when there are none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<Decimal>,
    /// One entry per LLM call made by the attempt.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub usage: Vec<UsageEntry>,
}

/// Body of `POST /api/v1/activities/{id}/fail`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailRequest {
    /// The claimer's worker id.
    pub worker_id: String,
    /// What went wrong.
    pub error: FailureDetails,
    /// Money spent by the failed attempt outside `usage` entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<Decimal>,
    /// One entry per LLM call made by the failed attempt.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub usage: Vec<UsageEntry>,
}

/// The `error` object of a fail request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureDetails {
    /// Machine-readable code, SCREAMING_SNAKE_CASE by convention.
    pub code: String,
    /// Human-readable message; must not be empty.
    pub message: String,
    /// Whether the server may retry the activity.
    pub retryable: bool,
}

/// Answer to complete and fail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportAck {
    /// Always `true` on 200.
    pub acknowledged: bool,
    /// On fail only: whether the server re-queued the activity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub will_retry: Option<bool>,
    /// Warnings about reported usage (unknown models, missing prices).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// Token usage of one LLM call, reported with complete or fail.
///
/// ```
/// use kruxiaflow_worker::UsageEntry;
/// use rust_decimal::Decimal;
///
/// let usage = UsageEntry::new("anthropic", "claude-sonnet-5")
///     .input_tokens(12_034)
///     .output_tokens(512)
///     .cache_read_tokens(9_800);
/// assert_eq!(usage.input_tokens, 12_034);
/// assert_eq!(usage.cost_usd, None);
/// let priced = usage.cost_usd(Decimal::new(42, 4));
/// assert_eq!(serde_json::to_value(&priced).unwrap()["cost_usd"], "0.0042");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageEntry {
    /// LLM provider, e.g. `anthropic`.
    pub provider: String,
    /// Model name, e.g. `claude-sonnet-5`.
    pub model: String,
    /// Prompt tokens, including tokens read from cache.
    #[serde(default)]
    pub input_tokens: u32,
    /// Completion tokens.
    #[serde(default)]
    pub output_tokens: u32,
    /// Tokens billed at the cached-input price.
    #[serde(default)]
    pub cache_read_tokens: u32,
    /// Tokens billed at the cache-write price.
    #[serde(default)]
    pub cache_creation_tokens: u32,
    /// Tokens held in cache × hours held.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_storage_token_hours: Option<Decimal>,
    /// Exact cost of this call; when present the server applies no catalog pricing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<Decimal>,
}

impl UsageEntry {
    /// An entry for `provider`/`model` with every count at zero.
    pub fn new(provider: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            provider: provider.into(),
            model: model.into(),
            input_tokens: 0,
            output_tokens: 0,
            cache_read_tokens: 0,
            cache_creation_tokens: 0,
            cache_storage_token_hours: None,
            cost_usd: None,
        }
    }

    /// Sets the prompt tokens (including cached ones).
    pub fn input_tokens(mut self, tokens: u32) -> Self {
        self.input_tokens = tokens;
        self
    }

    /// Sets the completion tokens.
    pub fn output_tokens(mut self, tokens: u32) -> Self {
        self.output_tokens = tokens;
        self
    }

    /// Sets the tokens read from cache.
    pub fn cache_read_tokens(mut self, tokens: u32) -> Self {
        self.cache_read_tokens = tokens;
        self
    }

    /// Sets the tokens written to cache.
    pub fn cache_creation_tokens(mut self, tokens: u32) -> Self {
        self.cache_creation_tokens = tokens;
        self
    }

    /// Sets the cache storage, in token-hours.
    pub fn cache_storage_token_hours(mut self, token_hours: Decimal) -> Self {
        self.cache_storage_token_hours = Some(token_hours);
        self
    }

    /// Sets the exact cost of the call, bypassing the server's price catalog.
    pub fn cost_usd(mut self, cost: Decimal) -> Self {
        self.cost_usd = Some(cost);
        self
    }
}

/// Body of `POST /api/v1/oauth/token` for the client-credentials grant.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRequest {
    /// Always `client_credentials` for workers.
    pub grant_type: String,
    /// OAuth client id.
    pub client_id: String,
    /// OAuth client secret.
    pub client_secret: String,
}

impl std::fmt::Debug for TokenRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenRequest")
            .field("grant_type", &self.grant_type)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .finish()
    }
}

/// Answer of the token endpoint.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenResponse {
    /// The bearer token.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Lifetime in seconds.
    pub expires_in: u64,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &"<redacted>")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

/// The server's JSON error envelope: `{"error":{"code":..,"message":..,"details":..}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorEnvelope {
    /// The error itself.
    pub error: ErrorBody,
}

/// Inside of [`ErrorEnvelope`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// `NOT_FOUND`, `CONFLICT`, `VALIDATION_ERROR`, `service_unavailable`, ...
    pub code: String,
    /// Human-readable message, prefixed by the code's category.
    pub message: String,
    /// Present only for validation errors: `{"field_errors": {...}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
}

/// Metadata the server returns for an uploaded file (201).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileMetadata {
    /// Owning workflow.
    pub workflow_id: Uuid,
    /// Owning activity key.
    pub activity_key: String,
    /// File name within the activity's namespace.
    pub filename: String,
    /// Size in bytes.
    pub size: u64,
    /// Content type given at upload, if any.
    pub content_type: Option<String>,
    /// RFC 3339 creation time.
    pub created_at: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn complete_request_sends_decimals_as_strings_and_omits_empty_fields() {
        let body = CompleteRequest {
            worker_id: "w".into(),
            output: Map::new(),
            cost_usd: Some(Decimal::new(40, 4)),
            usage: vec![],
        };
        assert_eq!(serde_json::to_value(&body).unwrap(), json!({"worker_id": "w", "output": {}, "cost_usd": "0.0040"}));
    }

    #[test]
    fn signal_data_keeps_explicit_null_apart_from_absence() {
        let base = json!({
            "activity_id": "01a21807-f246-7352-a110-2137c6b5b3c0",
            "workflow_id": "01a21807-ee5f-7b80-a762-f0fe3b47b512",
            "activity_key": "k", "worker": "w", "activity_name": "n",
            "parameters": {}, "settings": {"cache": false}, "timeout_seconds": null
        });
        let absent: PendingActivity = serde_json::from_value(base.clone()).unwrap();
        assert_eq!(absent.signal_data, None);
        let mut with_null = base;
        with_null["signal_data"] = Value::Null;
        let null: PendingActivity = serde_json::from_value(with_null).unwrap();
        assert_eq!(null.signal_data, Some(Value::Null));
    }
}

/// Answer of `GET /api/v1/activities/{id}/ws/subscribers`.
#[derive(Debug, Clone, Copy, Deserialize)]
pub(crate) struct SubscriberCount {
    pub(crate) count: u32,
}

/// Body of `POST /api/v1/activities/{id}/ws/token`: one increment of streamed text.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct StreamToken<'a> {
    pub(crate) text: &'a str,
    pub(crate) index: u32,
}

/// Answer of `POST /api/v1/activities/{id}/ws/token`: how many sockets got it.
#[derive(Debug, Clone, Copy, Deserialize)]
pub(crate) struct TokenDelivered {
    pub(crate) subscribers: u32,
}

/// Body of `POST /api/v1/activities/{id}/ws/complete`.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct StreamComplete<'a> {
    pub(crate) result: &'a Map<String, Value>,
}

/// Body of `POST /api/v1/activities/{id}/ws/error`.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct StreamError<'a> {
    pub(crate) error: &'a str,
}

/// Serializes a request body once, to be shared by every retry.
pub(crate) fn encode(value: &impl Serialize) -> bytes::Bytes {
    // The protocol types hold only strings, numbers, maps and `Value`s, whose
    // serialization cannot fail.
    bytes::Bytes::from(serde_json::to_vec(value).expect("protocol request bodies always serialize"))
}
