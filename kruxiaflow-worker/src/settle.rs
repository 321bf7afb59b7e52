//! The settle rule: what one attempt reports, decided from what its handler did, how it
//! was cancelled, what the worker knows about its lease, and what it spent. One pure
//! function, used by the worker and by the testing crate's `MockContext`, so a mock's
//! report is exactly what a worker would send.

use std::time::Duration;

use bytes::Bytes;

use crate::context::CancelReason;
use crate::error::{ActivityError, codes};
use crate::report::Report;
use crate::result::{ActivityResult, Spend};

/// The server refuses JSON bodies larger than this (50 MiB) with a 413.
pub(crate) const MAX_JSON_BODY: usize = 50 * 1024 * 1024;

/// Failure messages longer than this are cut, so a failure can always be reported.
const MAX_MESSAGE_CHARS: usize = 64 * 1024;

/// How the handler of one attempt ended.
#[derive(Debug)]
pub enum HandlerOutcome {
    /// It returned (a panic counts as returning its `PANIC` error).
    Returned(Result<ActivityResult, ActivityError>),
    /// It did not return within the cancellation grace: its future was dropped, or, for
    /// a handler blocking its thread, the worker's runtime settled it.
    Aborted,
    /// It never started: the attempt was cancelled while waiting for a free slot.
    NotStarted,
}

/// What the worker knows about the lease of an attempt, from heartbeats. Kept apart
/// from the handler's cancellation: a lease can be lost after a timeout or shutdown
/// already cancelled the handler, and then nothing may be reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseState {
    /// Renewed as expected (or not yet due).
    Held,
    /// The server gave the activity to another worker (heartbeat 409).
    Lost,
    /// The server does not know the activity (heartbeat 404).
    Unknown,
}

/// Everything the settle rule looks at.
#[derive(Debug)]
pub struct Ending {
    /// How the handler ended.
    pub outcome: HandlerOutcome,
    /// The first cancellation the handler was told about, if any.
    pub cancelled: Option<CancelReason>,
    /// The lease as last heard from the server.
    pub lease: LeaseState,
    /// Money recorded through the context.
    pub spend: Spend,
    /// The execution timeout, for the `TIMEOUT` message.
    pub timeout: Option<Duration>,
}

/// The report that settles an attempt, with its body encoded once; `None` when the
/// lease is lost and nothing may be reported.
pub fn settle(worker_id: &str, ending: Ending) -> Option<(Report, Bytes)> {
    if ending.lease == LeaseState::Lost {
        return None;
    }
    let outcome = match (ending.outcome, ending.cancelled) {
        // A result the handler still returned is kept, whatever cancelled it: nothing
        // finished is thrown away.
        (HandlerOutcome::Returned(Ok(result)), _) => Ok(result),
        (HandlerOutcome::Returned(Err(error)), None | Some(CancelReason::Requested)) => Err(error),
        // An error returned because of a timeout or shutdown is replaced by the
        // cancellation's own retryable failure.
        (HandlerOutcome::Returned(Err(error)), Some(reason)) => {
            Err(cancellation_failure(reason, ending.timeout, error))
        }
        (HandlerOutcome::Aborted | HandlerOutcome::NotStarted, reason) => {
            let fallback = ActivityError::retryable(codes::EXECUTION_ERROR, "the activity was cancelled");
            Err(cancellation_failure(reason.unwrap_or(CancelReason::Requested), ending.timeout, fallback))
        }
    };
    let report = Report::from_outcome(worker_id, outcome, ending.spend);
    Some(encode_within_limit(worker_id, report))
}

fn cancellation_failure(reason: CancelReason, timeout: Option<Duration>, returned: ActivityError) -> ActivityError {
    match reason {
        CancelReason::Timeout => ActivityError::retryable(
            codes::TIMEOUT,
            match timeout {
                Some(timeout) => format!("Activity execution timed out after {timeout:?}"),
                None => "Activity execution timed out".to_owned(),
            },
        ),
        CancelReason::Shutdown => {
            ActivityError::retryable(codes::WORKER_SHUTDOWN, "the worker shut down before the activity finished")
        }
        // A lost lease is settled above; a requested cancellation keeps what it returned.
        CancelReason::LeaseLost | CancelReason::Requested => returned,
    }
}

/// Encodes `report`. A completion over the server's body limit would be refused on
/// every retry, so it becomes a terminal `OUTPUT_TOO_LARGE` failure (keeping the
/// spend); an oversized failure message is cut.
fn encode_within_limit(worker_id: &str, report: Report) -> (Report, Bytes) {
    let body = crate::protocol::encode(&report);
    if body.len() <= MAX_JSON_BODY {
        return (report, body);
    }
    let report = match report {
        Report::Complete(complete) => {
            let size = body.len();
            let error = ActivityError::terminal(
                codes::OUTPUT_TOO_LARGE,
                format!(
                    "the output is {size} bytes of JSON, over the server's limit of {MAX_JSON_BODY} bytes; \
                     return large data as a file output (ctx.file_output) instead"
                ),
            );
            let spend = Spend { cost: complete.cost_usd, usage: complete.usage };
            Report::from_outcome(worker_id, Err(error), spend)
        }
        Report::Fail(mut fail) => {
            let cut: String = fail.error.message.chars().take(MAX_MESSAGE_CHARS).collect();
            fail.error.message = format!("{cut}… (message cut at {MAX_MESSAGE_CHARS} characters)");
            Report::Fail(fail)
        }
    };
    let body = crate::protocol::encode(&report);
    (report, body)
}

#[cfg(test)]
mod tests;
