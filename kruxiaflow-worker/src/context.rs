//! What an activity sees while it runs: its identity, cancellation, heartbeats, a
//! logger, and a place to record money spent.

mod limiter;
mod logger;
mod temp;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use rust_decimal::Decimal;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use crate::error::{ActivityError, codes};
use crate::files::{FileReference, guess_content_type};
use crate::protocol::{OutputDefinition, OutputType, UsageEntry};
use crate::rate_limit::RateLimits;
use crate::result::ActivityOutput;
use crate::steps::{self, Journal, RecordStore};
use crate::stream::TokenStream;

pub use limiter::RateLimiter;
pub use logger::ActivityLogger;
use temp::TempFiles;

pub use crate::future::BoxFuture;
pub use crate::result::Spend;
pub use crate::steps::StoreError;

/// Who an activity attempt is and what it was given (besides its parameters).
#[derive(Debug, Clone, PartialEq)]
pub struct ActivityInfo {
    /// Queue row id; the same for every retry, so a good idempotency key.
    pub activity_id: Uuid,
    /// The workflow run.
    pub workflow_id: Uuid,
    /// The activity's key in the workflow definition.
    pub activity_key: String,
    /// Worker type the activity was polled for.
    pub worker: String,
    /// Activity name it was dispatched on.
    pub activity_name: String,
    /// This worker process's id.
    pub worker_id: String,
    /// Data of the signal the activity waited for (`Some(Null)`: sent without data).
    pub signal: Option<Value>,
    /// The activity's settings from its definition.
    pub settings: Value,
    /// Declared outputs.
    pub output_definitions: Vec<OutputDefinition>,
    /// When the attempt times out, if it has a deadline.
    pub deadline: Option<Instant>,
}

impl ActivityInfo {
    /// Info for a test or a custom runtime: ids are random, names as given, the rest empty.
    pub fn new(worker: impl Into<String>, activity_name: impl Into<String>) -> Self {
        let activity_name = activity_name.into();
        Self {
            activity_id: Uuid::now_v7(),
            workflow_id: Uuid::now_v7(),
            activity_key: activity_name.clone(),
            worker: worker.into(),
            activity_name,
            worker_id: "worker_test".to_owned(),
            signal: None,
            settings: Value::Null,
            output_definitions: Vec::new(),
            deadline: None,
        }
    }

    /// `worker.activity_name`, the registry key.
    pub fn activity_type(&self) -> String {
        format!("{}.{}", self.worker, self.activity_name)
    }
}

/// Why an activity was cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CancelReason {
    /// The server gave the activity to another worker (heartbeat answered 409). Nothing
    /// will be reported for this attempt.
    LeaseLost,
    /// The attempt ran past its timeout.
    Timeout,
    /// The worker is shutting down.
    Shutdown,
    /// Cancelled by a test harness (`MockContext`).
    Requested,
}

impl fmt::Display for CancelReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::LeaseLost => "the server reassigned the activity (lease lost)",
            Self::Timeout => "the activity timed out",
            Self::Shutdown => "the worker is shutting down",
            Self::Requested => "cancellation was requested",
        })
    }
}

/// Why a heartbeat did not renew the lease.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeartbeatError {
    /// The server gave the activity to another worker: this attempt must stop and
    /// report nothing.
    LeaseLost,
    /// The server does not know the activity.
    NotFound,
    /// The heartbeat did not get through (the lease runs down if this goes on).
    Failed(String),
}

