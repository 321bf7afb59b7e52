//! One attempt's view of its activity's step record: read once on first use, kept in
//! memory, written back after every completed step and checkpoint.

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::time::Instant;
use tracing::Instrument;
use uuid::Uuid;

use super::record::{Checkpoint, Entry, Record, SpendRecord, Stored};
use super::{
    Home, INLINE_LIMIT, MAX_CHECKPOINT, MAX_RECORD, MAX_STEP_NAME, MAX_STEP_VALUE, MAX_STEPS, RecordStore, StoreError,
    codes, scope,
};
use crate::client::RetryPolicy;
use crate::error::ActivityError;
use crate::result::Spend;

/// Record I/O never waits longer than this for the server, nor longer than a quarter of
/// what is left of the attempt's time.
const MOST_IO_WAIT: Duration = Duration::from_secs(30);
/// How long the write before a retryable failure's report may take (the attempt may be
/// past its deadline by then).
pub(crate) const FLUSH_WAIT: Duration = Duration::from_secs(5);

/// Whether a step of this attempt ran or was skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Taken {
    Ran,
    Skipped,
}

/// The step record of one attempt. Cheap to share; every clone is the same journal.
#[derive(Clone)]
pub(crate) struct Journal {
    shared: Arc<Shared>,
}

struct Shared {
    home: Home,
    store: Arc<dyn RecordStore>,
    deadline: Option<Instant>,
    loaded: tokio::sync::OnceCell<()>,
    /// One record write at a time, so that an older snapshot never lands after a newer.
    writer: tokio::sync::Mutex<()>,
    state: Mutex<State>,
}

struct State {
    /// What was read, with this attempt's changes.
    record: Record,
    /// An earlier attempt left steps or a checkpoint.
    resumed: bool,
    /// This attempt saved a checkpoint (it wins over the one read).
    checkpoint_here: bool,
    /// A task is about to write the latest checkpoint.
    checkpoint_queued: bool,
    /// Changes made to `record`, and how many of them the server has.
    version: u64,
    written: u64,
    /// Step names this attempt took (ran, is running, or skipped).
    names: HashSet<String>,
    taken: Vec<(String, Taken)>,
    /// Spend of earlier attempts' steps that never reached the server, which this
    /// attempt reports.
    carried: Spend,
    /// The attempt's spend was taken for its report: later spend is not this report's.
    sealed: bool,
    /// Nothing more is written (the lease is lost, or the backend keeps no record).
    stopped: bool,
}

impl Journal {
    /// The journal of an attempt of the activity (workflow id, activity id, activity
    /// key) that must be done by `deadline`, kept in `store`; nothing is read or
    /// written until first use.
    pub(crate) fn new(
        (workflow_id, activity_id, activity_key): (Uuid, Uuid, &str),
        deadline: Option<Instant>,
        store: Arc<dyn RecordStore>,
    ) -> Self {
        let home = Home::new(workflow_id, activity_id, activity_key);
        let state = State {
            record: Record::new(activity_id),
            resumed: false,
            checkpoint_here: false,
            checkpoint_queued: false,
            version: 0,
            written: 0,
            names: HashSet::new(),
            taken: Vec::new(),
            carried: Spend::default(),
            sealed: false,
            stopped: false,
        };
        let shared = Shared {
            home,
            store,
            deadline,
            loaded: tokio::sync::OnceCell::new(),
            writer: tokio::sync::Mutex::new(()),
            state: Mutex::new(state),
        };
        Self { shared: Arc::new(shared) }
    }

    /// Runs step `name` of the context `owner`, or returns what an earlier attempt
    /// recorded for it (see [`ActivityContext::step`](crate::ActivityContext::step)).
    pub(crate) async fn step<T, F, Fut>(&self, owner: usize, name: &str, f: F) -> Result<T, ActivityError>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, ActivityError>>,
    {
        let span =
            tracing::info_span!("step", kruxiaflow.step = %name, kruxiaflow.step.skipped = tracing::field::Empty);
        self.step_in(owner, name, f, &span).instrument(span.clone()).await
    }

