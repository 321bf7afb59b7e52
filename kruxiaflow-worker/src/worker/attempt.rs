//! One attempt at one activity, from the claimed item to its handler's outcome: the
//! [`Intake`] turns the items of a poll into attempts, one by one (an item that cannot
//! be understood is refused on its own and never takes the rest of the batch with it);
//! an [`Attempt`] runs its handler under its deadline, lease, limits and cancellation,
//! then hands itself to [`Concluding::end`], which reports it and gives back what it
//! holds — its slot, its place among the in-flight attempts.

use std::panic::AssertUnwindSafe;
use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use futures_util::future::Either;
use serde_json::Value;
use serde_json::value::RawValue;
use tokio::runtime::Handle;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::Instrument;

use super::backend::ServerBackend;
use super::conclude::{AttemptState, Concluding, HandlerDone};
use super::in_flight::{InFlight, Registration, Slot, Slots, Watch};
use super::stream_transport::ServerTransport;
use super::takeover::Takeovers;
use crate::client::ApiClient;
use crate::config::WorkerConfig;
use crate::context::{ActivityContext, ActivityInfo, CancelReason};
use crate::error::{ActivityError, codes};
use crate::local_retry;
use crate::protocol::PendingActivity;
use crate::rate_limit::RateLimits;
use crate::registry::{ActivityRegistry, Handler};
use crate::result::ActivityResult;
use crate::settle::HandlerOutcome;
use crate::stream::{self, StreamDriver, StreamEnding, TokenStream};
use crate::telemetry::{self, WorkerMetrics};

/// The server's lease when an activity has no `timeout_seconds`.
const DEFAULT_LEASE: Duration = Duration::from_secs(60);
/// Timeouts from the server are clamped to this, so no number can overflow a clock.
const MAX_TIMEOUT: Duration = Duration::from_secs(366 * 24 * 3600);
/// How long after its deadline and cancellation grace a handler that still has not
/// returned counts as stuck, so that the worker's runtime settles it: time for a task
/// that does run to settle on its own first.
const OVERDUE_MARGIN: Duration = Duration::from_secs(1);

/// What turns poll items into running attempts.
pub(super) struct Intake {
    pub(super) execution: Arc<Execution>,
    /// The worker's rate limits, shared by every attempt's context.
    pub(super) rate_limits: Arc<RateLimits>,
    pub(super) config: WorkerConfig,
    /// The worker's own traffic (heartbeats, token streams), driven by `control`.
    pub(super) client: ApiClient,
    pub(super) control: Handle,
    /// The activities' traffic (file transfers), driven by `activities`.
    pub(super) work: ApiClient,
    pub(super) in_flight: Arc<InFlight>,
    pub(super) takeovers: Arc<Takeovers>,
    /// Where attempts run.
    pub(super) activities: Handle,
}

/// What running attempts need: their handlers, slots, metrics, and how they end.
pub(super) struct Execution {
    pub(super) registry: ActivityRegistry,
    pub(super) concluding: Concluding,
    pub(super) metrics: Arc<WorkerMetrics>,
    pub(super) slots: Arc<Slots>,
    /// The worker's own runtime, where token streams send from.
    pub(super) control: Handle,
    pub(super) cancellation_grace: Duration,
}

impl Intake {
    /// Starts the attempt of `raw`, holding `slot` (or waiting for one), or refuses an
    /// item that cannot be understood.
    pub(super) fn admit(&self, raw: &RawValue, slot: Option<Slot>) {
        match serde_json::from_str::<PendingActivity>(raw.get()) {
            Ok(item) => {
                if let Some(attempt) = Attempt::admit(self, item, slot) {
                    self.activities.spawn(attempt.run(Arc::clone(&self.execution)));
                }
            }
            Err(error) => self.takeovers.refuse(raw, &error),
        }
    }
}

