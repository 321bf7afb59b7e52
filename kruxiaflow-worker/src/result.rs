//! What a successful activity returns: named outputs, cost and usage.

use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::{ActivityError, codes};
use crate::protocol::{OutputType, UsageEntry};

mod finite;

/// Money an attempt recorded through its context while running.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Spend {
    /// Sum of [`ActivityContext::add_cost`](crate::ActivityContext::add_cost) calls.
    pub cost: Option<Decimal>,
    /// Entries from [`ActivityContext::record_usage`](crate::ActivityContext::record_usage).
    pub usage: Vec<UsageEntry>,
}

impl Spend {
    /// Adds `other`'s cost and usage to this spend.
    pub(crate) fn add(&mut self, other: &Spend) {
        if let Some(cost) = other.cost {
            self.cost = Some(self.cost.unwrap_or_default() + cost);
        }
        self.usage.extend(other.usage.iter().cloned());
    }
}

/// One named output of an activity.
///
/// ```
/// use kruxiaflow_worker::{ActivityOutput, OutputType};
///
/// let summary = ActivityOutput::value("summary", "3 rows rendered");
/// let report = ActivityOutput::file("report.pdf", "postgres://0193b2c4-ffee-7aa0-9b11-2c3d4e5f6071/render/report.pdf");
/// assert_eq!(report.output_type(), OutputType::File);
/// assert_eq!(summary.name(), "summary");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ActivityOutput {
    name: String,
    output_type: OutputType,
    value: Result<Value, String>,
}

impl ActivityOutput {
    /// A value output. If `value` cannot be serialized to JSON (NaN and infinities
    /// included, which JSON cannot express), the activity fails terminally with
    /// `INVALID_OUTPUT` naming the output when it is reported (it would fail every
    /// retry).
    ///
    /// ```
    /// use kruxiaflow_worker::ActivityOutput;
    ///
    /// assert_eq!(ActivityOutput::value("ratio", 0.5).json(), Some(&serde_json::json!(0.5)));
    /// assert_eq!(ActivityOutput::value("ratio", f64::NAN).json(), None);
    /// ```
    pub fn value(name: impl Into<String>, value: impl Serialize) -> Self {
        let name = name.into();
        let value = finite::check(&value)
            .map_err(|e| e.to_string())
            .and_then(|()| serde_json::to_value(value).map_err(|e| e.to_string()))
            .map_err(|e| format!("output '{name}' cannot be serialized to JSON: {e}"));
        Self { name, output_type: OutputType::Value, value }
    }

    /// A file output: `reference` is the `postgres://{workflow_id}/{activity_key}/{filename}`
    /// string returned by `ActivityContext::upload_file`.
    pub fn file(name: impl Into<String>, reference: impl Into<String>) -> Self {
        Self::reference(name, OutputType::File, reference)
    }

    /// A folder output, reported by its reference string.
    pub fn folder(name: impl Into<String>, reference: impl Into<String>) -> Self {
        Self::reference(name, OutputType::Folder, reference)
    }

    fn reference(name: impl Into<String>, output_type: OutputType, reference: impl Into<String>) -> Self {
        Self { name: name.into(), output_type, value: Ok(Value::String(reference.into())) }
    }

    /// The output's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Value, file or folder.
    pub fn output_type(&self) -> OutputType {
        self.output_type
    }

    /// The JSON value sent under the output's name (a reference string for files),
    /// or `None` if the value could not be serialized.
    pub fn json(&self) -> Option<&Value> {
        self.value.as_ref().ok()
    }
}

/// What kind of JSON value `value` is, for messages.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// The result of a successful activity attempt (or, for parity with the Python SDK,
/// a failure built with [`ActivityResult::error`]).
///
/// ```
/// use kruxiaflow_worker::{ActivityOutput, ActivityResult, UsageEntry};
/// use rust_decimal::Decimal;
///
/// let result = ActivityResult::values(vec![
///     ActivityOutput::value("summary", "ok"),
///     ActivityOutput::value("count", 3),
/// ])
/// .with_cost(Decimal::new(15, 3))
/// .with_usage([UsageEntry::new("openai", "gpt-4o-mini").input_tokens(800)]);
///
/// assert_eq!(result.output("count"), Some(&serde_json::json!(3)));
/// assert_eq!(result.cost(), Some(Decimal::new(15, 3)));
/// assert_eq!(result.usage().len(), 1);
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ActivityResult {
    outputs: Vec<ActivityOutput>,
    cost: Option<Decimal>,
    usage: Vec<UsageEntry>,
    failure: Option<ActivityError>,
}

