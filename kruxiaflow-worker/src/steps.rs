//! Durable steps and checkpoints: what an attempt finished survives it, so that the
//! next attempt — on this worker or any other — skips it instead of paying for it
//! again.
//!
//! An activity's record lives in workflow storage, the server's files API, beside the
//! activity but under a key of its own: activity key `{activity_key}.steps` (a `.`
//! never occurs in a workflow's activity keys, so it names no activity, and the
//! activity's own file listing does not show it), file `{activity_id}.json`. The
//! activity id is the same for every retry of an activity and differs between loop
//! iterations, so retries share the record and iterations do not. A step value over
//! [`INLINE_LIMIT`] bytes goes in a file of its own, `{activity_id}.{n}.json`, written
//! once; the record names it.
//!
//! What it costs: nothing for an activity that never calls a step method; one read on
//! first use; one write per completed step (two when its value has its own file) and
//! per checkpoint (checkpoints saved while a write is out are coalesced, the latest
//! kept); one more write before a retryable failure is reported, when the record has
//! something to mark. Every record write replaces the previous record, and the
//! server leaves the replaced PostgreSQL large object behind (see the README).

mod journal;
mod record;
mod scope;

pub(crate) use journal::Journal;
pub(crate) use scope::note as note_spend;

use uuid::Uuid;

use crate::files::FileReference;
use crate::future::BoxFuture;

/// Why a step record could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// It may work if tried again (a network error, a 5xx, a proxy's answer).
    #[error("{0}")]
    Transient(String),
    /// It will not work if tried again.
    #[error("{0}")]
    Failed(String),
    /// This backend keeps no step records.
    #[error("this context keeps no step records")]
    Unsupported,
}

/// Where an activity's step record is kept: the server's files API in a worker,
/// memory in a `MockContext`.
pub(crate) trait RecordStore: Send + Sync {
    /// The whole of `file`; `None` when there is none.
    fn read<'a>(&'a self, file: &'a FileReference) -> BoxFuture<'a, Result<Option<Vec<u8>>, StoreError>>;
    /// Replaces `file` with `bytes`.
    fn write<'a>(&'a self, file: &'a FileReference, bytes: Vec<u8>) -> BoxFuture<'a, Result<(), StoreError>>;
}

/// Error codes of durable steps and checkpoints. All are terminal: the same code
/// would fail the same way on every retry.
pub mod codes {
    /// A step name was used twice in one attempt, or is empty or over 200 bytes.
    pub const STEP_NAME_INVALID: &str = "STEP_NAME_INVALID";
    /// A step's value could not be serialized to JSON.
    pub const STEP_VALUE_INVALID: &str = "STEP_VALUE_INVALID";
    /// A step's value is larger than [`MAX_STEP_VALUE`](super::MAX_STEP_VALUE) as JSON.
    pub const STEP_VALUE_TOO_LARGE: &str = "STEP_VALUE_TOO_LARGE";
    /// The activity's record would hold more than [`MAX_STEPS`](super::MAX_STEPS)
    /// steps or grow past [`MAX_RECORD`](super::MAX_RECORD) bytes (use a checkpoint for
    /// a loop over many items).
    pub const STEP_RECORD_FULL: &str = "STEP_RECORD_FULL";
    /// A checkpoint could not be serialized, or is larger than
    /// [`MAX_CHECKPOINT`](super::MAX_CHECKPOINT) as JSON.
    pub const CHECKPOINT_INVALID: &str = "CHECKPOINT_INVALID";
}

/// A step value at most this long as JSON is kept in the record itself.
pub const INLINE_LIMIT: usize = 1024;
/// The largest step value, as JSON.
pub const MAX_STEP_VALUE: usize = 16 * 1024 * 1024;
/// The largest checkpoint, as JSON.
pub const MAX_CHECKPOINT: usize = 64 * 1024;
/// The largest record (every step's name, spend and small value, and the checkpoint).
pub const MAX_RECORD: usize = 1024 * 1024;
/// The most steps one activity's record holds: every record write rewrites them all.
pub const MAX_STEPS: usize = 1000;
/// The longest step name, in bytes.
pub const MAX_STEP_NAME: usize = 200;

