//! The worker's activity slots: how many activities may run at once, and the gauge of
//! those not running one.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::telemetry::WorkerMetrics;

pub(super) struct Slots {
    semaphore: Arc<Semaphore>,
    metrics: Arc<WorkerMetrics>,
}

/// One slot, held by a poller while it polls (running nothing yet) or by an attempt.
pub(super) struct Slot {
    _permit: OwnedSemaphorePermit,
    /// Counted as busy in the gauge: an attempt holds it.
    running: Option<Arc<WorkerMetrics>>,
}

impl Slots {
    pub(super) fn new(count: usize, metrics: Arc<WorkerMetrics>) -> Self {
        metrics.all_slots_free(count);
        Self { semaphore: Arc::new(Semaphore::new(count)), metrics }
    }

    /// Waits for a free slot.
    pub(super) async fn acquire(&self) -> Slot {
        let permit = Arc::clone(&self.semaphore).acquire_owned().await;
        Slot { _permit: permit.expect("the slot semaphore is never closed"), running: None }
    }

    /// A free slot, if there is one now.
    pub(super) fn try_acquire(&self) -> Option<Slot> {
        let permit = Arc::clone(&self.semaphore).try_acquire_owned().ok()?;
        Some(Slot { _permit: permit, running: None })
    }

    /// The slot, counted as running an activity until it is dropped.
    pub(super) fn run_in(&self, mut slot: Slot) -> Slot {
        if slot.running.is_none() {
            self.metrics.slots_free(-1.0);
            slot.running = Some(Arc::clone(&self.metrics));
        }
        slot
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(metrics) = &self.running {
            metrics.slots_free(1.0);
        }
    }
}
