//! One attempt at one activity, from claim to report. An [`Attempt`] owns everything
//! the attempt holds — its slot, its place among the in-flight attempts, its lease —
//! and gives it all back when dropped, however the attempt ends.

use std::panic::AssertUnwindSafe;
use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use futures_util::future::Either;
use serde_json::Value;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::Instrument;

use super::conclude;
use super::delivery::Reporter;
use super::in_flight::{AttemptState, Registration};
use super::slots::{Slot, Slots};
use crate::context::{ActivityContext, CancelReason};
use crate::error::{ActivityError, codes};
use crate::local_retry;
use crate::registry::ActivityRegistry;
use crate::settle::{Ending, HandlerOutcome, settle};
use crate::telemetry::{self, WorkerMetrics};

/// What running attempts need: their handlers, slots, report delivery and metrics.
pub(super) struct Execution {
    pub(super) registry: ActivityRegistry,
    pub(super) reporter: Reporter,
    pub(super) metrics: Arc<WorkerMetrics>,
    pub(super) slots: Arc<Slots>,
    /// The worker's own runtime, where token streams send from.
    pub(super) control: tokio::runtime::Handle,
    pub(super) worker_id: String,
    pub(super) cancellation_grace: Duration,
}

pub(super) struct Attempt {
    ctx: ActivityContext,
    params: Value,
    timeout: Duration,
    /// `timeout` after the claim (as the context tells the handler).
    deadline: tokio::time::Instant,
    /// `None` for an item the server sent beyond what was asked for: it waits for a
    /// slot like any other claimed work, so the concurrency bound holds.
    slot: Option<Slot>,
    /// Its lease, stage and stream, shared with the worker's runtime.
    state: Arc<AttemptState>,
    /// Held for its `Drop`: the attempt is in flight until this is dropped.
    _registration: Registration,
}

/// When an attempt must be done: its execution timeout, and the instant it runs out
/// (counted from the claim, as the server's lease is).
pub(super) struct Deadline {
    pub(super) timeout: Duration,
    pub(super) at: tokio::time::Instant,
}

impl Attempt {
    /// The attempt of a claimed activity registered as `registration`, with its
    /// context, parameters and shared `state`; it runs in `slot` (counted as running),
    /// or waits for one when it has none.
    pub(super) fn new(
        (ctx, params): (ActivityContext, Value),
        deadline: Deadline,
        slot: Option<Slot>,
        state: Arc<AttemptState>,
        registration: Registration,
    ) -> Self {
        let Deadline { timeout, at } = deadline;
        Self { ctx, params, timeout, deadline: at, slot, state, _registration: registration }
    }

    /// Execute → settle → deliver → account, on the activities' runtime.
    pub(super) async fn run(self, execution: Arc<Execution>) {
        let span = conclude::activity_span(self.ctx.info());
        let _ = self.state.span.set(span.clone());
        self.settle_and_deliver(execution).instrument(span).await;
    }

    async fn settle_and_deliver(mut self, execution: Arc<Execution>) {
        let state = Arc::clone(&self.state);
        let outcome = self.execute(&execution).await;
        // Uploads happened inside the handler, so its files can go before the report.
        self.ctx.close_files();
        let ending = Ending {
            outcome,
            cancelled: self.ctx.cancel_reason(),
            lease: state.lease.state(),
            spend: self.ctx.take_spend(),
            timeout: Some(self.timeout),
        };
        let attempt = (&self.ctx, &*state);
        let Some((report, body)) = settle(&execution.worker_id, ending) else {
            if state.stage.abandon() {
                tracing::warn!("lease lost: the server gave this activity to another worker; nothing is reported");
                conclude::account(&execution.metrics, attempt, None);
            }
            return;
        };
        let Some((report, body)) = state.stage.decide(report, body) else {
            tracing::debug!("the worker settled this attempt while its handler ran past its grace");
            return;
        };
        let accepted = conclude::deliver(&execution.reporter, attempt, report, body).await;
        if state.stage.delivered() {
            conclude::account(&execution.metrics, attempt, accepted.as_deref());
        }
    }

