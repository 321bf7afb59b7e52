//! Backoff for transient failures: exponential, capped, with jitter.

use std::future::Future;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder, Retryable};

use super::ClientError;
use super::trouble::Trouble;

/// How transient failures are retried.
///
/// The n-th retry waits `min_delay × factor^(n-1)`, capped at `max_delay`, plus a
/// random jitter of up to the same amount again (so never more than `2 × max_delay`).
/// Reports (complete and fail) ignore `max_retries`: they are retried until the server
/// answers definitively.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Delay before the first retry.
    pub min_delay: Duration,
    /// Cap on the delay before jitter.
    pub max_delay: Duration,
    /// Growth per retry.
    pub factor: f32,
    /// Retries of a poll or heartbeat before the error is returned.
    pub max_retries: usize,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { min_delay: Duration::from_millis(100), max_delay: Duration::from_secs(10), factor: 2.0, max_retries: 4 }
    }
}

impl RetryPolicy {
    /// The delays of a bounded retry sequence.
    pub fn delays(&self) -> impl Iterator<Item = Duration> + use<> {
        self.builder().with_max_times(self.max_retries).build()
    }

    fn builder(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_factor(self.factor)
            .with_jitter()
    }

    /// The bounded sequence of pauses after consecutive failures, then `max_delay`
    /// (with jitter) for ever: the pace of a loop that must keep trying.
    pub(crate) fn pauses(&self) -> impl Iterator<Item = Duration> + Send + use<> {
        let steady = self.builder().without_max_times().build().skip_while({
            let cap = self.max_delay;
            move |d| *d < cap
        });
        self.delays().chain(steady)
    }

    /// Runs `op`, retrying its failures as `persist` says. `what` names the endpoint, in
    /// logs and in the retries metric; `trouble` logs its runs of failures.
    pub(crate) async fn retry<T, Fut>(
        &self,
        (what, trouble): (&'static str, &Trouble),
        persist: Persist,
        op: impl FnMut() -> Fut,
    ) -> Result<T, ClientError>
    where
        Fut: Future<Output = Result<T, ClientError>>,
    {
        let (backoff, when): (_, fn(&ClientError) -> bool) = match persist {
            Persist::Transient => (self.builder().with_max_times(self.max_retries), ClientError::is_transient),
            Persist::UntilAnswered => (self.builder().without_max_times(), |e| !e.settles_report()),
        };
        let result = op
            .retry(backoff)
            .sleep(tokio::time::sleep)
            .when(when)
            .notify(|error, _delay| {
                crate::telemetry::retried(what);
                trouble.failed(what, error);
            })
            .await;
        if result.is_ok() {
            trouble.succeeded(what);
        }
        result
    }
}

/// Which failures a request retries, and for how long.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Persist {
    /// Transient failures, up to `max_retries` times.
    Transient,
    /// Every failure until the server answers the report itself (see
    /// [`ClientError::settles_report`]), for as long as it takes.
    UntilAnswered,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            min_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1600),
            factor: 2.0,
            max_retries: 8,
        }
    }

    #[test]
    fn backoff_grows_then_is_capped_with_jitter_below_the_base() {
        let delays: Vec<Duration> = policy().delays().collect();
        assert_eq!(delays.len(), 8);
        let bases = [100, 200, 400, 800, 1600, 1600, 1600, 1600];
        for (delay, base) in delays.iter().zip(bases) {
            let base = Duration::from_millis(base);
            assert!(*delay >= base && *delay < base * 2, "{delay:?} outside [{base:?}, {:?})", base * 2);
        }
    }

    #[test]
    fn jitter_makes_sequences_differ() {
        let runs: Vec<Vec<Duration>> = (0..5).map(|_| policy().delays().collect()).collect();
        assert!(runs.windows(2).any(|w| w[0] != w[1]), "five identical sequences: no jitter");
    }

    #[tokio::test(start_paused = true)]
    async fn definitive_errors_are_not_retried_and_transient_ones_are() {
        let mut calls = 0;
        let result: Result<(), _> = policy()
            .retry(("test", &Trouble::default()), Persist::Transient, || {
                calls += 1;
                async { Err(ClientError::from_body("u", 409, br#"{"error":{"code":"CONFLICT","message":"m"}}"#)) }
            })
            .await;
        assert_eq!(result.unwrap_err().verdict(), Some(409));
        assert_eq!(calls, 1);

        let mut calls = 0;
        let result = policy()
            .retry(("test", &Trouble::default()), Persist::UntilAnswered, || {
                calls += 1;
                let n = calls;
                let error = match n % 3 {
                    0 => ClientError::from_body("u", 503, b""),
                    1 => ClientError::Unauthorized("token endpoint answered 401".into()),
                    _ => ClientError::Decode { url: "token".into(), detail: "html".into() },
                };
                async move { if n < 20 { Err(error) } else { Ok(n) } }
            })
            .await;
        assert_eq!(result.unwrap(), 20, "reports give up on nothing but the server's answer about them");
    }

    #[test]
    fn pauses_grow_to_the_cap_and_then_stay_there() {
        let pauses: Vec<Duration> = policy().pauses().take(12).collect();
        let bases = [100, 200, 400, 800, 1600, 1600, 1600, 1600, 1600, 1600, 1600, 1600];
        for (pause, base) in pauses.iter().zip(bases) {
            let base = Duration::from_millis(base);
            assert!(*pause >= base && *pause < base * 2, "{pause:?} outside [{base:?}, {:?})", base * 2);
        }
    }
}