/// The activity key under which an activity's step record is stored.
pub fn record_key(activity_key: &str) -> String {
    format!("{activity_key}.steps")
}

/// Where one activity's record and its value files are.
pub(crate) struct Home {
    pub(crate) workflow_id: Uuid,
    pub(crate) activity_id: Uuid,
    key: String,
}

impl Home {
    pub(crate) fn new(workflow_id: Uuid, activity_id: Uuid, activity_key: &str) -> Self {
        Self { workflow_id, activity_id, key: record_key(activity_key) }
    }

    /// The file `filename` beside the record.
    pub(crate) fn file(&self, filename: String) -> FileReference {
        FileReference { workflow_id: self.workflow_id, activity_key: self.key.clone(), filename }
    }

    /// The record itself.
    pub(crate) fn record(&self) -> FileReference {
        self.file(format!("{}.json", self.activity_id))
    }

    /// The name of the `n`-th value file.
    pub(crate) fn value_file(&self, n: u32) -> String {
        format!("{}.{n}.json", self.activity_id)
    }
}

/// The step record as tests see it: what an earlier attempt left, what a run left.
pub(crate) mod inspect {
    use std::collections::BTreeMap;

    use serde_json::Value;

    use uuid::Uuid;

    use super::record::{Checkpoint, Entry, Record, SpendRecord, Stored};
    use super::{Home, Journal, journal::Taken};
    use crate::files::FileReference;
    use crate::result::Spend;

    /// Whose record: (workflow id, activity id, activity key).
    pub type Activity<'a> = (Uuid, Uuid, &'a str);

    fn home((workflow_id, activity_id, activity_key): Activity<'_>) -> Home {
        Home::new(workflow_id, activity_id, activity_key)
    }

    /// The file that holds the step record of `activity`.
    pub fn record_file(activity: Activity<'_>) -> FileReference {
        home(activity).record()
    }

    /// The record an earlier attempt of `activity` left with `steps` (name, value, the
    /// spend recorded inside) and `checkpoint`; `reported`: whether that attempt's
    /// report carried the steps' spend.
    pub fn earlier_record(
        activity: Activity<'_>,
        steps: &[(String, Value, Spend)],
        checkpoint: Option<Value>,
        reported: bool,
    ) -> Vec<u8> {
        let mut record = Record::new(activity.1);
        for (name, value, spend) in steps {
            let entry = Entry {
                stored: Stored::Inline { value: value.clone() },
                spend: SpendRecord::from_spend(spend.clone()),
                reported,
            };
            record.steps.insert(name.clone(), entry);
        }
        record.checkpoint = checkpoint.map(|value| Checkpoint { value });
        record.to_bytes()
    }

    /// What a step record holds.
    #[derive(Debug, Clone, Default)]
    pub struct Recorded {
        /// Each step's value and the spend recorded inside it.
        pub steps: BTreeMap<String, (Value, Spend)>,
        /// The checkpoint.
        pub checkpoint: Option<Value>,
    }

    /// What the record of `activity` in `store` holds (a step's value read from its own
    /// file when it has one); `None` without a readable record.
    pub fn recorded(activity: Activity<'_>, store: impl Fn(&FileReference) -> Option<Vec<u8>>) -> Option<Recorded> {
        let record = Record::parse(&store(&record_file(activity))?, activity.1).ok()?;
        let mut steps = BTreeMap::new();
        for (name, entry) in record.steps {
            let value = match entry.stored {
                Stored::Inline { value } => value,
                Stored::File { file: filename, .. } => {
                    serde_json::from_slice(&store(&home(activity).file(filename))?).ok()?
                }
            };
            steps.insert(name, (value, entry.spend.to_spend()));
        }
        Some(Recorded { steps, checkpoint: record.checkpoint.map(|c| c.value) })
    }

    /// The steps the attempt of `journal` took, in order: `true` for one that ran,
    /// `false` for one skipped.
    pub fn taken(journal: &Journal) -> Vec<(String, bool)> {
        journal.taken().into_iter().map(|(name, taken)| (name, taken == Taken::Ran)).collect()
    }
}
