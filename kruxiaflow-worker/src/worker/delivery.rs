//! Delivering reports until the server answers them, and knowing which could not be
//! delivered before the worker had to stop.

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::lease::Lease;
use crate::client::{ApiClient, ClientError};
use crate::context::Spend;
use crate::error::{ActivityError, codes};
use crate::protocol::encode;
use crate::report::Report;
use crate::telemetry::WorkerMetrics;
use crate::text::Escaped;

/// Reports sent at once; more wait for a slot. Without a cap, a burst of activities
/// finishing together opens one connection per report.
const REPORTS_IN_FLIGHT: usize = 32;

pub(super) struct Reporter {
    client: ApiClient,
    metrics: Arc<WorkerMetrics>,
    slots: Semaphore,
    /// Fired when shutdown's time for reports is up; shared with [`sibling`](Self::sibling)s.
    give_up: CancellationToken,
    undelivered: Arc<Mutex<Vec<Uuid>>>,
    /// The server's warnings already logged: each is logged once (the unknown-model
    /// warning comes with every completion that uses the model).
    warned: Arc<Mutex<HashSet<String>>>,
}

/// Distinct server warnings remembered; past that, repeats are logged again.
const WARNINGS_REMEMBERED: usize = 1024;

impl Reporter {
    pub(super) fn new(client: ApiClient, metrics: Arc<WorkerMetrics>) -> Self {
        Self {
            client,
            metrics,
            slots: Semaphore::new(REPORTS_IN_FLIGHT),
            give_up: CancellationToken::new(),
            undelivered: Arc::default(),
            warned: Arc::default(),
        }
    }

    /// A reporter sending over `client`, given up together with this one and keeping
    /// one list of the undelivered.
    pub(super) fn sibling(&self, client: ApiClient) -> Self {
        Self {
            client,
            metrics: Arc::clone(&self.metrics),
            slots: Semaphore::new(REPORTS_IN_FLIGHT),
            give_up: self.give_up.clone(),
            undelivered: Arc::clone(&self.undelivered),
            warned: Arc::clone(&self.warned),
        }
    }

    /// Sends `report` (encoded as `body`) until the server answers it, until
    /// [`give_up`](Self::give_up), which records the activity as undelivered, or until
    /// `lease` is lost. Returns the report the server took: `report`, a fallback for
    /// it, or none.
    ///
    /// A heartbeat 409 while the report is being retried means the report never
    /// committed and never will: the activity is someone else's now.
    pub(super) async fn deliver<'r>(
        &self,
        activity_id: Uuid,
        report: &'r Report,
        body: Bytes,
        lease: Option<&Lease>,
    ) -> Option<Cow<'r, Report>> {
        let delivery = async {
            let _slot = self.slots.acquire().await.expect("the report semaphore is never closed");
            // Boxed: the request future is large and only alive while reporting.
            Box::pin(self.send_until_answered(activity_id, report, body)).await
        };
        let lost = async {
            match lease {
                Some(lease) => lease.lost().await,
                None => std::future::pending().await,
            }
        };
        self.metrics.reports_pending(1.0);
        let accepted = tokio::select! {
            accepted = delivery => accepted,
            () = lost => {
                tracing::warn!("lease lost while reporting; the report is dropped and the server runs the activity again");
                None
            }
            () = self.give_up.cancelled() => {
                tracing::error!("the report could not be delivered before the worker stopped; the activity returns to the queue when its lease expires");
                let mut undelivered = self.undelivered.lock().unwrap_or_else(|e| e.into_inner());
                // An attempt and its takeover may both have been delivering it.
                if !undelivered.contains(&activity_id) {
                    undelivered.push(activity_id);
                }
                None
            }
        };
        self.metrics.reports_pending(-1.0);
        accepted
    }

    /// Runs `work` (what must come before a report, such as a stream's end) until it
    /// is done or the reports are given up.
    pub(super) async fn unless_given_up<T>(&self, work: impl std::future::Future<Output = T>) -> Option<T> {
        tokio::select! {
            done = work => Some(done),
            () = self.give_up.cancelled() => None,
        }
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
    async fn send_until_answered<'r>(
        &self,
        activity_id: Uuid,
        report: &'r Report,
        body: Bytes,
    ) -> Option<Cow<'r, Report>> {
        let Err(error) = self.send(activity_id, report, body).await else {
            return Some(Cow::Borrowed(report));
        };
        let fallback = match error.verdict() {
            // Most often our own earlier attempt, committed before its answer was lost.
            Some(409) => {
                tracing::info!(%error, "activity already settled at the server; report dropped");
                return Some(Cow::Borrowed(report));
            }
            Some(404) => {
                tracing::warn!(%error, "the server does not know this activity; report dropped");
                return None;
            }
            Some(413) => too_large(report),
            Some(422) => report.without_spend().unwrap_or_else(|| refused_output(report, &error)),
            _ => {
                tracing::error!(%error, "the server refused the {} report", report.endpoint());
                return None;
            }
        };
        tracing::error!(%error, "the server refused the {} report; sending a failure it accepts", report.endpoint());
        let body = encode(&fallback);
        match self.send(activity_id, &fallback, body).await {
            Ok(()) => Some(Cow::Owned(fallback)),
            Err(error) => {
                tracing::error!(%error, "fallback report refused too; the activity returns to the queue when its lease expires");
                None
            }
        }
    }

    async fn send(&self, activity_id: Uuid, report: &Report, body: Bytes) -> Result<(), ClientError> {
        let ack = self.client.report(activity_id, report, body).await?;
        for warning in &ack.warnings {
            self.server_warning(warning);
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

impl Reporter {
    /// Logs a warning the server sent with an answer: the first time at WARN, later
    /// times at debug.
    fn server_warning(&self, warning: &str) {
        let first = {
            let mut warned = self.warned.lock().unwrap_or_else(|e| e.into_inner());
            if warned.len() >= WARNINGS_REMEMBERED {
                warned.clear();
            }
            warned.insert(warning.to_owned())
        };
        if first {
            tracing::warn!(warning = %Escaped(warning), "server warning about reported usage (logged once)");
        } else {
            tracing::debug!(warning = %Escaped(warning), "server warning about reported usage");
        }
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
