//! `MockContext`: run one activity in memory and see what it did.

mod backend;
mod builder;
mod capture;
mod report;
mod steps;
mod stream;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use kruxiaflow_worker::__testing::{
    Ending, HandlerOutcome, LeaseState, Recorded, cancel, context_with_stream, recorded, run_with_local_retries,
    settle, steps_taken, stream_end,
};
use kruxiaflow_worker::context::{ActivityInfo, Spend};
use kruxiaflow_worker::rate_limit::RateLimit;
use kruxiaflow_worker::{Activity, ActivityContext, ActivityError, ActivityResult, CancelReason, LocalRetry};
use serde_json::Value;
use tracing::instrument::WithSubscriber;

use backend::MockBackend;
pub use backend::Upload;
pub use builder::MockContextBuilder;
pub use capture::{LogLevel, LogLine};
pub use report::Report;
pub use steps::EarlierAttempt;
use stream::MockStream;
pub use stream::Streamed;

/// An in-memory [`ActivityContext`] for unit tests, in the spirit of Temporal's
/// activity test environments: it records heartbeats, log lines (from `ctx.logger()`
/// and from plain `tracing` macros), usage and cost, and can cancel the activity.
///
/// ```
/// use kruxiaflow_worker::prelude::*;
/// use kruxiaflow_worker::decode_params;
/// use kruxiaflow_worker_testing::MockContext;
/// use serde_json::json;
///
/// #[derive(serde::Deserialize)]
/// struct Double { input: i64 }
///
/// struct Doubler;
/// impl Activity for Doubler {
///     fn name(&self) -> &str { "double" }
///     async fn run(&self, params: serde_json::Value, ctx: ActivityContext)
///         -> Result<ActivityResult, ActivityError> {
///         let p: Double = decode_params(params, &ctx)?;
///         ctx.logger().info(format_args!("doubling {}", p.input));
///         ctx.heartbeat().await?;
///         Ok(ActivityResult::value("result", p.input * 2))
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let mock = MockContext::new("rust", "double");
/// let result = mock.run(&Doubler, json!({"input": 21})).await.unwrap();
/// assert_eq!(result.output("result"), Some(&json!(42)));
/// assert_eq!(mock.heartbeats(), 1);
/// assert_eq!(mock.logs()[0].message, "doubling 21");
///
/// let bad = MockContext::new("rust", "double").run(&Doubler, json!({"input": "x"})).await.unwrap_err();
/// assert_eq!(bad.code(), "INVALID_PARAMETERS");
/// assert_eq!(
///     bad.message(),
///     "invalid parameters for activity 'rust.double' at input: invalid type: string \"x\", expected i64"
/// );
/// # }
/// ```
pub struct MockContext {
    backend: Arc<MockBackend>,
    stream: Arc<MockStream>,
    cancel_after: Option<Duration>,
    timeout: Duration,
    logs: Arc<Mutex<Vec<LogLine>>>,
    local_retries: Mutex<Vec<LocalRetry>>,
    ctx: ActivityContext,
}

impl MockContext {
    /// A context for activity `activity_name` of worker type `worker`, with random ids
    /// and nothing else set; [`builder`](Self::builder) sets more.
    pub fn new(worker: &str, activity_name: &str) -> Self {
        Self::builder(worker, activity_name).build()
    }

    /// Describes the activity (ids, settings, outputs, files, cancellations) before the
    /// context is made.
    pub fn builder(worker: &str, activity_name: &str) -> MockContextBuilder {
        MockContextBuilder::new(worker, activity_name)
    }

    fn from_parts(
        info: ActivityInfo,
        (backend, stream): (Arc<MockBackend>, Arc<MockStream>),
        rate_limits: &[(String, RateLimit)],
        (cancel_after, timeout): (Option<Duration>, Duration),
    ) -> Self {
        let ctx = context_with_stream(info, Arc::clone(&backend) as _, Arc::clone(&stream) as _, rate_limits);
        let local_retries = Mutex::default();
        Self { backend, stream, cancel_after, timeout, logs: Arc::default(), local_retries, ctx }
    }

    /// The context [`run`](Self::run) passes to the activity.
    pub fn context(&self) -> ActivityContext {
        self.ctx.clone()
    }

    /// A reference to `filename` of this context's own workflow and activity key.
    pub fn reference(&self, filename: &str) -> String {
        file_reference(self.ctx.info(), filename)
    }

    /// Files uploaded so far (a repeated filename keeps the latest upload).
    pub fn uploads(&self) -> Vec<Upload> {
        self.backend.uploads()
    }

    /// The bytes uploaded as `filename`, if any.
    pub fn uploaded(&self, filename: &str) -> Option<Vec<u8>> {
        self.uploads().into_iter().find(|u| u.filename == filename).map(|u| u.bytes)
    }

    /// What the activity streamed: each `send` to an active stream is one increment
    /// here (a worker may join several into one request; the text is the same), and
    /// the end message a worker would send before the report.
    pub fn streamed(&self) -> Streamed {
        self.stream.recorded()
    }

