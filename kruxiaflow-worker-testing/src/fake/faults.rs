//! Fault injection: scripted faults per endpoint, and latency.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::endpoint::Endpoint;

/// A way for the fake server to misbehave on one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Fault {
    /// Answer with this status and the server's envelope for it; nothing is applied.
    Status(u16),
    /// The graceful-shutdown 503 (`service_unavailable`, lowercase); nothing is applied.
    ShuttingDown,
    /// Apply the request, then answer 500, as the real server does when publishing the
    /// workflow event fails after the queue change committed.
    ErrorAfterCommit,
    /// Apply the request, then drop the connection: the claim or report stands, the
    /// answer is lost.
    DropAfterCommit,
    /// Drop the connection without applying the request.
    DropBeforeCommit,
    /// Send the headers (with the full `Content-Length`) and only half of the body.
    TruncateBody,
}

#[derive(Default)]
pub(crate) struct Faults {
    scripted: Mutex<HashMap<Endpoint, VecDeque<Fault>>>,
    latency: Mutex<HashMap<Endpoint, Duration>>,
    injected: Mutex<HashMap<Fault, u64>>,
}

impl Faults {
    pub(crate) fn push(&self, endpoint: Endpoint, fault: Fault, times: usize) {
        let mut scripted = lock(&self.scripted);
        let queue = scripted.entry(endpoint).or_default();
        queue.extend(std::iter::repeat_n(fault, times));
    }

    pub(crate) fn clear(&self) {
        lock(&self.scripted).clear();
        lock(&self.latency).clear();
    }

    /// The fault for this request, if any is scheduled.
    pub(crate) fn next(&self, endpoint: Endpoint) -> Option<Fault> {
        let fault = lock(&self.scripted).get_mut(&endpoint).and_then(VecDeque::pop_front)?;
        *lock(&self.injected).entry(fault).or_default() += 1;
        Some(fault)
    }

    pub(crate) fn set_latency(&self, endpoint: Endpoint, latency: Duration) {
        lock(&self.latency).insert(endpoint, latency);
    }

    pub(crate) fn latency(&self, endpoint: Endpoint) -> Option<Duration> {
        let latency = lock(&self.latency);
        latency.get(&endpoint).or_else(|| latency.get(&Endpoint::Any)).copied()
    }

    pub(crate) fn injected(&self) -> HashMap<Fault, u64> {
        lock(&self.injected).clone()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