impl ActivityResult {
    /// A result with a single value output.
    pub fn value(name: impl Into<String>, value: impl Serialize) -> Self {
        Self::values(vec![ActivityOutput::value(name, value)])
    }

    /// A result with several outputs.
    pub fn values(outputs: Vec<ActivityOutput>) -> Self {
        Self { outputs, ..Self::default() }
    }

    /// A result with one value output per field of `value` (a struct or a map), as the
    /// guide's samples return a dict: `{"sentiment": .., "confidence": ..}`.
    ///
    /// ```
    /// use kruxiaflow_worker::ActivityResult;
    ///
    /// #[derive(serde::Serialize)]
    /// struct Analysis { sentiment: &'static str, confidence: f64 }
    ///
    /// let result = ActivityResult::from_serialize(&Analysis { sentiment: "positive", confidence: 0.5 });
    /// assert_eq!(result.output("sentiment"), Some(&serde_json::json!("positive")));
    /// assert_eq!(result.output("confidence"), Some(&serde_json::json!(0.5)));
    /// ```
    ///
    /// A value that is not an object (a number, a list) or cannot be serialized fails
    /// the activity terminally with `INVALID_OUTPUT` when it is reported, as
    /// [`ActivityOutput::value`] does.
    pub fn from_serialize(value: &impl Serialize) -> Self {
        let fields = finite::check(value)
            .map_err(|e| e.to_string())
            .and_then(|()| serde_json::to_value(value).map_err(|e| e.to_string()));
        match fields {
            Ok(Value::Object(fields)) => {
                Self::values(fields.into_iter().map(|(name, value)| ActivityOutput::value(name, value)).collect())
            }
            Ok(other) => Self::invalid(format!(
                "ActivityResult::from_serialize needs a struct or a map, one output per field; got {}",
                kind(&other)
            )),
            Err(error) => Self::invalid(format!("the result cannot be serialized to JSON: {error}")),
        }
    }

    fn invalid(message: String) -> Self {
        Self { failure: Some(ActivityError::terminal(codes::INVALID_OUTPUT, message)), ..Self::default() }
    }

    /// A result with no outputs.
    pub fn empty() -> Self {
        Self::default()
    }

    /// A failed result, for parity with the Python SDK's `ActivityResult.error(...)`.
    /// Returning `Err(ActivityError::terminal(..))` is the idiomatic form.
    pub fn error(message: impl Into<String>, code: impl Into<String>, retryable: bool) -> Self {
        Self { failure: Some(ActivityError::new(code, message, retryable)), ..Self::default() }
    }

    /// Adds an output.
    pub fn with_output(mut self, output: ActivityOutput) -> Self {
        self.outputs.push(output);
        self
    }

    /// Sets the cost not covered by usage entries (the whole cost when there are none).
    pub fn with_cost(mut self, cost: Decimal) -> Self {
        self.cost = Some(cost);
        self
    }

    /// Adds per-LLM-call usage entries.
    pub fn with_usage(mut self, usage: impl IntoIterator<Item = UsageEntry>) -> Self {
        self.usage.extend(usage);
        self
    }

    /// Adds one usage entry.
    pub fn push_usage(&mut self, entry: UsageEntry) -> &mut Self {
        self.usage.push(entry);
        self
    }

    /// The JSON value of the named output, if present and serializable.
    pub fn output(&self, name: &str) -> Option<&Value> {
        self.outputs.iter().find(|o| o.name == name).and_then(ActivityOutput::json)
    }

    /// All outputs in the order they were added.
    pub fn outputs(&self) -> &[ActivityOutput] {
        &self.outputs
    }

    /// The cost set with [`with_cost`](Self::with_cost).
    pub fn cost(&self) -> Option<Decimal> {
        self.cost
    }

    /// Usage entries added to the result.
    pub fn usage(&self) -> &[UsageEntry] {
        &self.usage
    }

    /// The failure, if this result was built with [`ActivityResult::error`].
    pub fn failure(&self) -> Option<&ActivityError> {
        self.failure.as_ref()
    }

