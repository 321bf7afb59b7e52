//! Whether the worker is alive and whether it is ready, as `/healthz` and `/readyz`
//! answer it. Each poller reports on itself here; nothing else writes these.
//!
//! Alive means: the worker's own runtime answers (`/healthz` is served there) and no
//! poller died. A busy worker is alive: a poller waiting for a free slot, or for an
//! activity thread while handlers block them all, is not dead, and a liveness probe
//! that restarted it would kill the work it is doing. Every poll request has a
//! timeout, so a poll cannot hang while its runtime runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

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

    pub(super) fn poll_ended(&self, succeeded: bool) {
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
    }
}

/// The worker's health, from its pollers and its shutdown phase.
pub(super) struct Health {
    pollers: Vec<Arc<PollerHealth>>,
    phase: watch::Receiver<Phase>,
}

impl Health {
    pub(super) fn new(worker_types: &[String], phase: watch::Receiver<Phase>) -> Self {
        let pollers = worker_types
            .iter()
            .map(|worker| {
                Arc::new(PollerHealth {
                    worker: worker.clone(),
                    task: AtomicU8::new(STARTING),
                    ever_succeeded: AtomicBool::new(false),
                    last_failed: AtomicBool::new(false),
                })
            })
            .collect();
        Self { pollers, phase }
    }

    /// The health record of `worker`'s poller.
    pub(super) fn poller(&self, worker: &str) -> Arc<PollerHealth> {
        let found = self.pollers.iter().find(|p| p.worker == worker);
        Arc::clone(found.expect("a poller runs only for a registered worker type"))
    }

    /// `Ok` while no poller died; otherwise why not.
    pub(super) fn liveness(&self) -> Result<(), String> {
        match self.pollers.iter().find(|poller| poller.task.load(Ordering::Acquire) == DIED) {
            Some(dead) => Err(format!("the poller for worker type {:?} died", dead.worker)),
            None => Ok(()),
        }
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

    fn health() -> (Health, watch::Sender<Phase>) {
        let (phase, watching) = watch::channel(Phase::Running);
        (Health::new(&["a".to_owned(), "b".to_owned()], watching), phase)
    }

    #[test]
    fn ready_only_once_every_poller_has_polled_successfully() {
        let (health, _phase) = health();
        let (a, b) = (health.poller("a"), health.poller("b"));
        let (_a_alive, _b_alive) = (a.alive(), b.alive());
        assert_eq!(health.liveness(), Ok(()));
        assert_eq!(health.readiness(), Err("no poll for worker type \"a\" has succeeded yet".to_owned()));
        a.poll_ended(true);
        assert_eq!(health.readiness(), Err("no poll for worker type \"b\" has succeeded yet".to_owned()));
        b.poll_ended(true);
        assert_eq!(health.readiness(), Ok(()));
    }

    #[test]
    fn a_failing_poll_makes_it_unready_until_one_succeeds_again() {
        let (health, _phase) = health();
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
        let (health, phase) = health();
        let a = health.poller("a").alive();
        let b = health.poller("b").alive();
        drop(a); // panicked, returned early or aborted: never said it stopped
        assert_eq!(health.liveness(), Err("the poller for worker type \"a\" died".to_owned()));

        let health = Health::new(&["b".to_owned()], phase.subscribe());
        let b2 = health.poller("b").alive();
        phase.send_replace(Phase::Draining);
        b2.stopped();
        assert_eq!(health.liveness(), Ok(()));
        assert_eq!(health.readiness(), Err("shutting down".to_owned()));
        drop(b);
    }
}
