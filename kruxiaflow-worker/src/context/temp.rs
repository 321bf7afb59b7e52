//! The per-attempt temporary directory: created on first use, removed at the end.

use std::path::PathBuf;
use std::sync::Mutex;

use uuid::Uuid;

use crate::error::ActivityError;
use crate::files::{FileReference, codes};

pub(super) struct TempFiles {
    activity_id: Uuid,
    state: Mutex<State>,
}

enum State {
    NotCreated,
    Open(tempfile::TempDir),
    Closed,
}

impl TempFiles {
    pub(super) fn new(activity_id: Uuid) -> Self {
        Self { activity_id, state: Mutex::new(State::NotCreated) }
    }

    pub(super) fn dir(&self) -> Result<PathBuf, ActivityError> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let State::NotCreated = *state {
            let dir = tempfile::Builder::new()
                .prefix(&format!("kruxiaflow-{}-", self.activity_id))
                .tempdir()
                .map_err(|e| failed(format!("cannot create the activity's temp dir: {e}")))?;
            *state = State::Open(dir);
        }
        match &*state {
            State::Open(dir) => Ok(dir.path().to_owned()),
            _ => Err(failed("the activity has ended; its temp dir is gone".to_owned())),
        }
    }

    /// Where a download of `file` goes: `{temp}/{workflow_id}/{activity_key}/{filename}`.
    /// Every part was validated, so the path cannot leave the temp dir.
    pub(super) fn path_for(&self, file: &FileReference) -> Result<PathBuf, ActivityError> {
        let dir = self.dir()?.join(file.workflow_id.to_string()).join(&file.activity_key);
        std::fs::create_dir_all(&dir).map_err(|e| failed(format!("cannot create {}: {e}", dir.display())))?;
        Ok(dir.join(&file.filename))
    }

    pub(super) fn close(&self) {
        let previous = std::mem::replace(&mut *self.state.lock().unwrap_or_else(|e| e.into_inner()), State::Closed);
        if let State::Open(dir) = previous {
            let path = dir.path().to_owned();
            if let Err(error) = dir.close() {
                tracing::warn!(path = %path.display(), %error, "could not remove the activity's temp dir");
            }
        }
    }
}

fn failed(message: String) -> ActivityError {
    ActivityError::retryable(codes::FILE_TRANSFER_FAILED, message)
}
