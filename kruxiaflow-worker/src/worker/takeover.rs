//! Reports the worker's own runtime delivers: those of attempts whose task cannot
//! settle them — a handler blocking its thread past its deadline and grace (failed as a
//! timeout), or anything still unsettled at the end of a shutdown's grace — and those
//! of poll items that cannot be understood. They go over the worker's own connection
//! pool, so they leave even while every thread of the activities' runtime is blocked.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::runtime::Handle;
use tokio_util::task::TaskTracker;
use tracing::Instrument;
use uuid::Uuid;

use super::conclude::{self, Concluding, Taken};
use super::in_flight::{InFlight, Overdue};
use crate::context::{CancelReason, Spend};
use crate::error::{ActivityError, codes};
use crate::settle::{Ending, HandlerOutcome, LeaseState};
use crate::text::Escaped;

pub(super) struct Takeovers {
    /// Ends attempts over the worker's own connection pool.
    concluding: Concluding,
    /// Told when a takeover leaves an attempt behind.
    in_flight: Arc<InFlight>,
    /// The worker's runtime, where these deliveries run.
    control: Handle,
    tasks: TaskTracker,
}

impl Takeovers {
    pub(super) fn new(concluding: Concluding, in_flight: Arc<InFlight>, control: Handle) -> Self {
        Self { concluding, in_flight, control, tasks: TaskTracker::new() }
    }

    /// Fails a poll item that does not parse, terminally (it would not parse on a retry
    /// either), if it has an id to fail it by.
    pub(super) fn refuse(self: &Arc<Self>, raw: &RawValue, error: &serde_json::Error) {
        #[derive(Deserialize)]
        struct IdOnly {
            activity_id: Uuid,
        }
        let Ok(IdOnly { activity_id }) = serde_json::from_str(raw.get()) else {
            return tracing::error!(
                error = %Escaped(&error.to_string()),
                "poll item has no usable activity_id, so it cannot be reported; it stays claimed until its lease expires"
            );
        };
        let message = format!("the worker could not parse this activity: {error}");
        tracing::error!(%activity_id, error = %Escaped(&message), "failing a poll item that cannot be parsed");
        let ending = Ending {
            outcome: HandlerOutcome::Returned(Err(ActivityError::terminal(codes::INVALID_ACTIVITY, message))),
            cancelled: None,
            lease: LeaseState::Held,
            spend: Spend::default(),
            timeout: None,
        };
        // With the lease held, the settle rule always reports.
        let Some((report, body)) = self.concluding.settle(ending) else { return };
        let this = Arc::clone(self);
        let delivery =
            async move { this.concluding.reporter().deliver(activity_id, &report, body, None).await.map(drop) };
        self.tasks.spawn_on(delivery, &self.control);
    }

    /// Takes `attempt` over unless it is done: a handler that has not returned is
    /// cancelled with `reason` (unless cancelled already) and settled as aborted; with
    /// `include_decided`, a report decided but perhaps not delivered is delivered from
    /// here too.
    pub(super) fn take_over(self: &Arc<Self>, attempt: Overdue, reason: CancelReason, include_decided: bool) {
        let Overdue { ctx, state, timeout } = attempt;
        let Some(taken) = state.stage.take_over(include_decided) else { return };
        let span = conclude::activity_span(ctx.info());
        let decided = match taken {
            Taken::Decided => None,
            Taken::Undecided => {
                ctx.cancel(reason);
                let cancelled = ctx.cancel_reason();
                span.in_scope(|| {
                    tracing::warn!(
                        reason = ?cancelled,
                        "the handler has not returned after its cancellation grace and its task does not run (blocking code?); settling it from the worker"
                    )
                });
                let ending = Ending {
                    outcome: HandlerOutcome::Aborted,
                    cancelled,
                    lease: state.lease.state(),
                    spend: ctx.take_spend(),
                    timeout: Some(timeout),
                };
                let Some(decided) = self.concluding.settle(ending) else {
                    span.in_scope(|| self.concluding.account((&ctx, &state), None));
                    state.stage.takeover_ended();
                    self.in_flight.attempt_ended();
                    return;
                };
                Some(decided)
            }
        };
        let this = Arc::clone(self);
        let delivery = async move {
            let (report, body) = match &decided {
                Some((report, body)) => (report, body.clone()),
                None => state.stage.decided().expect("a settled attempt holds its report"),
            };
            // The stream's end is sent by this side or, when the attempt settled
            // itself, waited for from the attempt's own delivery.
            let accepted = this.concluding.deliver((&ctx, &state), report, body).await;
            this.concluding.account((&ctx, &state), accepted.as_deref());
            state.stage.takeover_ended();
            this.in_flight.attempt_ended();
        };
        self.tasks.spawn_on(delivery.instrument(span), &self.control);
    }

    /// Waits until every takeover begun so far has ended.
    pub(super) async fn wait(&self) {
        self.tasks.close();
        self.tasks.wait().await;
    }

    /// Stops every delivery still trying, the attempts' own as well.
    pub(super) fn give_up(&self) {
        self.concluding.reporter().give_up();
    }

    /// The activities whose reports were given up.
    pub(super) fn undelivered(&self) -> Vec<Uuid> {
        self.concluding.reporter().undelivered()
    }
}
