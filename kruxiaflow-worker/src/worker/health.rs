//! Whether the worker is alive and whether it is ready, as `/healthz` and `/readyz`
//! answer it. Each poller reports on itself here; nothing else writes these.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::shutdown::Phase;

const STARTING: u8 = 0;
const RUNNING: u8 = 1;
const STOPPED: u8 = 2;
const DIED: u8 = 3;

/// What one poller last said about itself.
pub(super) struct PollerHealth {
    worker: String,
    /// `STARTING` → `RUNNING` → `STOPPED` (it returned for a shutdown) or `DIED`
    /// (it ended any other way: panicked, returned early, aborted).
    task: AtomicU8,
    /// Milliseconds since [`Health::epoch`] at which the poll in flight started; 0 when
    /// none is.
    polling_since: AtomicU64,
    ever_succeeded: AtomicBool,
    last_failed: AtomicBool,
}

impl PollerHealth {
    /// The poller task runs; the guard marks it dead when dropped, unless the poller
    /// said it [stopped](PollerAlive::stopped) for a shutdown.
    pub(super) fn alive(self: &Arc<Self>) -> PollerAlive {
        self.task.store(RUNNING, Ordering::Release);
        PollerAlive(Arc::clone(self))
    }

    pub(super) fn poll_started(&self, health: &Health) {
        // At least 1, so that a poll started at the epoch still counts as in flight.
        let now = (health.epoch.elapsed().as_millis() as u64).max(1);
        self.polling_since.store(now, Ordering::Release);
    }

    pub(super) fn poll_ended(&self, succeeded: bool) {
        self.polling_since.store(0, Ordering::Release);
        self.last_failed.store(!succeeded, Ordering::Release);
        if succeeded {
            self.ever_succeeded.store(true, Ordering::Release);
        }
    }
}

/// Marks its poller dead when dropped, however its task ends, unless it stopped for a
/// shutdown.
pub(super) struct PollerAlive(Arc<PollerHealth>);

impl PollerAlive {
    /// The poller returned because the worker is shutting down.
    pub(super) fn stopped(self) {
        self.0.task.store(STOPPED, Ordering::Release);
    }
}

impl Drop for PollerAlive {
    fn drop(&mut self) {
        let _ = self.0.task.compare_exchange(RUNNING, DIED, Ordering::AcqRel, Ordering::Acquire);
        self.0.polling_since.store(0, Ordering::Release);
    }
}

/// The worker's health, from its pollers and its shutdown phase.
pub(super) struct Health {
    epoch: Instant,
    pollers: Vec<Arc<PollerHealth>>,
    phase: watch::Receiver<Phase>,
    stuck_after: Duration,
}

/// How long a poll may be in flight before its poller counts as stuck: every request
/// has a timeout (`http_timeout`), and a token fetch its own, shorter one.
pub(super) fn stuck_after(http_timeout: Duration) -> Duration {
    http_timeout * 2 + Duration::from_secs(15)
}

impl Health {
    /// `stuck_after`: how long a poll may be in flight before its poller counts as stuck.
    pub(super) fn new(worker_types: &[String], phase: watch::Receiver<Phase>, stuck_after: Duration) -> Self {
        let pollers = worker_types
            .iter()
            .map(|worker| {
                Arc::new(PollerHealth {
                    worker: worker.clone(),
                    task: AtomicU8::new(STARTING),
                    polling_since: AtomicU64::new(0),
                    ever_succeeded: AtomicBool::new(false),
                    last_failed: AtomicBool::new(false),
                })
            })
            .collect();
        Self { epoch: Instant::now(), pollers, phase, stuck_after }
    }

    /// The health record of `worker`'s poller.
    pub(super) fn poller(&self, worker: &str) -> Arc<PollerHealth> {
        let found = self.pollers.iter().find(|p| p.worker == worker);
        Arc::clone(found.expect("a poller runs only for a registered worker type"))
    }

    /// `Ok` while no poller died and none is stuck in a poll; otherwise why not.
    pub(super) fn liveness(&self) -> Result<(), String> {
        let now = self.epoch.elapsed().as_millis() as u64;
        for poller in &self.pollers {
            if poller.task.load(Ordering::Acquire) == DIED {
                return Err(format!("the poller for worker type {:?} died", poller.worker));
            }
            let since = poller.polling_since.load(Ordering::Acquire);
            if since != 0 && Duration::from_millis(now.saturating_sub(since)) > self.stuck_after {
                return Err(format!(
                    "the poller for worker type {:?} has waited {} s for a poll (limit {} s)",
                    poller.worker,
                    (now - since) / 1000,
                    self.stuck_after.as_secs()
                ));
            }
        }
        Ok(())
    }

