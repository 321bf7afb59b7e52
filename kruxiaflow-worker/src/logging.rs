//! One line to see the worker's logs: [`init`] installs a `tracing` subscriber that
//! writes to standard error, filtered by `RUST_LOG` (default `info`), as text or, for log
//! shippers, as one JSON object per line (`KRUXIAFLOW_LOG_FORMAT=json`). Text is
//! coloured only when standard error is a terminal and `NO_COLOR` is unset.

use std::io::IsTerminal;

use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{ConfigError, env};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LogFormat {
    /// Human-readable lines (the default).
    Text,
    /// One JSON object per line, with the activity's span fields.
    Json,
}

impl LogFormat {
    /// The format `KRUXIAFLOW_LOG_FORMAT` asks for (`text` or `json`; unset: text).
    ///
    /// ```
    /// use kruxiaflow_worker::logging::LogFormat;
    ///
    /// assert_eq!(LogFormat::from_variable(Some("json")), Ok(LogFormat::Json));
    /// assert_eq!(
    ///     LogFormat::from_variable(Some("yaml")).unwrap_err().to_string(),
    ///     "KRUXIAFLOW_LOG_FORMAT must be text or json, got \"yaml\""
    /// );
    /// ```
    pub fn from_variable(value: Option<&str>) -> Result<Self, ConfigError> {
        match value.map(str::trim) {
            None | Some("") | Some("text") => Ok(Self::Text),
            Some("json") => Ok(Self::Json),
            Some(other) => Err(ConfigError::Invalid {
                name: env::LOG_FORMAT.to_owned(),
                value: other.to_owned(),
                expected: "text or json",
            }),
        }
    }
}

/// Whether text lines are coloured: only on a terminal, and never with `NO_COLOR` set
/// to anything but the empty string (<https://no-color.org>).
fn colour(terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    terminal && no_color.is_none_or(std::ffi::OsStr::is_empty)
}

/// Installs the subscriber, unless the application installed one already (then its
/// own stays, and this does nothing). Call it first thing in `main`.
///
/// ```no_run
/// use kruxiaflow_worker::prelude::*;
///
/// # async fn demo(registry: ActivityRegistry) -> Result<(), WorkerError> {
/// kruxiaflow_worker::logging::init()?;
/// let config = WorkerConfig::from_env()?;
/// WorkerManager::new(config, registry).run_until_shutdown().await
/// # }
/// ```
///
/// # Errors
/// When `KRUXIAFLOW_LOG_FORMAT` is neither `text` nor `json`.
pub fn init() -> Result<(), ConfigError> {
    use tracing_subscriber::layer::SubscriberExt;
    let subscriber = tracing_subscriber::registry().with(lines()?);
    // An error here means a subscriber is installed already: the application's choice.
    let _ = tracing::subscriber::set_global_default(subscriber);
    Ok(())
}

/// The layer that writes log lines as [`init`] does: to standard error, filtered by
/// `RUST_LOG`, in the format `KRUXIAFLOW_LOG_FORMAT` asks for.
pub(crate) fn lines<S>() -> Result<Box<dyn Layer<S> + Send + Sync>, ConfigError>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    let format = LogFormat::from_variable(std::env::var(env::LOG_FORMAT).ok().as_deref())?;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // A log line that cannot be written is dropped: reporting that on standard error
    // (the default) panics the task when standard error is a closed pipe.
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(colour(std::io::stderr().is_terminal(), std::env::var_os("NO_COLOR").as_deref()))
        .log_internal_errors(false);
    Ok(match format {
        LogFormat::Text => layer.with_filter(filter).boxed(),
        LogFormat::Json => layer.json().with_filter(filter).boxed(),
    })
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;

    use super::colour;

    #[test]
    fn colour_only_on_a_terminal_and_never_with_no_color() {
        assert!(colour(true, None));
        assert!(colour(true, Some(OsStr::new(""))));
        assert!(!colour(true, Some(OsStr::new("1"))));
        assert!(!colour(false, None), "a file or a pipe gets no escapes");
    }
}