/// The services behind an [`ActivityContext`]: the worker supplies one that talks to
/// the API server; the testing crate supplies one backed by memory.
pub trait ContextBackend: Send + Sync + 'static {
    /// Renews the activity's lease.
    fn heartbeat(&self) -> BoxFuture<'_, Result<(), HeartbeatError>>;

    /// Writes the stored `file` to `dest` (a path inside the activity's temp dir).
    fn download<'a>(&'a self, file: &'a FileReference, dest: &'a Path) -> BoxFuture<'a, Result<(), ActivityError>>;

    /// Stores the contents of `source` as `file`, with `content_type`.
    fn upload<'a>(
        &'a self,
        file: &'a FileReference,
        source: &'a Path,
        content_type: &'a str,
    ) -> BoxFuture<'a, Result<(), ActivityError>>;

    /// Reads the whole of `file`, a small file of the activity's
    /// [step record](ActivityContext::step); `Ok(None)` when there is no such file.
    /// Without an implementation, steps are not durable: every attempt runs them all.
    fn read_record<'a>(&'a self, file: &'a FileReference) -> BoxFuture<'a, Result<Option<Vec<u8>>, StoreError>> {
        let _ = file;
        Box::pin(async { Err(StoreError::Unsupported) })
    }

    /// Stores `bytes` as `file` (replacing it), for the activity's step record.
    fn write_record<'a>(&'a self, file: &'a FileReference, bytes: Vec<u8>) -> BoxFuture<'a, Result<(), StoreError>> {
        let _ = (file, bytes);
        Box::pin(async { Err(StoreError::Unsupported) })
    }
}

/// Handle given to every activity attempt. Cheap to clone; all clones share state.
///
/// ```
/// use kruxiaflow_worker::context::{ActivityContext, ActivityInfo, BoxFuture, CancelReason, ContextBackend};
/// use kruxiaflow_worker::{ActivityError, UsageEntry};
/// use std::sync::Arc;
///
/// # use kruxiaflow_worker::files::FileReference;
/// # use kruxiaflow_worker::context::HeartbeatError;
/// # use std::path::Path;
/// struct NoServer;
/// impl ContextBackend for NoServer {
///     fn heartbeat(&self) -> BoxFuture<'_, Result<(), HeartbeatError>> {
///         Box::pin(async { Ok(()) })
///     }
///     fn download<'a>(&'a self, _: &'a FileReference, _: &'a Path) -> BoxFuture<'a, Result<(), ActivityError>> {
///         Box::pin(async { Err(ActivityError::terminal("NO_FILES", "no file storage here")) })
///     }
///     fn upload<'a>(&'a self, _: &'a FileReference, _: &'a Path, _: &'a str) -> BoxFuture<'a, Result<(), ActivityError>> {
///         Box::pin(async { Err(ActivityError::terminal("NO_FILES", "no file storage here")) })
///     }
/// }
///
/// let ctx = ActivityContext::new(ActivityInfo::new("rust", "summarize"), Arc::new(NoServer));
/// ctx.record_usage(UsageEntry::new("openai", "gpt-4o-mini").input_tokens(10));
/// ctx.add_cost(rust_decimal::Decimal::new(1, 3));
/// assert_eq!(ctx.activity_key(), "summarize");
/// assert!(!ctx.is_cancelled());
/// assert_eq!(ctx.cancel_reason(), None::<CancelReason>);
/// ```
#[derive(Clone)]
pub struct ActivityContext {
    inner: Arc<Inner>,
}

struct Inner {
    info: ActivityInfo,
    cancel: CancellationToken,
    cancel_reason: OnceLock<CancelReason>,
    spend: Mutex<Spend>,
    logger: ActivityLogger,
    files: TempFiles,
    backend: Arc<dyn ContextBackend>,
    stream: TokenStream,
    /// Made on first use: an attempt that uses no step pays nothing for it.
    journal: OnceLock<Journal>,
    rate_limits: Arc<RateLimits>,
}

impl ActivityContext {
    /// A context for `info`, served by `backend`; its [`stream`](Self::stream) sends
    /// nothing.
    pub fn new(info: ActivityInfo, backend: Arc<dyn ContextBackend>) -> Self {
        Self::with_stream(info, backend, TokenStream::disabled(), Arc::default())
    }

    /// A context whose stream is `stream`, with the worker's `rate_limits`.
    pub(crate) fn with_stream(
        info: ActivityInfo,
        backend: Arc<dyn ContextBackend>,
        stream: TokenStream,
        rate_limits: Arc<RateLimits>,
    ) -> Self {
        let logger = ActivityLogger::new(&info);
        let files = TempFiles::new(info.activity_id);
        Self {
            inner: Arc::new(Inner {
                info,
                cancel: CancellationToken::new(),
                cancel_reason: OnceLock::new(),
                spend: Mutex::new(Spend::default()),
                logger,
                files,
                backend,
                stream,
                journal: OnceLock::new(),
                rate_limits,
            }),
        }
    }

