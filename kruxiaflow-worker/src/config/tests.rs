use std::collections::HashMap;
use std::time::Duration;

use super::*;

fn config_from(vars: &[(&str, &str)]) -> Result<WorkerConfig, ConfigError> {
    let mut map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    map.entry(env::API_URL.to_owned()).or_insert_with(|| "http://127.0.0.1:8080".to_owned());
    WorkerConfig::from_lookup(|name| map.get(name).cloned())
}

fn error_text(vars: &[(&str, &str)]) -> String {
    config_from(vars).unwrap_err().to_string()
}

#[test]
fn defaults_follow_the_protocol() {
    let config = config_from(&[]).unwrap();
    assert_eq!(config.api_url, "http://127.0.0.1:8080");
    assert_eq!(config.credentials, None);
    assert_eq!(config.worker, "rust");
    assert!(config.worker_id.starts_with("worker_"), "{}", config.worker_id);
    assert_eq!(config.poll_max_activities, 10);
    assert_eq!(config.poll_interval, Duration::from_millis(100));
    assert_eq!(config.max_concurrent_activities, 16);
    assert_eq!(config.activity_timeout, Duration::from_secs(300));
    assert_eq!(config.heartbeat_interval, Duration::from_secs(30));
    assert_eq!(config.shutdown_timeout, Duration::from_secs(30));
}

#[test]
fn api_url_defaults_to_localhost_8080_and_loses_its_trailing_slash() {
    let config = WorkerConfig::from_lookup(|_| None).unwrap();
    assert_eq!(config.api_url, "http://localhost:8080");
    assert_eq!(config.api_url, DEFAULT_API_URL);
    let config = config_from(&[(env::API_URL, "https://flow.example/")]).unwrap();
    assert_eq!(config.api_url, "https://flow.example");
    for bad in ["flow.example", "http://exa mple.com", "http://flow.example:99999", "ftp://flow.example"] {
        assert_eq!(
            error_text(&[(env::API_URL, bad)]),
            format!("KRUXIAFLOW_API_URL must be an http:// or https:// URL with a valid host and port, got {bad:?}")
        );
    }
}

#[test]
fn empty_variables_count_as_unset() {
    let config = config_from(&[(env::WORKER, ""), (env::MAX_ACTIVITIES, "  ")]).unwrap();
    assert_eq!(config.worker, "rust");
    assert_eq!(config.max_concurrent_activities, 16);
}

#[test]
fn credentials_need_both_halves() {
    let config = config_from(&[(env::CLIENT_ID, "me"), (env::CLIENT_SECRET, "s3cret")]).unwrap();
    assert_eq!(config.credentials, Some(Credentials::new("me", "s3cret")));
    assert_eq!(
        error_text(&[(env::CLIENT_ID, "me")]),
        "KRUXIAFLOW_CLIENT_ID is set but KRUXIAFLOW_CLIENT_SECRET is not: set both for client credentials, or neither for a dev-mode server"
    );
    assert!(
        error_text(&[(env::CLIENT_SECRET, "s")])
            .starts_with("KRUXIAFLOW_CLIENT_SECRET is set but KRUXIAFLOW_CLIENT_ID is not")
    );
}

#[test]
fn debug_never_prints_the_secret() {
    let config = config_from(&[(env::CLIENT_ID, "me"), (env::CLIENT_SECRET, "s3cret")]).unwrap();
    let printed = format!("{config:?}");
    assert!(!printed.contains("s3cret"), "{printed}");
    assert!(printed.contains("<redacted>"));
}

#[test]
fn worker_type_and_id() {
    let config = config_from(&[(env::WORKER, "py-std_2"), (env::WORKER_ID, "worker_a")]).unwrap();
    assert_eq!(config.worker, "py-std_2");
    assert_eq!(config.worker_id, "worker_a");
    assert_eq!(
        error_text(&[(env::WORKER, "bad.type")]),
        "KRUXIAFLOW_WORKER must be a worker type of letters, digits, '_' and '-', got \"bad.type\""
    );
}

