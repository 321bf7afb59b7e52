//! The attempts running on this worker, by activity id, with what the worker's own
//! runtime must do for each of them and when: renew its lease, and check that its
//! handler did not outlive its deadline. Attempts run on the activities' runtime and the
//! keeper on the worker's; this table is where they meet, so an attempt starting or
//! ending never wakes the keeper (only one due earlier than the keeper planned to look).

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use uuid::Uuid;

use super::lease::Lease;
use super::stage::Stage;
use crate::context::{ActivityContext, CancelReason};
use crate::stream::StreamEnding;
use crate::telemetry::WorkerMetrics;

/// What both runtimes know of one attempt.
pub(super) struct AttemptState {
    pub(super) lease: Lease,
    pub(super) stage: Stage,
    /// When its handler started, once it did.
    pub(super) handler_started: OnceLock<std::time::Instant>,
    /// Its token stream, when the activity opted in: ended by whichever side
    /// concludes the attempt, before the report. Boxed: most attempts have none, and
    /// each in-flight attempt costs its size.
    pub(super) stream: Option<Box<StreamEnding>>,
    /// The attempt's span, once its task made it: the keeper's heartbeats are events
    /// in it.
    pub(super) span: OnceLock<tracing::Span>,
}

impl AttemptState {
    pub(super) fn new(stream: Option<Box<StreamEnding>>) -> Arc<Self> {
        let (lease, stage, handler_started, span) = (Lease::new(), Stage::new(), OnceLock::new(), OnceLock::new());
        Arc::new(Self { lease, stage, handler_started, stream, span })
    }
}

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

