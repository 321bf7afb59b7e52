//! Errors: how an activity fails ([`ActivityError`]) and how the worker itself fails
//! ([`WorkerError`]).

use std::fmt;
use std::time::Duration;

use rust_decimal::Decimal;

use crate::config::ConfigError;
use crate::protocol::UsageEntry;

/// Error codes the SDK itself reports.
pub mod codes {
    /// Any error returned with `?` from a handler (retryable).
    pub const EXECUTION_ERROR: &str = "EXECUTION_ERROR";
    /// Parameters did not deserialize into the handler's type (terminal).
    pub const INVALID_PARAMETERS: &str = "INVALID_PARAMETERS";
    /// The handler ran past its timeout (retryable).
    pub const TIMEOUT: &str = "TIMEOUT";
    /// The handler panicked (retryable).
    pub const PANIC: &str = "PANIC";
    /// No handler is registered for the polled activity (retryable).
    pub const ACTIVITY_NOT_FOUND: &str = "ACTIVITY_NOT_FOUND";
    /// The worker shut down before the activity finished (retryable).
    pub const WORKER_SHUTDOWN: &str = "WORKER_SHUTDOWN";
    /// The poll item could not be understood (terminal: it would fail again).
    pub const INVALID_ACTIVITY: &str = "INVALID_ACTIVITY";
    /// The handler's outputs could not be serialized or were refused (terminal).
    pub const INVALID_OUTPUT: &str = "INVALID_OUTPUT";
    /// The server gave the activity to another worker (never reported; what
    /// `ActivityContext::heartbeat` returns once the lease is gone).
    pub const LEASE_LOST: &str = "LEASE_LOST";
    /// A heartbeat requested by the activity did not get through (retryable).
    pub const HEARTBEAT_FAILED: &str = "HEARTBEAT_FAILED";
    /// The output is larger than the server accepts (terminal: it would be again).
    pub const OUTPUT_TOO_LARGE: &str = "OUTPUT_TOO_LARGE";
    /// The activity failed with a code that is not a code (a sentence, most often: its
    /// code and message swapped); the message names both. Retryable as the activity
    /// said.
    pub const INVALID_ERROR_CODE: &str = "INVALID_ERROR_CODE";
}

/// Why an activity attempt failed, as reported to the server.
///
/// Return it from a handler (`Err(ActivityError::terminal(..))`), or let `?` convert any
/// [`std::error::Error`] into a retryable `EXECUTION_ERROR` whose message carries the
/// error's whole source chain. Money spent by the failed attempt can ride along.
///
/// ```
/// use kruxiaflow_worker::ActivityError;
///
/// let e = ActivityError::terminal("VALIDATION_ERROR", "text is empty");
/// assert!(!e.is_retryable());
///
/// fn parse(s: &str) -> Result<i64, ActivityError> {
///     Ok(s.parse::<i64>()?)
/// }
/// let e = parse("x").unwrap_err();
/// assert_eq!(e.code(), "EXECUTION_ERROR");
/// assert!(e.is_retryable());
/// assert_eq!(e.message(), "invalid digit found in string");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct ActivityError {
    code: String,
    message: String,
    retryable: bool,
    cost: Option<Decimal>,
    usage: Vec<UsageEntry>,
    retry_after: Option<Duration>,
}

impl ActivityError {
    /// A failure the server must not retry.
    pub fn terminal(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(code, message, false)
    }

    /// A failure the server may retry if the activity has retries left.
    pub fn retryable(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(code, message, true)
    }

    /// A failure with an explicit retry decision.
    pub fn new(code: impl Into<String>, message: impl Into<String>, retryable: bool) -> Self {
        Self { code: code.into(), message: message.into(), retryable, cost: None, usage: Vec::new(), retry_after: None }
    }

    /// A retryable `EXECUTION_ERROR` carrying `error` and its source chain.
    pub fn from_error(error: &(dyn std::error::Error + 'static)) -> Self {
        let mut message = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        Self::retryable(codes::EXECUTION_ERROR, message)
    }

    /// A retryable `PANIC` for a handler that panicked with `payload`.
    pub fn from_panic(payload: &(dyn std::any::Any + Send)) -> Self {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic with a non-string payload".to_owned());
        Self::retryable(codes::PANIC, format!("the activity panicked: {message}"))
    }

    /// Attaches the money this failed attempt spent outside usage entries.
    pub fn with_cost(mut self, cost: Decimal) -> Self {
        self.cost = Some(cost);
        self
    }

    /// Attaches per-LLM-call usage of this failed attempt.
    pub fn with_usage(mut self, usage: impl IntoIterator<Item = UsageEntry>) -> Self {
        self.usage.extend(usage);
        self
    }

    /// How long to wait before the handler runs again, when its activity has local
    /// retries (`#[activity(local_retries = N)]`): a provider's `Retry-After`, for
    /// instance (see [`retry_after_of`]). Without it, local retries back off on their
    /// own. The server's retries (another attempt) do not read it.
    ///
    /// ```
    /// use kruxiaflow_worker::ActivityError;
    /// use std::time::Duration;
    ///
    /// let e = ActivityError::retryable("LLM_RATE_LIMITED", "429").retry_after(Duration::from_secs(2));
    /// assert_eq!(e.retry_delay(), Some(Duration::from_secs(2)));
    /// ```
    pub fn retry_after(mut self, delay: Duration) -> Self {
        self.retry_after = Some(delay);
        self
    }

    /// The delay set with [`retry_after`](Self::retry_after).
    pub fn retry_delay(&self) -> Option<Duration> {
        self.retry_after
    }

    /// The error code.
    pub fn code(&self) -> &str {
        &self.code
    }

    /// The error message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether the server may retry.
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }

