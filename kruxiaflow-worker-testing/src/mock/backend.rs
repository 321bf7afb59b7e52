//! The server side of a `MockContext`: seeded downloads, recorded uploads, counted
//! heartbeats and a lease that can be lost on cue.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use kruxiaflow_worker::ActivityError;
use kruxiaflow_worker::context::{BoxFuture, ContextBackend, HeartbeatError, StoreError};
use kruxiaflow_worker::files::{FileReference, codes as file_codes};

/// What a `MockContext` answers in place of a server: files, heartbeats, the lease.
#[derive(Default)]
pub(crate) struct MockBackend {
    pub(crate) heartbeats: AtomicU32,
    /// The heartbeat (1-based) from which the lease is lost; 0: never.
    pub(crate) lose_lease_after: u32,
    /// The lease is lost (a heartbeat said so, or the test did): what a worker knows
    /// about the lease, apart from how the handler was cancelled.
    pub(crate) lease_lost: AtomicBool,
    pub(crate) seeded: HashMap<FileReference, Vec<u8>>,
    uploads: Mutex<Vec<Upload>>,
    /// Step records and their value files, as the server's files API keeps them.
    pub(crate) records: Mutex<HashMap<FileReference, Vec<u8>>>,
    pub(crate) record_reads: AtomicU32,
    pub(crate) record_writes: AtomicU32,
}

/// A file the activity uploaded through a [`MockContext`](crate::MockContext).
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
            let bytes = self.seeded.get(file).cloned().ok_or_else(|| {
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

    fn read_record<'a>(&'a self, file: &'a FileReference) -> BoxFuture<'a, Result<Option<Vec<u8>>, StoreError>> {
        self.record_reads.fetch_add(1, Ordering::SeqCst);
        let bytes = self.records().get(file).cloned();
        Box::pin(async move { Ok(bytes) })
    }

    fn write_record<'a>(&'a self, file: &'a FileReference, bytes: Vec<u8>) -> BoxFuture<'a, Result<(), StoreError>> {
        self.record_writes.fetch_add(1, Ordering::SeqCst);
        self.records().insert(file.clone(), bytes);
        Box::pin(async { Ok(()) })
    }

    fn heartbeat(&self) -> BoxFuture<'_, Result<(), HeartbeatError>> {
        let count = self.heartbeats.fetch_add(1, Ordering::SeqCst) + 1;
        let lost = self.lose_lease_after > 0 && count >= self.lose_lease_after;
        if lost {
            self.lease_lost.store(true, Ordering::SeqCst);
        }
        Box::pin(async move { if lost { Err(HeartbeatError::LeaseLost) } else { Ok(()) } })
    }
}

impl MockBackend {
    pub(crate) fn heartbeats(&self) -> u32 {
        self.heartbeats.load(Ordering::SeqCst)
    }

    pub(crate) fn records(&self) -> std::sync::MutexGuard<'_, HashMap<FileReference, Vec<u8>>> {
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn uploads(&self) -> Vec<Upload> {
        self.uploads.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}