/// An attempt's place in [`InFlight`], given up when the attempt is dropped, however it
/// ends.
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::context::{ActivityInfo, BoxFuture, ContextBackend, HeartbeatError};
    use crate::error::ActivityError;
    use crate::files::FileReference;

    struct NoServer;

    impl ContextBackend for NoServer {
        fn heartbeat(&self) -> BoxFuture<'_, Result<(), HeartbeatError>> {
            Box::pin(async { Ok(()) })
        }
        fn download<'a>(&'a self, _: &'a FileReference, _: &'a Path) -> BoxFuture<'a, Result<(), ActivityError>> {
            Box::pin(async { Ok(()) })
        }
        fn upload<'a>(
            &'a self,
            _: &'a FileReference,
            _: &'a Path,
            _: &'a str,
        ) -> BoxFuture<'a, Result<(), ActivityError>> {
            Box::pin(async { Ok(()) })
        }
    }

    fn in_flight() -> Arc<InFlight> {
        Arc::new(InFlight::new(Arc::new(WorkerMetrics::new([("w", "n")]))))
    }

    fn ctx(activity_id: Uuid) -> ActivityContext {
        ActivityContext::new(ActivityInfo { activity_id, ..ActivityInfo::new("w", "n") }, Arc::new(NoServer))
    }

    fn watch(heartbeat_secs: u64, overdue_secs: u64) -> Watch {
        Watch {
            heartbeat_every: Duration::from_secs(heartbeat_secs),
            timeout: Duration::from_secs(1),
            overdue_at: Instant::now() + Duration::from_secs(overdue_secs),
        }
    }

    fn kinds(due: &[Due]) -> Vec<(&'static str, Uuid)> {
        due.iter()
            .map(|due| match due {
                Due::Heartbeat { activity_id, .. } => ("heartbeat", *activity_id),
                Due::Overdue(overdue) => ("overdue", overdue.ctx.activity_id()),
            })
            .collect()
    }

    /// Whether the keeper was told to look earlier than it planned.
    async fn keeper_was_woken(in_flight: &InFlight) -> bool {
        tokio::time::timeout(Duration::ZERO, in_flight.keeper_woken()).await.is_ok()
    }

    #[tokio::test(start_paused = true)]
    async fn the_keeper_is_woken_only_for_something_due_before_it_planned_to_look() {
        let in_flight = in_flight();
        let (a, b, c) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        let _a = in_flight.register(&ctx(a), &AttemptState::new(None), watch(10, 60)).unwrap();
        assert!(keeper_was_woken(&in_flight).await, "a keeper with nothing planned is woken");
        let (due, next) = in_flight.take_due(Instant::now());
        assert!(due.is_empty());
        assert_eq!(next, Some(Instant::now() + Duration::from_secs(10)));

        let _b = in_flight.register(&ctx(b), &AttemptState::new(None), watch(20, 60)).unwrap();
        assert!(!keeper_was_woken(&in_flight).await, "due after what the keeper planned");
        let _c = in_flight.register(&ctx(c), &AttemptState::new(None), watch(5, 60)).unwrap();
        assert!(keeper_was_woken(&in_flight).await, "due before what the keeper planned");
    }

    #[tokio::test(start_paused = true)]
    async fn heartbeats_and_overdue_checks_come_due_in_order_and_a_released_attempt_leaves_nothing_due() {
        let in_flight = in_flight();
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let reg_a = in_flight.register(&ctx(a), &AttemptState::new(None), watch(10, 25)).unwrap();
        let _b = in_flight.register(&ctx(b), &AttemptState::new(None), watch(15, 40)).unwrap();

        tokio::time::advance(Duration::from_secs(16)).await;
        let (due, next) = in_flight.take_due(Instant::now());
        assert_eq!(kinds(&due), [("heartbeat", a), ("heartbeat", b)]);
        assert_eq!(next, Some(Instant::now() + Duration::from_secs(9)), "a's overdue check, 25 s after it started");
        let state_a = match &due[0] {
            Due::Heartbeat { state, .. } => Arc::clone(state),
            Due::Overdue(_) => unreachable!(),
        };
        in_flight.reschedule_heartbeat(&state_a, a, Some(Duration::from_secs(3)));
        let (_, next) = in_flight.take_due(Instant::now());
        assert_eq!(next, Some(Instant::now() + Duration::from_secs(3)), "the server asked for heartbeats every 3 s");

        drop(reg_a);
        let (due, next) = in_flight.take_due(Instant::now() + Duration::from_secs(20));
        assert!(due.is_empty(), "nothing of a released attempt is due: {:?}", kinds(&due));
        assert_eq!(next, Some(Instant::now() + Duration::from_secs(24)), "only b's overdue check is left");
        assert_eq!(in_flight.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_done_attempt_still_in_flight_is_replaced_by_the_next_claim_and_its_release_keeps_the_new_one() {
        let in_flight = in_flight();
        let a = Uuid::from_u128(1);
        let stuck = AttemptState::new(None);
        let stuck_reg = in_flight.register(&ctx(a), &stuck, watch(10, 60)).unwrap();
        assert!(in_flight.register(&ctx(a), &AttemptState::new(None), watch(10, 60)).is_none(), "running: not twice");

        // Taken over and delivered while its handler still blocks its thread.
        assert!(stuck.stage.take_over(false).is_some());
        stuck.stage.takeover_ended();
        let retry = AttemptState::new(None);
        let retry_reg = in_flight.register(&ctx(a), &retry, watch(10, 60)).expect("the retry runs");
        assert_eq!(in_flight.unsettled(), [a]);

        drop(stuck_reg);
        assert_eq!(in_flight.len(), 1, "the stuck attempt's release does not remove its retry");
        assert!(retry.stage.abandon());
        assert_eq!(in_flight.unsettled(), Vec::<Uuid>::new());
        drop(retry_reg);
        assert_eq!(in_flight.len(), 0);
    }

    #[tokio::test]
    async fn a_shutdown_is_woken_by_the_last_attempt_to_end_and_not_held_by_one_left_behind() {
        let in_flight = in_flight();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let reg_a = in_flight.register(&ctx(a), &AttemptState::new(None), watch(10, 60)).unwrap();
        let stuck = AttemptState::new(None);
        let _reg_b = in_flight.register(&ctx(b), &stuck, watch(10, 60)).unwrap();
        let waiting = tokio::spawn({
            let in_flight = Arc::clone(&in_flight);
            async move { in_flight.all_ended().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "two attempts still to end");
        drop(reg_a);
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "one still to end");
        // A takeover settles the second while its handler blocks its thread for good.
        assert!(stuck.stage.take_over(false).is_some());
        stuck.stage.takeover_ended();
        in_flight.attempt_ended();
        tokio::time::timeout(Duration::from_secs(1), waiting).await.expect("woken, not polled").unwrap();
    }
}
