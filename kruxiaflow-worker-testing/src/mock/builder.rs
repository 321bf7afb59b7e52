//! How a test describes the activity a `MockContext` runs: ids, settings, outputs,
//! seeded files, a lease that will be lost, a cancellation to come.

use std::sync::Arc;
use std::time::Duration;

use kruxiaflow_worker::__testing::{earlier_record, record_file};
use kruxiaflow_worker::context::ActivityInfo;
use kruxiaflow_worker::files::FileReference;
use kruxiaflow_worker::rate_limit::RateLimit;
use kruxiaflow_worker::{OutputDefinition, OutputType};
use serde_json::Value;
use uuid::Uuid;

use super::backend::MockBackend;
use super::steps::EarlierAttempt;
use super::stream::MockStream;
use super::{MockContext, whose};

/// Describes the activity a [`MockContext`] runs; [`build`](Self::build) makes the
/// context. Everything is fixed from then on, so the context an activity gets and
/// the one a test inspects can never disagree.
///
/// ```
/// use kruxiaflow_worker_testing::MockContext;
/// use serde_json::json;
///
/// let mock = MockContext::builder("rust", "summarize")
///     .activity_key("summary")
///     .settings(json!({"model": "small"}))
///     .build();
/// let ctx = mock.context();
/// assert_eq!(ctx.info().activity_key, "summary");
/// assert_eq!(ctx.info().settings["model"], "small");
/// ```
#[must_use = "a builder does nothing until `build` is called"]
pub struct MockContextBuilder {
    info: ActivityInfo,
    backend: MockBackend,
    subscribers: u32,
    cancel_after: Option<Duration>,
    timeout: Duration,
    earlier: Option<EarlierAttempt>,
    rate_limits: Vec<(String, RateLimit)>,
}

/// A worker's execution timeout for an activity the server sends without one
/// (`WorkerConfig::activity_timeout`'s default).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

impl MockContextBuilder {
    pub(super) fn new(worker: &str, activity_name: &str) -> Self {
        Self {
            info: ActivityInfo::new(worker, activity_name),
            backend: MockBackend::default(),
            subscribers: 1,
            cancel_after: None,
            timeout: DEFAULT_TIMEOUT,
            earlier: None,
            rate_limits: Vec::new(),
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
    /// says otherwise. What it streams is in [`MockContext::streamed`].
    pub fn streaming(mut self, enabled: bool) -> Self {
        if !self.info.settings.is_object() {
            self.info.settings = Value::Object(Default::default());
        }
        self.info.settings["streaming"] = Value::Bool(enabled);
        self
    }

    /// How many clients watch the stream (default 1). With 0, nothing sent is recorded
    /// and no end message is sent, as in a worker.
    pub fn subscribers(mut self, count: u32) -> Self {
        self.subscribers = count;
        self
    }

    /// Declares an output.
    pub fn output(mut self, name: &str, output_type: OutputType) -> Self {
        self.info.output_definitions.push(OutputDefinition { name: name.to_owned(), output_type });
        self
    }

    /// The `n`-th heartbeat fails as a lost lease and cancels the activity with
    /// [`CancelReason::LeaseLost`](kruxiaflow_worker::CancelReason::LeaseLost), as a
    /// 409 from the server would.
    pub fn cancel_after_heartbeats(mut self, n: u32) -> Self {
        self.backend.lose_lease_after = n.max(1);
        self
    }

    /// Makes `reference` downloadable with `bytes`.
    ///
    /// # Panics
    /// If `reference` is not a valid `postgres://{workflow_id}/{activity_key}/{filename}`.
    pub fn file(mut self, reference: &str, bytes: impl Into<Vec<u8>>) -> Self {
        let file: FileReference = reference.parse().unwrap_or_else(|e| panic!("{e}"));
        self.backend.seeded.insert(file, bytes.into());
        self
    }

    /// A reference to `filename` of this activity's own workflow and key, for seeding
    /// inputs with [`file`](Self::file).
    pub fn reference(&self, filename: &str) -> String {
        super::file_reference(&self.info, filename)
    }

    /// Cancels the activity ([`CancelReason::Requested`](kruxiaflow_worker::CancelReason::Requested))
    /// this long into [`MockContext::run`].
    pub fn cancel_after(mut self, delay: Duration) -> Self {
        self.cancel_after = Some(delay);
        self
    }

    /// The attempt's execution timeout (300 s by default, as a worker's for an
    /// activity without `timeout_seconds`), which a `TIMEOUT` failure names; the
    /// context's [`deadline`](kruxiaflow_worker::ActivityContext::deadline) is this long
    /// after [`build`](Self::build), as a worker's is after the claim.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Registers the rate limit `name`, as
    /// [`WorkerManager::rate_limit`](kruxiaflow_worker::WorkerManager::rate_limit)
    /// does on a worker.
    pub fn rate_limit(mut self, name: &str, limit: RateLimit) -> Self {
        self.rate_limits.push((name.to_owned(), limit));
        self
    }

    /// Makes the context a resumed attempt: `earlier` is what an earlier attempt left
    /// in the activity's step record (on the server, as far as the context can tell).
    pub fn resumed_from(mut self, earlier: EarlierAttempt) -> Self {
        self.earlier = Some(earlier);
        self
    }

    /// The context, fixed from now on.
    pub fn build(mut self) -> MockContext {
        self.info.deadline = Some(tokio::time::Instant::now() + self.timeout);
        if let Some(earlier) = &self.earlier {
            let bytes = earlier_record(whose(&self.info), &earlier.steps, earlier.checkpoint.clone(), earlier.reported);
            self.backend.records().insert(record_file(whose(&self.info)), bytes);
        }
        MockContext::from_parts(
            self.info,
            (Arc::new(self.backend), Arc::new(MockStream::new(self.subscribers))),
            &self.rate_limits,
            (self.cancel_after, self.timeout),
        )
    }
}

impl std::fmt::Debug for MockContextBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockContextBuilder").field("info", &self.info).finish_non_exhaustive()
    }
}
