//! The poll loop of one worker type. It alone decides when to poll again: after work
//! at once, after an empty answer in `poll_interval`, after a failure with a growing
//! pause.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, watch};
use tokio::time::Instant;

use super::shutdown::Phase;
use super::{Services, intake};
use crate::client::ClientError;
use crate::error::WorkerError;
use crate::protocol::PollRequest;
use crate::telemetry::{self, PollMetrics, PollResult};

/// Claims activities while the worker runs. A slot is held before polling so that a
/// poll never claims more than this worker can start right away: anything claimed but
/// not started would sit idle while its lease runs down.
///
/// Returns an error, before its first successful poll, on an answer that says no poll
/// will ever succeed with this configuration (credentials refused, no such route, a
/// redirect); transient trouble is retried for ever, since the server may start after
/// the worker.
pub(super) async fn poll_loop(
    services: Arc<Services>,
    worker: String,
    mut phase: watch::Receiver<Phase>,
) -> Result<(), WorkerError> {
    let health = services.health.poller(&worker);
    let alive = health.alive();
    let metrics = PollMetrics::new(&worker);
    let mut outage = Outage::default();
    let mut ever_succeeded = false;
    let mut over_delivery_warned = false;
    // The pauses of the current run of failures, if there is one.
    let mut pauses = None;
    loop {
        if *phase.borrow_and_update() != Phase::Running {
            break;
        }
        let first = tokio::select! {
            biased;
            _ = phase.changed() => continue,
            permit = Arc::clone(&services.slots).acquire_owned() => permit.expect("the slot semaphore is never closed"),
        };
        let mut permits = vec![first];
        let batch = services.config.poll_max_activities as usize;
        while permits.len() < batch {
            match Arc::clone(&services.slots).try_acquire_owned() {
                Ok(permit) => permits.push(permit),
                Err(_) => break,
            }
        }
        let request = PollRequest {
            worker: worker.clone(),
            worker_id: services.config.worker_id.clone(),
            max_activities: permits.len() as u32,
        };
        // A poll in flight when a graceful shutdown starts may finish, so the
        // activities it claimed are started (and drained) rather than stranded; the
        // shutdown bounds how long it may take.
        services.metrics.slots_free(services.slots.available_permits());
        health.poll_started(&services.health);
        let started = Instant::now();
        let polled = services.work.poll(&request).await;
        health.poll_ended(polled.is_ok());
        let result = match &polled {
            Ok(items) if items.is_empty() => PollResult::Empty,
            Ok(_) => PollResult::Work,
            Err(_) => PollResult::Error,
        };
        metrics.polled(result, started.elapsed());
        let pause = match polled {
            Ok(items) => {
                ever_succeeded = true;
                outage.ended(&worker);
                pauses = None;
                let pause = items.is_empty().then_some(services.config.poll_interval);
                start_all(&services, items, permits, &mut over_delivery_warned);
                pause
            }
            Err(error) => {
                if !ever_succeeded && let Some(reason) = never_succeeds(&error, &services.config.api_url) {
                    return Err(WorkerError::Startup(reason));
                }
                drop(permits);
                services.metrics.slots_free(services.slots.available_permits());
                telemetry::retried("poll");
                let pause = pauses.get_or_insert_with(|| services.retry.pauses()).next();
                let pause = pause.unwrap_or(services.retry.max_delay);
                outage.failed(&worker, &error, pause);
                Some(pause)
            }
        };
        if let Some(pause) = pause {
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                _ = phase.changed() => {}
            }
        }
    }
    alive.stopped();
    tracing::debug!(%worker, "poller stopped");
    Ok(())
}

/// Why no poll will ever succeed after `error`, if it says so.
fn never_succeeds(error: &ClientError, api_url: &str) -> Option<String> {
    match error {
        ClientError::Unauthorized(_) | ClientError::CredentialsRequired | ClientError::Redirect { .. } => {
            Some(error.to_string())
        }
        ClientError::Status { status: 404, url, .. } => Some(format!(
            "{url} answered 404: the server has no such route; KRUXIAFLOW_API_URL ({api_url}) must be the server's base URL, without a path such as /api/v1"
        )),
        _ => None,
    }
}

/// Starts what a poll claimed. A server sending more than asked is misbehaving (warned
/// once per poller), but what it sent is claimed and must run.
fn start_all(
    services: &Arc<Services>,
    items: Vec<Box<serde_json::value::RawValue>>,
    mut permits: Vec<OwnedSemaphorePermit>,
    warned: &mut bool,
) {
    if items.len() > permits.len() && !std::mem::replace(warned, true) {
        tracing::warn!(
            asked = permits.len(),
            got = items.len(),
            "the server returned more activities than asked for; the extra ones wait for a free slot"
        );
    }
    for item in items {
        intake::admit(services, &item, permits.pop());
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
