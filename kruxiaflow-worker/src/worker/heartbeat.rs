//! Keeping a running activity's lease.

use std::time::Duration;

use crate::client::ApiClient;
use crate::context::{ActivityContext, CancelReason};

/// Heartbeats until aborted by the runner (after the report is delivered). A 409
/// means the server gave the activity to someone else: cancel it, report nothing.
pub(super) async fn keep_alive(client: ApiClient, ctx: ActivityContext, mut interval: Duration) {
    loop {
        tokio::time::sleep(interval).await;
        match client.heartbeat(ctx.activity_id(), ctx.worker_id()).await {
            Ok(response) => {
                if let Some(suggested) = response.next_heartbeat_seconds.filter(|&s| s > 0) {
                    interval = interval.min(Duration::from_secs(suggested));
                }
            }
            Err(error) if error.status() == Some(409) => {
                tracing::warn!(%error, "heartbeat refused: the activity belongs to another worker now");
                ctx.cancel(CancelReason::LeaseLost);
                return;
            }
            Err(error) if error.status() == Some(404) => {
                tracing::error!(%error, "heartbeat refused: the server does not know this activity; heartbeats stop");
                return;
            }
            Err(error) => tracing::warn!(%error, "heartbeat failed; the lease expires if this goes on"),
        }
    }
}
