//! How every attempt ends, whichever side decided its report — its own task, or the
//! worker's runtime taking over a handler stuck past its deadline or still running at
//! the end of a shutdown: the stream's end first, then the report until the server
//! answers it, then its metrics and its one log line. One place, so both sides end an
//! attempt alike.

use std::borrow::Cow;
use std::time::Duration;

use bytes::Bytes;
use tracing::Span;

use super::delivery::Reporter;
use super::in_flight::AttemptState;
use crate::context::{ActivityContext, ActivityInfo};
use crate::report::{self, Report};
use crate::telemetry::{Finished, WorkerMetrics};
use crate::text::Escaped;

/// The span of everything done for one attempt (with the `otel` feature, in its
/// workflow's trace). The `otel.*` and id fields are empty unless traces fill them,
/// and empty fields are not written to log lines.
pub(super) fn activity_span(info: &ActivityInfo) -> Span {
    let span = tracing::info_span!(
        "activity",
        otel.name = tracing::field::Empty,
        trace_id = tracing::field::Empty,
        span_id = tracing::field::Empty,
        activity_id = %info.activity_id,
        workflow_id = %info.workflow_id,
        activity_key = %Escaped(&info.activity_key),
        worker = %Escaped(&info.worker),
        activity_name = %Escaped(&info.activity_name),
    );
    #[cfg(feature = "otel")]
    if !span.is_disabled() {
        span.record("otel.name", tracing::field::display(format_args!("activity {}", Escaped(&info.activity_name))));
        let ids = [
            ("kruxiaflow.workflow_id", info.workflow_id.to_string()),
            ("kruxiaflow.activity_id", info.activity_id.to_string()),
            ("kruxiaflow.activity_key", info.activity_key.clone()),
            ("kruxiaflow.activity_name", info.activity_name.clone()),
            ("kruxiaflow.worker", info.worker.clone()),
            ("kruxiaflow.worker_id", info.worker_id.clone()),
        ];
        crate::otel::attempt_started(&span, info.workflow_id, ids);
    }
    span
}

/// Delivers the decided `report` (encoded as `body`) of the attempt of `ctx`: before a
/// failure that may be retried, what its step record still lacks (so that the retry
/// resumes from it); its stream's end (streaming never settles an activity); then the
/// report until the server answers it, the lease is lost, or the reports are given
/// up. Returns the report the server took: `report`, a fallback for it, or none.
pub(super) async fn deliver<'r>(
    reporter: &Reporter,
    (ctx, state): (&ActivityContext, &AttemptState),
    report: &'r Report,
    body: Bytes,
) -> Option<Cow<'r, Report>> {
    if report.may_be_retried()
        && let Some(journal) = ctx.used_journal()
    {
        reporter.unless_given_up(Box::pin(journal.flush())).await;
    }
    if let Some(stream) = &state.stream {
        // Boxed: only streaming attempts pay for this future's size.
        reporter.unless_given_up(Box::pin(stream.end(Some(report.stream_end())))).await;
    }
    reporter.deliver(ctx.activity_id(), report, body, Some(&state.lease)).await
}

/// Accounts for the attempt of `ctx` once it ended with `accepted` (the report the
/// server took; `None`: nothing was reported): its metrics and its log line. Called
/// once per attempt, by the side the stage says ended it.
pub(super) fn account(
    metrics: &WorkerMetrics,
    (ctx, state): (&ActivityContext, &AttemptState),
    accepted: Option<&Report>,
) {
    let elapsed = state.handler_started.get().map(|started| started.elapsed());
    let info = ctx.info();
    #[cfg(feature = "otel")]
    crate::otel::attempt_ended(&Span::current(), accepted);
    let ended = report::ended(accepted);
    metrics.finished(&info.worker, &info.activity_name, ended, elapsed);
    log_finished(ended.finished, elapsed);
}

/// One line per finished attempt, at `info` (inside the attempt's span, which names
/// the activity).
fn log_finished(finished: Finished<'_>, elapsed: Option<Duration>) {
    let took = Took(elapsed);
    match finished {
        Finished::Completed => tracing::info!(outcome = "completed", %took, "activity finished"),
        Finished::Failed { code } => {
            tracing::info!(outcome = "failed", code = %Escaped(code), %took, "activity finished")
        }
        Finished::Abandoned => tracing::info!(outcome = "abandoned", %took, "activity finished: nothing was reported"),
    }
}

/// How long a handler ran, formatted only when the line is written.
struct Took(Option<Duration>);

impl std::fmt::Display for Took {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(elapsed) => write!(f, "{:.3}s", elapsed.as_secs_f64()),
            None => f.write_str("not started"),
        }
    }
}
