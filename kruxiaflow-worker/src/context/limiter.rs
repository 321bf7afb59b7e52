//! An activity's view of one of its worker's rate limits.

use super::ActivityContext;
use crate::error::ActivityError;
use crate::rate_limit::{self, codes};

/// The worker's rate limit of one name, as an activity acquires it
/// ([`ActivityContext::rate_limit`]).
#[derive(Debug, Clone, Copy)]
pub struct RateLimiter<'a> {
    ctx: &'a ActivityContext,
    name: &'a str,
}

impl<'a> RateLimiter<'a> {
    pub(super) fn new(ctx: &'a ActivityContext, name: &'a str) -> Self {
        Self { ctx, name }
    }

    /// Waits until `units` of the limit are available, and takes them. Fails at once,
    /// before any wait: when the limit was never registered on the worker (terminal
    /// `RATE_LIMIT_UNKNOWN`, naming it and the registered ones), when `units` is more
    /// than the limit grants per period (terminal `RATE_LIMIT_TOO_LARGE`), or when the
    /// wait would end after the attempt's deadline (retryable `RATE_LIMITED`). Stops
    /// waiting when the attempt is cancelled (retryable `RATE_LIMIT_CANCELLED`), and
    /// gives the units back.
    pub async fn acquire(&self, units: u64) -> Result<(), ActivityError> {
        let limits = self.ctx.rate_limits();
        let Some(bucket) = limits.get(self.name) else {
            return Err(ActivityError::terminal(
                codes::RATE_LIMIT_UNKNOWN,
                format!(
                    "no rate limit named {:?} is registered on this worker; registered: [{}]",
                    self.name,
                    limits.names().join(", ")
                ),
            ));
        };
        let cancelled = async { self.ctx.cancelled().await.to_string() };
        rate_limit::acquire((self.name, bucket), units, self.ctx.deadline(), cancelled).await.map(drop)
    }
}
