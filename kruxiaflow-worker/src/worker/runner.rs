//! Running one attempt: the handler under a timeout and cancellation, panics caught,
//! and exactly one report at the end (none when the lease was lost).

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::OwnedSemaphorePermit;
use tokio::task::JoinError;
use tracing::Instrument;

use super::dispatch::Timeouts;
use super::{Shared, delivery, heartbeat};
use crate::context::{ActivityContext, CancelReason};
use crate::error::{ActivityError, codes};
use crate::report::Report;
use crate::result::ActivityResult;

type Outcome = Result<ActivityResult, ActivityError>;

pub(super) async fn run(
    shared: Arc<Shared>,
    ctx: ActivityContext,
    params: Value,
    timeouts: Timeouts,
    permit: OwnedSemaphorePermit,
) {
    let info = ctx.info();
    let span = tracing::info_span!(
        "activity",
        activity_id = %info.activity_id,
        workflow_id = %info.workflow_id,
        activity_key = %info.activity_key,
        worker = %info.worker,
        activity_name = %info.activity_name,
    );
    async {
        // Polled alongside the handler and then the report, rather than spawned: one
        // task fewer per activity, and the lease is kept until the report is answered.
        let keep_alive = heartbeat::keep_alive(shared.client.clone(), ctx.clone(), timeouts.heartbeat);
        tokio::pin!(keep_alive);
        let outcome = tokio::select! {
            outcome = execute(&shared, &ctx, params, timeouts.execution) => outcome,
            never = &mut keep_alive => match never {},
        };
        // Uploads happened inside the handler, so its files can go before the report.
        ctx.close_files();
        match outcome {
            Some(outcome) => {
                let report = Report::from_outcome(&shared.config.worker_id, outcome, ctx.take_spend());
                // Boxed: the report's HTTP future is large and only needed from here on.
                let deliver = Box::pin(delivery::deliver(&shared.client, &shared.report_slots, ctx.activity_id(), report));
                // A heartbeat 409 while the report is being retried means the report
                // never committed and never will: the activity is someone else's now.
                tokio::select! {
                    () = deliver => {}
                    () = lease_lost(&ctx) => tracing::warn!("lease lost while reporting; the report is dropped and the server runs the activity again"),
                    never = &mut keep_alive => match never {},
                }
            }
            None => tracing::warn!("lease lost: the server gave this activity to another worker; nothing is reported"),
        }
        shared.in_flight().remove(&ctx.activity_id());
        drop(permit);
    }
    .instrument(span)
    .await
}

/// Resolves when the activity's lease is lost; never for other cancellations, whose
/// reports must still be delivered.
async fn lease_lost(ctx: &ActivityContext) {
    if ctx.cancelled().await != CancelReason::LeaseLost {
        std::future::pending::<()>().await;
    }
}

/// Runs the handler. `None` means the attempt must not be reported (lease lost).
async fn execute(shared: &Shared, ctx: &ActivityContext, params: Value, timeout: Duration) -> Option<Outcome> {
    let info = ctx.info();
    let Some(activity) = shared.registry.get(&info.worker, &info.activity_name) else {
        let registered = shared.registry.names_for(&info.worker);
        return Some(Err(ActivityError::retryable(
            codes::ACTIVITY_NOT_FOUND,
            format!(
                "no activity '{}' is registered for worker type '{}' on worker {}; registered: [{}]",
                info.activity_name,
                info.worker,
                info.worker_id,
                registered.join(", ")
            ),
        )));
    };
    let mut task = {
        let ctx = ctx.clone();
        tokio::spawn(async move { activity.run_boxed(params, ctx).await }.in_current_span())
    };
    let joined = tokio::select! {
        joined = &mut task => Some(joined),
        () = tokio::time::sleep(timeout) => {
            ctx.cancel(CancelReason::Timeout);
            None
        }
        _ = ctx.cancelled() => None,
    };
    let joined = match joined {
        Some(joined) => joined,
        None => {
            // Cooperative first: the handler sees the cancellation and may return.
            let grace = shared.config.cancellation_grace;
            match tokio::time::timeout(grace, &mut task).await {
                Ok(joined) => joined,
                Err(_) => {
                    task.abort();
                    tracing::warn!(?grace, "handler did not return after cancellation; its task was aborted");
                    return cancelled(ctx, timeout, None);
                }
            }
        }
    };
    let outcome = joined.unwrap_or_else(|e| Err(panic_error(e)));
    match ctx.cancel_reason() {
        None => Some(outcome),
        Some(_) => cancelled(ctx, timeout, Some(outcome)),
    }
}

/// The report of a cancelled attempt. A result the handler still managed to return is
/// kept (nothing is lost); an error it returned because of the cancellation is replaced
/// by the cancellation's own retryable failure.
fn cancelled(ctx: &ActivityContext, timeout: Duration, returned: Option<Outcome>) -> Option<Outcome> {
    let reason = ctx.cancel_reason().unwrap_or(CancelReason::Requested);
    if let Some(Ok(result)) = returned {
        return (reason != CancelReason::LeaseLost).then_some(Ok(result));
    }
    match reason {
        CancelReason::LeaseLost => None,
        CancelReason::Timeout => Some(Err(ActivityError::retryable(
            codes::TIMEOUT,
            format!("Activity execution timed out after {timeout:?}"),
        ))),
        CancelReason::Shutdown => Some(Err(ActivityError::retryable(
            codes::WORKER_SHUTDOWN,
            "the worker shut down before the activity finished",
        ))),
        _ => Some(
            returned
                .unwrap_or_else(|| Err(ActivityError::retryable(codes::EXECUTION_ERROR, "the activity was cancelled"))),
        ),
    }
}

fn panic_error(error: JoinError) -> ActivityError {
    if !error.is_panic() {
        return ActivityError::retryable(codes::EXECUTION_ERROR, "the activity task was cancelled");
    }
    let error = ActivityError::from_panic(&*error.into_panic());
    tracing::error!(panic = %error.message(), "activity panicked");
    error
}
