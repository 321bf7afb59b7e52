//! Checking bodies against exchanges captured from the real server: load the captured
//! request/response pairs, and compare JSON by shape (keys and value types), since ids
//! and timestamps differ on every run.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

/// One HTTP exchange captured from the real server.
#[derive(Debug, Clone, Deserialize)]
pub struct Exchange {
    /// File stem, e.g. `poll-two-items`.
    pub name: String,
    /// What the exchange shows.
    #[serde(default)]
    pub note: String,
    /// What was sent.
    pub request: CapturedRequest,
    /// What came back.
    pub response: CapturedResponse,
}

/// The request half of an [`Exchange`].
#[derive(Debug, Clone, Deserialize)]
pub struct CapturedRequest {
    /// HTTP method.
    pub method: String,
    /// Path, with the real run's ids.
    pub path: String,
    /// Headers that matter (tokens replaced by placeholders).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// JSON body, raw text as a JSON string, or `null`.
    #[serde(default)]
    pub body: Value,
}

/// The response half of an [`Exchange`].
#[derive(Debug, Clone, Deserialize)]
pub struct CapturedResponse {
    /// HTTP status.
    pub status: u16,
    /// Headers that matter to a client.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// `json`, `text` or `empty`.
    pub body_kind: String,
    /// The body.
    #[serde(default)]
    pub body: Value,
}

/// Loads every `*.json` exchange in `dir`, sorted by name.
///
/// # Errors
/// When the directory or a file cannot be read, or a file is not an exchange; the
/// message names the file.
pub fn load_exchanges(dir: impl AsRef<Path>) -> Result<Vec<Exchange>, String> {
    let dir = dir.as_ref();
    let entries = std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let mut exchanges = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let exchange: Exchange =
            serde_json::from_str(&text).map_err(|e| format!("{} is not an exchange: {e}", path.display()))?;
        exchanges.push(exchange);
    }
    exchanges.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(exchanges)
}

/// `None` when `actual` has the shape of `expected`, else where and how it differs.
///
/// Objects must have the same keys, arrays the same length, scalars the same JSON type;
/// `null` on either side matches any value, because optional fields are `null` in some
/// runs and filled in others.
///
/// ```
/// use kruxiaflow_worker_testing::conformance::shape_mismatch;
/// use serde_json::json;
///
/// assert_eq!(shape_mismatch(&json!({"a": 1, "b": ["x"]}), &json!({"a": 2, "b": ["y"]})), None);
/// assert_eq!(
///     shape_mismatch(&json!({"cost_usd": "0.1"}), &json!({"cost_usd": 0.1})),
///     Some("$.cost_usd: expected a string, got a number".to_owned())
/// );
/// ```
pub fn shape_mismatch(expected: &Value, actual: &Value) -> Option<String> {
    mismatch_at("$", expected, actual)
}

fn mismatch_at(path: &str, expected: &Value, actual: &Value) -> Option<String> {
    match (expected, actual) {
        (Value::Null, _) | (_, Value::Null) => None,
        (Value::Object(e), Value::Object(a)) => {
            let missing: Vec<&String> = e.keys().filter(|k| !a.contains_key(*k)).collect();
            let extra: Vec<&String> = a.keys().filter(|k| !e.contains_key(*k)).collect();
            if !missing.is_empty() || !extra.is_empty() {
                return Some(format!("{path}: missing keys {missing:?}, unexpected keys {extra:?}"));
            }
            e.iter().find_map(|(key, value)| mismatch_at(&format!("{path}.{key}"), value, &a[key]))
        }
        (Value::Array(e), Value::Array(a)) => {
            if e.len() != a.len() {
                return Some(format!("{path}: expected {} elements, got {}", e.len(), a.len()));
            }
            e.iter().zip(a).enumerate().find_map(|(i, (e, a))| mismatch_at(&format!("{path}[{i}]"), e, a))
        }
        (e, a) if kind(e) == kind(a) => None,
        (e, a) => Some(format!("{path}: expected {}, got {}", kind(e), kind(a))),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
