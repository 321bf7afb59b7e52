//! Turning one raw poll item into a running activity, or into a failure report when
//! the item cannot be understood.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;
use uuid::Uuid;

use super::backend::ServerBackend;
use super::{Shared, delivery, runner};
use crate::context::{ActivityContext, ActivityInfo, Spend};
use crate::error::{ActivityError, codes};
use crate::protocol::PendingActivity;
use crate::report::Report;

/// The server's lease when an activity has no `timeout_seconds`.
pub(super) const DEFAULT_LEASE: Duration = Duration::from_secs(60);

pub(super) fn start(shared: &Arc<Shared>, raw: Value, permit: OwnedSemaphorePermit) {
    let raw_id = raw.get("activity_id").and_then(Value::as_str).and_then(|s| Uuid::parse_str(s).ok());
    match serde_json::from_value::<PendingActivity>(raw) {
        Ok(item) => start_parsed(shared, item, permit),
        Err(error) => match raw_id {
            Some(activity_id) => {
                tracing::error!(%activity_id, %error, "poll item cannot be parsed; failing it");
                let report = Report::from_outcome(
                    &shared.config.worker_id,
                    Err(ActivityError::terminal(
                        codes::INVALID_ACTIVITY,
                        format!("the worker could not parse this activity: {error}"),
                    )),
                    Spend::default(),
                );
                let task_shared = Arc::clone(shared);
                shared.tasks.spawn(async move {
                    delivery::deliver(&task_shared.client, &task_shared.report_slots, activity_id, report).await;
                    drop(permit);
                });
            }
            None => tracing::error!(
                %error,
                "poll item has no usable activity_id, so it cannot be reported; it stays claimed until its lease expires"
            ),
        },
    }
}

fn start_parsed(shared: &Arc<Shared>, item: PendingActivity, permit: OwnedSemaphorePermit) {
    let timeouts = Timeouts::for_item(&item, shared.config.activity_timeout, shared.config.heartbeat_interval);
    let info = ActivityInfo {
        activity_id: item.activity_id,
        workflow_id: item.workflow_id,
        activity_key: item.activity_key,
        worker: item.worker,
        activity_name: item.activity_name,
        worker_id: shared.config.worker_id.clone(),
        signal: item.signal_data,
        settings: item.settings,
        output_definitions: item.output_definitions.unwrap_or_default(),
        deadline: Some(Instant::now() + timeouts.execution),
    };
    let backend = ServerBackend::new(shared.client.clone(), item.activity_id, shared.config.worker_id.clone());
    let ctx = ActivityContext::new(info, Arc::new(backend));
    {
        let mut in_flight = shared.in_flight();
        if in_flight.contains_key(&item.activity_id) {
            // A lease that expired under us was reclaimed by our own poll. The
            // execution already running here still holds the claim and will report.
            tracing::warn!(activity_id = %item.activity_id, "activity is already running on this worker; not starting it twice");
            return;
        }
        in_flight.insert(item.activity_id, ctx.clone());
    }
    shared.tasks.spawn(runner::run(Arc::clone(shared), ctx, item.parameters, timeouts, permit));
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
        let given = item.timeout_seconds.filter(|&s| s > 0).map(|s| Duration::from_secs(s as u64));
        let lease = given.unwrap_or(DEFAULT_LEASE);
        Self { execution: given.unwrap_or(default_timeout), heartbeat: max_heartbeat.min(lease / 3) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
