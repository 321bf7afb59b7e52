//! The context backend of a real worker: manual heartbeats go to the server.

use uuid::Uuid;

use crate::client::ApiClient;
use crate::context::{BoxFuture, ContextBackend};
use crate::error::{ActivityError, codes};

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
}