    /// `Ok` once every poller's polls succeed and while the worker takes work;
    /// otherwise why not.
    pub(super) fn readiness(&self) -> Result<(), String> {
        if *self.phase.borrow() != Phase::Running {
            return Err("shutting down".to_owned());
        }
        self.liveness()?;
        for poller in &self.pollers {
            if poller.last_failed.load(Ordering::Acquire) {
                return Err(format!(
                    "polls for worker type {:?} are failing: the server is unreachable",
                    poller.worker
                ));
            }
            if !poller.ever_succeeded.load(Ordering::Acquire) {
                return Err(format!("no poll for worker type {:?} has succeeded yet", poller.worker));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health(stuck_after: Duration) -> (Health, watch::Sender<Phase>) {
        let (phase, watching) = watch::channel(Phase::Running);
        (Health::new(&["a".to_owned(), "b".to_owned()], watching, stuck_after), phase)
    }

    #[test]
    fn ready_only_once_every_poller_has_polled_successfully() {
        let (health, _phase) = health(Duration::from_secs(60));
        let (a, b) = (health.poller("a"), health.poller("b"));
        let (_a_alive, _b_alive) = (a.alive(), b.alive());
        assert_eq!(health.liveness(), Ok(()));
        assert_eq!(health.readiness(), Err("no poll for worker type \"a\" has succeeded yet".to_owned()));
        a.poll_started(&health);
        a.poll_ended(true);
        assert_eq!(health.readiness(), Err("no poll for worker type \"b\" has succeeded yet".to_owned()));
        b.poll_started(&health);
        b.poll_ended(true);
        assert_eq!(health.readiness(), Ok(()));
    }

    #[test]
    fn a_failing_poll_makes_it_unready_until_one_succeeds_again() {
        let (health, _phase) = health(Duration::from_secs(60));
        let guards: Vec<_> = ["a", "b"]
            .map(|w| health.poller(w))
            .iter()
            .map(|p| {
                p.poll_ended(true);
                p.alive()
            })
            .collect();
        health.poller("b").poll_ended(false);
        assert_eq!(
            health.readiness(),
            Err("polls for worker type \"b\" are failing: the server is unreachable".to_owned())
        );
        assert_eq!(health.liveness(), Ok(()));
        health.poller("b").poll_ended(true);
        assert_eq!(health.readiness(), Ok(()));
        drop(guards);
    }

    #[test]
    fn a_poller_that_dies_fails_liveness_and_one_that_stopped_for_shutdown_does_not() {
        let (health, phase) = health(Duration::from_secs(60));
        let a = health.poller("a").alive();
        let b = health.poller("b").alive();
        drop(a); // panicked, returned early or aborted: never said it stopped
        assert_eq!(health.liveness(), Err("the poller for worker type \"a\" died".to_owned()));

        let health = Health::new(&["b".to_owned()], phase.subscribe(), Duration::from_secs(60));
        let b2 = health.poller("b").alive();
        phase.send_replace(Phase::Draining);
        b2.stopped();
        assert_eq!(health.liveness(), Ok(()));
        assert_eq!(health.readiness(), Err("shutting down".to_owned()));
        drop(b);
    }

    #[test]
    fn a_poll_in_flight_longer_than_the_limit_fails_liveness() {
        let (health, _phase) = health(Duration::from_millis(20));
        let guards = [health.poller("a").alive(), health.poller("b").alive()];
        health.poller("a").poll_started(&health);
        assert_eq!(health.liveness(), Ok(()));
        std::thread::sleep(Duration::from_millis(60));
        let stuck = health.liveness().unwrap_err();
        assert!(stuck.starts_with("the poller for worker type \"a\" has waited 0 s for a poll (limit 0 s)"), "{stuck}");
        health.poller("a").poll_ended(true);
        assert_eq!(health.liveness(), Ok(()));
        drop(guards);
    }

    #[test]
    fn stuck_limit_follows_the_http_timeout() {
        assert_eq!(stuck_after(Duration::from_secs(30)), Duration::from_secs(75));
    }
}
