//! Keeping a running activity's lease.

use std::convert::Infallible;
use std::time::Duration;

use crate::client::ApiClient;
use crate::context::{ActivityContext, CancelReason};

/// Heartbeats for as long as the runner polls it (until the report is answered); it
/// never returns. A 409 means the server gave the activity to someone else: cancel it
/// (nothing will be reported) and stop heartbeating.
pub(super) async fn keep_alive(client: ApiClient, ctx: ActivityContext, mut interval: Duration) -> Infallible {
    loop {
        tokio::time::sleep(interval).await;
        // Boxed so that a sleeping activity does not carry the request's large future.
        match Box::pin(client.heartbeat(ctx.activity_id(), ctx.worker_id())).await {
            Ok(response) => {
                if let Some(suggested) = response.next_heartbeat_seconds.filter(|&s| s > 0) {
                    interval = interval.min(Duration::from_secs(suggested));
                }
            }
            Err(error) if error.status() == Some(409) => {
                tracing::warn!(%error, "heartbeat refused: the activity belongs to another worker now");
                ctx.cancel(CancelReason::LeaseLost);
                return std::future::pending().await;
            }
            Err(error) if error.status() == Some(404) => {
                tracing::error!(%error, "heartbeat refused: the server does not know this activity; heartbeats stop");
                return std::future::pending().await;
            }
            Err(error) => tracing::warn!(%error, "heartbeat failed; the lease expires if this goes on"),
        }
    }
}