#[test]
fn poll_max_activities_is_parsed_and_capped_at_100() {
    assert_eq!(config_from(&[(env::POLL_MAX_ACTIVITIES, "4")]).unwrap().poll_max_activities, 4);
    assert_eq!(config_from(&[(env::POLL_MAX_ACTIVITIES, "500")]).unwrap().poll_max_activities, 100);
    for bad in ["0", "-1", "2.5", "ten"] {
        assert_eq!(
            error_text(&[(env::POLL_MAX_ACTIVITIES, bad)]),
            format!("KRUXIAFLOW_WORKER_POLL_MAX_ACTIVITIES must be a positive integer, got {bad:?}")
        );
    }
}

#[test]
fn max_activities_sets_concurrency() {
    assert_eq!(config_from(&[(env::MAX_ACTIVITIES, "64")]).unwrap().max_concurrent_activities, 64);
    assert_eq!(
        error_text(&[(env::MAX_ACTIVITIES, "abc")]),
        "KRUXIAFLOW_WORKER_MAX_ACTIVITIES must be a positive integer, got \"abc\""
    );
    assert_eq!(config_from(&[(env::MAX_ACTIVITIES, "100000")]).unwrap().max_concurrent_activities, 100_000);
    for too_many in ["100001", "18446744073709551615"] {
        assert_eq!(
            error_text(&[(env::MAX_ACTIVITIES, too_many)]),
            format!("KRUXIAFLOW_WORKER_MAX_ACTIVITIES must be an integer from 1 to 100000, got {too_many:?}")
        );
    }
}

#[test]
fn heartbeats_are_at_most_one_a_second() {
    assert_eq!(config_from(&[(env::HEARTBEAT_INTERVAL, "1")]).unwrap().heartbeat_interval, Duration::from_secs(1));
    assert_eq!(
        error_text(&[(env::HEARTBEAT_INTERVAL, "0.001")]),
        "KRUXIAFLOW_WORKER_HEARTBEAT_INTERVAL must be at least 1 second, got \"0.001\""
    );
}

#[test]
fn durations_may_have_units() {
    let config =
        config_from(&[(env::POLL_INTERVAL, "100ms"), (env::SHUTDOWN_TIMEOUT, "1m 30s"), (env::HTTP_TIMEOUT, "30s")])
            .unwrap();
    assert_eq!(config.poll_interval, Duration::from_millis(100));
    assert_eq!(config.shutdown_timeout, Duration::from_secs(90));
    assert_eq!(config.http_timeout, Duration::from_secs(30));
    for bad in ["0s", "30 parsecs"] {
        assert_eq!(
            error_text(&[(env::HTTP_TIMEOUT, bad)]),
            format!(
                "KRUXIAFLOW_WORKER_HTTP_TIMEOUT must be a positive number of seconds, or a duration such as 30s or 100ms, got {bad:?}"
            )
        );
    }
}

#[test]
fn the_client_secret_can_come_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("secret");
    std::fs::write(&file, "s3cret\n").unwrap();
    let path = file.to_str().unwrap();
    let config = config_from(&[(env::CLIENT_ID, "me"), (env::CLIENT_SECRET_FILE, path)]).unwrap();
    let credentials = config.credentials.unwrap();
    assert_eq!(credentials.client_secret(), "s3cret");
    assert_eq!(credentials.secret_file(), Some(file.as_path()));

    assert_eq!(
        error_text(&[(env::CLIENT_ID, "me"), (env::CLIENT_SECRET, "x"), (env::CLIENT_SECRET_FILE, path)]),
        "KRUXIAFLOW_CLIENT_SECRET and KRUXIAFLOW_CLIENT_SECRET_FILE are both set: set only one"
    );
    std::fs::write(&file, "\n").unwrap();
    assert_eq!(
        error_text(&[(env::CLIENT_ID, "me"), (env::CLIENT_SECRET_FILE, path)]),
        format!(
            "KRUXIAFLOW_CLIENT_SECRET_FILE names {path:?}, which cannot be read as the client secret: the file is empty"
        )
    );
    let missing = dir.path().join("missing");
    let missing = missing.to_str().unwrap();
    assert!(error_text(&[(env::CLIENT_ID, "me"), (env::CLIENT_SECRET_FILE, missing)]).starts_with(&format!(
        "KRUXIAFLOW_CLIENT_SECRET_FILE names {missing:?}, which cannot be read as the client secret: No such file"
    )));
}

