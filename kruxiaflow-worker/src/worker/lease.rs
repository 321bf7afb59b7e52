//! What the worker knows about one attempt's lease, apart from the handler's
//! cancellation (which the attempt derives from it): every heartbeat's answer, from the
//! keeper or from the activity's own `ctx.heartbeat()`, is judged here, and the
//! activity's own heartbeats are throttled here.

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::client::ClientError;
use crate::context::HeartbeatError;
use crate::protocol::HeartbeatResponse;
use crate::settle::LeaseState;
use crate::telemetry;

/// A state as the lease stores it: in the order a lease moves (held, then unknown, then
/// lost), so that of two states the larger is the later.
fn code(state: LeaseState) -> u8 {
    match state {
        LeaseState::Held => 0,
        LeaseState::Unknown => 1,
        LeaseState::Lost => 2,
    }
}

/// The state `code` stands for.
fn state_of(code: u8) -> LeaseState {
    match code {
        0 => LeaseState::Held,
        1 => LeaseState::Unknown,
        _ => LeaseState::Lost,
    }
}

/// The lease of one attempt as last heard from the server.
pub(super) struct Lease {
    state: AtomicU8,
    changed: Notify,
    /// When the last heartbeat for it went out, from the keeper or the activity: in
    /// milliseconds since `created`, plus one (0: none yet).
    last_beat: AtomicU64,
    created: Instant,
}

impl Lease {
    pub(super) fn new() -> Self {
        Self {
            state: AtomicU8::new(code(LeaseState::Held)),
            changed: Notify::new(),
            last_beat: AtomicU64::new(0),
            created: Instant::now(),
        }
    }

    fn now(&self) -> u64 {
        self.created.elapsed().as_millis() as u64 + 1
    }

    /// A heartbeat goes out now.
    pub(super) fn beat_sent(&self) {
        self.last_beat.store(self.now(), Ordering::Release);
    }

    /// Whether an activity's own heartbeat should go out now: the first one does, and
    /// then one per `every`, counting the keeper's. The caller sends it if so.
    pub(super) fn beat_due(&self, every: Duration) -> bool {
        let now = self.now();
        let last = self.last_beat.load(Ordering::Acquire);
        let due = last == 0 || now.saturating_sub(last) >= every.as_millis() as u64;
        // Of callers racing, one sends.
        due && self.last_beat.compare_exchange(last, now, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    /// What the last heartbeat's answer said, for a heartbeat that is not sent.
    pub(super) fn last_verdict(&self) -> Result<(), HeartbeatError> {
        match self.state() {
            LeaseState::Held => Ok(()),
            LeaseState::Unknown => Err(HeartbeatError::NotFound),
            LeaseState::Lost => Err(HeartbeatError::LeaseLost),
        }
    }

    pub(super) fn state(&self) -> LeaseState {
        state_of(self.state.load(Ordering::Acquire))
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
            Err(error) if error.verdict() == Some(409) => {
                telemetry::heartbeat("lease_lost");
                tracing::warn!(%error, "heartbeat refused: the activity belongs to another worker now");
                (LeaseState::Lost, HeartbeatError::LeaseLost)
            }
            Err(error) if error.verdict() == Some(404) => {
                telemetry::heartbeat("error");
                tracing::error!(%error, "heartbeat refused: the server does not know this activity; heartbeats stop");
                (LeaseState::Unknown, HeartbeatError::NotFound)
            }
            Err(error) => {
                telemetry::heartbeat("error");
                // Transient trouble is logged once per run of failures, by endpoint.
                if error.is_transient() {
                    tracing::debug!(%error, "heartbeat failed; the lease expires if this goes on");
                } else {
                    tracing::warn!(%error, "heartbeat failed; the lease expires if this goes on");
                }
                return Err(HeartbeatError::Failed(error.to_string()));
            }
        };
        let (state, error) = judged;
        // States only move forward (held → unknown → lost): a later answer cannot give
        // a lost lease back.
        let code = code(state);
        if self.state.fetch_max(code, Ordering::AcqRel) < code {
            self.changed.notify_waiters();
        }
        Err(error)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn status(status: u16) -> Result<HeartbeatResponse, ClientError> {
        Err(ClientError::from_body("u", status, br#"{"error":{"code":"X","message":"m"}}"#))
    }

    #[test]
    fn a_state_is_stored_in_the_order_a_lease_moves_and_read_back_as_itself() {
        let order = [LeaseState::Held, LeaseState::Unknown, LeaseState::Lost];
        assert_eq!(order.map(code), [0, 1, 2]);
        assert_eq!(order.map(|state| state_of(code(state))), order);
    }

    #[tokio::test]
    async fn a_lost_lease_stays_lost_and_wakes_whoever_waits_for_it() {
        let lease = Arc::new(Lease::new());
        let waiter = tokio::spawn({
            let lease = Arc::clone(&lease);
            async move { lease.lost().await }
        });
        assert_eq!(lease.judge(status(503)), Err(HeartbeatError::Failed("u answered 503: m".into())));
        let proxy = Err(ClientError::from_body("u", 404, b"no healthy upstream"));
        assert_eq!(lease.judge(proxy), Err(HeartbeatError::Failed("u answered 404: no healthy upstream".into())));
        assert_eq!(lease.state(), LeaseState::Held, "a proxy's 404 is not the server's verdict");
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