    /// Everything known about this attempt.
    pub fn info(&self) -> &ActivityInfo {
        &self.inner.info
    }

    /// The workflow run's id.
    pub fn workflow_id(&self) -> Uuid {
        self.inner.info.workflow_id
    }

    /// The activity's queue id (stable across retries: use it for idempotency keys).
    pub fn activity_id(&self) -> Uuid {
        self.inner.info.activity_id
    }

    /// The activity's key in the workflow definition.
    pub fn activity_key(&self) -> &str {
        &self.inner.info.activity_key
    }

    /// This worker process's id.
    pub fn worker_id(&self) -> &str {
        &self.inner.info.worker_id
    }

    /// Signal data, if the activity waited for a signal.
    pub fn signal(&self) -> Option<&Value> {
        self.inner.info.signal.as_ref()
    }

    /// The activity's settings from its definition.
    pub fn settings(&self) -> &Value {
        &self.inner.info.settings
    }

    /// Declared outputs.
    pub fn output_definitions(&self) -> &[OutputDefinition] {
        &self.inner.info.output_definitions
    }

    /// When this attempt times out.
    pub fn deadline(&self) -> Option<Instant> {
        self.inner.info.deadline
    }

    /// Logger whose lines carry this activity's ids (plain `tracing` macros work too).
    pub fn logger(&self) -> &ActivityLogger {
        &self.inner.logger
    }

    /// Renews the lease. The worker already heartbeats every running activity on its
    /// own, so this is only a progress signal, and it costs the server at most one
    /// request per heartbeat interval: the first call goes out at once, later calls
    /// within the interval (the worker's own heartbeats counting) answer at once with
    /// what the last heartbeat learnt, so calling it for every item of a loop is fine.
    /// A lost lease cancels the attempt and returns a `LEASE_LOST` error: stop, nothing
    /// of this attempt is reported.
    pub async fn heartbeat(&self) -> Result<(), ActivityError> {
        match self.inner.backend.heartbeat().await {
            Ok(()) => Ok(()),
            Err(HeartbeatError::LeaseLost) => {
                self.cancel(CancelReason::LeaseLost);
                Err(ActivityError::retryable(codes::LEASE_LOST, "the server gave this activity to another worker"))
            }
            Err(HeartbeatError::NotFound) => {
                Err(ActivityError::retryable(codes::HEARTBEAT_FAILED, "the server does not know this activity"))
            }
            Err(HeartbeatError::Failed(detail)) => Err(ActivityError::retryable(codes::HEARTBEAT_FAILED, detail)),
        }
    }

    /// The activity's token stream: text sent to it reaches the clients watching the
    /// activity live, when the activity opted in (`settings.streaming`) and someone is
    /// subscribed. Cheap to call and to clone; see [`TokenStream`].
    pub fn stream(&self) -> TokenStream {
        self.inner.stream.clone()
    }

    /// Declared outputs of type `file`.
    pub fn file_outputs(&self) -> impl Iterator<Item = &OutputDefinition> {
        self.output_definitions().iter().filter(|d| d.output_type == OutputType::File)
    }

    /// This attempt's own temporary directory, created on first use and removed when
    /// the attempt ends (success, failure, timeout, cancellation or shutdown).
    pub fn temp_dir(&self) -> Result<PathBuf, ActivityError> {
        self.inner.files.dir()
    }

    /// Downloads a stored file (`postgres://{workflow_id}/{activity_key}/{filename}`)
    /// into this attempt's temp dir, streaming it to disk, and returns its path. The
    /// reference is checked before any request is sent: nothing it says can place the
    /// file outside the temp dir.
    pub async fn download_file(&self, reference: &str) -> Result<PathBuf, ActivityError> {
        let file: FileReference = reference.parse()?;
        let dest = self.inner.files.path_for(&file)?;
        let span = tracing::info_span!("file_download", kruxiaflow.file = %file);
        self.inner.backend.download(&file, &dest).instrument(span).await?;
        Ok(dest)
    }

    /// Uploads the local file at `path` as `filename` of this activity, streaming it,
    /// with a content type guessed from the filename's extension; returns its
    /// reference (`postgres://{workflow_id}/{activity_key}/{filename}`).
    pub async fn upload_file(&self, path: impl AsRef<Path>, filename: &str) -> Result<String, ActivityError> {
        self.upload_file_as(path, filename, &guess_content_type(filename)).await
    }

