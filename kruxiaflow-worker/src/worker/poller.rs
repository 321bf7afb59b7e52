//! The poll loop of one worker type. It alone decides when to poll again: after work
//! at once, after an empty answer in `poll_interval`, after a failure with a growing
//! pause.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::attempt::Intake;
use super::health::Health;
use super::in_flight::{Slot, Slots};
use super::shutdown::Phase;
use crate::client::ClientError;
use crate::client::{ApiClient, RetryPolicy};
use crate::config::WorkerConfig;
use crate::error::WorkerError;
use crate::protocol::PollRequest;
use crate::telemetry::{self, PollMetrics, PollResult};
use serde_json::value::RawValue;

/// Claims activities while the worker runs. A slot is held before polling so that a
/// poll never claims more than this worker can start right away: anything claimed but
/// not started would sit idle while its lease runs down.
///
/// Returns an error, before its first successful poll, when no poll will ever succeed
/// with this configuration (see [`StartupCheck`]); transient trouble is retried for
/// ever, since the server may start after the worker.
pub(super) async fn poll_loop(
    services: Arc<Polling>,
    worker: String,
    mut phase: watch::Receiver<Phase>,
) -> Result<(), WorkerError> {
    let health = services.health.poller(&worker);
    let alive = health.alive();
    let mut poller = Poller::new(&services, worker);
    loop {
        if *phase.borrow_and_update() != Phase::Running {
            break;
        }
        let first = tokio::select! {
            biased;
            _ = phase.changed() => continue,
            slot = services.slots.acquire(&poller.worker) => slot,
        };
        let slots = poller.more_slots(first);
        // A poll in flight when a graceful shutdown starts may finish, so the
        // activities it claimed are started (and drained) rather than stranded; the
        // shutdown bounds how long it may take.
        let started = Instant::now();
        let polled = poller.poll(slots.len()).await;
        poller.polled(&polled, started.elapsed());
        health.poll_ended(polled.is_ok());
        let pause = match polled {
            Ok(items) => poller.claimed(items, slots),
            Err(error) => poller.failed(&error)?,
        };
        if let Some(pause) = pause {
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                _ = phase.changed() => {}
            }
        }
    }
    alive.stopped();
    tracing::debug!(worker = %poller.worker, "poller stopped");
    Ok(())
}

/// What the poll loops use.
pub(super) struct Polling {
    pub(super) intake: Intake,
    pub(super) slots: Arc<Slots>,
    pub(super) health: Arc<Health>,
    /// Polls go over the activities' pool, where what they claim runs.
    pub(super) work: ApiClient,
    pub(super) retry: RetryPolicy,
    pub(super) config: WorkerConfig,
}

/// What one poll loop keeps between polls.
struct Poller<'a> {
    services: &'a Polling,
    worker: String,
    metrics: PollMetrics,
    outage: Outage,
    /// Until the first successful poll.
    startup: Option<StartupCheck>,
    over_delivery_warned: bool,
    /// The pauses of the current run of failures, if there is one.
    pauses: Option<Box<dyn Iterator<Item = Duration> + Send>>,
}

impl<'a> Poller<'a> {
    fn new(services: &'a Polling, worker: String) -> Self {
        Self {
            services,
            metrics: PollMetrics::new(&worker),
            worker,
            outage: Outage::default(),
            startup: Some(StartupCheck::default()),
            over_delivery_warned: false,
            pauses: None,
        }
    }

    /// `first` and the free slots up to `poll_max_activities`.
    fn more_slots(&self, first: Slot) -> Vec<Slot> {
        let mut slots = vec![first];
        let batch = self.services.config.poll_max_activities as usize;
        while slots.len() < batch
            && let Some(slot) = self.services.slots.try_acquire(&self.worker)
        {
            slots.push(slot);
        }
        slots
    }

