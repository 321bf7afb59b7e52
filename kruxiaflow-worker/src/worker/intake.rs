//! Turning the raw items of a poll into attempts, one by one: an item that cannot be
//! understood is failed on its own and never takes the rest of the batch with it.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::runtime::Handle;
use tokio::time::Instant;
use uuid::Uuid;

use super::attempt::{Attempt, Deadline, Execution};
use super::backend::ServerBackend;
use super::in_flight::{AttemptState, InFlight, Watch};
use super::slots::Slot;
use super::stream_transport::ServerTransport;
use super::takeover::Takeovers;
use crate::client::ApiClient;
use crate::config::WorkerConfig;
use crate::context::{ActivityContext, ActivityInfo, Spend};
use crate::error::{ActivityError, codes};
use crate::protocol::PendingActivity;
use crate::rate_limit::RateLimits;
use crate::settle::{Ending, HandlerOutcome, LeaseState, settle};
use crate::stream::{self, StreamDriver, StreamEnding, TokenStream};
use crate::text::Escaped;

/// The server's lease when an activity has no `timeout_seconds`.
pub(super) const DEFAULT_LEASE: Duration = Duration::from_secs(60);
/// Timeouts from the server are clamped to this, so no number can overflow a clock.
const MAX_TIMEOUT: Duration = Duration::from_secs(366 * 24 * 3600);
/// How long after its deadline and cancellation grace a handler that still has not
/// returned counts as stuck, so that the worker's runtime settles it: time for a task
/// that does run to settle on its own first.
const OVERDUE_MARGIN: Duration = Duration::from_secs(1);

/// What turns poll items into running attempts.
pub(super) struct Intake {
    pub(super) execution: Arc<Execution>,
    /// The worker's rate limits, shared by every attempt's context.
    pub(super) rate_limits: Arc<RateLimits>,
    pub(super) config: WorkerConfig,
    /// The worker's own traffic (heartbeats, token streams), driven by `control`.
    pub(super) client: ApiClient,
    pub(super) control: Handle,
    /// The activities' traffic (file transfers), driven by `activities`.
    pub(super) work: ApiClient,
    pub(super) in_flight: Arc<InFlight>,
    pub(super) takeovers: Arc<Takeovers>,
    /// Where attempts run.
    pub(super) activities: Handle,
}

impl Intake {
    /// Starts the attempt of `raw`, holding `slot` (or waiting for one), or fails an
    /// item that cannot be understood.
    pub(super) fn admit(&self, raw: &RawValue, slot: Option<Slot>) {
        match serde_json::from_str::<PendingActivity>(raw.get()) {
            Ok(item) => {
                if let Some(attempt) = attempt(self, item, slot) {
                    self.activities.spawn(attempt.run(Arc::clone(&self.execution)));
                }
            }
            Err(error) => refuse(self, raw, &error),
        }
    }
}

/// The attempt of `item`, holding `slot` (or waiting for one). It is registered among
/// the in-flight attempts first, so its lease is kept and it is settled from the
/// worker's runtime if its own task cannot.
fn attempt(services: &Intake, item: PendingActivity, slot: Option<Slot>) -> Option<Attempt> {
    let timeouts = Timeouts::for_item(&item, services.config.activity_timeout, services.config.heartbeat_interval);
    let (stream, token_stream) = if stream::opted_in(&item.settings) {
        let transport = ServerTransport::new(services.client.clone(), item.activity_id, services.config.http_timeout);
        let (driver, token_stream) = StreamDriver::new(transport, services.config.stream_linger);
        (Some(Box::new(StreamEnding::new(driver))), Some(token_stream))
    } else {
        (None, None)
    };
    let state = AttemptState::new(stream);
    let backend = ServerBackend::new(
        (services.client.clone(), services.control.clone(), services.work.clone()),
        Arc::clone(&state),
        (item.activity_id, services.config.worker_id.clone()),
        timeouts.heartbeat,
    );
    // The execution timeout counts from the claim, as the server's lease does.
    let deadline = Instant::now() + timeouts.execution;
    let info = ActivityInfo {
        activity_id: item.activity_id,
        workflow_id: item.workflow_id,
        activity_key: item.activity_key,
        worker: item.worker,
        activity_name: item.activity_name,
        worker_id: services.config.worker_id.clone(),
        signal: item.signal_data,
        settings: item.settings,
        output_definitions: item.output_definitions.unwrap_or_default(),
        deadline: Some(deadline),
    };
    let token_stream = token_stream.unwrap_or_else(TokenStream::disabled);
    let ctx = ActivityContext::with_stream(info, Arc::new(backend), token_stream, Arc::clone(&services.rate_limits));
    let watch = Watch {
        heartbeat_every: timeouts.heartbeat,
        timeout: timeouts.execution,
        overdue_at: deadline + services.config.cancellation_grace + OVERDUE_MARGIN,
    };
    let Some(registration) = services.in_flight.register(&ctx, &state, watch) else {
        tracing::warn!(activity_id = %item.activity_id, "activity is already running on this worker; not starting it twice");
        return None;
    };
    let deadline = Deadline { timeout: timeouts.execution, at: deadline };
    let slot = slot.map(|slot| services.execution.slots.run_in(slot));
    Some(Attempt::new((ctx, item.parameters), deadline, slot, state, registration))
}