    async fn step_in<T, F, Fut>(&self, owner: usize, name: &str, f: F, span: &tracing::Span) -> Result<T, ActivityError>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, ActivityError>>,
    {
        self.claim(name)?;
        self.shared.ensure_loaded().await;
        if let Some(value) = self.shared.recorded::<T>(name).await {
            span.record("kruxiaflow.step.skipped", true);
            self.shared.state().taken.push((name.to_owned(), Taken::Skipped));
            return Ok(value);
        }
        span.record("kruxiaflow.step.skipped", false);
        let (ran, spend) = scope::collecting(owner, f()).await;
        let value = match ran {
            Ok(value) => value,
            Err(error) => {
                // Not completed: the name is free for another try, now or next attempt.
                self.shared.state().names.remove(name);
                return Err(error);
            }
        };
        self.shared.state().taken.push((name.to_owned(), Taken::Ran));
        let json = serde_json::to_vec(&value).map_err(|e| {
            ActivityError::terminal(codes::STEP_VALUE_INVALID, format!("step {name:?}: its value is not JSON: {e}"))
        })?;
        if json.len() > MAX_STEP_VALUE {
            return Err(ActivityError::terminal(
                codes::STEP_VALUE_TOO_LARGE,
                format!(
                    "step {name:?}: its value is {} bytes as JSON; a step value may be {MAX_STEP_VALUE}",
                    json.len()
                ),
            ));
        }
        self.shared.record(name, json, SpendRecord::from_spend(spend)).await?;
        Ok(value)
    }

    /// Takes `name` for this attempt.
    fn claim(&self, name: &str) -> Result<(), ActivityError> {
        let invalid = |why: String| ActivityError::terminal(codes::STEP_NAME_INVALID, why);
        if name.is_empty() || name.len() > MAX_STEP_NAME {
            return Err(invalid(format!("step name {name:?} is invalid: use 1 to {MAX_STEP_NAME} bytes")));
        }
        if !self.shared.state().names.insert(name.to_owned()) {
            return Err(invalid(format!(
                "step {name:?} was already taken in this attempt: each step needs a name of its own"
            )));
        }
        Ok(())
    }

