//! Rate limits shared by the activities of one worker process: a provider's requests
//! or tokens per second or minute, stated once on the [`WorkerManager`] and acquired
//! by each activity before its call, so that the provider never sees more than its
//! limit and answers no 429 storm.
//!
//! [`WorkerManager`]: crate::WorkerManager

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use tracing::Instrument;

use crate::error::ActivityError;
use crate::telemetry;

/// Error codes of rate limits.
pub mod codes {
    /// The limit's name was never registered on the worker (terminal).
    pub const RATE_LIMIT_UNKNOWN: &str = "RATE_LIMIT_UNKNOWN";
    /// More units were asked for than the limit can ever grant at once (terminal).
    pub const RATE_LIMIT_TOO_LARGE: &str = "RATE_LIMIT_TOO_LARGE";
    /// The wait for the units would pass the attempt's deadline (retryable).
    pub const RATE_LIMITED: &str = "RATE_LIMITED";
    /// The attempt was cancelled while it waited (retryable).
    pub const RATE_LIMIT_CANCELLED: &str = "RATE_LIMIT_CANCELLED";
}

/// A limit of `units` per `period`, as a token bucket: it refills at `units / period`
/// and holds at most one period's worth, so after a quiet spell a burst of up to
/// `units` goes through at once. It starts empty: a worker that just restarted cannot
/// spend at once what its predecessor may already have spent in the provider's current
/// window.
///
/// ```
/// use kruxiaflow_worker::rate_limit::RateLimit;
/// use std::time::Duration;
///
/// assert_eq!(RateLimit::per_minute(500), RateLimit::per(500, Duration::from_secs(60)));
/// assert_eq!(RateLimit::per_second(30).units(), 30);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    units: u64,
    period: Duration,
}

impl RateLimit {
    /// `units` per second.
    pub fn per_second(units: u64) -> Self {
        Self::per(units, Duration::from_secs(1))
    }

    /// `units` per minute.
    pub fn per_minute(units: u64) -> Self {
        Self::per(units, Duration::from_secs(60))
    }

    /// `units` per `period`.
    ///
    /// # Panics
    /// If `units` or `period` is zero: such a limit would never grant anything.
    pub fn per(units: u64, period: Duration) -> Self {
        assert!(units > 0 && !period.is_zero(), "a rate limit grants at least one unit per non-zero period");
        Self { units, period }
    }

    /// The units granted per period (and the most one acquisition may ask for).
    pub fn units(&self) -> u64 {
        self.units
    }

    /// The period.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// How long `units` take to refill.
    fn refill(&self, units: u64) -> Duration {
        let nanos = self.period.as_nanos() * u128::from(units) / u128::from(self.units);
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }
}

/// One named limit's bucket, kept as the time at which it would be full again if
/// nothing more were taken (GCRA's "theoretical arrival time"): one instant under a
/// lock, whatever the number of waiters, and waiters are served in the order they
/// asked.
#[derive(Debug)]
pub(crate) struct Bucket {
    limit: RateLimit,
    full_at: Mutex<Instant>,
}

impl Bucket {
    fn new(limit: RateLimit, now: Instant) -> Self {
        Self { limit, full_at: Mutex::new(now + limit.period) }
    }

    /// Reserves `units` and returns how long until they may be used; or, without
    /// reserving anything, the wait when it would end after `deadline`.
    fn reserve(&self, units: u64, now: Instant, deadline: Option<Instant>) -> Result<Duration, Duration> {
        let mut full_at = self.full_at.lock().unwrap_or_else(|e| e.into_inner());
        let after = (*full_at).max(now) + self.limit.refill(units);
        let wait = (after - self.limit.period).saturating_duration_since(now);
        if deadline.is_some_and(|deadline| now + wait > deadline) {
            return Err(wait);
        }
        *full_at = after;
        Ok(wait)
    }

    /// Gives back `units` reserved but not used (the waiter was cancelled).
    fn give_back(&self, units: u64) {
        let mut full_at = self.full_at.lock().unwrap_or_else(|e| e.into_inner());
        *full_at = full_at.checked_sub(self.limit.refill(units)).unwrap_or(*full_at);
    }
}

/// The limits of one worker, by name.
#[derive(Debug, Default, Clone)]
pub(crate) struct RateLimits {
    buckets: HashMap<String, Arc<Bucket>>,
}