/// An item that does not parse is failed terminally (it would not parse on a retry
/// either), if it has an id to fail it by.
fn refuse(services: &Intake, raw: &RawValue, error: &serde_json::Error) {
    #[derive(Deserialize)]
    struct IdOnly {
        activity_id: Uuid,
    }
    let Ok(IdOnly { activity_id }) = serde_json::from_str(raw.get()) else {
        return tracing::error!(
            error = %Escaped(&error.to_string()),
            "poll item has no usable activity_id, so it cannot be reported; it stays claimed until its lease expires"
        );
    };
    let message = format!("the worker could not parse this activity: {error}");
    tracing::error!(%activity_id, error = %Escaped(&message), "failing a poll item that cannot be parsed");
    let ending = Ending {
        outcome: HandlerOutcome::Returned(Err(ActivityError::terminal(codes::INVALID_ACTIVITY, message))),
        cancelled: None,
        lease: LeaseState::Held,
        spend: Spend::default(),
        timeout: None,
    };
    // With the lease held, the settle rule always reports.
    let Some((report, body)) = settle(&services.config.worker_id, ending) else { return };
    services.takeovers.refused(activity_id, report, body);
}

/// How long an attempt may run, and how often its lease is renewed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Timeouts {
    pub(super) execution: Duration,
    pub(super) heartbeat: Duration,
}

impl Timeouts {
    /// A positive `timeout_seconds` is both the execution timeout and the lease; without
    /// one the worker's own timeout applies while the server's lease is 60 s. Heartbeats
    /// go out at a third of the lease at least, so two may be lost without losing it.
    pub(super) fn for_item(item: &PendingActivity, default_timeout: Duration, max_heartbeat: Duration) -> Self {
        let given = item.timeout_seconds.filter(|&s| s > 0).map(|s| Duration::from_secs(s as u64).min(MAX_TIMEOUT));
        let lease = given.unwrap_or(DEFAULT_LEASE);
        Self { execution: given.unwrap_or(default_timeout), heartbeat: max_heartbeat.min(lease / 3) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn item(timeout_seconds: Option<i64>) -> PendingActivity {
        PendingActivity {
            activity_id: Uuid::nil(),
            workflow_id: Uuid::nil(),
            activity_key: "k".into(),
            worker: "w".into(),
            activity_name: "n".into(),
            parameters: Value::Null,
            settings: Value::Null,
            timeout_seconds,
            output_definitions: None,
            signal_data: None,
        }
    }

    #[test]
    fn heartbeats_keep_short_and_default_leases() {
        let thirty = Duration::from_secs(30);
        let five_min = Duration::from_secs(300);
        let t = Timeouts::for_item(&item(Some(6)), five_min, thirty);
        assert_eq!(t, Timeouts { execution: Duration::from_secs(6), heartbeat: Duration::from_secs(2) });
        let t = Timeouts::for_item(&item(None), five_min, thirty);
        assert_eq!(t, Timeouts { execution: five_min, heartbeat: Duration::from_secs(20) });
        let t = Timeouts::for_item(&item(Some(3600)), five_min, thirty);
        assert_eq!(t.heartbeat, thirty);
    }

    #[test]
    fn zero_or_negative_timeouts_mean_the_default_not_an_instant_timeout() {
        let five_min = Duration::from_secs(300);
        for bad in [0, -5] {
            let t = Timeouts::for_item(&item(Some(bad)), five_min, Duration::from_secs(30));
            assert_eq!(t.execution, five_min);
            assert_eq!(t.heartbeat, Duration::from_secs(20));
        }
    }

    #[test]
    fn huge_timeouts_are_clamped_so_no_clock_overflows() {
        let t = Timeouts::for_item(&item(Some(i64::MAX)), Duration::from_secs(300), Duration::from_secs(30));
        assert_eq!(t, Timeouts { execution: MAX_TIMEOUT, heartbeat: Duration::from_secs(30) });
        assert!(Instant::now().checked_add(t.execution).is_some());
    }
}
