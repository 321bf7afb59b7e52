//! What runs on this worker: the slots that bound how many activities run at once (in
//! all, and of the worker types with a pool of their own), and the attempts in flight,
//! by activity id, with what the worker's own runtime must do for each of them and
//! when: renew its lease, and check that its handler did not outlive its deadline.
//! Attempts run on the activities' runtime and the keeper on the worker's; this table is
//! where they meet, so an attempt starting or ending never wakes the keeper (only one
//! due earlier than the keeper planned to look).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use uuid::Uuid;

use super::conclude::AttemptState;
use crate::context::{ActivityContext, CancelReason};
use crate::telemetry::WorkerMetrics;

/// Something the keeper must do now.
pub(super) enum Due {
    Heartbeat {
        activity_id: Uuid,
        state: Arc<AttemptState>,
    },
    /// The attempt's deadline and grace are past: if its handler still has not
    /// returned, its task is not running and the keeper takes it over.
    Overdue(Overdue),
}

/// An attempt to look at from the worker's runtime.
pub(super) struct Overdue {
    pub(super) ctx: ActivityContext,
    pub(super) state: Arc<AttemptState>,
    pub(super) timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Heartbeat,
    Overdue,
}

pub(super) struct InFlight {
    table: Mutex<Table>,
    /// Wakes the keeper when something is due earlier than it planned to look.
    keeper: Notify,
    /// Wakes a shutdown waiting for the attempts to end, when one ends; only while
    /// `draining`, so that an attempt ending otherwise notifies nobody.
    ended: Notify,
    draining: AtomicBool,
    /// Told how many attempts are in flight.
    metrics: Arc<WorkerMetrics>,
}

#[derive(Default)]
struct Table {
    attempts: HashMap<Uuid, Entry>,
    /// Tells the entries of one activity apart (see [`InFlight::register`]).
    next_generation: u64,
    due: BTreeSet<(Instant, Uuid, Kind)>,
    /// When the keeper will look at the table next; `None` when only a notification
    /// wakes it.
    keeper_looks_at: Option<Instant>,
}

struct Entry {
    generation: u64,
    ctx: ActivityContext,
    state: Arc<AttemptState>,
    heartbeat_every: Duration,
    timeout: Duration,
    /// `None` while a heartbeat is in flight, and once the lease is lost or unknown.
    heartbeat_at: Option<Instant>,
    /// `None` once the check was made.
    overdue_at: Option<Instant>,
}

/// How an attempt is to be watched.
pub(super) struct Watch {
    pub(super) heartbeat_every: Duration,
    pub(super) timeout: Duration,
    /// When a handler still running is overdue: its deadline, the cancellation grace
    /// and a margin for its task to settle.
    pub(super) overdue_at: Instant,
}

impl InFlight {
    pub(super) fn new(metrics: Arc<WorkerMetrics>) -> Self {
        Self {
            table: Mutex::default(),
            keeper: Notify::new(),
            ended: Notify::new(),
            draining: AtomicBool::new(false),
            metrics,
        }
    }

    /// Registers the attempt of `ctx`, or `None` when that activity already runs here
    /// (a lease that expired under us, reclaimed by our own poll: the attempt already
    /// running still holds the claim and will report). An attempt whose report is
    /// decided but that is still here — still delivering it, or a handler blocking its
    /// thread after its takeover — is replaced: the new claim is the server's next
    /// attempt, and must run.
    pub(super) fn register(
        self: &Arc<Self>,
        ctx: &ActivityContext,
        state: &Arc<AttemptState>,
        watch: Watch,
    ) -> Option<Registration> {
        let activity_id = ctx.activity_id();
        let heartbeat_at = Instant::now() + watch.heartbeat_every;
        let (generation, wake_keeper, replaced) = {
            let mut table = self.lock();
            let replaced = match table.attempts.get(&activity_id) {
                Some(entry) if !entry.state.stage.is_decided() => return None,
                Some(_) => table.remove(activity_id),
                None => None,
            };
            let generation = table.next_generation;
            table.next_generation += 1;
            table.due.insert((heartbeat_at, activity_id, Kind::Heartbeat));
            table.due.insert((watch.overdue_at, activity_id, Kind::Overdue));
            table.attempts.insert(
                activity_id,
                Entry {
                    generation,
                    ctx: ctx.clone(),
                    state: Arc::clone(state),
                    heartbeat_every: watch.heartbeat_every,
                    timeout: watch.timeout,
                    heartbeat_at: Some(heartbeat_at),
                    overdue_at: Some(watch.overdue_at),
                },
            );
            (generation, table.keeper_looks_at.is_none_or(|at| heartbeat_at < at), replaced)
        };
        if wake_keeper {
            self.keeper.notify_one();
        }
        if replaced.is_none() {
            self.metrics.in_flight(&ctx.info().worker, 1.0);
        }
        Some(Registration { in_flight: Arc::clone(self), activity_id, generation })
    }

