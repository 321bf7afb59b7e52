//! The context backend of a real worker: heartbeats go to the server through the
//! worker's own runtime and connection pool, so that activity code blocking its
//! threads cannot hold them up; files move over the activities' own pool.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::Handle;
use uuid::Uuid;

use super::conclude::AttemptState;
use crate::client::{ApiClient, ClientError};
use crate::context::{BoxFuture, ContextBackend, HeartbeatError, StoreError};
use crate::error::ActivityError;
use crate::files::{FileReference, codes as file_codes};

pub(super) struct ServerBackend {
    /// Control traffic: runs on `control`.
    client: ApiClient,
    control: Handle,
    /// File transfers: run where the activity runs.
    transfers: ApiClient,
    state: Arc<AttemptState>,
    activity_id: Uuid,
    worker_id: String,
    /// The activity's own heartbeats go out at most this often (the keeper's interval):
    /// a loop calling `ctx.heartbeat()` for every item must not cost the server a
    /// request each time.
    heartbeat_every: Duration,
}

impl ServerBackend {
    pub(super) fn new(
        (client, control, transfers): (ApiClient, Handle, ApiClient),
        state: Arc<AttemptState>,
        (activity_id, worker_id): (Uuid, String),
        heartbeat_every: Duration,
    ) -> Self {
        Self { client, control, transfers, state, activity_id, worker_id, heartbeat_every }
    }
}

impl ContextBackend for ServerBackend {
    fn heartbeat(&self) -> BoxFuture<'_, Result<(), HeartbeatError>> {
        Box::pin(async move {
            if !self.state.lease.beat_due(self.heartbeat_every) {
                return self.state.lease.last_verdict();
            }
            let (client, activity_id, worker_id) = (self.client.clone(), self.activity_id, self.worker_id.clone());
            let sent = self.control.spawn(async move { client.heartbeat(activity_id, &worker_id).await });
            match sent.await {
                Ok(answer) => self.state.lease.judge(answer).map(drop),
                Err(_) => Err(HeartbeatError::Failed("the worker is stopping".to_owned())),
            }
        })
    }

    fn download<'a>(&'a self, file: &'a FileReference, dest: &'a Path) -> BoxFuture<'a, Result<(), ActivityError>> {
        Box::pin(async move {
            self.transfers.download_to(file, dest).await.map(drop).map_err(|error| match error.verdict() {
                Some(404) => ActivityError::terminal(file_codes::FILE_NOT_FOUND, format!("file not found: {file}")),
                _ => transfer_failed("download", file, &error),
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
            self.transfers.upload_from(file, source, content_type).await.map(drop).map_err(|error| match error {
                ClientError::LocalFile { .. } => {
                    ActivityError::terminal(file_codes::LOCAL_FILE_NOT_FOUND, error.to_string())
                }
                other => transfer_failed("upload", file, &other),
            })
        })
    }

    fn read_record<'a>(&'a self, file: &'a FileReference) -> BoxFuture<'a, Result<Option<Vec<u8>>, StoreError>> {
        Box::pin(
            async move { self.transfers.read_small_file(file).await.map(|b| b.map(Vec::from)).map_err(store_error) },
        )
    }

    fn write_record<'a>(&'a self, file: &'a FileReference, bytes: Vec<u8>) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move { self.transfers.write_small_file(file, bytes.into()).await.map_err(store_error) })
    }
}

fn store_error(error: ClientError) -> StoreError {
    if error.is_transient() { StoreError::Transient(error.to_string()) } else { StoreError::Failed(error.to_string()) }
}

fn transfer_failed(what: &str, file: &FileReference, error: &ClientError) -> ActivityError {
    ActivityError::retryable(file_codes::FILE_TRANSFER_FAILED, format!("{what} of {file} failed: {error}"))
}