    /// One poll for up to `max_activities`. The future borrows only the services, so
    /// the loop's future stays `Send`.
    fn poll(&self, max_activities: usize) -> impl Future<Output = Result<Vec<Box<RawValue>>, ClientError>> + Send + 'a {
        let services = self.services;
        let request = PollRequest {
            worker: self.worker.clone(),
            worker_id: services.config.worker_id.clone(),
            max_activities: max_activities as u32,
        };
        async move { services.work.poll(&request).await }
    }

    /// Counts a poll that took `took`.
    fn polled(&self, polled: &Result<Vec<Box<RawValue>>, ClientError>, took: Duration) {
        let result = match polled {
            Ok(items) if items.is_empty() => PollResult::Empty,
            Ok(_) => PollResult::Work,
            Err(_) => PollResult::Error,
        };
        self.metrics.polled(result, took);
    }

    /// Starts what a poll claimed in `slots`; the pause before the next poll.
    fn claimed(&mut self, items: Vec<Box<RawValue>>, slots: Vec<Slot>) -> Option<Duration> {
        self.startup = None;
        self.outage.ended(&self.worker);
        self.pauses = None;
        let pause = items.is_empty().then_some(self.services.config.poll_interval);
        start_all(self.services, items, slots, &mut self.over_delivery_warned);
        pause
    }

    /// A failed poll: the pause before the next one, or the reason none will succeed.
    fn failed(&mut self, error: &ClientError) -> Result<Option<Duration>, WorkerError> {
        let services = self.services;
        if let Some(check) = &mut self.startup
            && let Some(reason) = check.judge(error, &services.config.shown_api_url(), Instant::now())
        {
            return Err(WorkerError::Startup(reason));
        }
        telemetry::retried("poll");
        let pauses = self.pauses.get_or_insert_with(|| Box::new(services.retry.pauses()));
        let pause = pauses.next().unwrap_or(services.retry.max_delay);
        self.outage.failed(&self.worker, error, pause);
        Ok(Some(pause))
    }
}

/// How long, before the first successful poll, refusals that are not the server's own
/// answer (a proxy's plain-text 404 or 401 while the server restarts behind it) may go
/// on before the worker gives up: a rolling restart lasts seconds, a wrong address for
/// ever.
pub(super) const STARTUP_REFUSALS_FOR: Duration = Duration::from_secs(30);

/// Decides, until the first poll succeeds, whether no poll ever will: at once on the
/// server's own verdict (its JSON 404 for the route, credentials it refuses, a
/// redirect), and on other refusals only once they have lasted [`STARTUP_REFUSALS_FOR`].
#[derive(Default)]
pub(super) struct StartupCheck {
    refused_since: Option<Instant>,
}

impl StartupCheck {
    /// Why the worker must stop after `error` at `now`, if it must.
    pub(super) fn judge(&mut self, error: &ClientError, api_url: &str, now: Instant) -> Option<String> {
        match error {
            ClientError::Unauthorized(_) | ClientError::CredentialsRequired | ClientError::Redirect { .. } => {
                return Some(error.to_string());
            }
            ClientError::Status { url, .. } if error.verdict() == Some(404) => {
                return Some(format!(
                    "{url} answered 404: the server has no such route; KRUXIAFLOW_API_URL ({api_url}) must be the server's base URL, without a path such as /api/v1"
                ));
            }
            // A refusal that is not the server's: a proxy in front of it, or another
            // web server at that address.
            ClientError::Status { status, .. }
                if (400..500).contains(status) && !matches!(status, 408 | 429) && error.verdict().is_none() => {}
            _ => {
                self.refused_since = None;
                return None;
            }
        }
        let since = *self.refused_since.get_or_insert(now);
        (now.duration_since(since) >= STARTUP_REFUSALS_FOR).then(|| {
            format!(
                "every poll for {} s was refused by something other than a Kruxia Flow server (last: {error}); check that KRUXIAFLOW_API_URL ({api_url}) is the server's base URL",
                STARTUP_REFUSALS_FOR.as_secs()
            )
        })
    }
}