impl RateLimits {
    /// Adds (or replaces) the limit `name`.
    pub(crate) fn insert(&mut self, name: &str, limit: RateLimit) {
        self.buckets.insert(name.to_owned(), Arc::new(Bucket::new(limit, Instant::now())));
    }

    pub(crate) fn get(&self, name: &str) -> Option<&Arc<Bucket>> {
        self.buckets.get(name)
    }

    /// The registered names, sorted.
    pub(crate) fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.buckets.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }
}

/// Waits for `units` of `bucket` (named `name`), giving up at once when the wait would
/// pass `deadline`, and when `cancelled` resolves first.
pub(crate) async fn acquire(
    (name, bucket): (&str, &Bucket),
    units: u64,
    deadline: Option<Instant>,
    cancelled: impl Future<Output = String>,
) -> Result<Duration, ActivityError> {
    if units > bucket.limit.units {
        return Err(ActivityError::terminal(
            codes::RATE_LIMIT_TOO_LARGE,
            format!(
                "rate limit {name:?} grants at most {} units per {:?}; {units} were asked for at once",
                bucket.limit.units, bucket.limit.period
            ),
        ));
    }
    let wait = bucket.reserve(units, Instant::now(), deadline).map_err(|wait| {
        ActivityError::retryable(
            codes::RATE_LIMITED,
            format!("rate limit {name:?}: {units} units would take {wait:?}, past the attempt's deadline"),
        )
    })?;
    if wait.is_zero() {
        telemetry::rate_limit_waited(name, wait);
        return Ok(wait);
    }
    tracing::debug!(limit = name, units, ?wait, "waiting for a rate limit");
    telemetry::rate_limit_waiting(name, 1.0);
    let span =
        tracing::info_span!("rate_limit_wait", kruxiaflow.rate_limit = name, kruxiaflow.rate_limit.units = units);
    let waited = tokio::select! {
        () = tokio::time::sleep(wait).instrument(span) => Ok(wait),
        reason = cancelled => {
            bucket.give_back(units);
            Err(ActivityError::retryable(
                codes::RATE_LIMIT_CANCELLED,
                format!("stopped waiting for rate limit {name:?}: {reason}"),
            ))
        }
    };
    telemetry::rate_limit_waiting(name, -1.0);
    if let Ok(wait) = waited {
        telemetry::rate_limit_waited(name, wait);
    }
    waited
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_bucket_fills_at_the_rate_and_holds_one_period() {
        let start = Instant::now();
        let bucket = Bucket::new(RateLimit::per_second(10), start);
        assert_eq!(bucket.reserve(1, start, None), Ok(Duration::from_millis(100)));
        assert_eq!(bucket.reserve(2, start, None), Ok(Duration::from_millis(300)));
        // After a quiet spell of ten seconds: a full period's worth at once, no more.
        let later = start + Duration::from_secs(10);
        assert_eq!(bucket.reserve(10, later, None), Ok(Duration::ZERO));
        assert_eq!(bucket.reserve(1, later, None), Ok(Duration::from_millis(100)));
    }

    #[test]
    fn a_wait_past_the_deadline_reserves_nothing() {
        let start = Instant::now();
        let bucket = Bucket::new(RateLimit::per_second(10), start);
        let deadline = Some(start + Duration::from_millis(250));
        assert_eq!(bucket.reserve(5, start, deadline), Err(Duration::from_millis(500)));
        assert_eq!(bucket.reserve(2, start, deadline), Ok(Duration::from_millis(200)), "nothing was taken");
    }

    #[test]
    fn units_given_back_are_available_to_the_next() {
        let start = Instant::now();
        let bucket = Bucket::new(RateLimit::per_second(10), start);
        assert_eq!(bucket.reserve(5, start, None), Ok(Duration::from_millis(500)));
        bucket.give_back(5);
        assert_eq!(bucket.reserve(1, start, None), Ok(Duration::from_millis(100)));
    }

    #[test]
    fn per_minute_limits_refill_by_fractions_of_a_second() {
        assert_eq!(RateLimit::per_minute(500).refill(1), Duration::from_millis(120));
        assert_eq!(RateLimit::per_minute(200_000).refill(1500), Duration::from_millis(450));
    }
}
