//! One attempt at one activity, from claim to report. An [`Attempt`] owns everything
//! the attempt holds — its slot, its place among the in-flight attempts, its lease —
//! and gives it all back when dropped, however the attempt ends.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::OwnedSemaphorePermit;
use tokio::task::JoinError;
use tracing::Instrument;

use super::Services;
use super::in_flight::Registration;
use super::lease::{Lease, LeaseGuard};
use crate::context::{ActivityContext, CancelReason};
use crate::error::{ActivityError, codes};
use crate::report::Report;
use crate::settle::{Ending, HandlerOutcome, settle};
use crate::stream::{StreamDriver, StreamEnd};
use crate::telemetry::Finished;
use crate::text::Escaped;

pub(super) struct Attempt {
    pub(super) ctx: ActivityContext,
    pub(super) params: Value,
    pub(super) timeout: Duration,
    /// `None` for an item the server sent beyond what was asked for: it waits for a
    /// slot like any other claimed work, so the concurrency bound holds.
    pub(super) slot: Option<OwnedSemaphorePermit>,
    pub(super) lease: LeaseGuard,
    /// The token stream's sender, when the activity opted in to streaming.
    pub(super) stream: Option<StreamDriver>,
    /// Held for its `Drop`: the attempt is in flight until this is dropped.
    pub(super) _registration: Registration,
    /// When the handler started; `None` until it does.
    pub(super) handler_started: Option<Instant>,
}

impl Attempt {
    /// Claim → execute → settle → deliver.
    pub(super) async fn run(self, services: Arc<Services>) {
        let info = self.ctx.info();
        let span = tracing::info_span!(
            "activity",
            activity_id = %info.activity_id,
            workflow_id = %info.workflow_id,
            activity_key = %Escaped(&info.activity_key),
            worker = %Escaped(&info.worker),
            activity_name = %Escaped(&info.activity_name),
        );
        self.settle_and_deliver(services).instrument(span).await;
    }

    async fn settle_and_deliver(mut self, services: Arc<Services>) {
        let lease = Arc::clone(self.lease.lease());
        let outcome = self.execute(&services, &lease).await;
        // Uploads happened inside the handler, so its files can go before the report.
        self.ctx.close_files();
        let ending = Ending {
            outcome,
            cancelled: self.ctx.cancel_reason(),
            lease: lease.state(),
            spend: self.ctx.take_spend(),
            timeout: Some(self.timeout),
        };
        let settled = settle(&services.config.worker_id, ending);
        // Streaming never settles an activity: its end goes out first, then the report.
        if let Some(stream) = self.stream.take() {
            stream.finish(StreamEnd::for_report(settled.as_ref().map(|(report, _)| report))).await;
        }
        let accepted = match settled {
            None => {
                tracing::warn!("lease lost: the server gave this activity to another worker; nothing is reported");
                None
            }
            // A heartbeat 409 while the report is being retried means the report never
            // committed and never will: the activity is someone else's now. The lease
            // is kept (and watched) until the report is answered.
            Some((report, body)) => tokio::select! {
                accepted = services.reporter.deliver(self.ctx.activity_id(), report, body) => accepted,
                () = lease.lost() => {
                    tracing::warn!("lease lost while reporting; the report is dropped and the server runs the activity again");
                    None
                }
            },
        };
        let elapsed = self.handler_started.map(|started| started.elapsed());
        let info = self.ctx.info();
        services.metrics.finished(&info.worker, &info.activity_name, accepted.as_ref(), elapsed);
        log_finished(accepted.as_ref(), elapsed);
    }

    /// Runs the handler on the activities' runtime under the timeout, the lease and
    /// cancellation; a cancelled handler gets the grace period, then its task is aborted.
    async fn execute(&mut self, services: &Services, lease: &Lease) -> HandlerOutcome {
        let ctx = &self.ctx;
        if self.slot.is_none() {
            tokio::select! {
                biased;
                _ = ctx.cancelled() => return HandlerOutcome::NotStarted,
                () = lease.lost() => {
                    ctx.cancel(CancelReason::LeaseLost);
                    return HandlerOutcome::NotStarted;
                }
                permit = Arc::clone(&services.slots).acquire_owned() => {
                    self.slot = Some(permit.expect("the slot semaphore is never closed"));
                }
            }
        }
        let info = ctx.info();
        let Some(activity) = services.registry.get(&info.worker, &info.activity_name) else {
            return HandlerOutcome::Returned(Err(not_found(services, ctx)));
        };
        let params = std::mem::take(&mut self.params);
        services.metrics.started(&info.worker, &info.activity_name);
        if let Some(stream) = &mut self.stream {
            stream.start();
        }
        self.handler_started = Some(Instant::now());
        let mut task = {
            let ctx = ctx.clone();
            services.activities.spawn(async move { activity.run_boxed(params, ctx).await }.in_current_span())
        };
        tokio::select! {
            joined = &mut task => return returned(joined),
            () = tokio::time::sleep(self.timeout) => ctx.cancel(CancelReason::Timeout),
            () = lease.lost() => ctx.cancel(CancelReason::LeaseLost),
            _ = ctx.cancelled() => {}
        }
        let grace = services.config.cancellation_grace;
        match tokio::time::timeout(grace, &mut task).await {
            Ok(joined) => returned(joined),
            Err(_) => {
                task.abort();
                tracing::warn!(?grace, "handler did not return after cancellation; its task was aborted");
                HandlerOutcome::Aborted
            }
        }
    }
}

/// One line per finished attempt, at `info` (inside the attempt's span, which names
/// the activity).
fn log_finished(accepted: Option<&Report>, elapsed: Option<Duration>) {
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

fn returned(joined: Result<Result<crate::ActivityResult, ActivityError>, JoinError>) -> HandlerOutcome {
    match joined {
        Ok(outcome) => HandlerOutcome::Returned(outcome),
        Err(error) if error.is_panic() => {
            let error = ActivityError::from_panic(&*error.into_panic());
            tracing::error!(panic = %error.message(), "activity panicked");
            HandlerOutcome::Returned(Err(error))
        }
        // The activities' runtime is going away under it.
        Err(_) => HandlerOutcome::Aborted,
    }
}