    /// Like [`upload_file`](Self::upload_file), with an explicit content type.
    pub async fn upload_file_as(
        &self,
        path: impl AsRef<Path>,
        filename: &str,
        content_type: &str,
    ) -> Result<String, ActivityError> {
        let info = self.info();
        let file = FileReference::new(info.workflow_id, &info.activity_key, filename)?;
        let path = path.as_ref();
        if !path.is_file() {
            return Err(ActivityError::terminal(
                crate::files::codes::LOCAL_FILE_NOT_FOUND,
                format!("cannot upload {}: no such file", path.display()),
            ));
        }
        let span = tracing::info_span!("file_upload", kruxiaflow.file = %file);
        self.inner.backend.upload(&file, path, content_type).instrument(span).await?;
        Ok(file.to_string())
    }

    /// Uploads `path` under the output's name and returns the file output that reports
    /// its reference: the usual way to produce a declared `file` output.
    pub async fn file_output(&self, name: &str, path: impl AsRef<Path>) -> Result<ActivityOutput, ActivityError> {
        let reference = self.upload_file(path, name).await?;
        Ok(ActivityOutput::file(name, reference))
    }

    /// Removes the temp dir; later file operations fail. The worker calls this when the
    /// attempt ends.
    pub(crate) fn close_files(&self) {
        self.inner.files.close();
    }

    /// Records one LLM call's usage; reported with whatever ends the attempt (and kept
    /// in the record of the [step](Self::step) it was made in).
    pub fn record_usage(&self, entry: UsageEntry) {
        // One event per LLM call, in the OpenTelemetry GenAI vocabulary, for traces.
        tracing::event!(
            target: "kruxiaflow_worker::gen_ai",
            tracing::Level::DEBUG,
            gen_ai.provider.name = %entry.provider,
            gen_ai.request.model = %entry.model,
            gen_ai.usage.input_tokens = entry.input_tokens,
            gen_ai.usage.output_tokens = entry.output_tokens,
            kruxiaflow.cost_usd = entry.cost_usd.map(|cost| cost.to_string()),
            "gen_ai.usage"
        );
        steps::note_spend(self.identity(), |step| step.usage.push(entry.clone()));
        self.spend().usage.push(entry);
    }

    /// Adds money spent outside LLM usage; reported with whatever ends the attempt (and
    /// kept in the record of the [step](Self::step) it was spent in).
    pub fn add_cost(&self, cost: Decimal) {
        steps::note_spend(self.identity(), |step| step.cost = Some(step.cost.unwrap_or_default() + cost));
        let mut spend = self.spend();
        spend.cost = Some(spend.cost.unwrap_or_default() + cost);
    }

    /// What has been recorded with [`record_usage`](Self::record_usage) and
    /// [`add_cost`](Self::add_cost) so far, with the spend of an earlier attempt's
    /// steps that this attempt reports (see [`step`](Self::step)).
    pub fn spend_snapshot(&self) -> Spend {
        let mut spend = self.spend().clone();
        if let Some(journal) = self.used_journal() {
            spend.add(&journal.carried());
        }
        spend
    }

    /// The spend for the attempt's report: what it recorded, and what it carries from
    /// earlier attempts' steps.
    pub(crate) fn take_spend(&self) -> Spend {
        let mut spend = std::mem::take(&mut *self.spend());
        if let Some(journal) = self.used_journal() {
            spend.add(&journal.seal());
        }
        spend
    }

    /// Keeps the spend a retried error carried, for whatever ends the attempt.
    pub(crate) fn keep_spend(&self, (cost, usage): (Option<Decimal>, Vec<UsageEntry>)) {
        let mut spend = self.spend();
        spend.add(&Spend { cost, usage });
    }

    /// This context's identity, telling its steps' spend from another context's.
    fn identity(&self) -> usize {
        Arc::as_ptr(&self.inner) as *const () as usize
    }

