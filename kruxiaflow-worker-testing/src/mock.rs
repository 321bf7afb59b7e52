//! `MockContext`: run one activity in memory and see what it did.

mod capture;
mod report;
mod stream;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures_util::FutureExt;
use kruxiaflow_worker::__testing::{
    Ending, HandlerOutcome, LeaseState, cancel, context_with_stream, settle, stream_end,
};
use kruxiaflow_worker::context::{ActivityInfo, BoxFuture, ContextBackend, HeartbeatError, Spend};
use kruxiaflow_worker::files::{FileReference, codes as file_codes};
use kruxiaflow_worker::{
    Activity, ActivityContext, ActivityError, ActivityResult, CancelReason, OutputDefinition, OutputType,
};
use serde_json::Value;
use tracing::instrument::WithSubscriber;
use uuid::Uuid;

pub use capture::{LogLevel, LogLine};
pub use report::Report;
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
    info: ActivityInfo,
    backend: Arc<MockBackend>,
    stream: Arc<MockStream>,
    cancel_after: Option<Duration>,
    logs: Arc<Mutex<Vec<LogLine>>>,
    ctx: OnceLock<ActivityContext>,
}

#[derive(Default)]
struct MockBackend {
    heartbeats: AtomicU32,
    /// The heartbeat (1-based) from which the lease is lost; 0: never.
    lose_lease_after: AtomicU32,
    seeded: Mutex<HashMap<FileReference, Vec<u8>>>,
    uploads: Mutex<Vec<Upload>>,
}

/// A file the activity uploaded through a [`MockContext`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    /// The reference returned to the activity.
    pub reference: String,
    /// The filename it was uploaded as.
    pub filename: String,
    /// The content type sent.
    pub content_type: String,
    /// The bytes.
    pub bytes: Vec<u8>,
}

impl ContextBackend for MockBackend {
    fn download<'a>(&'a self, file: &'a FileReference, dest: &'a Path) -> BoxFuture<'a, Result<(), ActivityError>> {
        Box::pin(async move {
            let bytes = self.seeded.lock().unwrap_or_else(|e| e.into_inner()).get(file).cloned().ok_or_else(|| {
                ActivityError::terminal(file_codes::FILE_NOT_FOUND, format!("file not found: {file}"))
            })?;
            tokio::fs::write(dest, bytes).await.map_err(|e| {
                ActivityError::retryable(
                    file_codes::FILE_TRANSFER_FAILED,
                    format!("cannot write {}: {e}", dest.display()),
                )
            })
        })
    }

    fn upload<'a>(
        &'a self,
        file: &'a FileReference,
        source: &'a Path,
        content_type: &'a str,
    ) -> BoxFuture<'a, Result<(), ActivityError>> {
        Box::pin(async move {
            let bytes = tokio::fs::read(source).await.map_err(|e| {
                ActivityError::terminal(
                    file_codes::LOCAL_FILE_NOT_FOUND,
                    format!("cannot read {}: {e}", source.display()),
                )
            })?;
            let upload = Upload {
                reference: file.to_string(),
                filename: file.filename.clone(),
                content_type: content_type.to_owned(),
                bytes,
            };
            let mut uploads = self.uploads.lock().unwrap_or_else(|e| e.into_inner());
            uploads.retain(|u| u.filename != upload.filename);
            uploads.push(upload);
            Ok(())
        })
    }

    fn heartbeat(&self) -> BoxFuture<'_, Result<(), HeartbeatError>> {
        let count = self.heartbeats.fetch_add(1, Ordering::SeqCst) + 1;
        let limit = self.lose_lease_after.load(Ordering::SeqCst);
        let lost = limit > 0 && count >= limit;
        Box::pin(async move { if lost { Err(HeartbeatError::LeaseLost) } else { Ok(()) } })
    }
}

impl MockContext {
    /// A context for activity `activity_name` of worker type `worker`, with random ids.
    pub fn new(worker: &str, activity_name: &str) -> Self {
        Self {
            info: ActivityInfo::new(worker, activity_name),
            backend: Arc::new(MockBackend::default()),
            stream: Arc::new(MockStream::new()),
            cancel_after: None,
            logs: Arc::default(),
            ctx: OnceLock::new(),
        }
    }

    /// Sets the activity id.
    pub fn activity_id(mut self, id: Uuid) -> Self {
        self.info.activity_id = id;
        self
    }

    /// Sets the workflow id.
    pub fn workflow_id(mut self, id: Uuid) -> Self {
        self.info.workflow_id = id;
        self
    }

    /// Sets the activity key (defaults to the name).
    pub fn activity_key(mut self, key: &str) -> Self {
        self.info.activity_key = key.to_owned();
        self
    }

    /// Sets the worker id.
    pub fn worker_id(mut self, worker_id: &str) -> Self {
        self.info.worker_id = worker_id.to_owned();
        self
    }

    /// Sets signal data.
    pub fn signal(mut self, data: Value) -> Self {
        self.info.signal = Some(data);
        self
    }

    /// Sets the settings object.
    pub fn settings(mut self, settings: Value) -> Self {
        self.info.settings = settings;
        self
    }

    /// Opts the activity in to token streaming (`settings.streaming`), as its workflow
    /// definition would; with one subscriber unless [`subscribers`](Self::subscribers)
    /// says otherwise. What it streams is in [`streamed`](Self::streamed).
    pub fn streaming(mut self, enabled: bool) -> Self {
        if !self.info.settings.is_object() {
            self.info.settings = Value::Object(Default::default());
        }
        self.info.settings["streaming"] = Value::Bool(enabled);
        self
    }

