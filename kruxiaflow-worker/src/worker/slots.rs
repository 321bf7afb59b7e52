//! The worker's activity slots: how many activities may run at once — in all, and of
//! the worker types with a pool of their own — and the gauge of those not running one.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::telemetry::WorkerMetrics;

pub(super) struct Slots {
    semaphore: Arc<Semaphore>,
    /// The pools of the worker types that have one.
    pools: HashMap<String, Arc<Semaphore>>,
    metrics: Arc<WorkerMetrics>,
}

/// One slot, held by a poller while it polls (running nothing yet) or by an attempt.
pub(super) struct Slot {
    _permit: OwnedSemaphorePermit,
    /// Its place in its worker type's pool, when the type has one.
    _pool: Option<OwnedSemaphorePermit>,
    /// Counted as busy in the gauge: an attempt holds it.
    running: Option<Arc<WorkerMetrics>>,
}

impl Slots {
    /// `count` slots, of which at most `pools[type]` for the types listed.
    pub(super) fn new(count: usize, pools: &BTreeMap<String, usize>, metrics: Arc<WorkerMetrics>) -> Self {
        metrics.all_slots_free(count);
        let pools = pools.iter().map(|(worker, &n)| (worker.clone(), Arc::new(Semaphore::new(n)))).collect();
        Self { semaphore: Arc::new(Semaphore::new(count)), pools, metrics }
    }

    /// Waits for a free slot for an activity of worker type `worker`: a place in its
    /// pool first (so a full pool holds none of the shared slots), then a slot.
    pub(super) async fn acquire(&self, worker: &str) -> Slot {
        let pool = match self.pools.get(worker) {
            Some(pool) => Some(Arc::clone(pool).acquire_owned().await.expect("a pool is never closed")),
            None => None,
        };
        let permit = Arc::clone(&self.semaphore).acquire_owned().await;
        Slot { _permit: permit.expect("the slot semaphore is never closed"), _pool: pool, running: None }
    }

    /// A free slot for worker type `worker`, if there is one now.
    pub(super) fn try_acquire(&self, worker: &str) -> Option<Slot> {
        let pool = match self.pools.get(worker) {
            Some(pool) => Some(Arc::clone(pool).try_acquire_owned().ok()?),
            None => None,
        };
        let permit = Arc::clone(&self.semaphore).try_acquire_owned().ok()?;
        Some(Slot { _permit: permit, _pool: pool, running: None })
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
