//! The attempts running on this worker, by activity id: so that an activity the server
//! hands out again is not started twice here, and so that shutdown can cancel them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::context::{ActivityContext, CancelReason};
use crate::telemetry::WorkerMetrics;

pub(super) struct InFlight {
    attempts: Mutex<HashMap<Uuid, ActivityContext>>,
    /// Told how many attempts are in flight, and how many slots are free.
    metrics: Arc<WorkerMetrics>,
    slots: Arc<Semaphore>,
}

impl InFlight {
    pub(super) fn new(metrics: Arc<WorkerMetrics>, slots: Arc<Semaphore>) -> Self {
        Self { attempts: Mutex::default(), metrics, slots }
    }

    /// Registers the attempt of `ctx`, or `None` when that activity already runs here
    /// (a lease that expired under us, reclaimed by our own poll: the attempt already
    /// running still holds the claim and will report).
    pub(super) fn register(self: &Arc<Self>, ctx: &ActivityContext) -> Option<Registration> {
        let mut attempts = self.lock();
        if attempts.contains_key(&ctx.activity_id()) {
            return None;
        }
        attempts.insert(ctx.activity_id(), ctx.clone());
        self.metrics.in_flight(&ctx.info().worker, 1.0);
        Some(Registration { in_flight: Arc::clone(self), activity_id: ctx.activity_id() })
    }

    pub(super) fn cancel_all(&self, reason: CancelReason) -> usize {
        let attempts = self.lock();
        for ctx in attempts.values() {
            ctx.cancel(reason);
        }
        attempts.len()
    }

    pub(super) fn len(&self) -> usize {
        self.lock().len()
    }

    pub(super) fn ids(&self) -> Vec<Uuid> {
        self.lock().keys().copied().collect()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Uuid, ActivityContext>> {
        // Entries are inserted and removed whole; a poisoned map is still consistent.
        self.attempts.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// An attempt's place in [`InFlight`], given up when the attempt is dropped, however it
/// ends.
pub(super) struct Registration {
    in_flight: Arc<InFlight>,
    activity_id: Uuid,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let removed = self.in_flight.lock().remove(&self.activity_id);
        if let Some(ctx) = removed {
            self.in_flight.metrics.in_flight(&ctx.info().worker, -1.0);
        }
        // The attempt gave its slot back before its registration (field order).
        self.in_flight.metrics.slots_free(self.in_flight.slots.available_permits());
    }
}