    /// How many clients watch the stream (default 1). With 0, nothing sent is recorded
    /// and no end message is sent, as in a worker.
    pub fn subscribers(self, count: u32) -> Self {
        self.stream.set_subscribers(count);
        self
    }

    /// What the activity streamed: each `send` to an active stream is one increment
    /// here (a worker may join several into one request; the text is the same), and
    /// the end message a worker would send before the report.
    pub fn streamed(&self) -> Streamed {
        self.stream.recorded()
    }

    /// Declares an output.
    pub fn output(mut self, name: &str, output_type: OutputType) -> Self {
        self.info.output_definitions.push(OutputDefinition { name: name.to_owned(), output_type });
        self
    }

    /// The `n`-th heartbeat fails as a lost lease and cancels the activity with
    /// [`CancelReason::LeaseLost`], as a 409 from the server would.
    pub fn cancel_after_heartbeats(self, n: u32) -> Self {
        self.backend.lose_lease_after.store(n.max(1), Ordering::SeqCst);
        self
    }

    /// Makes `reference` downloadable with `bytes`.
    ///
    /// # Panics
    /// If `reference` is not a valid `postgres://{workflow_id}/{activity_key}/{filename}`.
    pub fn file(self, reference: &str, bytes: impl Into<Vec<u8>>) -> Self {
        let file: FileReference = reference.parse().unwrap_or_else(|e| panic!("{e}"));
        self.backend.seeded.lock().unwrap_or_else(|e| e.into_inner()).insert(file, bytes.into());
        self
    }

    /// A reference to `filename` of this context's own workflow and activity key, for
    /// seeding inputs with [`file`](Self::file).
    pub fn reference(&self, filename: &str) -> String {
        format!("postgres://{}/{}/{filename}", self.info.workflow_id, self.info.activity_key)
    }

    /// Files uploaded so far (a repeated filename keeps the latest upload).
    pub fn uploads(&self) -> Vec<Upload> {
        self.backend.uploads.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The bytes uploaded as `filename`, if any.
    pub fn uploaded(&self, filename: &str) -> Option<Vec<u8>> {
        self.uploads().into_iter().find(|u| u.filename == filename).map(|u| u.bytes)
    }

    /// Cancels the activity ([`CancelReason::Requested`]) this long into [`run`](Self::run).
    pub fn cancel_after(mut self, delay: Duration) -> Self {
        self.cancel_after = Some(delay);
        self
    }

    /// The context (created on first use; [`run`](Self::run) uses the same one).
    pub fn context(&self) -> ActivityContext {
        self.ctx
            .get_or_init(|| {
                let backend = Arc::clone(&self.backend) as Arc<dyn ContextBackend>;
                context_with_stream(self.info.clone(), backend, Arc::clone(&self.stream) as _)
            })
            .clone()
    }

    /// Runs `activity` with JSON `params` exactly as a worker would: parameters are
    /// decoded by the activity (bad ones give `INVALID_PARAMETERS`), a panic becomes a
    /// retryable `PANIC` error, and log lines are captured.
    pub async fn run<A: Activity>(&self, activity: &A, params: Value) -> Result<ActivityResult, ActivityError> {
        let ctx = self.context();
        let canceller = self.cancel_after.map(|delay| {
            let ctx = ctx.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                cancel(&ctx, CancelReason::Requested);
            })
        });
        let run = std::panic::AssertUnwindSafe(activity.run(params, ctx)).catch_unwind();
        let outcome = run.with_subscriber(capture::subscriber(Arc::clone(&self.logs))).await;
        if let Some(canceller) = canceller {
            canceller.abort();
        }
        let outcome = outcome.unwrap_or_else(|panic| Err(ActivityError::from_panic(&*panic)));
        if self.context().stream().is_enabled() && self.stream.is_active() {
            self.stream.end(stream_end(self.worker_report(&outcome).as_ref()));
        }
        outcome
    }

    /// Runs `future` with log capture, for tests that call a typed handler directly.
    pub async fn capture<F: std::future::Future>(&self, future: F) -> F::Output {
        future.with_subscriber(capture::subscriber(Arc::clone(&self.logs))).await
    }

    /// Heartbeats sent so far.
    pub fn heartbeats(&self) -> u32 {
        self.backend.heartbeats.load(Ordering::SeqCst)
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
    /// [`Report::endpoint`]), decided by the worker's own settle rule: the context's
    /// cancellation and spend count as they would in a worker. `None` when the worker
    /// would send nothing (the lease was lost).
    pub fn report(&self, outcome: &Result<ActivityResult, ActivityError>) -> Option<Report> {
        self.worker_report(outcome).as_ref().map(Report::of)
    }

    fn worker_report(
        &self,
        outcome: &Result<ActivityResult, ActivityError>,
    ) -> Option<kruxiaflow_worker::__testing::Report> {
        let ctx = self.context();
        let cancelled = ctx.cancel_reason();
        let lease = if cancelled == Some(CancelReason::LeaseLost) { LeaseState::Lost } else { LeaseState::Held };
        let ending = Ending {
            outcome: HandlerOutcome::Returned(outcome.clone()),
            cancelled,
            lease,
            spend: self.spend(),
            timeout: None,
        };
        settle(&self.info.worker_id, ending).map(|(report, _)| report)
    }

    /// Cancels the activity now with `reason`, as a worker would on a timeout
    /// ([`CancelReason::Timeout`]), a shutdown or a lost lease; the run sees it through
    /// `ctx.cancelled()` and `ctx.is_cancelled()`.
    pub fn cancel(&self, reason: CancelReason) {
        cancel(&self.context(), reason);
    }
}

impl std::fmt::Debug for MockContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockContext")
            .field("info", &self.info)
            .field("heartbeats", &self.heartbeats())
            .finish_non_exhaustive()
    }
}
