//! Configuration: from the environment, and in code.

use std::time::Duration;

use kruxiaflow_worker::prelude::*;

/// The configuration from `KRUXIAFLOW_*` variables (see the README's table).
pub fn from_env() -> Result<WorkerConfig, kruxiaflow_worker::ConfigError> {
    WorkerConfig::from_env()
}

/// A configuration built in code: 32 activities at once, 10-minute timeout.
pub fn programmatic(api_url: &str) -> WorkerConfig {
    WorkerConfig {
        max_concurrent_activities: 32,
        activity_timeout: Duration::from_secs(600),
        ..WorkerConfig::new(api_url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programmatic_settings_override_the_defaults() {
        let config = programmatic("http://localhost:8080/");
        assert_eq!(config.api_url, "http://localhost:8080");
        assert_eq!(config.max_concurrent_activities, 32);
        assert_eq!(config.activity_timeout, Duration::from_secs(600));
        assert_eq!(config.poll_max_activities, 10, "the rest keep their defaults");
        config.validate().unwrap();
    }

    #[test]
    fn a_bad_variable_is_named_in_the_error() {
        let error = WorkerConfig::from_lookup(|name| match name {
            "KRUXIAFLOW_API_URL" => Some("http://localhost:8080".into()),
            "KRUXIAFLOW_WORKER_ACTIVITY_TIMEOUT" => Some("ten minutes".into()),
            _ => None,
        })
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "KRUXIAFLOW_WORKER_ACTIVITY_TIMEOUT must be a positive number of seconds, or a duration such as 30s or 100ms, \
             got \"ten minutes\""
        );
    }
}
