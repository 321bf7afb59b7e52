//! Turning what an attempt produced into the body of a complete or fail request.

use rust_decimal::Decimal;
use serde_json::Value;

use crate::error::{ActivityError, codes};
use crate::names::is_code;
use crate::protocol::{CompleteRequest, FailRequest, FailureDetails, UsageEntry};
use crate::result::{ActivityResult, Spend};
use crate::stream::StreamEnd;
use crate::telemetry::{Ended, Finished};

/// The request that settles an attempt. Serializes as its body.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(untagged)]
pub enum Report {
    /// `POST /api/v1/activities/{id}/complete`
    Complete(CompleteRequest),
    /// `POST /api/v1/activities/{id}/fail`
    Fail(FailRequest),
}

impl Report {
    /// The report for an attempt that ended with `outcome`, carrying the money the
    /// attempt recorded through its context as well as what the result or error carries.
    pub fn from_outcome(worker_id: &str, outcome: Result<ActivityResult, ActivityError>, spend: Spend) -> Self {
        match outcome {
            Ok(result) => {
                let parts = result.into_report_parts();
                let (output, (cost, usage)) = (parts.output, merge(spend, parts.cost, parts.usage));
                match output {
                    Ok(output) => Self::Complete(CompleteRequest {
                        worker_id: worker_id.to_owned(),
                        output,
                        cost_usd: cost,
                        usage,
                    }),
                    Err(error) => Self::failure(worker_id, error, cost, usage),
                }
            }
            Err(mut error) => {
                let (cost, usage) = error.take_spend();
                let (cost, usage) = merge(spend, cost, usage);
                Self::failure(worker_id, error, cost, usage)
            }
        }
    }

    fn failure(worker_id: &str, error: ActivityError, cost: Option<Decimal>, usage: Vec<UsageEntry>) -> Self {
        // The server refuses empty codes and messages (422); never let that lose a report.
        let non_empty = |s: &str, fallback: &str| if s.trim().is_empty() { fallback.to_owned() } else { s.to_owned() };
        let (code, message) = match (error.code(), error.message()) {
            (code, message) if code.trim().is_empty() || is_code(code) => {
                (non_empty(code, codes::EXECUTION_ERROR), non_empty(message, "the activity failed without a message"))
            }
            // Loud rather than a workflow branching on a sentence as a code.
            (code, message) => (
                codes::INVALID_ERROR_CODE.to_owned(),
                format!(
                    "the activity failed with code {code:?} and message {message:?}, but a code is a word of letters, digits, '_', '.', ':', '/' or '-': were they swapped? ActivityError::terminal(code, message) takes the code first, ActivityResult::error(message, code, retryable) the message"
                ),
            ),
        };
        Self::Fail(FailRequest {
            worker_id: worker_id.to_owned(),
            error: FailureDetails { code, message, retryable: error.is_retryable() },
            cost_usd: cost,
            usage,
        })
    }

    /// A failure the server retries if the activity has retries left.
    pub(crate) fn may_be_retried(&self) -> bool {
        matches!(self, Self::Fail(fail) if fail.error.retryable)
    }

    /// The message that ends an active stream before this report: `ws/complete` with
    /// the output object `/complete` carries, or `ws/error` with the failure message.
    pub(crate) fn stream_end(&self) -> StreamEnd {
        match self {
            Self::Complete(complete) => StreamEnd::Complete(complete.output.clone()),
            Self::Fail(fail) => StreamEnd::Error(fail.error.message.clone()),
        }
    }

    /// `"complete"` or `"fail"`: the last path segment of the endpoint.
    pub fn endpoint(&self) -> &'static str {
        match self {
            Self::Complete(_) => "complete",
            Self::Fail(_) => "fail",
        }
    }

    /// The worker the report is from.
    pub fn worker_id(&self) -> &str {
        match self {
            Self::Complete(body) => &body.worker_id,
            Self::Fail(body) => &body.worker_id,
        }
    }

    /// The JSON body exactly as it is sent.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).expect("report bodies always serialize")
    }

    /// The same report without cost and usage: what is sent when the server refused the
    /// spend (422), so that the attempt still settles.
    pub(crate) fn without_spend(&self) -> Option<Self> {
        let mut stripped = self.clone();
        let (cost, usage) = match &mut stripped {
            Self::Complete(body) => (&mut body.cost_usd, &mut body.usage),
            Self::Fail(body) => (&mut body.cost_usd, &mut body.usage),
        };
        if cost.is_none() && usage.is_empty() {
            return None;
        }
        *cost = None;
        usage.clear();
        Some(stripped)
    }
}

fn merge(spend: Spend, cost: Option<Decimal>, usage: Vec<UsageEntry>) -> (Option<Decimal>, Vec<UsageEntry>) {
    let cost = match (spend.cost, cost) {
        (Some(a), Some(b)) => Some(a + b),
        (a, b) => a.or(b),
    };
    let mut all = spend.usage;
    all.extend(usage);
    (cost, all)
}

