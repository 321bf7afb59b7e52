//! Fault injection: scripted faults per endpoint, and latency.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
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
    /// Never answer; nothing is applied.
    Hang,
    /// Answer `307 Temporary Redirect` to [`REDIRECT_LOCATION`]; nothing is applied. A
    /// client that follows it would re-send the request (a token request's secret
    /// included) to another origin.
    Redirect,
    /// Answer `200 OK` with an HTML page, as a proxy's login page would; nothing is
    /// applied.
    HtmlPage,
    /// Answer with this status and a plain-text body, as a load balancer or proxy does
    /// for a server that is restarting behind it; nothing is applied. Unlike
    /// [`Fault::Status`], the answer is not the server's: it says nothing about the
    /// request.
    ProxyStatus(u16),
}

/// Where [`Fault::Redirect`] points: another origin on the loopback interface.
pub const REDIRECT_LOCATION: &str = "http://127.0.0.2:9/elsewhere";

/// Random faults on every endpoint, drawn from a seeded generator so that a run can be
/// replayed. Scripted faults ([`Faults::inject`](super::Faults::inject)) still
/// come first.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChaosConfig {
    /// Seed of the generator.
    pub seed: u64,
    /// Share of requests answered 500 or 503 without being applied.
    pub error_rate: f64,
    /// Share of requests applied and then left unanswered (the connection drops).
    pub drop_after_commit_rate: f64,
    /// Share of requests delayed by a spike of up to `latency_spike_max`.
    pub latency_spike_rate: f64,
    /// Longest latency spike.
    pub latency_spike_max: Duration,
}

impl ChaosConfig {
    /// 5% 500/503, 2% dropped after commit, 1% spikes of up to 2 s.
    pub fn standard(seed: u64) -> Self {
        Self {
            seed,
            error_rate: 0.05,
            drop_after_commit_rate: 0.02,
            latency_spike_rate: 0.01,
            latency_spike_max: Duration::from_secs(2),
        }
    }
}

#[derive(Default)]
pub(crate) struct Faults {
    /// Poll items sent verbatim with the next poll answers, one each.
    raw_poll_items: Mutex<VecDeque<String>>,
    /// Activities claimed per poll beyond what was asked for.
    over_delivery: std::sync::atomic::AtomicU32,
    /// Bytes per second for response bodies, per endpoint.
    bandwidth: Mutex<HashMap<Endpoint, u64>>,
    scripted: Mutex<HashMap<Endpoint, VecDeque<Fault>>>,
    latency: Mutex<HashMap<Endpoint, Duration>>,
    injected: Mutex<HashMap<Fault, u64>>,
    chaos: Mutex<Option<(ChaosConfig, fastrand::Rng)>>,
    spikes: AtomicU64,
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
        lock(&self.raw_poll_items).clear();
        lock(&self.bandwidth).clear();
        self.over_delivery.store(0, Ordering::Relaxed);
    }

    /// The fault for this request: a scripted one, else a random one in chaos mode.
    pub(crate) fn next(&self, endpoint: Endpoint) -> Option<Fault> {
        let scripted = lock(&self.scripted).get_mut(&endpoint).and_then(VecDeque::pop_front);
        let fault = scripted.or_else(|| self.chaos_fault(endpoint))?;
        *lock(&self.injected).entry(fault).or_default() += 1;
        Some(fault)
    }

    fn chaos_fault(&self, endpoint: Endpoint) -> Option<Fault> {
        let mut chaos = lock(&self.chaos);
        let (config, rng) = chaos.as_mut()?;
        let roll = rng.f64();
        if roll < config.error_rate {
            return Some(Fault::Status(if rng.bool() { 500 } else { 503 }));
        }
        let commits = matches!(endpoint, Endpoint::Poll | Endpoint::Heartbeat | Endpoint::Complete | Endpoint::Fail);
        (commits && roll < config.error_rate + config.drop_after_commit_rate).then_some(Fault::DropAfterCommit)
    }

    pub(crate) fn set_chaos(&self, config: Option<ChaosConfig>) {
        *lock(&self.chaos) = config.map(|c| (c, fastrand::Rng::with_seed(c.seed)));
    }

    /// Latency spikes added so far in chaos mode.
    pub(crate) fn spikes(&self) -> u64 {
        self.spikes.load(Ordering::Relaxed)
    }

    pub(crate) fn set_latency(&self, endpoint: Endpoint, latency: Duration) {
        lock(&self.latency).insert(endpoint, latency);
    }

    /// The configured latency of `endpoint`, plus a random spike in chaos mode.
    pub(crate) fn latency(&self, endpoint: Endpoint) -> Option<Duration> {
        let configured = {
            let latency = lock(&self.latency);
            latency.get(&endpoint).or_else(|| latency.get(&Endpoint::Any)).copied()
        };
        let spike = lock(&self.chaos).as_mut().and_then(|(config, rng)| {
            (rng.f64() < config.latency_spike_rate).then(|| config.latency_spike_max.mul_f64(rng.f64()))
        });
        if spike.is_some() {
            self.spikes.fetch_add(1, Ordering::Relaxed);
        }
        match (configured, spike) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or_default() + b.unwrap_or_default()),
        }
    }

    pub(crate) fn push_raw_poll_item(&self, item: String) {
        lock(&self.raw_poll_items).push_back(item);
    }

    pub(crate) fn take_raw_poll_item(&self) -> Option<String> {
        lock(&self.raw_poll_items).pop_front()
    }

    pub(crate) fn set_over_delivery(&self, extra: u32) {
        self.over_delivery.store(extra, Ordering::Relaxed);
    }

    pub(crate) fn over_delivery(&self) -> u32 {
        self.over_delivery.load(Ordering::Relaxed)
    }

    pub(crate) fn set_bandwidth(&self, endpoint: Endpoint, bytes_per_second: u64) {
        lock(&self.bandwidth).insert(endpoint, bytes_per_second.max(1));
    }

    pub(crate) fn bandwidth(&self, endpoint: Endpoint) -> Option<u64> {
        lock(&self.bandwidth).get(&endpoint).copied()
    }

    pub(crate) fn injected(&self) -> HashMap<Fault, u64> {
        lock(&self.injected).clone()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
