//! What an activity sees while it runs: its identity, cancellation, heartbeats, a
//! logger, and a place to record money spent.

mod logger;
mod temp;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use rust_decimal::Decimal;
use serde_json::Value;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::error::{ActivityError, codes};
use crate::files::{FileReference, guess_content_type};
use crate::protocol::{OutputDefinition, OutputType, UsageEntry};
use crate::result::ActivityOutput;
use crate::stream::TokenStream;

pub use logger::ActivityLogger;
use temp::TempFiles;

pub use crate::future::BoxFuture;
pub use crate::result::Spend;

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
}

impl ActivityContext {
    /// A context for `info`, served by `backend`; its [`stream`](Self::stream) sends
    /// nothing.
    pub fn new(info: ActivityInfo, backend: Arc<dyn ContextBackend>) -> Self {
        Self::with_stream(info, backend, TokenStream::disabled())
    }

    pub(crate) fn with_stream(info: ActivityInfo, backend: Arc<dyn ContextBackend>, stream: TokenStream) -> Self {
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
        self.inner.backend.download(&file, &dest).await?;
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
        self.inner.backend.upload(&file, path, content_type).await?;
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

    /// Records one LLM call's usage; reported with whatever ends the attempt.
    pub fn record_usage(&self, entry: UsageEntry) {
        self.spend().usage.push(entry);
    }

    /// Adds money spent outside LLM usage; reported with whatever ends the attempt.
    pub fn add_cost(&self, cost: Decimal) {
        let mut spend = self.spend();
        spend.cost = Some(spend.cost.unwrap_or_default() + cost);
    }

    /// What has been recorded with [`record_usage`](Self::record_usage) and
    /// [`add_cost`](Self::add_cost) so far.
    pub fn spend_snapshot(&self) -> Spend {
        self.spend().clone()
    }

    pub(crate) fn take_spend(&self) -> Spend {
        std::mem::take(&mut *self.spend())
    }

    fn spend(&self) -> std::sync::MutexGuard<'_, Spend> {
        // A handler that panicked while holding the lock cannot leave `Spend` half
        // written (every update is one push or one assignment), so poison is harmless.
        self.inner.spend.lock().unwrap_or_else(|e| e.into_inner())
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
        self.inner.cancel.cancel();
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