    /// Saves `value` as the latest checkpoint; written in the background.
    pub(crate) fn checkpoint(&self, value: Value, size: usize) -> Result<(), ActivityError> {
        if size > MAX_CHECKPOINT {
            return Err(ActivityError::terminal(
                codes::CHECKPOINT_INVALID,
                format!("the checkpoint is {size} bytes as JSON; a checkpoint may be {MAX_CHECKPOINT}"),
            ));
        }
        let mut state = self.shared.state();
        state.record.checkpoint = Some(Checkpoint { value });
        state.checkpoint_here = true;
        state.version += 1;
        if std::mem::replace(&mut state.checkpoint_queued, true) {
            return Ok(());
        }
        drop(state);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let shared = Arc::clone(&self.shared);
            runtime.spawn(async move { shared.write_checkpoint().await });
        }
        Ok(())
    }

    /// The latest checkpoint, this attempt's or an earlier one's.
    pub(crate) async fn last_checkpoint<T: DeserializeOwned>(&self) -> Option<T> {
        self.shared.ensure_loaded().await;
        let value = self.shared.state().record.checkpoint.clone()?.value;
        serde_json::from_value(value)
            .inspect_err(|e| tracing::warn!("the last checkpoint does not fit the type asked for ({e}); ignored"))
            .ok()
    }

    /// Whether an earlier attempt left steps or a checkpoint.
    pub(crate) async fn is_resumed(&self) -> bool {
        self.shared.ensure_loaded().await;
        self.shared.state().resumed
    }

    /// The attempt's report is being made: the spend this journal carries from earlier
    /// attempts goes with it, and every step in the record counts as reported from now
    /// on.
    pub(crate) fn seal(&self) -> Spend {
        let mut state = self.shared.state();
        state.sealed = true;
        let mut changed = false;
        for entry in state.record.steps.values_mut() {
            changed |= !std::mem::replace(&mut entry.reported, true);
        }
        if changed {
            state.version += 1;
        }
        std::mem::take(&mut state.carried)
    }

    /// Writes what the server does not have yet (a checkpoint still queued, the marks
    /// of [`seal`](Self::seal)), before a retryable failure is reported.
    pub(crate) async fn flush(&self) {
        let version = self.shared.state().version;
        if let Err(error) = self.shared.persist(version, FLUSH_WAIT).await {
            tracing::warn!("the step record could not be written before the report: {error}");
        }
    }

    /// The handler runs again in this attempt (a local retry): its steps' names are
    /// free again, and the steps it completed are skipped without reading the server.
    pub(crate) fn next_try(&self) {
        self.shared.state().names.clear();
    }

    /// Writes nothing more: another attempt owns the record now.
    pub(crate) fn stop(&self) {
        self.shared.state().stopped = true;
    }

    /// The spend this attempt carries from earlier attempts, so far.
    pub(crate) fn carried(&self) -> Spend {
        self.shared.state().carried.clone()
    }

    /// This attempt's steps, in the order they were taken.
    pub(crate) fn taken(&self) -> Vec<(String, Taken)> {
        self.shared.state().taken.clone()
    }
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // Every update is a few assignments with no code of the user's in between.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How long record I/O may wait for the server now.
    fn io_wait(&self) -> Duration {
        match self.deadline {
            Some(deadline) => (deadline.saturating_duration_since(Instant::now()) / 4).min(MOST_IO_WAIT),
            None => MOST_IO_WAIT,
        }
    }

    async fn ensure_loaded(&self) {
        self.loaded.get_or_init(|| self.load()).await;
    }

    async fn load(&self) {
        let file = self.home.record();
        let read = retrying(self.io_wait(), || self.store.read(&file)).await;
        let bytes = match read {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return,
            Err(StoreError::Unsupported) => {
                // A context without storage (a custom backend): steps simply run.
                self.state().stopped = true;
                return;
            }
            Err(error) => {
                tracing::warn!("the step record {file} could not be read ({error}); this attempt runs every step");
                return;
            }
        };
        let earlier = match Record::parse(&bytes, self.home.activity_id) {
            Ok(earlier) => earlier,
            Err(why) => {
                tracing::warn!("the step record {file} is ignored: {why}");
                return;
            }
        };
        let mut state = self.state();
        let state = &mut *state;
        state.resumed = !earlier.is_empty();
        state.record.files = state.record.files.max(earlier.files);
        if !state.checkpoint_here {
            state.record.checkpoint = earlier.checkpoint;
        }
        for (name, entry) in earlier.steps {
            if !entry.reported && !state.sealed {
                state.carried.add(&entry.spend.to_spend());
            }
            state.record.steps.entry(name).or_insert(entry);
        }
    }

    /// The value an earlier attempt recorded for step `name`, if it can be had and fits
    /// `T`.
    async fn recorded<T: DeserializeOwned>(&self, name: &str) -> Option<T> {
        let stored = self.state().record.steps.get(name)?.stored.clone();
        let value = match stored {
            Stored::Inline { value } => value,
            Stored::File { file, .. } => {
                let file = self.home.file(file);
                match retrying(self.io_wait(), || self.store.read(&file)).await {
                    Ok(Some(bytes)) => serde_json::from_slice(&bytes)
                        .inspect_err(|e| {
                            tracing::warn!("step {name:?}: its value file {file} is damaged ({e}); the step runs again")
                        })
                        .ok()?,
                    Ok(None) => {
                        tracing::warn!("step {name:?}: its value file {file} is missing; the step runs again");
                        return None;
                    }
                    Err(error) => {
                        tracing::warn!(
                            "step {name:?}: its value file {file} could not be read ({error}); the step runs again"
                        );
                        return None;
                    }
                }
            }
        };
        serde_json::from_value(value)
            .inspect_err(|e| {
                tracing::warn!("step {name:?}: the value an earlier attempt recorded does not fit this code's type ({e}); the step runs again")
            })
            .ok()
    }

    /// Records step `name`'s value (`json`) and spend, durably before it returns unless
    /// the server cannot be written (then with a warning: the step only loses its
    /// resumption).
    async fn record(&self, name: &str, json: Vec<u8>, spend: SpendRecord) -> Result<(), ActivityError> {
        let stored = if json.len() <= INLINE_LIMIT {
            Stored::Inline { value: serde_json::from_slice(&json).expect("serde_json reads what it wrote") }
        } else {
            let filename = {
                let mut state = self.state();
                state.record.files += 1;
                self.home.value_file(state.record.files - 1)
            };
            let bytes = json.len() as u64;
            let file = self.home.file(filename.clone());
            if let Err(error) = retrying(self.io_wait(), || self.store.write(&file, json.clone())).await {
                self.not_recorded(name, &error);
                return Ok(());
            }
            Stored::File { file: filename, bytes }
        };
        let version = {
            let mut state = self.state();
            let entry = Entry { stored, spend, reported: false };
            let previous = state.record.steps.insert(name.to_owned(), entry);
            let steps = state.record.steps.len();
            let size = if steps > MAX_STEPS { 0 } else { state.record.to_bytes().len() };
            if steps > MAX_STEPS || size > MAX_RECORD {
                match previous {
                    Some(previous) => state.record.steps.insert(name.to_owned(), previous),
                    None => state.record.steps.remove(name),
                };
                let over = if size > MAX_RECORD {
                    format!("be {size} bytes, over its limit of {MAX_RECORD}")
                } else {
                    format!("hold more than {MAX_STEPS} steps")
                };
                return Err(ActivityError::terminal(
                    codes::STEP_RECORD_FULL,
                    format!(
                        "step {name:?}: the activity's step record would {over}; \
                         a loop over many items needs a checkpoint, not a step per item"
                    ),
                ));
            }
            state.version += 1;
            state.version
        };
        if let Err(error) = self.persist(version, self.io_wait()).await {
            self.not_recorded(name, &error);
        }
        Ok(())
    }

    fn not_recorded(&self, name: &str, error: &StoreError) {
        if !self.state().stopped {
            tracing::warn!("step {name:?} completed but could not be recorded ({error}); a retry will run it again");
        }
    }

    async fn write_checkpoint(&self) {
        self.ensure_loaded().await;
        let version = {
            let mut state = self.state();
            state.checkpoint_queued = false;
            state.version
        };
        if let Err(error) = self.persist(version, self.io_wait()).await
            && !self.state().stopped
        {
            tracing::warn!("a checkpoint could not be recorded ({error}); a retry resumes from an earlier one");
        }
    }

    /// Makes the server hold at least change `version` of the record.
    async fn persist(&self, version: u64, wait: Duration) -> Result<(), StoreError> {
        let _writer = self.writer.lock().await;
        let (latest, bytes) = {
            let state = self.state();
            if state.written >= version {
                return Ok(());
            }
            if state.stopped {
                return Err(StoreError::Failed("another attempt owns the record now".to_owned()));
            }
            (state.version, state.record.to_bytes())
        };
        let file = self.home.record();
        retrying(wait, || self.store.write(&file, bytes.clone())).await?;
        let mut state = self.state();
        state.written = state.written.max(latest);
        Ok(())
    }
}

/// Runs `op` until it succeeds, fails for good, or `wait` would be passed by the next
/// pause; it always runs at least once.
async fn retrying<T, Fut>(wait: Duration, mut op: impl FnMut() -> Fut) -> Result<T, StoreError>
where
    Fut: Future<Output = Result<T, StoreError>>,
{
    let give_up_at = Instant::now() + wait;
    let mut pauses = RetryPolicy::default().pauses();
    loop {
        match op().await {
            Err(StoreError::Transient(detail)) => {
                let pause = pauses.next().unwrap_or(MOST_IO_WAIT);
                if Instant::now() + pause > give_up_at {
                    return Err(StoreError::Transient(format!("{detail} (still failing after {wait:?})")));
                }
                tokio::time::sleep(pause).await;
            }
            other => return other,
        }
    }
}
