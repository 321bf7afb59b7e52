//! Reports the worker's own runtime delivers: those of attempts whose task cannot
//! settle them — a handler blocking its thread past its deadline and grace (failed as a
//! timeout), or anything still unsettled at the end of a shutdown's grace — and those
//! of poll items refused at intake. They go over the worker's own connection pool, so
//! they leave even while every thread of the activities' runtime is blocked.

use std::sync::Arc;

use bytes::Bytes;
use tokio::runtime::Handle;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::conclude;
use super::delivery::Reporter;
use super::in_flight::{InFlight, Overdue};
use super::stage::Taken;
use crate::context::CancelReason;
use crate::report::Report;
use crate::settle::{Ending, HandlerOutcome, settle};
use crate::telemetry::WorkerMetrics;

pub(super) struct Takeovers {
    reporter: Reporter,
    /// Told when a takeover leaves an attempt behind.
    in_flight: Arc<InFlight>,
    metrics: Arc<WorkerMetrics>,
    worker_id: String,
    /// The worker's runtime, where these deliveries run.
    control: Handle,
    tasks: TaskTracker,
}

impl Takeovers {
    pub(super) fn new(
        reporter: Reporter,
        (in_flight, metrics): (Arc<InFlight>, Arc<WorkerMetrics>),
        worker_id: String,
        control: Handle,
    ) -> Self {
        Self { reporter, in_flight, metrics, worker_id, control, tasks: TaskTracker::new() }
    }

    /// Delivers the report of a poll item that never became an attempt.
    pub(super) fn refused(self: &Arc<Self>, activity_id: uuid::Uuid, report: Report, body: Bytes) {
        let this = Arc::clone(self);
        let delivery = async move { this.reporter.deliver(activity_id, &report, body, None).await.map(drop) };
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
                let Some(decided) = settle(&self.worker_id, ending) else {
                    span.in_scope(|| conclude::account(&self.metrics, (&ctx, &state), None));
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
            let accepted = conclude::deliver(&this.reporter, (&ctx, &state), report, body).await;
            conclude::account(&this.metrics, (&ctx, &state), accepted.as_deref());
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
        self.reporter.give_up();
    }

    /// The activities whose reports were given up.
    pub(super) fn undelivered(&self) -> Vec<uuid::Uuid> {
        self.reporter.undelivered()
    }
}