/// One attempt, from its admission to the hand-over of its outcome.
struct Attempt {
    ctx: ActivityContext,
    params: Value,
    timeout: Duration,
    /// `timeout` after the claim (as the context tells the handler).
    deadline: tokio::time::Instant,
    /// `None` for an item the server sent beyond what was asked for: it waits for a
    /// slot like any other claimed work, so the concurrency bound holds.
    slot: Option<Slot>,
    /// Its lease, stage, stream and span, shared with the worker's runtime.
    state: Arc<AttemptState>,
    /// The attempt is in flight until this is given back.
    registration: Registration,
}

impl Attempt {
    /// The attempt of `item`, holding `slot` (or waiting for one). It is registered
    /// among the in-flight attempts first, so its lease is kept and it is settled from
    /// the worker's runtime if its own task cannot; `None` when the activity already
    /// runs here.
    fn admit(intake: &Intake, item: PendingActivity, slot: Option<Slot>) -> Option<Self> {
        let config = &intake.config;
        let timeouts = Timeouts::for_item(&item, config.activity_timeout, config.heartbeat_interval);
        let (stream, token_stream) = if stream::opted_in(&item.settings) {
            let transport = ServerTransport::new(intake.client.clone(), item.activity_id, config.http_timeout);
            let (driver, token_stream) = StreamDriver::new(transport, config.stream_linger);
            (Some(Box::new(StreamEnding::new(driver))), token_stream)
        } else {
            (None, TokenStream::disabled())
        };
        // The execution timeout counts from the claim, as the server's lease does.
        let deadline = tokio::time::Instant::now() + timeouts.execution;
        let info = ActivityInfo {
            activity_id: item.activity_id,
            workflow_id: item.workflow_id,
            activity_key: item.activity_key,
            worker: item.worker,
            activity_name: item.activity_name,
            worker_id: config.worker_id.clone(),
            signal: item.signal_data,
            settings: item.settings,
            output_definitions: item.output_definitions.unwrap_or_default(),
            deadline: Some(deadline),
        };
        let state = AttemptState::new(stream, &info);
        let backend = ServerBackend::new(
            (intake.client.clone(), intake.control.clone(), intake.work.clone()),
            Arc::clone(&state),
            (info.activity_id, config.worker_id.clone()),
            timeouts.heartbeat,
        );
        let ctx = ActivityContext::with_stream(info, Arc::new(backend), token_stream, Arc::clone(&intake.rate_limits));
        let watch = Watch {
            heartbeat_every: timeouts.heartbeat,
            timeout: timeouts.execution,
            overdue_at: deadline + config.cancellation_grace + OVERDUE_MARGIN,
        };
        let Some(registration) = intake.in_flight.register(&ctx, &state, watch) else {
            // In the span made for it, which (with traces) shows the second claim.
            let _in_span = state.span.enter();
            tracing::warn!("activity is already running on this worker; not starting it twice");
            return None;
        };
        let slot = slot.map(|slot| intake.execution.slots.run_in(slot));
        let (params, timeout) = (item.parameters, timeouts.execution);
        Some(Self { ctx, params, timeout, deadline, slot, state, registration })
    }

    /// Runs the handler, then hands the attempt over to be ended, on the activities'
    /// runtime, inside the attempt's span.
    ///
    /// This future is what each attempt in flight costs in memory: it holds the attempt
    /// once (a plain function returning the block: an `async fn` around it would hold it
    /// twice), and the end, larger than the handler's part and alive only after it, is
    /// boxed.
    fn run(mut self, execution: Arc<Execution>) -> impl Future<Output = ()> + Send {
        let span = self.state.span.clone();
        async move {
            let outcome = self.execute(&execution).await;
            // Uploads happened inside the handler, so its files can go before the report.
            self.ctx.close_files();
            let Self { ctx, state, timeout, slot, registration, .. } = self;
            let done = HandlerDone { ctx, state, outcome, timeout, held: (slot, registration) };
            Box::pin(execution.concluding.end(done)).await;
        }
        .instrument(span)
    }