    /// Whether this result reports a failure.
    pub fn is_error(&self) -> bool {
        self.failure.is_some()
    }

    /// Splits the result into what the worker reports. Outputs that cannot be
    /// serialized, and two outputs sharing one name, become a terminal `INVALID_OUTPUT`
    /// failure because retrying would produce them again.
    pub(crate) fn into_report_parts(self) -> ReportParts {
        let Self { outputs, cost, usage, failure } = self;
        let output = match failure {
            Some(failure) => Err(failure),
            None => output_object(outputs),
        };
        ReportParts { output, cost, usage }
    }
}

/// What a result contributes to a report.
pub(crate) struct ReportParts {
    /// The `output` object, or the failure to report instead.
    pub(crate) output: Result<Map<String, Value>, ActivityError>,
    pub(crate) cost: Option<Decimal>,
    pub(crate) usage: Vec<UsageEntry>,
}

fn output_object(outputs: Vec<ActivityOutput>) -> Result<Map<String, Value>, ActivityError> {
    let mut map = Map::with_capacity(outputs.len());
    for output in outputs {
        let value = output.value.map_err(|message| ActivityError::terminal(codes::INVALID_OUTPUT, message))?;
        if map.insert(output.name.clone(), value).is_some() {
            let message = format!("two outputs are named '{}'", output.name);
            return Err(ActivityError::terminal(codes::INVALID_OUTPUT, message));
        }
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn unserializable_output_becomes_a_terminal_invalid_output() {
        let mut bad = HashMap::new();
        bad.insert((1, 2), "tuple keys are not JSON object keys");
        let output = ActivityResult::value("map", bad).into_report_parts().output;
        let error = output.unwrap_err();
        assert_eq!(error.code(), codes::INVALID_OUTPUT);
        assert!(!error.is_retryable());
        assert!(error.message().starts_with("output 'map' cannot be serialized"));
    }

    #[test]
    fn nan_and_infinite_outputs_become_a_terminal_invalid_output_naming_the_output() {
        let output = ActivityResult::value("scores", vec![0.5, f64::NAN]).into_report_parts().output;
        let error = output.unwrap_err();
        assert_eq!((error.code(), error.is_retryable()), (codes::INVALID_OUTPUT, false));
        assert_eq!(
            error.message(),
            "output 'scores' cannot be serialized to JSON: NaN at [1] is not a JSON number (JSON has no NaN or infinity)"
        );
    }

    #[test]
    fn from_serialize_makes_one_output_per_field_and_refuses_what_has_no_fields() {
        #[derive(Serialize)]
        struct Analysis {
            sentiment: &'static str,
            scores: Vec<f64>,
        }
        let output = ActivityResult::from_serialize(&Analysis { sentiment: "mixed", scores: vec![0.25] })
            .into_report_parts()
            .output
            .unwrap();
        assert_eq!(Value::Object(output), serde_json::json!({"sentiment": "mixed", "scores": [0.25]}));

        let error = ActivityResult::from_serialize(&[1, 2]).into_report_parts().output.unwrap_err();
        assert_eq!((error.code(), error.is_retryable()), (codes::INVALID_OUTPUT, false));
        assert_eq!(
            error.message(),
            "ActivityResult::from_serialize needs a struct or a map, one output per field; got a list"
        );
        let nan = ActivityResult::from_serialize(&Analysis { sentiment: "?", scores: vec![f64::NAN] });
        assert_eq!(
            nan.into_report_parts().output.unwrap_err().message(),
            "the result cannot be serialized to JSON: NaN at scores[0] is not a JSON number (JSON has no NaN or infinity)"
        );
    }

    #[test]
    fn duplicate_output_names_are_refused() {
        let result = ActivityResult::value("a", 1).with_output(ActivityOutput::value("a", 2));
        let output = result.into_report_parts().output;
        assert_eq!(output.unwrap_err().message(), "two outputs are named 'a'");
    }

    #[test]
    fn file_outputs_are_sent_as_their_reference() {
        let result = ActivityResult::empty().with_output(ActivityOutput::file("r.txt", "postgres://w/k/r.txt"));
        let output = result.into_report_parts().output;
        assert_eq!(output.unwrap()["r.txt"], "postgres://w/k/r.txt");
    }
}
