//! The lease keeper: one task on the worker's own runtime heartbeats every in-flight
//! attempt when it is due, has the answers judged by each attempt's
//! [`Lease`](super::lease::Lease), and has
//! an attempt overdue past its deadline taken over. It runs there for as long as the
//! worker runs, so leases are renewed and overdue attempts taken over however busy or
//! blocked the activities' runtime is.

use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::time::Instant;
use uuid::Uuid;

use super::conclude::AttemptState;
use super::in_flight::{Due, InFlight};
use super::takeover::Takeovers;
use crate::client::{ApiClient, ClientError};
use crate::context::{CancelReason, HeartbeatError};
use crate::future::BoxFuture;
use crate::protocol::HeartbeatResponse;

type Beat = BoxFuture<'static, (Uuid, Arc<AttemptState>, Result<HeartbeatResponse, ClientError>)>;

/// Keeps the leases of `in_flight` until aborted.
pub(super) async fn keep(in_flight: Arc<InFlight>, client: ApiClient, worker_id: String, takeovers: Arc<Takeovers>) {
    let mut beats: FuturesUnordered<Beat> = FuturesUnordered::new();
    loop {
        let (due, next) = in_flight.take_due(Instant::now());
        for due in due {
            match due {
                Due::Heartbeat { activity_id, state } => {
                    state.lease.beat_sent();
                    let (client, worker_id) = (client.clone(), worker_id.clone());
                    beats.push(Box::pin(async move {
                        let answer = client.heartbeat(activity_id, &worker_id).await;
                        (activity_id, state, answer)
                    }));
                }
                Due::Overdue(overdue) => takeovers.take_over(overdue, CancelReason::Timeout, false),
            }
        }
        let next_due = async {
            match next {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = next_due => {}
            () = in_flight.keeper_woken() => {}
            Some((activity_id, state, answer)) = beats.next(), if !beats.is_empty() => {
                let judged = state.lease.judge(answer);
                let result = match &judged { Ok(_) => "ok", Err(HeartbeatError::LeaseLost) => "lease_lost", Err(_) => "error" };
                state.span.in_scope(|| tracing::debug!(target: "kruxiaflow_worker::heartbeat", result, "heartbeat"));
                match judged {
                    Ok(response) => {
                        let suggested = response.next_heartbeat_seconds.filter(|&s| s > 0).map(Duration::from_secs);
                        in_flight.reschedule_heartbeat(&state, activity_id, suggested);
                    }
                    Err(HeartbeatError::Failed(_)) => in_flight.reschedule_heartbeat(&state, activity_id, None),
                    // Lost or unknown: nothing more to renew.
                    Err(_) => {}
                }
            }
        }
    }
}