    /// Runs the handler under its deadline, the lease and cancellation; a cancelled
    /// handler gets the grace period, then it is dropped. The handler is polled by this
    /// task itself: one task per attempt, and no hand-off between threads.
    async fn execute(&mut self, execution: &Execution) -> HandlerOutcome {
        // The two waits before the handler are rare (an item beyond what a poll asked
        // for, an activity over its `max_concurrency`): boxed, so that the future of
        // every other attempt in flight does not carry their size.
        if self.slot.is_none() {
            let worker = &self.ctx.info().worker;
            let Some(slot) = Box::pin(self.unless_ended(execution.slots.acquire(worker))).await else {
                return HandlerOutcome::NotStarted;
            };
            self.slot = Some(execution.slots.run_in(slot));
        }
        let info = self.ctx.info();
        let Some(handler) = execution.registry.get(&info.worker, &info.activity_name) else {
            return HandlerOutcome::Returned(Err(not_found(execution, &self.ctx)));
        };
        // Over its activity's cap, the attempt waits here, in its slot, its lease kept.
        let _below_cap = match &handler.cap {
            Some(cap) => match Box::pin(self.below_cap(cap)).await {
                Some(permit) => Some(permit),
                None => return HandlerOutcome::NotStarted,
            },
            None => None,
        };
        let params = std::mem::take(&mut self.params);
        let mut handler = pin!(self.start(execution, handler, params));
        let (ctx, lease) = (&self.ctx, &self.state.lease);
        tokio::select! {
            returned = &mut handler => return HandlerOutcome::Returned(returned),
            () = tokio::time::sleep_until(self.deadline) => ctx.cancel(CancelReason::Timeout),
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

    /// Starts `handler` on `params`: counts it as started, starts the attempt's token
    /// stream, and returns the handler's future, with its panics caught.
    fn start<'a>(
        &'a self,
        execution: &Execution,
        handler: &'a Handler,
        params: Value,
    ) -> impl Future<Output = Result<ActivityResult, ActivityError>> + 'a {
        let ctx = &self.ctx;
        let info = ctx.info();
        execution.metrics.started(&info.worker, &info.activity_name);
        if let Some(stream) = &self.state.stream {
            // On the worker's runtime and pool: the sender sends at once whatever the
            // handler queued while its last request was out, and next to the handler
            // each request came back sooner with less in it — more requests, and more
            // CPU, per token.
            stream.start(&execution.control);
        }
        let _ = self.state.handler_started.set(Instant::now());
        let activity = &handler.activity;
        let try_once = move |params: Value| {
            let run = activity.run_boxed(params, ctx.clone());
            AssertUnwindSafe(run).catch_unwind().map(|returned| returned.unwrap_or_else(panicked))
        };
        // Most handlers run once: their future is the handler's own; the retry loop,
        // and its state, only for activities that asked for local retries.
        match handler.local_retries {
            0 => Either::Left(try_once(params)),
            // A local retry runs the handler on the same parameters again.
            retries => {
                Either::Right(Box::pin(local_retry::run(ctx, retries, move || try_once(params.clone()), |_| {})))
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

fn panicked(payload: Box<dyn std::any::Any + Send>) -> Result<ActivityResult, ActivityError> {
    let error = ActivityError::from_panic(&*payload);
    tracing::error!(panic = %error.message(), "activity panicked");
    Err(error)
}

/// How long an attempt may run, and how often its lease is renewed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Timeouts {
    pub(super) execution: Duration,
    pub(super) heartbeat: Duration,
}

impl Timeouts {
    /// A positive `timeout_seconds` is both the execution timeout and the lease; without
    /// one the worker's own timeout applies while the server's lease is 60 s. Heartbeats
    /// go out at a third of the lease at least, so two may be lost without losing it.
    pub(super) fn for_item(item: &PendingActivity, default_timeout: Duration, max_heartbeat: Duration) -> Self {
        let given = item.timeout_seconds.filter(|&s| s > 0).map(|s| Duration::from_secs(s as u64).min(MAX_TIMEOUT));
        let lease = given.unwrap_or(DEFAULT_LEASE);
        Self { execution: given.unwrap_or(default_timeout), heartbeat: max_heartbeat.min(lease / 3) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn item(timeout_seconds: Option<i64>) -> PendingActivity {
        PendingActivity {
            activity_id: Uuid::nil(),
            workflow_id: Uuid::nil(),
            activity_key: "k".into(),
            worker: "w".into(),
            activity_name: "n".into(),
            parameters: Value::Null,
            settings: Value::Null,
            timeout_seconds,
            output_definitions: None,
            signal_data: None,
        }
    }

    /// An intake with nothing behind it: its clients are never used.
    fn intake() -> (Intake, Arc<Execution>) {
        use super::super::delivery::Reporter;
        let config = WorkerConfig::new("http://127.0.0.1:9");
        let metrics = Arc::new(WorkerMetrics::new([("w", "n")]));
        let base = config.api_base().unwrap();
        let client = ApiClient::new(&config, base, crate::RetryPolicy::default(), reqwest::Client::new());
        let in_flight = Arc::new(InFlight::new(Arc::clone(&metrics)));
        let reporter = Reporter::new(client.clone(), Arc::clone(&metrics));
        let ended_there = Concluding::new(reporter.sibling(client.clone()), Arc::clone(&metrics), "w".into());
        let takeovers = Arc::new(Takeovers::new(ended_there, Arc::clone(&in_flight), Handle::current()));
        let execution = Arc::new(Execution {
            registry: ActivityRegistry::new(),
            concluding: Concluding::new(reporter, Arc::clone(&metrics), "w".into()),
            slots: Arc::new(Slots::new(1, &Default::default(), Arc::clone(&metrics))),
            metrics,
            control: Handle::current(),
            cancellation_grace: Duration::from_secs(1),
        });
        let intake = Intake {
            execution: Arc::clone(&execution),
            rate_limits: Arc::default(),
            config,
            client: client.clone(),
            control: Handle::current(),
            work: client,
            in_flight,
            takeovers,
            activities: Handle::current(),
        };
        (intake, execution)
    }

    /// Every attempt in flight holds its task's future. The compiler decides its exact
    /// size (640 bytes with rustc 1.95, in debug and release builds alike); the bound
    /// leaves room for that, and fails on what made it large before: the end not boxed
    /// (1,512 bytes), the rare waits not boxed (936), `run` an `async fn` around its
    /// block (2,944).
    #[tokio::test]
    async fn an_attempt_in_flight_costs_its_task_at_most_768_bytes() {
        let (intake, execution) = intake();
        let attempt = Attempt::admit(&intake, item(Some(5)), None).unwrap();
        let run = attempt.run(execution);
        let size = std::mem::size_of_val(&run);
        assert!(size <= 768, "an attempt's future is {size} bytes");
    }

    #[test]
    fn heartbeats_keep_short_and_default_leases() {
        let thirty = Duration::from_secs(30);
        let five_min = Duration::from_secs(300);
        let t = Timeouts::for_item(&item(Some(6)), five_min, thirty);
        assert_eq!(t, Timeouts { execution: Duration::from_secs(6), heartbeat: Duration::from_secs(2) });
        let t = Timeouts::for_item(&item(None), five_min, thirty);
        assert_eq!(t, Timeouts { execution: five_min, heartbeat: Duration::from_secs(20) });
        let t = Timeouts::for_item(&item(Some(3600)), five_min, thirty);
        assert_eq!(t.heartbeat, thirty);
    }

    #[test]
    fn zero_or_negative_timeouts_mean_the_default_not_an_instant_timeout() {
        let five_min = Duration::from_secs(300);
        for bad in [0, -5] {
            let t = Timeouts::for_item(&item(Some(bad)), five_min, Duration::from_secs(30));
            assert_eq!(t.execution, five_min);
            assert_eq!(t.heartbeat, Duration::from_secs(20));
        }
    }

    #[test]
    fn huge_timeouts_are_clamped_so_no_clock_overflows() {
        let t = Timeouts::for_item(&item(Some(i64::MAX)), Duration::from_secs(300), Duration::from_secs(30));
        assert_eq!(t, Timeouts { execution: MAX_TIMEOUT, heartbeat: Duration::from_secs(30) });
        assert!(tokio::time::Instant::now().checked_add(t.execution).is_some());
    }
}