/// How an attempt ended whose report `accepted` the server took (`None`: none), for
/// the metrics and the log.
pub(crate) fn ended(accepted: Option<&Report>) -> Ended<'_> {
    match accepted {
        Some(Report::Complete(complete)) => {
            Ended { finished: Finished::Completed, cost: complete.cost_usd, usage: &complete.usage }
        }
        Some(Report::Fail(fail)) => {
            Ended { finished: Finished::Failed { code: &fail.error.code }, cost: fail.cost_usd, usage: &fail.usage }
        }
        None => Ended { finished: Finished::Abandoned, cost: None, usage: &[] },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn spend_recorded_on_the_context_rides_on_a_failure() {
        let spend = Spend {
            cost: Some(Decimal::new(2, 3)),
            usage: vec![UsageEntry::new("openai", "gpt-4o-mini").input_tokens(800)],
        };
        let error =
            ActivityError::retryable("UPSTREAM_5XX", "render service returned 503").with_cost(Decimal::new(1, 3));
        let report = Report::from_outcome("w", Err(error), spend);
        let Report::Fail(body) = report else { panic!("expected a failure") };
        assert_eq!(body.cost_usd, Some(Decimal::new(3, 3)));
        assert_eq!(body.usage.len(), 1);
        assert!(body.error.retryable);
    }

    #[test]
    fn bodies_are_exactly_the_protocols() {
        let spend = Spend { cost: Some(Decimal::new(1, 3)), usage: vec![] };
        let report = Report::from_outcome("worker_1", Ok(ActivityResult::value("n", 2)), spend);
        assert_eq!(report.endpoint(), "complete");
        assert_eq!(
            report.to_json(),
            serde_json::json!({"worker_id": "worker_1", "output": {"n": 2}, "cost_usd": "0.001"})
        );
        let error = ActivityError::terminal("VALIDATION_ERROR", "text is empty");
        let failed = Report::from_outcome("worker_1", Err(error), Spend::default());
        assert_eq!(
            failed.to_json(),
            serde_json::json!({"worker_id": "worker_1",
                "error": {"code": "VALIDATION_ERROR", "message": "text is empty", "retryable": false}})
        );
    }

    #[test]
    fn an_error_result_is_reported_as_a_failure() {
        let result = ActivityResult::error("text is empty", "VALIDATION_ERROR", false);
        let report = Report::from_outcome("w", Ok(result), Spend::default());
        assert_eq!(report.endpoint(), "fail");
        assert_eq!(report.to_json()["error"]["code"], "VALIDATION_ERROR");
    }

    #[test]
    fn the_stream_end_carries_the_reports_output_or_message() {
        let complete = Report::from_outcome("w", Ok(ActivityResult::value("text", "Hi")), Spend::default());
        let expected = serde_json::Map::from_iter([("text".to_owned(), json!("Hi"))]);
        assert_eq!(complete.stream_end(), StreamEnd::Complete(expected));
        let fail = Report::from_outcome("w", Err(ActivityError::terminal("X", "it broke")), Spend::default());
        assert_eq!(fail.stream_end(), StreamEnd::Error("it broke".to_owned()));
    }

    #[test]
    fn a_code_and_message_swapped_fail_as_invalid_error_code_naming_both() {
        let swapped = [
            Err(ActivityError::terminal("text must not be empty", "BAD_INPUT")),
            Ok(ActivityResult::error("BAD_INPUT", "text must not be empty", false)),
        ];
        for outcome in swapped {
            let report = Report::from_outcome("w", outcome, Spend::default());
            assert_eq!(
                report.to_json()["error"],
                json!({
                    "code": "INVALID_ERROR_CODE",
                    "message": "the activity failed with code \"text must not be empty\" and message \"BAD_INPUT\", but a code is a word of letters, digits, '_', '.', ':', '/' or '-': were they swapped? ActivityError::terminal(code, message) takes the code first, ActivityResult::error(message, code, retryable) the message",
                    "retryable": false
                })
            );
        }
        for code in ["BAD_INPUT", "openai:rate_limited", "http.429", "A-1/b"] {
            let report = Report::from_outcome("w", Err(ActivityError::retryable(code, "m")), Spend::default());
            assert_eq!(report.to_json()["error"]["code"], code);
        }
    }

    #[test]
    fn empty_codes_and_messages_are_replaced_so_the_server_accepts_the_report() {
        let report = Report::from_outcome("w", Err(ActivityError::retryable("", " ")), Spend::default());
        assert_eq!(report.to_json()["error"]["code"], "EXECUTION_ERROR");
        assert_eq!(report.to_json()["error"]["message"], "the activity failed without a message");
    }
}