    /// Runs the handler under its deadline, the lease and cancellation; a cancelled
    /// handler gets the grace period, then it is dropped. The handler is polled by this
    /// task itself: one task per attempt, and no hand-off between threads.
    async fn execute(&mut self, execution: &Execution) -> HandlerOutcome {
        let ctx = &self.ctx;
        let lease = &self.state.lease;
        let deadline = self.deadline;
        if self.slot.is_none() {
            let worker = &ctx.info().worker;
            let Some(slot) = self.unless_ended(execution.slots.acquire(worker)).await else {
                return HandlerOutcome::NotStarted;
            };
            self.slot = Some(execution.slots.run_in(slot));
        }
        let info = ctx.info();
        let Some(handler) = execution.registry.get(&info.worker, &info.activity_name) else {
            return HandlerOutcome::Returned(Err(not_found(execution, ctx)));
        };
        // Over its activity's cap, the attempt waits here, in its slot, its lease kept.
        let _below_cap = match &handler.cap {
            Some(cap) => match self.below_cap(cap).await {
                Some(permit) => Some(permit),
                None => return HandlerOutcome::NotStarted,
            },
            None => None,
        };
        execution.metrics.started(&info.worker, &info.activity_name);
        if let Some(stream) = &self.state.stream {
            // On the worker's runtime and pool: the sender sends at once whatever the
            // handler queued while its last request was out, and next to the handler
            // each request came back sooner with less in it — more requests, and more
            // CPU, per token.
            stream.start(&execution.control);
        }
        let _ = self.state.handler_started.set(Instant::now());
        let retries = handler.local_retries;
        let params = std::mem::take(&mut self.params);
        let activity = &handler.activity;
        let try_once = move |params: Value| {
            let run = activity.run_boxed(params, ctx.clone());
            AssertUnwindSafe(run).catch_unwind().map(|returned| returned.unwrap_or_else(panicked))
        };
        // Most handlers run once: their future is the handler's own; the retry loop,
        // and its state, only for activities that asked for local retries.
        let mut handler = pin!(if retries == 0 {
            Either::Left(try_once(params))
        } else {
            // A local retry runs the handler on the same parameters again.
            Either::Right(Box::pin(local_retry::run(ctx, retries, move || try_once(params.clone()), |_| {})))
        });
        tokio::select! {
            returned = &mut handler => return HandlerOutcome::Returned(returned),
            () = tokio::time::sleep_until(deadline) => ctx.cancel(CancelReason::Timeout),
            () = lease.lost() => ctx.cancel(CancelReason::LeaseLost),
            _ = ctx.cancelled() => {}
        }
        let grace = execution.cancellation_grace;
        match tokio::time::timeout(grace, &mut handler).await {
            Ok(returned) => HandlerOutcome::Returned(returned),
            Err(_) => {
                tracing::warn!(?grace, "handler did not return after cancellation; it was dropped");
                HandlerOutcome::Aborted
            }
        }
    }

    /// Waits for `wanted` unless the attempt ends first: it is cancelled, its lease is
    /// lost, or its deadline passes (each cancels it with its reason).
    async fn unless_ended<T>(&self, wanted: impl Future<Output = T>) -> Option<T> {
        let ctx = &self.ctx;
        tokio::select! {
            biased;
            _ = ctx.cancelled() => None,
            () = self.state.lease.lost() => {
                ctx.cancel(CancelReason::LeaseLost);
                None
            }
            () = tokio::time::sleep_until(self.deadline) => {
                ctx.cancel(CancelReason::Timeout);
                None
            }
            got = wanted => Some(got),
        }
    }

    /// A place under the activity's `max_concurrency`, waited for unless the attempt
    /// ends first.
    async fn below_cap(&self, cap: &Arc<Semaphore>) -> Option<OwnedSemaphorePermit> {
        if let Ok(permit) = Arc::clone(cap).try_acquire_owned() {
            return Some(permit);
        }
        let info = self.ctx.info();
        telemetry::concurrency_waiting(&info.worker, &info.activity_name, 1.0);
        let permit = self.unless_ended(Arc::clone(cap).acquire_owned()).await;
        telemetry::concurrency_waiting(&info.worker, &info.activity_name, -1.0);
        permit.map(|permit| permit.expect("an activity's cap is never closed"))
    }
}

fn not_found(execution: &Execution, ctx: &ActivityContext) -> ActivityError {
    let info = ctx.info();
    let registered = execution.registry.names_for(&info.worker);
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