    /// Runs `activity` with JSON `params` exactly as a worker would: parameters are
    /// decoded by the activity (bad ones give `INVALID_PARAMETERS`), a panic becomes a
    /// retryable `PANIC` error, retryable errors are retried in the attempt as its
    /// `local_retries` say (each in [`local_retries`](Self::local_retries); under
    /// tokio's paused time the waits take no time), and log lines are captured.
    pub async fn run<A: Activity>(&self, activity: &A, params: Value) -> Result<ActivityResult, ActivityError> {
        let ctx = self.context();
        let canceller = self.cancel_after.map(|delay| {
            let ctx = ctx.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                cancel(&ctx, CancelReason::Requested);
            })
        });
        let try_once = || {
            let run = std::panic::AssertUnwindSafe(activity.run(params.clone(), ctx.clone())).catch_unwind();
            run.map(|returned| returned.unwrap_or_else(|panic| Err(ActivityError::from_panic(&*panic))))
        };
        let retried =
            |retry: &LocalRetry| self.local_retries.lock().unwrap_or_else(|e| e.into_inner()).push(retry.clone());
        let run = run_with_local_retries(&ctx, activity.local_retries(), try_once, retried);
        let outcome = run.with_subscriber(capture::subscriber(Arc::clone(&self.logs))).await;
        if let Some(canceller) = canceller {
            canceller.abort();
        }
        if self.context().stream().is_enabled() && self.stream.is_active() {
            self.stream.end(stream_end(self.worker_report(&outcome).as_ref()));
        }
        outcome
    }

    /// Runs `future` with log capture, for tests that call a typed handler directly.
    pub async fn capture<F: std::future::Future>(&self, future: F) -> F::Output {
        future.with_subscriber(capture::subscriber(Arc::clone(&self.logs))).await
    }

    /// The [steps](ActivityContext::step) that ran in this attempt, in order.
    pub fn steps_ran(&self) -> Vec<String> {
        steps_taken(&self.ctx).into_iter().filter(|(_, ran)| *ran).map(|(name, _)| name).collect()
    }

    /// The steps this attempt skipped because an earlier attempt had completed them.
    pub fn steps_skipped(&self) -> Vec<String> {
        steps_taken(&self.ctx).into_iter().filter(|(_, ran)| !*ran).map(|(name, _)| name).collect()
    }

    /// Every step in the activity's step record now, with its value: those of earlier
    /// attempts and those this one recorded.
    pub fn recorded_steps(&self) -> BTreeMap<String, Value> {
        let steps = self.record().unwrap_or_default().steps;
        steps.into_iter().map(|(name, (value, _))| (name, value)).collect()
    }

    /// The spend recorded inside step `name`, as the activity's step record keeps it.
    pub fn recorded_spend(&self, name: &str) -> Option<Spend> {
        self.record()?.steps.remove(name).map(|(_, spend)| spend)
    }

    /// The checkpoint in the activity's step record now.
    pub fn recorded_checkpoint(&self) -> Option<Value> {
        self.record()?.checkpoint
    }

    /// Requests to the step record so far: (reads, writes), each value file counted.
    pub fn record_requests(&self) -> (u32, u32) {
        (self.backend.record_reads.load(Ordering::SeqCst), self.backend.record_writes.load(Ordering::SeqCst))
    }

    fn record(&self) -> Option<Recorded> {
        let records = self.backend.records();
        recorded(whose(self.ctx.info()), |file| records.get(file).cloned())
    }

    /// The local retries of the runs so far: each retried try's error and the wait
    /// before the next try.
    pub fn local_retries(&self) -> Vec<LocalRetry> {
        self.local_retries.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Heartbeats sent so far.
    pub fn heartbeats(&self) -> u32 {
        self.backend.heartbeats()
    }

    /// Log lines captured so far.
    pub fn logs(&self) -> Vec<LogLine> {
        self.logs.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Usage and cost recorded through the context.
    pub fn spend(&self) -> Spend {
        self.context().spend_snapshot()
    }

    /// The report a worker would send for `outcome` returned by this context's run
    /// (its exact body with [`Report::to_json`], where it goes with
    /// [`Report::endpoint`]), decided by the worker's own settle rule from what a
    /// worker would know: how the handler was cancelled, whether the lease was lost
    /// (by a heartbeat, or [`cancel`](Self::cancel) with `LeaseLost`) — a lease lost
    /// after a timeout included — the timeout, and the spend. `None` when the worker
    /// would send nothing (the lease was lost).
    pub fn report(&self, outcome: &Result<ActivityResult, ActivityError>) -> Option<Report> {
        self.worker_report(outcome).as_ref().map(Report::of)
    }

    fn worker_report(
        &self,
        outcome: &Result<ActivityResult, ActivityError>,
    ) -> Option<kruxiaflow_worker::__testing::Report> {
        let ctx = self.context();
        let lease = if self.backend.lease_lost.load(Ordering::SeqCst) { LeaseState::Lost } else { LeaseState::Held };
        let ending = Ending {
            outcome: HandlerOutcome::Returned(outcome.clone()),
            cancelled: ctx.cancel_reason(),
            lease,
            spend: self.spend(),
            timeout: Some(self.timeout),
        };
        settle(&ctx.info().worker_id, ending).map(|(report, _)| report)
    }

    /// Cancels the activity now with `reason`, as a worker would on a timeout
    /// ([`CancelReason::Timeout`]), a shutdown or a lost lease; the run sees it through
    /// `ctx.cancelled()` and `ctx.is_cancelled()`.
    pub fn cancel(&self, reason: CancelReason) {
        if reason == CancelReason::LeaseLost {
            self.backend.lease_lost.store(true, Ordering::SeqCst);
        }
        cancel(&self.context(), reason);
    }
}

/// The activity of `info`, as the step record names it.
fn whose(info: &ActivityInfo) -> (uuid::Uuid, uuid::Uuid, &str) {
    (info.workflow_id, info.activity_id, &info.activity_key)
}

/// `postgres://{workflow_id}/{activity_key}/{filename}` of the activity `info`.
fn file_reference(info: &ActivityInfo, filename: &str) -> String {
    format!("postgres://{}/{}/{filename}", info.workflow_id, info.activity_key)
}

impl std::fmt::Debug for MockContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockContext")
            .field("info", self.ctx.info())
            .field("heartbeats", &self.heartbeats())
            .finish_non_exhaustive()
    }
}
