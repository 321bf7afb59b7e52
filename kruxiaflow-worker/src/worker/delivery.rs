//! Delivering reports until the server answers them, and knowing which could not be
//! delivered before the worker had to stop.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::client::{ApiClient, ClientError, encode};
use crate::context::Spend;
use crate::error::{ActivityError, codes};
use crate::report::Report;
use crate::telemetry::WorkerMetrics;

/// Reports sent at once; more wait for a slot. Without a cap, a burst of activities
/// finishing together opens one connection per report.
const REPORTS_IN_FLIGHT: usize = 32;

pub(super) struct Reporter {
    client: ApiClient,
    metrics: Arc<WorkerMetrics>,
    slots: Semaphore,
    /// Fired when shutdown's time for reports is up.
    give_up: CancellationToken,
    undelivered: Mutex<Vec<Uuid>>,
}

impl Reporter {
    pub(super) fn new(client: ApiClient, metrics: Arc<WorkerMetrics>) -> Self {
        Self {
            client,
            metrics,
            slots: Semaphore::new(REPORTS_IN_FLIGHT),
            give_up: CancellationToken::new(),
            undelivered: Mutex::default(),
        }
    }

    /// Sends `report` (encoded as `body`) until the server answers it, or until
    /// [`give_up`](Self::give_up), which records the activity as undelivered. Returns
    /// the report the server took: `report`, a fallback for it, or none.
    pub(super) async fn deliver(&self, activity_id: Uuid, report: Report, body: Bytes) -> Option<Report> {
        let delivery = async {
            let _slot = self.slots.acquire().await.expect("the report semaphore is never closed");
            // Boxed: the request future is large and only alive while reporting.
            Box::pin(self.send_until_answered(activity_id, report, body)).await
        };
        self.metrics.reports_pending(1.0);
        let accepted = tokio::select! {
            accepted = delivery => accepted,
            () = self.give_up.cancelled() => {
                tracing::error!("the report could not be delivered before the worker stopped; the activity returns to the queue when its lease expires");
                self.undelivered.lock().unwrap_or_else(|e| e.into_inner()).push(activity_id);
                None
            }
        };
        self.metrics.reports_pending(-1.0);
        accepted
    }

    /// Stops every delivery still trying.
    pub(super) fn give_up(&self) {
        self.give_up.cancel();
    }

    pub(super) fn undelivered(&self) -> Vec<Uuid> {
        self.undelivered.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// A definitive refusal of a report must not strand the activity: the report is
    /// re-sent in a form the server accepts.
    async fn send_until_answered(&self, activity_id: Uuid, report: Report, body: Bytes) -> Option<Report> {
        let Err(error) = self.send(activity_id, &report, body).await else {
            return Some(report);
        };
        let fallback = match error.status() {
            // Most often our own earlier attempt, committed before its answer was lost.
            Some(409) => {
                tracing::info!(%error, "activity already settled at the server; report dropped");
                return Some(report);
            }
            Some(404) => {
                tracing::warn!(%error, "the server does not know this activity; report dropped");
                return None;
            }
            Some(413) => too_large(&report),
            Some(422) => report.without_spend().unwrap_or_else(|| refused_output(&report, &error)),
            _ => {
                tracing::error!(%error, "the server refused the {} report", report.endpoint());
                return None;
            }
        };
        tracing::error!(%error, "the server refused the {} report; sending a failure it accepts", report.endpoint());
        let body = encode(&fallback);
        match self.send(activity_id, &fallback, body).await {
            Ok(()) => Some(fallback),
            Err(error) => {
                tracing::error!(%error, "fallback report refused too; the activity returns to the queue when its lease expires");
                None
            }
        }
    }

    async fn send(&self, activity_id: Uuid, report: &Report, body: Bytes) -> Result<(), ClientError> {
        let ack = self.client.report(activity_id, report, body).await?;
        for warning in &ack.warnings {
            tracing::warn!(%warning, "server warning about reported usage");
        }
        match (report, ack.will_retry) {
            (Report::Fail(body), Some(will_retry)) => {
                tracing::info!(code = %body.error.code, will_retry, "failure reported")
            }
            _ => tracing::debug!("{} reported", report.endpoint()),
        }
        Ok(())
    }
}

/// A report the server found too large (413): a terminal `OUTPUT_TOO_LARGE` failure.
fn too_large(report: &Report) -> Report {
    let error = ActivityError::terminal(
        codes::OUTPUT_TOO_LARGE,
        "the server refused the report as too large (413); return large data as a file output (ctx.file_output) instead",
    );
    Report::from_outcome(report.worker_id(), Err(error), Spend::default())
}

/// A completion the server refused even without spend: fail it terminally instead,
/// since the same output would be refused on every retry.
fn refused_output(report: &Report, error: &ClientError) -> Report {
    let error = ActivityError::terminal(
        codes::INVALID_OUTPUT,
        format!("the server refused the activity's report: {}", error.server_message()),
    );
    Report::from_outcome(report.worker_id(), Err(error), Spend::default())
}