    /// Takes what is due at `now`, and returns when the next thing is due. The keeper
    /// looks again then, or when [`keeper_woken`](Self::keeper_woken) resolves.
    pub(super) fn take_due(&self, now: Instant) -> (Vec<Due>, Option<Instant>) {
        let mut table = self.lock();
        let mut taken = Vec::new();
        while let Some(&(at, activity_id, kind)) = table.due.first()
            && at <= now
        {
            table.due.pop_first();
            let Some(entry) = table.attempts.get_mut(&activity_id) else { continue };
            let state = Arc::clone(&entry.state);
            taken.push(match kind {
                Kind::Heartbeat => {
                    entry.heartbeat_at = None;
                    Due::Heartbeat { activity_id, state }
                }
                Kind::Overdue => {
                    entry.overdue_at = None;
                    Due::Overdue(Overdue { ctx: entry.ctx.clone(), state, timeout: entry.timeout })
                }
            });
        }
        let next = table.due.first().map(|&(at, ..)| at);
        table.keeper_looks_at = next;
        (taken, next)
    }

    /// Resolves when something was registered due earlier than the keeper planned.
    pub(super) async fn keeper_woken(&self) {
        self.keeper.notified().await;
    }

    /// Schedules the next heartbeat of `activity_id`, sooner than its interval if the
    /// server suggested so.
    pub(super) fn reschedule_heartbeat(
        &self,
        state: &Arc<AttemptState>,
        activity_id: Uuid,
        suggested: Option<Duration>,
    ) {
        let mut table = self.lock();
        let Some(entry) = table.attempts.get_mut(&activity_id) else { return };
        // The answer may be for an attempt replaced meanwhile, whose beats are over.
        if !Arc::ptr_eq(&entry.state, state) || entry.heartbeat_at.is_some() {
            return;
        }
        if let Some(suggested) = suggested {
            entry.heartbeat_every = entry.heartbeat_every.min(suggested);
        }
        let at = Instant::now() + entry.heartbeat_every;
        entry.heartbeat_at = Some(at);
        table.due.insert((at, activity_id, Kind::Heartbeat));
    }

    pub(super) fn cancel_all(&self, reason: CancelReason) -> usize {
        let table = self.lock();
        for entry in table.attempts.values() {
            entry.ctx.cancel(reason);
        }
        table.attempts.len()
    }

    /// Every attempt still in flight, to take over from the worker's runtime.
    pub(super) fn all(&self) -> Vec<Overdue> {
        let table = self.lock();
        table
            .attempts
            .values()
            .map(|e| Overdue { ctx: e.ctx.clone(), state: Arc::clone(&e.state), timeout: e.timeout })
            .collect()
    }

    pub(super) fn len(&self) -> usize {
        self.lock().attempts.len()
    }

    /// Resolves once every attempt has ended but those a takeover settled while their
    /// handlers block their threads. Woken by each attempt that ends from then on.
    pub(super) async fn all_ended(&self) {
        self.draining.store(true, Ordering::Release);
        loop {
            let ended = self.ended.notified();
            tokio::pin!(ended);
            // Registered before the check, so an attempt ending in between wakes it.
            ended.as_mut().enable();
            if !self.lock().attempts.values().any(|e| !e.state.stage.is_left_behind()) {
                return;
            }
            ended.await;
        }
    }

    /// An attempt ended, or a takeover left it behind: wakes [`all_ended`](Self::all_ended).
    pub(super) fn attempt_ended(&self) {
        if self.draining.load(Ordering::Acquire) {
            self.ended.notify_waiters();
        }
    }

    /// The activities of the attempts for which something may still have to be sent.
    pub(super) fn unsettled(&self) -> Vec<Uuid> {
        let table = self.lock();
        table.attempts.iter().filter(|(_, e)| !e.state.stage.is_done()).map(|(id, _)| *id).collect()
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        // Entries are inserted and removed whole; a poisoned table is still consistent.
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Table {
    /// Removes the entry of `activity_id` and everything due for it.
    fn remove(&mut self, activity_id: Uuid) -> Option<Entry> {
        let entry = self.attempts.remove(&activity_id)?;
        if let Some(at) = entry.heartbeat_at {
            self.due.remove(&(at, activity_id, Kind::Heartbeat));
        }
        if let Some(at) = entry.overdue_at {
            self.due.remove(&(at, activity_id, Kind::Overdue));
        }
        Some(entry)
    }
}

/// An attempt's place in [`InFlight`], given up when it is dropped: last thing when the
/// attempt ends, or with the attempt's task if that is dropped first.
pub(super) struct Registration {
    in_flight: Arc<InFlight>,
    activity_id: Uuid,
    generation: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let removed = {
            let mut table = self.in_flight.lock();
            // A later attempt at the same activity may have replaced this one.
            let ours = table.attempts.get(&self.activity_id).is_some_and(|e| e.generation == self.generation);
            if ours { table.remove(self.activity_id) } else { None }
        };
        if let Some(entry) = removed {
            self.in_flight.metrics.in_flight(&entry.ctx.info().worker, -1.0);
        }
        self.in_flight.attempt_ended();
    }
}

/// The worker's activity slots, and the gauge of those not running an activity.
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

#[cfg(test)]
mod tests;
