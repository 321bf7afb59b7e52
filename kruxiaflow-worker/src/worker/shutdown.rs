//! Stopping: the handle, OS signals, and draining in-flight activities.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use uuid::Uuid;

use super::in_flight::InFlight;
use super::takeover::Takeovers;
use crate::config::WorkerConfig;
use crate::context::CancelReason;

/// Where the worker is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    Running,
    /// Stop claiming; let in-flight activities finish for up to `shutdown_timeout`.
    Draining,
    /// Stop claiming; cancel in-flight activities now.
    Immediate,
}

/// Stops a running [`WorkerManager`](super::WorkerManager) from anywhere. Cheap to clone.
#[derive(Debug, Clone)]
pub struct WorkerHandle {
    phase: Arc<watch::Sender<Phase>>,
    /// Where the operator listener accepts connections, once it does.
    listening: Arc<OnceLock<SocketAddr>>,
}

impl WorkerHandle {
    pub(super) fn new() -> Self {
        let (phase, _) = watch::channel(Phase::Running);
        Self { phase: Arc::new(phase), listening: Arc::default() }
    }

    pub(super) fn phase(&self) -> &Arc<watch::Sender<Phase>> {
        &self.phase
    }

    pub(super) fn set_listening(&self, addr: SocketAddr) {
        let _ = self.listening.set(addr);
    }

    /// The address of the `/metrics`, `/healthz` and `/readyz` listener
    /// ([`WorkerConfig::metrics_addr`](crate::WorkerConfig::metrics_addr)) once it is
    /// bound: the actual port when the configured one is 0.
    pub fn listening_on(&self) -> Option<SocketAddr> {
        self.listening.get().copied()
    }

    /// Graceful shutdown: stop claiming, drain for up to `shutdown_timeout`.
    pub fn shutdown(&self) {
        self.phase.send_if_modified(|phase| {
            let changed = *phase == Phase::Running;
            if changed {
                *phase = Phase::Draining;
            }
            changed
        });
    }

    /// Shutdown without the drain: in-flight activities are cancelled at once (they
    /// still get their cancellation grace period) and failed as `WORKER_SHUTDOWN`.
    pub fn shutdown_now(&self) {
        self.phase.send_if_modified(|phase| {
            let changed = *phase != Phase::Immediate;
            *phase = Phase::Immediate;
            changed
        });
    }

    /// Whether a shutdown has been requested.
    pub fn is_shutting_down(&self) -> bool {
        *self.phase.borrow() != Phase::Running
    }
}

/// First SIGINT/SIGTERM: graceful shutdown. Second: skip the drain.
pub(super) async fn on_signals(handle: WorkerHandle) {
    wait_for_signal().await;
    tracing::info!("shutdown signal received: finishing in-flight activities (send again to stop now)");
    handle.shutdown();
    wait_for_signal().await;
    tracing::warn!("second shutdown signal: cancelling in-flight activities now");
    handle.shutdown_now();
}

#[cfg(unix)]
async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) {
        (Ok(mut interrupt), Ok(mut terminate)) => {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        }
        _ => {
            tracing::error!("cannot listen for SIGINT/SIGTERM; stop the worker through its handle");
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Waits for in-flight attempts until `drain_deadline` (or a second signal), then
/// cancels the rest, gives them the cancellation grace, takes over from this runtime
/// whatever is still unsettled, gives the reports the flush timeout, and returns the
/// activities whose reports could not be delivered.
pub(super) async fn drain(
    (in_flight, takeovers): (&InFlight, &Arc<Takeovers>),
    config: &WorkerConfig,
    mut phase: watch::Receiver<Phase>,
    drain_deadline: Instant,
) -> Vec<Uuid> {
    let running = in_flight.len();
    if running > 0 {
        tracing::info!(in_flight = running, timeout = ?config.shutdown_timeout, "draining in-flight activities");
    }
    tokio::select! {
        () = settled(in_flight, takeovers) => return undelivered(in_flight, takeovers),
        () = tokio::time::sleep_until(drain_deadline) => {}
        _ = phase.wait_for(|p| *p == Phase::Immediate) => {}
    }
    let cancelled = in_flight.cancel_all(CancelReason::Shutdown);
    if cancelled > 0 {
        tracing::warn!(cancelled, "cancelling activities still running; they will be failed as WORKER_SHUTDOWN");
    }
    let cancelled_at = Instant::now();
    let flush_deadline = cancelled_at + config.cancellation_grace + config.report_flush_timeout;
    // An attempt whose task runs settles within the grace. What is still unsettled a
    // moment later is taken over from here: its task may not run again (a handler
    // blocking its thread), and a report both sides deliver is answered 409 once.
    let take_over_at = cancelled_at + config.cancellation_grace + TAKEOVER_MARGIN.min(config.report_flush_timeout / 4);
    tokio::select! {
        () = settled(in_flight, takeovers) => return undelivered(in_flight, takeovers),
        () = tokio::time::sleep_until(take_over_at) => {}
    }
    for attempt in in_flight.all() {
        takeovers.take_over(attempt, CancelReason::Shutdown, true);
    }
    if tokio::time::timeout_at(flush_deadline, settled(in_flight, takeovers)).await.is_err() {
        takeovers.give_up();
        // Giving up ends every delivery at once; this wait only lets the tasks unwind.
        let _ = tokio::time::timeout(UNWIND, settled(in_flight, takeovers)).await;
    }
    undelivered(in_flight, takeovers)
}

/// Resolves once nothing more is to be sent or logged: every delivery made from this
/// runtime ended, and every attempt ended but those a takeover settled while their
/// handlers block their threads.
async fn settled(in_flight: &InFlight, takeovers: &Takeovers) {
    takeovers.wait().await;
    in_flight.all_ended().await;
    takeovers.wait().await;
}

fn undelivered(in_flight: &InFlight, takeovers: &Takeovers) -> Vec<Uuid> {
    let mut undelivered = takeovers.undelivered();
    for id in in_flight.unsettled() {
        if !undelivered.contains(&id) {
            undelivered.push(id);
        }
    }
    undelivered
}

/// How long attempts get to unwind once their reports were given up.
const UNWIND: Duration = Duration::from_millis(100);
/// At most this long after the cancellation grace, what is unsettled is taken over.
const TAKEOVER_MARGIN: Duration = Duration::from_millis(250);