    /// Cost attached to the failure.
    pub fn cost(&self) -> Option<Decimal> {
        self.cost
    }

    /// Usage attached to the failure.
    pub fn usage(&self) -> &[UsageEntry] {
        &self.usage
    }

    pub(crate) fn take_spend(&mut self) -> (Option<Decimal>, Vec<UsageEntry>) {
        (self.cost.take(), std::mem::take(&mut self.usage))
    }
}

impl fmt::Debug for ActivityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("ActivityError");
        d.field("code", &self.code).field("message", &self.message).field("retryable", &self.retryable);
        if let Some(cost) = &self.cost {
            d.field("cost", cost);
        }
        if !self.usage.is_empty() {
            d.field("usage", &self.usage);
        }
        if let Some(delay) = &self.retry_after {
            d.field("retry_after", delay);
        }
        d.finish()
    }
}

impl fmt::Display for ActivityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.retryable { "retryable" } else { "terminal" };
        write!(f, "{} ({kind}): {}", self.code, self.message)
    }
}

// `ActivityError` deliberately does not implement `std::error::Error`: that is what
// lets this blanket conversion exist, so `?` works on any error type (as with anyhow).
impl<E> From<E> for ActivityError
where
    E: std::error::Error + Send + Sync + 'static,
{
    fn from(error: E) -> Self {
        Self::from_error(&error)
    }
}

/// The delay an HTTP answer's `Retry-After` header asks for: delay-seconds (`120`) or
/// an HTTP-date (`Wed, 21 Oct 2026 07:28:00 GMT`, counted from now; a date in the past
/// is no delay). `None` without the header or when it is neither.
///
/// ```
/// use kruxiaflow_worker::error::retry_after_header;
/// use std::time::Duration;
///
/// let mut headers = reqwest::header::HeaderMap::new();
/// headers.insert(reqwest::header::RETRY_AFTER, "3".parse().unwrap());
/// assert_eq!(retry_after_header(&headers), Some(Duration::from_secs(3)));
/// ```
pub fn retry_after_header(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(std::time::SystemTime::now()).unwrap_or(Duration::ZERO))
}

/// The `Retry-After` of a provider's answer (see [`retry_after_header`]), for
/// [`ActivityError::retry_after`]:
///
/// ```no_run
/// use kruxiaflow_worker::ActivityError;
/// use kruxiaflow_worker::error::retry_after_of;
///
/// async fn call(http: &reqwest::Client) -> Result<String, ActivityError> {
///     let response = http.get("https://llm.example.invalid/v1/chat").send().await?;
///     if response.status() == 429 {
///         let error = ActivityError::retryable("LLM_RATE_LIMITED", "the provider answered 429");
///         return Err(match retry_after_of(&response) {
///             Some(delay) => error.retry_after(delay),
///             None => error,
///         });
///     }
///     Ok(response.text().await?)
/// }
/// ```
pub fn retry_after_of(response: &reqwest::Response) -> Option<Duration> {
    retry_after_header(response.headers())
}

/// Why the worker could not run, or did not end cleanly.
///
/// `Debug` shows the same sentence as `Display`, so `main() -> Result<(), WorkerError>`
/// prints something a person can act on.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum WorkerError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The registry has no activities, so there is nothing to poll for.
    #[error("the activity registry is empty: register at least one activity before running")]
    NoActivities,
    /// The runtime for activity handlers could not be started.
    #[error("could not start the runtime for activities: {0}")]
    Runtime(String),
    /// The `/metrics`, `/healthz` and `/readyz` listener could not be bound.
    #[error("cannot listen on {addr} ({variable}): {reason}")]
    Listener {
        /// The variable that sets the address.
        variable: &'static str,
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        reason: String,
    },
    /// The server's first answers say the worker can never work with this
    /// configuration: credentials refused, no such route (an API URL with a path), a
    /// redirect. The message names the variable to fix.
    #[error("cannot start: {0}")]
    Startup(String),
    /// A poll loop failed; the worker shut down rather than sit idle.
    #[error("a poll loop failed ({0}); the worker shut down instead of sitting idle")]
    PollerFailed(String),
    /// Shutdown ended with reports the server never answered: these activities return
    /// to the queue when their leases expire.
    #[error("{} report(s) could not be delivered before shutdown: {activity_ids:?}", activity_ids.len())]
    ReportsUndelivered {
        /// The activities whose reports were not delivered.
        activity_ids: Vec<uuid::Uuid>,
    },
}

impl fmt::Debug for WorkerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("fetching the page failed")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn question_mark_conversion_keeps_the_source_chain() {
        let inner = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "connection reset");
        let e = ActivityError::from(Outer(inner));
        assert_eq!(e.code(), codes::EXECUTION_ERROR);
        assert!(e.is_retryable());
        assert_eq!(e.message(), "fetching the page failed: connection reset");
    }

    #[test]
    fn worker_errors_debug_as_their_readable_message() {
        let error = WorkerError::from(ConfigError::Invalid {
            name: "KRUXIAFLOW_WORKER_MAX_ACTIVITIES".into(),
            value: "abc".into(),
            expected: "a positive integer",
        });
        assert_eq!(format!("{error:?}"), "KRUXIAFLOW_WORKER_MAX_ACTIVITIES must be a positive integer, got \"abc\"");
        let error = WorkerError::ReportsUndelivered { activity_ids: vec![uuid::Uuid::nil()] };
        assert_eq!(
            format!("{error:?}"),
            "1 report(s) could not be delivered before shutdown: [00000000-0000-0000-0000-000000000000]"
        );
    }

    #[test]
    fn display_names_code_kind_and_message() {
        let e = ActivityError::terminal("BAD", "no");
        assert_eq!(e.to_string(), "BAD (terminal): no");
    }
}
