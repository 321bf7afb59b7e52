//! File storage keyed by (workflow_id, activity_key, filename), kept on disk in a
//! temporary directory so that large files are streamed, never held in memory.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use uuid::Uuid;

/// Metadata of a stored file, as the upload endpoint returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredFile {
    /// Owning workflow.
    pub workflow_id: Uuid,
    /// Owning activity key.
    pub activity_key: String,
    /// File name.
    pub filename: String,
    /// Size in bytes.
    pub size: u64,
    /// Content type given at upload.
    pub content_type: Option<String>,
    /// RFC 3339 creation time.
    pub created_at: String,
    #[serde(skip)]
    pub(crate) path: PathBuf,
}

impl StoredFile {
    /// Where the bytes are on disk.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}

pub(crate) type FileKey = (Uuid, String, String);

pub(crate) struct FileStore {
    dir: tempfile::TempDir,
    next: AtomicU64,
    files: Mutex<HashMap<FileKey, StoredFile>>,
    /// Versions replaced by an upload to the same triple, and their bytes: what the
    /// real server leaves behind as orphaned large objects.
    replaced: Mutex<(u64, u64)>,
}

impl FileStore {
    pub(crate) fn new() -> std::io::Result<Self> {
        Ok(Self {
            dir: tempfile::Builder::new().prefix("kruxiaflow-fake-files-").tempdir()?,
            next: AtomicU64::new(0),
            files: Mutex::new(HashMap::new()),
            replaced: Mutex::new((0, 0)),
        })
    }

    pub(crate) fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// A fresh path for new contents. Each version gets its own file so that an
    /// overwrite never disturbs a download of the previous version in progress.
    pub(crate) fn new_blob_path(&self) -> PathBuf {
        self.dir.path().join(format!("blob-{}", self.next.fetch_add(1, Ordering::Relaxed)))
    }

    /// Records `file` under its key, replacing (and deleting) any previous version.
    pub(crate) fn put(&self, file: StoredFile) -> StoredFile {
        let key = (file.workflow_id, file.activity_key.clone(), file.filename.clone());
        let previous = self.lock().insert(key, file.clone());
        if let Some(previous) = previous {
            let mut replaced = self.replaced.lock().unwrap_or_else(|e| e.into_inner());
            *replaced = (replaced.0 + 1, replaced.1 + previous.size);
            let _ = std::fs::remove_file(previous.path);
        }
        file
    }

    pub(crate) fn replaced(&self) -> (u64, u64) {
        *self.replaced.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn get(&self, key: &FileKey) -> Option<StoredFile> {
        self.lock().get(key).cloned()
    }

    pub(crate) fn all(&self) -> Vec<StoredFile> {
        let mut files: Vec<_> = self.lock().values().cloned().collect();
        files.sort_by(|a, b| {
            (a.workflow_id, &a.activity_key, &a.filename).cmp(&(b.workflow_id, &b.activity_key, &b.filename))
        });
        files
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<FileKey, StoredFile>> {
        self.files.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Current time as RFC 3339 UTC with microseconds, like Postgres timestamps.
pub(crate) fn now_rfc3339() -> String {
    humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string()
}