    /// Runs `f` as the step `name`, once per activity: if an earlier attempt of this
    /// activity — on this worker or any other — completed the step, returns the value
    /// it recorded without calling `f`; otherwise calls `f` and, when it returns `Ok`,
    /// records the value durably on the server before returning it. An `Err` is not
    /// recorded: the step runs again next time.
    ///
    /// Steps are identified by name, not by order: the same name must mean the same
    /// work in every attempt, and a name is used once per attempt (a second use fails
    /// with the terminal `STEP_NAME_INVALID`, naming it). Usage and cost recorded
    /// while `f` runs (in this task) are the step's: when the step is skipped they are
    /// not counted again. A value that cannot be recorded (the server kept failing
    /// within a quarter of the attempt's remaining time, at most 30 s) is still
    /// returned, with a warning; a value over 16 MiB as JSON fails the step
    /// (`STEP_VALUE_TOO_LARGE`, terminal). See the README's "Durable steps".
    ///
    /// ```
    /// use kruxiaflow_worker::{ActivityContext, ActivityError};
    ///
    /// async fn draft(topic: &str, ctx: &ActivityContext) -> Result<String, ActivityError> {
    ///     let outline: Vec<String> =
    ///         ctx.step("outline", || async { Ok(vec![format!("why {topic}"), format!("how {topic}")]) }).await?;
    ///     ctx.step("draft", || async { Ok(outline.join("\n")) }).await
    /// }
    /// # let ctx = ActivityContext::new(
    /// #     kruxiaflow_worker::context::ActivityInfo::new("rust", "draft"), std::sync::Arc::new(NoServer));
    /// # struct NoServer;
    /// # impl kruxiaflow_worker::context::ContextBackend for NoServer {
    /// #     fn heartbeat(&self) -> kruxiaflow_worker::context::BoxFuture<'_, Result<(), kruxiaflow_worker::context::HeartbeatError>> { Box::pin(async { Ok(()) }) }
    /// #     fn download<'a>(&'a self, _: &'a kruxiaflow_worker::files::FileReference, _: &'a std::path::Path) -> kruxiaflow_worker::context::BoxFuture<'a, Result<(), ActivityError>> { unreachable!() }
    /// #     fn upload<'a>(&'a self, _: &'a kruxiaflow_worker::files::FileReference, _: &'a std::path::Path, _: &'a str) -> kruxiaflow_worker::context::BoxFuture<'a, Result<(), ActivityError>> { unreachable!() }
    /// # }
    /// # let text = tokio::runtime::Runtime::new().unwrap().block_on(draft("rust", &ctx)).unwrap();
    /// # assert_eq!(text, "why rust\nhow rust");
    /// ```
    pub async fn step<T, F, Fut>(&self, name: &str, f: F) -> Result<T, ActivityError>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, ActivityError>>,
    {
        self.journal().step(self.identity(), name, f).await
    }

    /// Saves `value` as the activity's progress (e.g. the index of the last item
    /// done), for [`last_checkpoint`](Self::last_checkpoint) in this attempt or any
    /// later one. It returns at once: the write goes out in the background, and
    /// checkpoints saved while one is being written are coalesced, the latest kept;
    /// the latest is written before a retryable failure is reported. A value that is
    /// not JSON or is over 64 KiB as JSON is refused (`CHECKPOINT_INVALID`).
    pub fn checkpoint<T: Serialize>(&self, value: &T) -> Result<(), ActivityError> {
        let value = serde_json::to_value(value).map_err(|e| {
            ActivityError::terminal(steps::codes::CHECKPOINT_INVALID, format!("the checkpoint is not JSON: {e}"))
        })?;
        let size = serde_json::to_vec(&value).map_or(usize::MAX, |json| json.len());
        self.journal().checkpoint(value, size)
    }

    /// The latest checkpoint saved by this attempt or an earlier one, as `T` (`None`
    /// when there is none, or it does not fit `T`: then with a warning). Async because
    /// its first use in an attempt may read the record from the server.
    pub async fn last_checkpoint<T: DeserializeOwned>(&self) -> Option<T> {
        self.journal().last_checkpoint().await
    }

    /// Whether an earlier attempt of this activity left completed steps or a
    /// checkpoint. Async because its first use in an attempt may read the record from
    /// the server.
    pub async fn is_resumed(&self) -> bool {
        self.journal().is_resumed().await
    }

