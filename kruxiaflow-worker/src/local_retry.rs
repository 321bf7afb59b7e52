//! Local retries: a retryable error runs the handler again inside the same attempt —
//! after the error's `retry_after`, or a backoff — instead of going back to the server
//! for a retry that costs a claim, a backoff and, with several calls per activity,
//! money.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;
use tracing::Instrument;

use crate::client::RetryPolicy;
use crate::context::ActivityContext;
use crate::error::{ActivityError, codes};
use crate::result::ActivityResult;
use crate::telemetry;

/// The backoff of a local retry whose error gives no `retry_after`: 500 ms, doubling
/// per retry up to 30 s, plus up to as much again at random.
fn backoff(retries: u32) -> impl Iterator<Item = Duration> {
    RetryPolicy {
        min_delay: Duration::from_millis(500),
        max_delay: Duration::from_secs(30),
        factor: 2.0,
        max_retries: retries as usize,
    }
    .delays()
}

/// One local retry: the error the handler returned and how long the attempt waited
/// before running it again.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalRetry {
    /// What the try that was retried returned.
    pub error: ActivityError,
    /// The wait before the next try.
    pub delay: Duration,
}

/// Runs `try_once` (one run of the handler) and, while it fails retryably, up to
/// `retries` more times in this attempt, each after the error's
/// [`retry_delay`](ActivityError::retry_delay) or the backoff, as long as the next try
/// would start before the attempt's deadline. Terminal errors, panics, cancellation
/// (a timeout, a shutdown, a lost lease) are never retried here, nor is a try that
/// streamed text: its subscribers cannot take the text back, and would see the answer
/// twice. What a retried error
/// carries in spend is kept on the context, so it is reported once, with whatever
/// ends the attempt. `retried` sees each local retry.
pub async fn run<F, Fut>(
    ctx: &ActivityContext,
    retries: u32,
    mut try_once: F,
    mut retried: impl FnMut(&LocalRetry),
) -> Result<ActivityResult, ActivityError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<ActivityResult, ActivityError>>,
{
    let mut backoff = backoff(retries);
    let mut done = 0;
    loop {
        let mut error = match try_once().await {
            Err(error) if done < retries && error.is_retryable() && error.code() != codes::PANIC => error,
            ended => return ended,
        };
        let Some(delay) = error.retry_delay().or_else(|| backoff.next()) else { return Err(error) };
        let past_deadline = ctx.deadline().is_some_and(|deadline| Instant::now() + delay >= deadline);
        if ctx.is_cancelled() || past_deadline || ctx.stream().has_sent() {
            return Err(error);
        }
        done += 1;
        ctx.keep_spend(error.take_spend());
        let info = ctx.info();
        tracing::info!(code = %error.code(), retry = done, of = retries, ?delay, "running the handler again in this attempt");
        telemetry::local_retry(&info.worker, &info.activity_name, error.code());
        retried(&LocalRetry { error: error.clone(), delay });
        let span =
            tracing::info_span!("local_retry_wait", kruxiaflow.retry = done, kruxiaflow.error.code = %error.code());
        tokio::select! {
            () = tokio::time::sleep(delay).instrument(span) => {}
            _ = ctx.cancelled() => return Err(error),
        }
        if let Some(journal) = ctx.used_journal() {
            journal.next_try();
        }
    }
}
