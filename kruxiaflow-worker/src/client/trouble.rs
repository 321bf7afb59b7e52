//! Logging of failing requests by endpoint: one WARN when an endpoint's requests start
//! failing, one INFO with the count when they succeed again, and each failure only at
//! debug. A ten-second outage with activities finishing is a handful of lines, not one
//! per retry of every report and heartbeat.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use super::ClientError;

#[derive(Default)]
pub(crate) struct Trouble {
    endpoints: Mutex<HashMap<&'static str, Run>>,
    /// Some endpoint is in a run of failures: only then does a success take the lock.
    any: AtomicBool,
}

/// A run of failures of one endpoint.
struct Run {
    since: Instant,
    failures: u64,
}

impl Trouble {
    /// A request to `endpoint` failed with `error` and is tried again.
    pub(crate) fn failed(&self, endpoint: &'static str, error: &ClientError) {
        let first = {
            let mut endpoints = self.lock();
            let run = endpoints.entry(endpoint).or_insert(Run { since: Instant::now(), failures: 0 });
            run.failures += 1;
            self.any.store(true, Ordering::Release);
            run.failures == 1
        };
        if first {
            tracing::warn!(%error, "{endpoint} requests are failing; retrying (each failure is logged at debug)");
        } else {
            tracing::debug!(%error, "{endpoint} request failed; retrying");
        }
    }

    /// A request to `endpoint` got through.
    pub(crate) fn succeeded(&self, endpoint: &'static str) {
        // Most requests find no trouble: one atomic load on the hot path.
        if !self.any.load(Ordering::Acquire) {
            return;
        }
        let run = {
            let mut endpoints = self.lock();
            let run = endpoints.remove(endpoint);
            self.any.store(!endpoints.is_empty(), Ordering::Release);
            run
        };
        let Some(run) = run else { return };
        tracing::info!(
            failures = run.failures,
            "{endpoint} requests succeed again after {:.1}s",
            run.since.elapsed().as_secs_f64()
        );
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<&'static str, Run>> {
        self.endpoints.lock().unwrap_or_else(|e| e.into_inner())
    }
}
