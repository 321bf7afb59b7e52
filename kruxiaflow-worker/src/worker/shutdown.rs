//! Stopping: the handle, OS signals, and draining in-flight activities.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::Shared;
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
}

impl WorkerHandle {
    pub(super) fn new(phase: Arc<watch::Sender<Phase>>) -> Self {
        Self { phase }
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

/// Waits for in-flight activities, then cancels what is left and waits for its reports.
pub(super) async fn drain(shared: &Shared) {
    shared.tasks.close();
    let mut phase = shared.phase.clone();
    let timeout = shared.config.shutdown_timeout;
    let in_flight = shared.in_flight().len();
    if in_flight > 0 {
        tracing::info!(in_flight, ?timeout, "draining in-flight activities");
    }
    tokio::select! {
        () = shared.tasks.wait() => return,
        () = tokio::time::sleep(timeout) => {}
        _ = phase.wait_for(|p| *p == super::Phase::Immediate) => {}
    }
    let remaining: Vec<_> = shared.in_flight().values().cloned().collect();
    tracing::warn!(
        remaining = remaining.len(),
        "cancelling activities still running; they will be failed as WORKER_SHUTDOWN"
    );
    for ctx in remaining {
        ctx.cancel(CancelReason::Shutdown);
    }
    // Reports are retried until the server answers; bound the wait so a server that is
    // gone for good cannot keep the process alive forever.
    let flush = shared.config.cancellation_grace + timeout.max(Duration::from_secs(10));
    if tokio::time::timeout(flush, shared.tasks.wait()).await.is_err() {
        let undelivered: Vec<String> = shared.in_flight().keys().map(ToString::to_string).collect();
        tracing::error!(
            ?undelivered,
            "reports could not be delivered before exit; these activities return to the queue when their leases expire"
        );
    }
}
