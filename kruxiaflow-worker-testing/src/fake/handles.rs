//! The test-facing handles of a `FakeServer`, one per concern, so the server's own
//! methods stay about the protocol model (the queue, leases, tokens, streams).

use std::collections::HashMap;
use std::time::Duration;

use uuid::Uuid;

use super::Endpoint;
use super::faults::{ChaosConfig, Fault};
use super::files::{self, StoredFile};
use super::log::RequestRecord;
use super::state::ServerState;
use super::tooling::Tooling;

/// Fault injection (from [`FakeServer::faults`](super::FakeServer::faults)).
#[derive(Clone, Copy)]
pub struct Faults<'a> {
    tooling: &'a Tooling,
}

impl<'a> Faults<'a> {
    pub(super) fn new(tooling: &'a Tooling) -> Self {
        Self { tooling }
    }

    /// Makes the next `times` requests to `endpoint` misbehave with `fault`.
    pub fn inject(&self, endpoint: Endpoint, fault: Fault, times: usize) {
        self.tooling.faults.push(endpoint, fault, times);
    }

    /// Adds `item` to the next successful poll answer, byte for byte (after the
    /// activities the poll claimed), to test a worker against items no JSON parser
    /// accepts: `parameters` nested 200 deep, `1e400`, a lone `"\ud800"` escape.
    pub fn inject_raw_poll_item(&self, item: impl Into<String>) {
        self.tooling.faults.push_raw_poll_item(item.into());
    }

    /// Makes every poll claim `extra` activities beyond its `max_activities`, as a
    /// misbehaving server might (`0` restores the protocol's behaviour).
    pub fn set_over_delivery(&self, extra: u32) {
        self.tooling.faults.set_over_delivery(extra);
    }

    /// Sends the response bodies of `endpoint` (e.g. [`Endpoint::FileDownload`]) at
    /// `bytes_per_second`: a slow link.
    pub fn set_bandwidth(&self, endpoint: Endpoint, bytes_per_second: u64) {
        self.tooling.faults.set_bandwidth(endpoint, bytes_per_second);
    }

    /// Delays every request to `endpoint` (or to all, with [`Endpoint::Any`]).
    pub fn set_latency(&self, endpoint: Endpoint, latency: Duration) {
        self.tooling.faults.set_latency(endpoint, latency);
    }

    /// Removes scheduled faults and latency.
    pub fn clear(&self) {
        self.tooling.faults.clear();
    }

    /// Turns random faults on (`Some`) or off (`None`).
    pub fn set_chaos(&self, chaos: Option<ChaosConfig>) {
        self.tooling.faults.set_chaos(chaos);
    }

    /// Latency spikes added by chaos mode so far.
    pub fn latency_spikes(&self) -> u64 {
        self.tooling.faults.spikes()
    }

    /// How many faults of each kind were injected so far.
    pub fn injected(&self) -> HashMap<Fault, u64> {
        self.tooling.faults.injected()
    }
}

/// The request log (from [`FakeServer::log`](super::FakeServer::log)).
#[derive(Clone, Copy)]
pub struct Log<'a> {
    tooling: &'a Tooling,
}

impl<'a> Log<'a> {
    pub(super) fn new(tooling: &'a Tooling) -> Self {
        Self { tooling }
    }

    /// Every request answered so far, in order.
    pub fn all(&self) -> Vec<RequestRecord> {
        self.tooling.log.snapshot()
    }

    /// Requests to one endpoint, in order.
    pub fn to(&self, endpoint: Endpoint) -> Vec<RequestRecord> {
        self.all().into_iter().filter(|r| r.endpoint == endpoint).collect()
    }

    /// The reports (`/complete` and `/fail` requests) sent for activity `id`, in order,
    /// whatever the server answered them.
    pub fn reports(&self, id: Uuid) -> Vec<RequestRecord> {
        let is_report = |r: &RequestRecord| matches!(r.endpoint, Endpoint::Complete | Endpoint::Fail);
        self.all().into_iter().filter(|r| r.activity_id == Some(id) && is_report(r)).collect()
    }

    /// Empties the log.
    pub fn clear(&self) {
        self.tooling.log.clear();
    }
}

/// Workflow file storage (from [`FakeServer::files`](super::FakeServer::files)).
#[derive(Clone, Copy)]
pub struct Files<'a> {
    state: &'a ServerState,
}

impl<'a> Files<'a> {
    pub(super) fn new(state: &'a ServerState) -> Self {
        Self { state }
    }

    /// Stores a file as if an activity had uploaded it.
    pub fn seed(
        &self,
        workflow_id: Uuid,
        activity_key: &str,
        filename: &str,
        bytes: &[u8],
        content_type: Option<&str>,
    ) -> StoredFile {
        let path = self.state.files.new_blob_path();
        std::fs::write(&path, bytes).expect("the fake's file store is writable");
        self.state.files.put(StoredFile {
            workflow_id,
            activity_key: activity_key.to_owned(),
            filename: filename.to_owned(),
            size: bytes.len() as u64,
            content_type: content_type.map(str::to_owned),
            created_at: files::now_rfc3339(),
            path,
        })
    }

    /// Stores a copy of the file at `source` (copied on disk, never read into memory).
    ///
    /// # Errors
    /// When `source` cannot be copied.
    pub fn seed_from_path(
        &self,
        workflow_id: Uuid,
        activity_key: &str,
        filename: &str,
        source: &std::path::Path,
        content_type: Option<&str>,
    ) -> std::io::Result<StoredFile> {
        let path = self.state.files.new_blob_path();
        let size = std::fs::copy(source, &path)?;
        Ok(self.state.files.put(StoredFile {
            workflow_id,
            activity_key: activity_key.to_owned(),
            filename: filename.to_owned(),
            size,
            content_type: content_type.map(str::to_owned),
            created_at: files::now_rfc3339(),
            path,
        }))
    }

    /// A stored file's metadata.
    pub fn get(&self, workflow_id: Uuid, activity_key: &str, filename: &str) -> Option<StoredFile> {
        self.state.files.get(&(workflow_id, activity_key.to_owned(), filename.to_owned()))
    }

    /// A stored file's bytes (reads the whole file: for small files in tests).
    pub fn bytes(&self, workflow_id: Uuid, activity_key: &str, filename: &str) -> Option<Vec<u8>> {
        self.get(workflow_id, activity_key, filename).and_then(|f| std::fs::read(f.path()).ok())
    }

    /// The temporary directory holding the stored files' bytes; it is removed when the
    /// server is dropped.
    pub fn dir(&self) -> &'a std::path::Path {
        self.state.files.dir()
    }

    /// Every stored file.
    pub fn all(&self) -> Vec<StoredFile> {
        self.state.files.all()
    }

    /// How many stored versions uploads have replaced so far, and their bytes. The
    /// real server (v0.8.3) does not unlink a replaced file's PostgreSQL large object:
    /// this is what it would leave behind.
    pub fn replaced(&self) -> (u64, u64) {
        self.state.files.replaced()
    }
}