#[test]
fn a_secret_set_in_the_file_variable_by_mistake_is_never_printed() {
    for secret in ["s3cr3t-value", "abc/def+ghi=="] {
        let error = error_text(&[(env::CLIENT_ID, "me"), (env::CLIENT_SECRET_FILE, secret)]);
        assert!(!error.contains(secret), "{error}");
        assert!(
            error.starts_with(&format!(
                "KRUXIAFLOW_CLIENT_SECRET_FILE names a relative path ({} bytes, not shown: if it is the secret itself, set KRUXIAFLOW_CLIENT_SECRET instead), which cannot be read as the client secret: No such file",
                secret.len()
            )),
            "{error}"
        );
    }
}

#[test]
fn durations_are_float_seconds() {
    let cases = [
        (env::POLL_INTERVAL, "0.25", Duration::from_millis(250)),
        (env::ACTIVITY_TIMEOUT, "600", Duration::from_secs(600)),
        (env::HEARTBEAT_INTERVAL, "10.5", Duration::from_millis(10_500)),
        (env::SHUTDOWN_TIMEOUT, "5", Duration::from_secs(5)),
        (env::CANCELLATION_GRACE, "1.5", Duration::from_millis(1500)),
        (env::REPORT_FLUSH_TIMEOUT, "20", Duration::from_secs(20)),
        (env::HTTP_TIMEOUT, "120", Duration::from_secs(120)),
    ];
    for (name, raw, expected) in cases {
        let config = config_from(&[(name, raw)]).unwrap();
        let actual = match name {
            env::POLL_INTERVAL => config.poll_interval,
            env::ACTIVITY_TIMEOUT => config.activity_timeout,
            env::HEARTBEAT_INTERVAL => config.heartbeat_interval,
            env::CANCELLATION_GRACE => config.cancellation_grace,
            env::REPORT_FLUSH_TIMEOUT => config.report_flush_timeout,
            env::HTTP_TIMEOUT => config.http_timeout,
            _ => config.shutdown_timeout,
        };
        assert_eq!(actual, expected, "{name}");
        for bad in ["0", "-3", "soon", "NaN", "inf"] {
            assert_eq!(
                error_text(&[(name, bad)]),
                format!("{name} must be a positive number of seconds, or a duration such as 30s or 100ms, got {bad:?}")
            );
        }
    }
}

#[test]
fn pools_by_worker_type_come_from_one_list_variable() {
    let config = config_from(&[(env::MAX_ACTIVITIES_BY_TYPE, " llm=8, ocr-gpu=2 ,")]).unwrap();
    let pools: Vec<(&str, usize)> = config.max_activities_by_type.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    assert_eq!(pools, [("llm", 8), ("ocr-gpu", 2)]);
    let expected = "type=count pairs separated by commas, such as llm=8,ocr-gpu=2";
    for bad in ["llm", "llm=eight", "llm=-1"] {
        assert_eq!(
            error_text(&[(env::MAX_ACTIVITIES_BY_TYPE, bad)]),
            format!("KRUXIAFLOW_WORKER_MAX_ACTIVITIES_BY_TYPE must be {expected}, got {bad:?}")
        );
    }
    assert_eq!(
        error_text(&[(env::MAX_ACTIVITIES_BY_TYPE, "llm=0")]),
        "KRUXIAFLOW_WORKER_MAX_ACTIVITIES_BY_TYPE must be counts from 1 to 100000, got \"llm=0\""
    );
    assert_eq!(
        error_text(&[(env::MAX_ACTIVITIES_BY_TYPE, "llm=1,llm=2")]),
        "KRUXIAFLOW_WORKER_MAX_ACTIVITIES_BY_TYPE must be each worker type once, got \"llm=1,llm=2\""
    );
    assert_eq!(
        error_text(&[(env::MAX_ACTIVITIES_BY_TYPE, "gpu.render=2")]),
        "KRUXIAFLOW_WORKER_MAX_ACTIVITIES_BY_TYPE must be worker types of letters, digits, '_' and '-', got \"gpu.render\""
    );
}

#[test]
fn code_built_config_is_validated_by_field_name() {
    let config = WorkerConfig { max_concurrent_activities: 0, ..WorkerConfig::default() };
    assert_eq!(
        config.validate().unwrap_err().to_string(),
        "max_concurrent_activities must be an integer from 1 to 100000, got \"0\""
    );
    let config = WorkerConfig { poll_max_activities: 101, ..WorkerConfig::default() };
    assert_eq!(
        config.validate().unwrap_err().to_string(),
        "poll_max_activities must be an integer from 1 to 100, got \"101\""
    );
}