/// Starts what a poll claimed. A server sending more than asked is misbehaving (warned
/// once per poller), but what it sent is claimed and must run.
fn start_all(services: &Polling, items: Vec<Box<RawValue>>, mut permits: Vec<Slot>, warned: &mut bool) {
    if items.len() > permits.len() && !std::mem::replace(warned, true) {
        tracing::warn!(
            asked = permits.len(),
            got = items.len(),
            "the server returned more activities than asked for; the extra ones wait for a free slot"
        );
    }
    for item in items {
        services.intake.admit(&item, permits.pop());
    }
}

/// Logging of a run of failed polls: one WARN when it starts, then a line at growing
/// intervals while it lasts, and one INFO when the server answers again.
#[derive(Default)]
struct Outage {
    since: Option<Instant>,
    failures: u32,
    next_report: Option<Instant>,
}

impl Outage {
    fn failed(&mut self, worker: &str, error: &ClientError, pause: Duration) {
        let now = Instant::now();
        self.failures += 1;
        let Some(since) = self.since else {
            self.since = Some(now);
            self.next_report = Some(now + Duration::from_secs(10));
            return tracing::warn!(%worker, %error, "server unreachable, retrying");
        };
        if self.next_report.is_some_and(|at| now >= at) {
            let lasted = now - since;
            // Each reminder waits as long as the outage has lasted so far (at least
            // 10 s), so a long outage logs a handful of lines, not one per poll.
            self.next_report = Some(now + lasted.max(Duration::from_secs(10)));
            tracing::warn!(%worker, %error, failures = self.failures, ?pause, "server still unreachable after {}s", lasted.as_secs());
        }
    }

    fn ended(&mut self, worker: &str) {
        if let Some(since) = self.since.take() {
            tracing::info!(%worker, failures = self.failures, "server reachable again after {}s", since.elapsed().as_secs());
            *self = Self::default();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const API_URL: &str = "http://flow.internal:8080";

    fn proxy(status: u16) -> ClientError {
        ClientError::from_body("http://flow.internal:8080/api/v1/workers/poll", status, b"no healthy upstream")
    }

    #[test]
    fn the_servers_own_404_stops_at_once() {
        let json = br#"{"error":{"code":"NOT_FOUND","message":"Not found"}}"#;
        let error = ClientError::from_body("http://flow.internal:8080/x/api/v1/workers/poll", 404, json);
        let reason = StartupCheck::default().judge(&error, API_URL, Instant::now()).unwrap();
        assert!(reason.starts_with("http://flow.internal:8080/x/api/v1/workers/poll answered 404"), "{reason}");
        let refused = ClientError::Unauthorized("the token endpoint refused client 'w'".into());
        assert_eq!(
            StartupCheck::default().judge(&refused, API_URL, Instant::now()),
            Some("authentication failed: the token endpoint refused client 'w'".to_owned())
        );
    }

    #[test]
    fn a_proxys_refusals_stop_the_worker_only_once_they_have_lasted() {
        let start = Instant::now();
        let mut check = StartupCheck::default();
        for (after, status) in [(0, 404), (5, 401), (29, 404)] {
            assert_eq!(check.judge(&proxy(status), API_URL, start + Duration::from_secs(after)), None, "{after}");
        }
        let reason = check.judge(&proxy(404), API_URL, start + STARTUP_REFUSALS_FOR).unwrap();
        assert_eq!(
            reason,
            "every poll for 30 s was refused by something other than a Kruxia Flow server (last: \
             http://flow.internal:8080/api/v1/workers/poll answered 404: no healthy upstream); check that \
             KRUXIAFLOW_API_URL (http://flow.internal:8080) is the server's base URL"
        );
    }

    #[test]
    fn a_blip_of_refusals_between_outages_starts_the_count_again() {
        let start = Instant::now();
        let mut check = StartupCheck::default();
        assert_eq!(check.judge(&proxy(404), API_URL, start), None);
        assert_eq!(check.judge(&proxy(502), API_URL, start + Duration::from_secs(20)), None);
        assert_eq!(check.judge(&proxy(404), API_URL, start + Duration::from_secs(40)), None);
        assert!(check.judge(&proxy(404), API_URL, start + Duration::from_secs(70)).is_some());
    }
}
