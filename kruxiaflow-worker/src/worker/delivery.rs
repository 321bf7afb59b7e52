//! Delivering a report until the server answers definitively.

use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::client::{ApiClient, ClientError};
use crate::error::{ActivityError, codes};
use crate::report::Report;

/// Reports sent at once; more wait for a slot. Without a cap, a burst of activities
/// finishing together opens one connection per report.
pub(crate) const REPORTS_IN_FLIGHT: usize = 32;

/// Sends `report`. Transient failures are retried inside the client for as long as it
/// takes; here the definitive answers are handled. A 422 on a report must not strand
/// the activity, so the report is re-sent in a form the server accepts.
pub(crate) async fn deliver(client: &ApiClient, slots: &Semaphore, activity_id: Uuid, report: Report) {
    let _slot = slots.acquire().await.expect("the report semaphore is never closed");
    let Err(error) = send(client, activity_id, &report).await else {
        return;
    };
    match error.status() {
        Some(409) => tracing::info!(%error, "activity already settled at the server; report dropped"),
        Some(404) => tracing::warn!(%error, "the server does not know this activity; report dropped"),
        Some(422) => {
            tracing::error!(%error, "the server refused the {} report", report.endpoint());
            let fallback = report.without_spend().unwrap_or_else(|| refused_output(&report, &error));
            if let Err(error) = send(client, activity_id, &fallback).await {
                tracing::error!(%error, "fallback report refused too; the activity returns to the queue when its lease expires");
            }
        }
        _ => {
            tracing::error!(%error, "report could not be delivered; the activity returns to the queue when its lease expires")
        }
    }
}

async fn send(client: &ApiClient, activity_id: Uuid, report: &Report) -> Result<(), ClientError> {
    let ack = match report {
        Report::Complete(body) => client.complete(activity_id, body).await?,
        Report::Fail(body) => client.fail(activity_id, body).await?,
    };
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

/// A completion the server refused even without spend: fail it terminally instead,
/// since the same output would be refused on every retry.
fn refused_output(report: &Report, error: &ClientError) -> Report {
    let worker_id = match report {
        Report::Complete(body) => body.worker_id.as_str(),
        Report::Fail(body) => body.worker_id.as_str(),
    };
    Report::from_outcome(
        worker_id,
        Err(ActivityError::terminal(
            codes::INVALID_OUTPUT,
            format!("the server refused the activity's report: {}", error.server_message()),
        )),
        Default::default(),
    )
}
