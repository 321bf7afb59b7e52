//! Keeping leases: one task heartbeats every in-flight attempt when it is due, and the
//! answers are judged in one place. What the worker knows about a lease is kept here,
//! apart from the handler's cancellation (which the attempt derives from it).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::sync::{Notify, mpsc};
use tokio_util::time::{DelayQueue, delay_queue};
use uuid::Uuid;

use crate::client::{ApiClient, ClientError};
use crate::context::{BoxFuture, HeartbeatError};
use crate::protocol::HeartbeatResponse;
use crate::settle::LeaseState;
use crate::telemetry;

const HELD: u8 = 0;
const UNKNOWN: u8 = 1;
const LOST: u8 = 2;

/// The lease of one attempt as last heard from the server.
pub(super) struct Lease {
    state: AtomicU8,
    changed: Notify,
}

impl Lease {
    fn new() -> Self {
        Self { state: AtomicU8::new(HELD), changed: Notify::new() }
    }

    pub(super) fn state(&self) -> LeaseState {
        match self.state.load(Ordering::Acquire) {
            HELD => LeaseState::Held,
            UNKNOWN => LeaseState::Unknown,
            _ => LeaseState::Lost,
        }
    }

    /// Resolves once the lease is lost; pending for ever otherwise.
    pub(super) async fn lost(&self) {
        loop {
            // Created before the check, so a change between the two still wakes it.
            let changed = self.changed.notified();
            if self.state() == LeaseState::Lost {
                return;
            }
            changed.await;
        }
    }

    /// Takes a heartbeat's answer into account; the judgement of every heartbeat, from
    /// the keeper or from the activity's own `ctx.heartbeat()`, is made here.
    pub(super) fn judge(
        &self,
        answer: Result<HeartbeatResponse, ClientError>,
    ) -> Result<HeartbeatResponse, HeartbeatError> {
        let judged = match answer {
            Ok(response) => {
                telemetry::heartbeat("ok");
                return Ok(response);
            }
            Err(error) if error.status() == Some(409) => {
                telemetry::heartbeat("lease_lost");
                tracing::warn!(%error, "heartbeat refused: the activity belongs to another worker now");
                (LeaseState::Lost, HeartbeatError::LeaseLost)
            }
            Err(error) if error.status() == Some(404) => {
                telemetry::heartbeat("error");
                tracing::error!(%error, "heartbeat refused: the server does not know this activity; heartbeats stop");
                (LeaseState::Unknown, HeartbeatError::NotFound)
            }
            Err(error) => {
                telemetry::heartbeat("error");
                tracing::warn!(%error, "heartbeat failed; the lease expires if this goes on");
                return Err(HeartbeatError::Failed(error.to_string()));
            }
        };
        let (state, error) = judged;
        // States only move forward (held → unknown → lost): a later answer cannot give
        // a lost lease back.
        let code = if state == LeaseState::Lost { LOST } else { UNKNOWN };
        if self.state.fetch_max(code, Ordering::AcqRel) < code {
            self.changed.notify_waiters();
        }
        Err(error)
    }
}

/// Each hold has its own key: the server can hand out an activity that already runs
/// here, and the second hold (dropped at once) must not release the first.
type HoldKey = u64;

enum Command {
    Hold { key: HoldKey, activity_id: Uuid, interval: Duration, lease: Arc<Lease> },
    Release { key: HoldKey },
}

/// Hands out leases to keep; cheap to clone.
#[derive(Clone)]
pub(super) struct LeaseKeeper {
    commands: mpsc::UnboundedSender<Command>,
    next_key: Arc<AtomicU64>,
}

impl LeaseKeeper {
    /// Starts the keeper task, which runs until the keeper and every guard are gone.
    pub(super) fn start(client: ApiClient, worker_id: String) -> Self {
        let (commands, received) = mpsc::unbounded_channel();
        tokio::spawn(keep(client, worker_id, received));
        Self { commands, next_key: Arc::default() }
    }