    /// The worker's rate limit `name` (registered with
    /// [`WorkerManager::rate_limit`](crate::WorkerManager::rate_limit)), to
    /// [`acquire`](RateLimiter::acquire) before a call the limit counts.
    ///
    /// ```
    /// # use kruxiaflow_worker::{ActivityContext, ActivityError};
    /// async fn call_llm(prompt: &str, ctx: &ActivityContext) -> Result<String, ActivityError> {
    ///     ctx.rate_limit("openai-rpm").acquire(1).await?;
    ///     ctx.rate_limit("openai-tpm").acquire(prompt.len() as u64 / 4 + 500).await?;
    ///     Ok(format!("an answer to {prompt}"))
    /// }
    /// ```
    pub fn rate_limit<'a>(&'a self, name: &'a str) -> RateLimiter<'a> {
        RateLimiter::new(self, name)
    }

    pub(crate) fn rate_limits(&self) -> &RateLimits {
        &self.inner.rate_limits
    }

    /// The attempt's step record.
    pub(crate) fn journal(&self) -> &Journal {
        self.inner.journal.get_or_init(|| {
            let info = &self.inner.info;
            let store = Arc::new(BackendRecords(Arc::clone(&self.inner.backend)));
            let journal = Journal::new((info.workflow_id, info.activity_id, &info.activity_key), info.deadline, store);
            // A lost lease stops the record's writes, whether it came before or after.
            if self.cancel_reason() == Some(CancelReason::LeaseLost) {
                journal.stop();
            }
            journal
        })
    }

    /// The attempt's step record, if the attempt used one.
    pub(crate) fn used_journal(&self) -> Option<&Journal> {
        self.inner.journal.get()
    }

    fn spend(&self) -> std::sync::MutexGuard<'_, Spend> {
        // A handler that panicked while holding the lock cannot leave `Spend` half
        // written (every update is one push or one assignment), so poison is harmless.
        self.inner.spend.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The W3C `traceparent` of the span this is called in — the attempt's, or one of
    /// its steps' — to pass to what the activity calls (an LLM gateway, a service), so
    /// that its spans join the workflow's trace; `None` without tracing (the `otel`
    /// feature and [`otel::init`](crate::otel)).
    pub fn traceparent(&self) -> Option<String> {
        #[cfg(feature = "otel")]
        return crate::otel::traceparent(&tracing::Span::current());
        #[cfg(not(feature = "otel"))]
        None
    }

    /// Whether the attempt has been cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.inner.cancel.is_cancelled()
    }

    /// Why the attempt was cancelled, if it was.
    pub fn cancel_reason(&self) -> Option<CancelReason> {
        self.inner.cancel_reason.get().copied()
    }

    /// Resolves when the attempt is cancelled, with the reason. Select on it in long
    /// loops to stop early; the handler gets a grace period, then its future is dropped.
    pub async fn cancelled(&self) -> CancelReason {
        self.inner.cancel.cancelled().await;
        self.cancel_reason().unwrap_or(CancelReason::Requested)
    }

    /// Cancels the attempt. The first reason given wins. Only the runtime cancels: an
    /// activity that wants to stop returns.
    pub(crate) fn cancel(&self, reason: CancelReason) {
        let _ = self.inner.cancel_reason.set(reason);
        if reason == CancelReason::LeaseLost
            && let Some(journal) = self.used_journal()
        {
            journal.stop();
        }
        self.inner.cancel.cancel();
    }
}

/// The step record's storage: the backend's.
struct BackendRecords(Arc<dyn ContextBackend>);

impl RecordStore for BackendRecords {
    fn read<'a>(&'a self, file: &'a FileReference) -> BoxFuture<'a, Result<Option<Vec<u8>>, StoreError>> {
        self.0.read_record(file)
    }

    fn write<'a>(&'a self, file: &'a FileReference, bytes: Vec<u8>) -> BoxFuture<'a, Result<(), StoreError>> {
        self.0.write_record(file, bytes)
    }
}

impl fmt::Debug for ActivityContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ActivityContext")
            .field("info", &self.inner.info)
            .field("cancel_reason", &self.cancel_reason())
            .finish_non_exhaustive()
    }
}
