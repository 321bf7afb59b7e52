//! The stream's transport in a real worker: the `ws/*` endpoints of the API server,
//! over the worker's control connections.

use std::time::Duration;

use uuid::Uuid;

use crate::client::{ApiClient, ClientError};
use crate::future::BoxFuture;
use crate::protocol::StreamToken;
use crate::stream::{Failure, StreamEnd, StreamTransport};

/// Longest a stream request may take: a stream that waits longer on one increment is
/// no longer live, whatever the worker's HTTP timeout.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

pub(super) struct ServerTransport {
    client: ApiClient,
    activity_id: Uuid,
    timeout: Duration,
}

impl ServerTransport {
    pub(super) fn new(client: ApiClient, activity_id: Uuid, http_timeout: Duration) -> Self {
        Self { client, activity_id, timeout: http_timeout.min(REQUEST_TIMEOUT) }
    }
}

impl StreamTransport for ServerTransport {
    fn subscribers(&self) -> BoxFuture<'_, Result<u32, Failure>> {
        Box::pin(async move { self.client.stream_subscribers(self.activity_id, self.timeout).await.map_err(failure) })
    }

    fn token<'a>(&'a self, text: &'a str, index: u32) -> BoxFuture<'a, Result<u32, Failure>> {
        Box::pin(async move {
            let token = StreamToken { text, index };
            self.client.stream_token(self.activity_id, token, self.timeout).await.map_err(failure)
        })
    }

    fn end<'a>(&'a self, end: &'a StreamEnd) -> BoxFuture<'a, Result<(), Failure>> {
        Box::pin(async move {
            let sent = match end {
                StreamEnd::Complete(result) => {
                    self.client.stream_complete(self.activity_id, result, self.timeout).await
                }
                StreamEnd::Error(error) => self.client.stream_error(self.activity_id, error, self.timeout).await,
            };
            sent.map_err(failure)
        })
    }
}

fn failure(error: ClientError) -> Failure {
    Failure { transient: error.is_transient(), message: error.to_string() }
}