    /// Heartbeats `activity_id` every `interval` until the guard is dropped.
    pub(super) fn hold(&self, activity_id: Uuid, interval: Duration) -> LeaseGuard {
        let lease = Arc::new(Lease::new());
        let key = self.next_key.fetch_add(1, Ordering::Relaxed);
        let hold = Command::Hold { key, activity_id, interval, lease: Arc::clone(&lease) };
        // The keeper outlives every guard (it stops only once they are all dropped).
        let _ = self.commands.send(hold);
        LeaseGuard { key, lease, commands: self.commands.clone() }
    }
}

/// A lease being kept; dropping it stops the heartbeats.
pub(super) struct LeaseGuard {
    key: HoldKey,
    lease: Arc<Lease>,
    commands: mpsc::UnboundedSender<Command>,
}

impl LeaseGuard {
    pub(super) fn lease(&self) -> &Arc<Lease> {
        &self.lease
    }
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        let _ = self.commands.send(Command::Release { key: self.key });
    }
}

struct Held {
    activity_id: Uuid,
    lease: Arc<Lease>,
    interval: Duration,
    /// `None` while its heartbeat is in flight.
    due: Option<delay_queue::Key>,
}

type Beat = BoxFuture<'static, (HoldKey, Result<HeartbeatResponse, ClientError>)>;

async fn keep(client: ApiClient, worker_id: String, mut commands: mpsc::UnboundedReceiver<Command>) {
    let mut held: HashMap<HoldKey, Held> = HashMap::new();
    let mut due: DelayQueue<HoldKey> = DelayQueue::new();
    let mut beats: FuturesUnordered<Beat> = FuturesUnordered::new();
    loop {
        tokio::select! {
            command = commands.recv() => match command {
                Some(Command::Hold { key, activity_id, interval, lease }) => {
                    let due_key = due.insert(key, interval);
                    held.insert(key, Held { activity_id, lease, interval, due: Some(due_key) });
                }
                Some(Command::Release { key }) => {
                    if let Some(Held { due: Some(due_key), .. }) = held.remove(&key) {
                        due.remove(&due_key);
                    }
                }
                None => break,
            },
            Some(expired) = due.next(), if !due.is_empty() => {
                let key = expired.into_inner();
                if let Some(entry) = held.get_mut(&key) {
                    entry.due = None;
                    let (client, worker_id, activity_id) = (client.clone(), worker_id.clone(), entry.activity_id);
                    beats.push(Box::pin(async move { (key, client.heartbeat(activity_id, &worker_id).await) }));
                }
            }
            Some((key, answer)) = beats.next(), if !beats.is_empty() => {
                let Some(entry) = held.get_mut(&key) else { continue };
                match entry.lease.judge(answer) {
                    Ok(response) => {
                        if let Some(suggested) = response.next_heartbeat_seconds.filter(|&s| s > 0) {
                            entry.interval = entry.interval.min(Duration::from_secs(suggested));
                        }
                        entry.due = Some(due.insert(key, entry.interval));
                    }
                    Err(HeartbeatError::Failed(_)) => entry.due = Some(due.insert(key, entry.interval)),
                    // Lost or unknown: nothing more to renew.
                    Err(_) => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16) -> Result<HeartbeatResponse, ClientError> {
        Err(ClientError::from_body("u", status, b""))
    }

    #[tokio::test]
    async fn a_lost_lease_stays_lost_and_wakes_whoever_waits_for_it() {
        let lease = Arc::new(Lease::new());
        let waiter = tokio::spawn({
            let lease = Arc::clone(&lease);
            async move { lease.lost().await }
        });
        assert_eq!(lease.judge(status(503)), Err(HeartbeatError::Failed("u answered 503: (empty body)".into())));
        assert_eq!(lease.state(), LeaseState::Held);
        assert_eq!(lease.judge(status(404)), Err(HeartbeatError::NotFound));
        assert_eq!(lease.state(), LeaseState::Unknown);
        assert_eq!(lease.judge(status(409)), Err(HeartbeatError::LeaseLost));
        assert_eq!(lease.state(), LeaseState::Lost);
        waiter.await.unwrap();
        let ok = Ok(HeartbeatResponse { acknowledged: true, next_heartbeat_seconds: None });
        assert!(lease.judge(ok).is_ok());
        assert_eq!(lease.judge(status(404)), Err(HeartbeatError::NotFound));
        assert_eq!(lease.state(), LeaseState::Lost, "nothing gives a lost lease back");
    }
}
