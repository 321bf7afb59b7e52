//! Keeping leases: one task heartbeats every in-flight attempt when it is due, and the
//! answers are judged in one place. What the worker knows about a lease is kept here,
//! apart from the handler's cancellation (which the attempt derives from it).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::sync::{Notify, mpsc};
use tokio_util::time::{DelayQueue, delay_queue};
use uuid::Uuid;

use crate::client::{ApiClient, ClientError};
use crate::context::{BoxFuture, HeartbeatError};
use crate::protocol::HeartbeatResponse;
use crate::settle::LeaseState;

/// The lease of one attempt as last heard from the server.
pub(super) struct Lease {
    state: AtomicU8,
    changed: Notify,
}

impl Lease {
    fn new() -> Self {
        Self { state: AtomicU8::new(0), changed: Notify::new() }
    }

    pub(super) fn state(&self) -> LeaseState {
        match self.state.load(Ordering::Acquire) {
            0 => LeaseState::Held,
            1 => LeaseState::Lost,
            _ => LeaseState::Unknown,
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
            Ok(response) => return Ok(response),
            Err(error) if error.status() == Some(409) => {
                tracing::warn!(%error, "heartbeat refused: the activity belongs to another worker now");
                (LeaseState::Lost, HeartbeatError::LeaseLost)
            }
            Err(error) if error.status() == Some(404) => {
                tracing::error!(%error, "heartbeat refused: the server does not know this activity; heartbeats stop");
                (LeaseState::Unknown, HeartbeatError::NotFound)
            }
            Err(error) => {
                tracing::warn!(%error, "heartbeat failed; the lease expires if this goes on");
                return Err(HeartbeatError::Failed(error.to_string()));
            }
        };
        let (state, error) = judged;
        // Lost is final: a later answer cannot give the lease back.
        let code = if state == LeaseState::Lost { 1 } else { 2 };
        if self.state.fetch_max(code, Ordering::AcqRel) != code {
            self.changed.notify_waiters();
        }
        Err(error)
    }
}

enum Command {
    Hold { activity_id: Uuid, interval: Duration, lease: Arc<Lease> },
    Release { activity_id: Uuid },
}

/// Hands out leases to keep; cheap to clone.
#[derive(Clone)]
pub(super) struct LeaseKeeper {
    commands: mpsc::UnboundedSender<Command>,
}

impl LeaseKeeper {
    /// Starts the keeper task, which runs until the keeper and every guard are gone.
    pub(super) fn start(client: ApiClient, worker_id: String) -> Self {
        let (commands, received) = mpsc::unbounded_channel();
        tokio::spawn(keep(client, worker_id, received));
        Self { commands }
    }

    /// Heartbeats `activity_id` every `interval` until the guard is dropped.
    pub(super) fn hold(&self, activity_id: Uuid, interval: Duration) -> LeaseGuard {
        let lease = Arc::new(Lease::new());
        let hold = Command::Hold { activity_id, interval, lease: Arc::clone(&lease) };
        // The keeper outlives every guard (it stops only once they are all dropped).
        let _ = self.commands.send(hold);
        LeaseGuard { activity_id, lease, commands: self.commands.clone() }
    }
}

/// A lease being kept; dropping it stops the heartbeats.
pub(super) struct LeaseGuard {
    activity_id: Uuid,
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
        let _ = self.commands.send(Command::Release { activity_id: self.activity_id });
    }
}

struct Held {
    lease: Arc<Lease>,
    interval: Duration,
    /// `None` while its heartbeat is in flight.
    due: Option<delay_queue::Key>,
}

type Beat = BoxFuture<'static, (Uuid, Result<HeartbeatResponse, ClientError>)>;

async fn keep(client: ApiClient, worker_id: String, mut commands: mpsc::UnboundedReceiver<Command>) {
    let mut held: HashMap<Uuid, Held> = HashMap::new();
    let mut due: DelayQueue<Uuid> = DelayQueue::new();
    let mut beats: FuturesUnordered<Beat> = FuturesUnordered::new();
    loop {
        tokio::select! {
            command = commands.recv() => match command {
                Some(Command::Hold { activity_id, interval, lease }) => {
                    let key = due.insert(activity_id, interval);
                    held.insert(activity_id, Held { lease, interval, due: Some(key) });
                }
                Some(Command::Release { activity_id }) => {
                    if let Some(Held { due: Some(key), .. }) = held.remove(&activity_id) {
                        due.remove(&key);
                    }
                }
                None => break,
            },
            Some(expired) = due.next(), if !due.is_empty() => {
                let activity_id = expired.into_inner();
                if let Some(entry) = held.get_mut(&activity_id) {
                    entry.due = None;
                    let (client, worker_id) = (client.clone(), worker_id.clone());
                    beats.push(Box::pin(async move { (activity_id, client.heartbeat(activity_id, &worker_id).await) }));
                }
            }
            Some((activity_id, answer)) = beats.next(), if !beats.is_empty() => {
                let Some(entry) = held.get_mut(&activity_id) else { continue };
                match entry.lease.judge(answer) {
                    Ok(response) => {
                        if let Some(suggested) = response.next_heartbeat_seconds.filter(|&s| s > 0) {
                            entry.interval = entry.interval.min(Duration::from_secs(suggested));
                        }
                        entry.due = Some(due.insert(activity_id, entry.interval));
                    }
                    Err(HeartbeatError::Failed(_)) => entry.due = Some(due.insert(activity_id, entry.interval)),
                    // Lost or unknown: nothing more to renew.
                    Err(_) => {}
                }
            }
        }
    }
}