#[test]
fn the_ca_file_is_read_from_the_environment() {
    let config = config_from(&[(env::CA_CERT_FILE, " /etc/ssl/private-ca.pem ")]).unwrap();
    assert_eq!(config.ca_cert_file, Some("/etc/ssl/private-ca.pem".into()));
    assert_eq!(config_from(&[]).unwrap().ca_cert_file, None);
}

#[test]
fn the_shutdown_bound_adds_drain_grace_and_flush() {
    let config =
        config_from(&[(env::SHUTDOWN_TIMEOUT, "5"), (env::CANCELLATION_GRACE, "1"), (env::REPORT_FLUSH_TIMEOUT, "3")])
            .unwrap();
    assert_eq!(config.shutdown_bound(), Duration::from_secs(9));
}

#[test]
fn secrets_in_clear_are_only_those_sent_over_http_off_this_machine() {
    let with = |url: &str| WorkerConfig::new(url).with_credentials("me", "s3cret");
    assert!(with("http://flow.example").sends_secrets_in_clear());
    assert!(with("http://10.0.0.5:8080").sends_secrets_in_clear());
    for safe in ["https://flow.example", "http://localhost:8080", "http://127.0.0.1:8080", "http://[::1]:8080"] {
        assert!(!with(safe).sends_secrets_in_clear(), "{safe}");
    }
    assert!(!WorkerConfig::new("http://flow.example").sends_secrets_in_clear(), "no credentials, no secret");
}

#[test]
fn durations_outside_what_can_work_are_refused_naming_the_variable_and_the_bounds() {
    let cases = [
        (env::HTTP_TIMEOUT, "0.0002", "KRUXIAFLOW_WORKER_HTTP_TIMEOUT must be from 100ms to 1h, got 200us"),
        (env::HTTP_TIMEOUT, "2h", "KRUXIAFLOW_WORKER_HTTP_TIMEOUT must be from 100ms to 1h, got 2h"),
        (env::POLL_INTERVAL, "1ms", "KRUXIAFLOW_WORKER_POLL_INTERVAL must be from 10ms to 1h, got 1ms"),
        (env::ACTIVITY_TIMEOUT, "0.5", "KRUXIAFLOW_WORKER_ACTIVITY_TIMEOUT must be from 1s to 30days, got 500ms"),
        (env::SHUTDOWN_TIMEOUT, "25h", "KRUXIAFLOW_WORKER_SHUTDOWN_TIMEOUT must be from 0s to 1day, got 1day 1h"),
        (env::CANCELLATION_GRACE, "90m", "KRUXIAFLOW_WORKER_CANCELLATION_GRACE must be from 0s to 1h, got 1h 30m"),
        (
            env::REPORT_FLUSH_TIMEOUT,
            "10ms",
            "KRUXIAFLOW_WORKER_REPORT_FLUSH_TIMEOUT must be from 100ms to 1h, got 10ms",
        ),
        (env::HEARTBEAT_INTERVAL, "2h", "KRUXIAFLOW_WORKER_HEARTBEAT_INTERVAL must be from 100ms to 1h, got 2h"),
        (env::STREAM_LINGER, "5s", "KRUXIAFLOW_WORKER_STREAM_LINGER must be from 0s to 1s, got 5s"),
    ];
    for (variable, raw, expected) in cases {
        assert_eq!(error_text(&[(variable, raw)]), expected, "{variable}={raw}");
    }
    let config = WorkerConfig { http_timeout: Duration::from_millis(1), ..WorkerConfig::default() };
    assert_eq!(config.validate().unwrap_err().to_string(), "http_timeout must be from 100ms to 1h, got 1ms");
}

#[test]
fn the_stream_linger_is_40_ms_unless_set_and_0_turns_it_off() {
    assert_eq!(WorkerConfig::default().stream_linger, Duration::from_millis(40));
    assert_eq!(config_from(&[(env::STREAM_LINGER, "0")]).unwrap().stream_linger, Duration::ZERO);
    assert_eq!(config_from(&[(env::STREAM_LINGER, "25ms")]).unwrap().stream_linger, Duration::from_millis(25));
}
