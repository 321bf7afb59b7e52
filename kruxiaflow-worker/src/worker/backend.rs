//! The context backend of a real worker: heartbeats and files go to the server.

use std::path::Path;

use uuid::Uuid;

use crate::client::{ApiClient, ClientError};
use crate::context::{BoxFuture, ContextBackend};
use crate::error::{ActivityError, codes};
use crate::files::{FileReference, codes as file_codes};

pub(super) struct ServerBackend {
    client: ApiClient,
    activity_id: Uuid,
    worker_id: String,
}

impl ServerBackend {
    pub(super) fn new(client: ApiClient, activity_id: Uuid, worker_id: String) -> Self {
        Self { client, activity_id, worker_id }
    }
}

impl ContextBackend for ServerBackend {
    fn heartbeat(&self) -> BoxFuture<'_, Result<(), ActivityError>> {
        Box::pin(async move {
            match self.client.heartbeat(self.activity_id, &self.worker_id).await {
                Ok(_) => Ok(()),
                Err(error) if error.status() == Some(409) => Err(ActivityError::retryable(
                    codes::LEASE_LOST,
                    format!("the server gave this activity to another worker: {}", error.server_message()),
                )),
                Err(error) => Err(ActivityError::retryable("HEARTBEAT_FAILED", error.to_string())),
            }
        })
    }

    fn download<'a>(&'a self, file: &'a FileReference, dest: &'a Path) -> BoxFuture<'a, Result<(), ActivityError>> {
        Box::pin(async move {
            self.client.download_to(file, dest).await.map(drop).map_err(|error| match error.status() {
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
            self.client.upload_from(file, source, content_type).await.map(drop).map_err(|error| match error {
                ClientError::LocalFile { .. } => {
                    ActivityError::terminal(file_codes::LOCAL_FILE_NOT_FOUND, error.to_string())
                }
                other => transfer_failed("upload", file, &other),
            })
        })
    }
}

fn transfer_failed(what: &str, file: &FileReference, error: &ClientError) -> ActivityError {
    ActivityError::retryable(file_codes::FILE_TRANSFER_FAILED, format!("{what} of {file} failed: {error}"))
}
