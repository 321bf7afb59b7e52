//! One attempt at one activity, from claim to report. An [`Attempt`] owns everything
//! the attempt holds — its slot, its place among the in-flight attempts, its lease —
//! and gives it all back when dropped, however the attempt ends.

use std::panic::AssertUnwindSafe;
use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use serde_json::Value;
use tracing::{Instrument, Span};

use super::Services;
use super::in_flight::{AttemptState, Registration};
use super::slots::Slot;
use crate::context::{ActivityContext, ActivityInfo, CancelReason};
use crate::error::{ActivityError, codes};
use crate::report::Report;
use crate::settle::{Ending, HandlerOutcome, settle};
use crate::telemetry::Finished;
use crate::text::Escaped;

pub(super) struct Attempt {
    pub(super) ctx: ActivityContext,
    pub(super) params: Value,
    pub(super) timeout: Duration,
    /// `timeout` after the claim (as the context tells the handler).
    pub(super) deadline: tokio::time::Instant,
    /// `None` for an item the server sent beyond what was asked for: it waits for a
    /// slot like any other claimed work, so the concurrency bound holds.
    pub(super) slot: Option<Slot>,
    /// Its lease and stage, shared with the worker's runtime.
    pub(super) state: Arc<AttemptState>,
    /// Held for its `Drop`: the attempt is in flight until this is dropped.
    pub(super) _registration: Registration,
}

/// The span of everything done for one attempt.
pub(super) fn activity_span(info: &ActivityInfo) -> Span {
    tracing::info_span!(
        "activity",
        activity_id = %info.activity_id,
        workflow_id = %info.workflow_id,
        activity_key = %Escaped(&info.activity_key),
        worker = %Escaped(&info.worker),
        activity_name = %Escaped(&info.activity_name),
    )
}

impl Attempt {
    /// Claim → execute → settle → deliver, on the activities' runtime.
    pub(super) async fn run(self, services: Arc<Services>) {
        let span = activity_span(self.ctx.info());
        self.settle_and_deliver(services).instrument(span).await;
    }

    async fn settle_and_deliver(mut self, services: Arc<Services>) {
        let state = Arc::clone(&self.state);
        let outcome = self.execute(&services).await;
        // Uploads happened inside the handler, so its files can go before the report.
        self.ctx.close_files();
        let ending = Ending {
            outcome,
            cancelled: self.ctx.cancel_reason(),
            lease: state.lease.state(),
            spend: self.ctx.take_spend(),
            timeout: Some(self.timeout),
        };
        let Some((report, body)) = settle(&services.config.worker_id, ending) else {
            if state.stage.abandon() {
                tracing::warn!("lease lost: the server gave this activity to another worker; nothing is reported");
                self.finished(&services, None);
            }
            return;
        };
        let Some((report, body)) = state.stage.settle(report, body) else {
            tracing::debug!("the worker settled this attempt while its handler ran past its grace");
            return;
        };
        // Streaming never settles an activity: its end goes out first, then the report.
        if let Some(stream) = &state.stream {
            services.reporter.unless_given_up(stream.end(Some(report))).await;
        }
        let accepted = services.reporter.deliver(self.ctx.activity_id(), report, body, Some(&state.lease)).await;
        if state.stage.delivered() {
            self.finished(&services, accepted.as_deref());
        }
    }

    fn finished(&self, services: &Services, accepted: Option<&Report>) {
        let elapsed = self.state.handler_started.get().map(|started| started.elapsed());
        let info = self.ctx.info();
        services.metrics.finished(&info.worker, &info.activity_name, accepted, elapsed);
        log_finished(accepted, elapsed);
    }

    /// Runs the handler under its deadline, the lease and cancellation; a cancelled
    /// handler gets the grace period, then it is dropped. The handler is polled by this
    /// task itself: one task per attempt, and no hand-off between threads.
    async fn execute(&mut self, services: &Services) -> HandlerOutcome {
        let ctx = &self.ctx;
        let lease = &self.state.lease;
        let deadline = self.deadline;
        if self.slot.is_none() {
            tokio::select! {
                biased;
                _ = ctx.cancelled() => return HandlerOutcome::NotStarted,
                () = lease.lost() => {
                    ctx.cancel(CancelReason::LeaseLost);
                    return HandlerOutcome::NotStarted;
                }
                () = tokio::time::sleep_until(deadline) => {
                    ctx.cancel(CancelReason::Timeout);
                    return HandlerOutcome::NotStarted;
                }
                slot = services.slots.acquire() => self.slot = Some(services.slots.run_in(slot)),
            }
        }
        let info = ctx.info();
        let Some(activity) = services.registry.get(&info.worker, &info.activity_name) else {
            return HandlerOutcome::Returned(Err(not_found(services, ctx)));
        };
        let params = std::mem::take(&mut self.params);
        services.metrics.started(&info.worker, &info.activity_name);
        if let Some(stream) = &self.state.stream {
            // On the worker's runtime and pool: the sender sends at once whatever the
            // handler queued while its last request was out, and next to the handler
            // each request came back sooner with less in it — more requests, and more
            // CPU, per token.
            stream.start(&services.control);
        }
        let _ = self.state.handler_started.set(Instant::now());
        let mut handler = pin!(AssertUnwindSafe(activity.run_boxed(params, ctx.clone())).catch_unwind());
        tokio::select! {
            returned = &mut handler => return HandlerOutcome::Returned(returned.unwrap_or_else(panicked)),
            () = tokio::time::sleep_until(deadline) => ctx.cancel(CancelReason::Timeout),
            () = lease.lost() => ctx.cancel(CancelReason::LeaseLost),
            _ = ctx.cancelled() => {}
        }
        let grace = services.config.cancellation_grace;
        match tokio::time::timeout(grace, &mut handler).await {
            Ok(returned) => HandlerOutcome::Returned(returned.unwrap_or_else(panicked)),
            Err(_) => {
                tracing::warn!(?grace, "handler did not return after cancellation; it was dropped");
                HandlerOutcome::Aborted
            }
        }
    }
}

/// One line per finished attempt, at `info` (inside the attempt's span, which names
/// the activity).
pub(super) fn log_finished(accepted: Option<&Report>, elapsed: Option<Duration>) {
    let took = Took(elapsed);
    match Finished::of(accepted) {
        Finished::Completed => tracing::info!(outcome = "completed", %took, "activity finished"),
        Finished::Failed { code } => {
            tracing::info!(outcome = "failed", code = %Escaped(code), %took, "activity finished")
        }
        Finished::Abandoned => tracing::info!(outcome = "abandoned", %took, "activity finished: nothing was reported"),
    }
}

/// How long a handler ran, formatted only when the line is written.
struct Took(Option<Duration>);

impl std::fmt::Display for Took {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(elapsed) => write!(f, "{:.3}s", elapsed.as_secs_f64()),
            None => f.write_str("not started"),
        }
    }
}

fn not_found(services: &Services, ctx: &ActivityContext) -> ActivityError {
    let info = ctx.info();
    let registered = services.registry.names_for(&info.worker);
    ActivityError::retryable(
        codes::ACTIVITY_NOT_FOUND,
        format!(
            "no activity '{}' is registered for worker type '{}' on worker {}; registered: [{}]",
            info.activity_name,
            info.worker,
            info.worker_id,
            registered.join(", ")
        ),
    )
}

fn panicked(payload: Box<dyn std::any::Any + Send>) -> Result<crate::ActivityResult, ActivityError> {
    let error = ActivityError::from_panic(&*payload);
    tracing::error!(panic = %error.message(), "activity panicked");
    Err(error)
}
