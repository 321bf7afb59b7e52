//! Worker configuration: from the environment or from code.

use std::fmt;
use std::ops::RangeInclusive;
use std::time::Duration;

use crate::names::is_identifier;

/// The API URL when `KRUXIAFLOW_API_URL` is unset: a server on this machine, as in the
/// Python guide.
pub const DEFAULT_API_URL: &str = "http://localhost:8080";

/// Most activities one worker process may run at once.
pub const MAX_CONCURRENT_ACTIVITIES: usize = 100_000;

/// The shortest heartbeat interval `KRUXIAFLOW_WORKER_HEARTBEAT_INTERVAL` accepts: more
/// often only loads the server. (Code may set less, for tests.)
pub const MIN_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);

/// The server refuses polls for more than this many activities.
pub const MAX_POLL_ACTIVITIES: u32 = 100;

/// Environment variable names read by [`WorkerConfig::from_env`].
pub mod env {
    /// Base URL of the Kruxia Flow API ([`DEFAULT_API_URL`](super::DEFAULT_API_URL)
    /// when unset).
    pub const API_URL: &str = "KRUXIAFLOW_API_URL";
    /// OAuth client id (with the secret, or neither).
    pub const CLIENT_ID: &str = "KRUXIAFLOW_CLIENT_ID";
    /// OAuth client secret (with the id, or neither).
    pub const CLIENT_SECRET: &str = "KRUXIAFLOW_CLIENT_SECRET";
    /// A file holding the OAuth client secret (a Docker or Kubernetes secret), instead
    /// of [`CLIENT_SECRET`].
    pub const CLIENT_SECRET_FILE: &str = "KRUXIAFLOW_CLIENT_SECRET_FILE";
    /// Worker type polled for.
    pub const WORKER: &str = "KRUXIAFLOW_WORKER";
    /// This process's unique id.
    pub const WORKER_ID: &str = "KRUXIAFLOW_WORKER_ID";
    /// Most activities claimed by one poll.
    pub const POLL_MAX_ACTIVITIES: &str = "KRUXIAFLOW_WORKER_POLL_MAX_ACTIVITIES";
    /// Seconds between polls when the queue is empty.
    pub const POLL_INTERVAL: &str = "KRUXIAFLOW_WORKER_POLL_INTERVAL";
    /// Most activities running at once.
    pub const MAX_ACTIVITIES: &str = "KRUXIAFLOW_WORKER_MAX_ACTIVITIES";
    /// Most activities of some worker types running at once: `type=count` pairs
    /// separated by commas (`llm=8,ocr-gpu=2`).
    pub const MAX_ACTIVITIES_BY_TYPE: &str = "KRUXIAFLOW_WORKER_MAX_ACTIVITIES_BY_TYPE";
    /// Seconds an activity may run when the server gives no timeout.
    pub const ACTIVITY_TIMEOUT: &str = "KRUXIAFLOW_WORKER_ACTIVITY_TIMEOUT";
    /// Longest gap between heartbeats, in seconds.
    pub const HEARTBEAT_INTERVAL: &str = "KRUXIAFLOW_WORKER_HEARTBEAT_INTERVAL";
    /// Seconds in-flight activities get to finish on shutdown.
    pub const SHUTDOWN_TIMEOUT: &str = "KRUXIAFLOW_WORKER_SHUTDOWN_TIMEOUT";
    /// Seconds a cancelled handler gets to return before its future is dropped.
    pub const CANCELLATION_GRACE: &str = "KRUXIAFLOW_WORKER_CANCELLATION_GRACE";
    /// Seconds at shutdown for the last reports to reach the server.
    pub const REPORT_FLUSH_TIMEOUT: &str = "KRUXIAFLOW_WORKER_REPORT_FLUSH_TIMEOUT";
    /// Seconds one API request may take, and a file transfer may make no progress.
    pub const HTTP_TIMEOUT: &str = "KRUXIAFLOW_WORKER_HTTP_TIMEOUT";
    /// Seconds a token stream lets text gather after a request before it sends the
    /// next one; `0` sends at once.
    pub const STREAM_LINGER: &str = "KRUXIAFLOW_WORKER_STREAM_LINGER";
    /// A PEM file of extra CA certificates to trust (a private CA), besides the
    /// operating system's and the bundled web roots.
    pub const CA_CERT_FILE: &str = "KRUXIAFLOW_CA_CERT_FILE";
    /// `host:port` to serve `/metrics`, `/healthz` and `/readyz` on; unset: no listener.
    pub const METRICS_ADDR: &str = "KRUXIAFLOW_WORKER_METRICS_ADDR";
    /// `text` (the default) or `json`: how [`logging::init`](crate::logging::init)
    /// writes log lines.
    pub const LOG_FORMAT: &str = "KRUXIAFLOW_LOG_FORMAT";

    /// The variable that sets the [`WorkerConfig`](super::WorkerConfig) field `field`.
    pub(crate) fn for_field(field: &str) -> Option<&'static str> {
        Some(match field {
            "api_url" => API_URL,
            "worker" => WORKER,
            "worker_id" => WORKER_ID,
            "poll_max_activities" => POLL_MAX_ACTIVITIES,
            "poll_interval" => POLL_INTERVAL,
            "max_concurrent_activities" => MAX_ACTIVITIES,
            "max_activities_by_type" => MAX_ACTIVITIES_BY_TYPE,
            "activity_timeout" => ACTIVITY_TIMEOUT,
            "heartbeat_interval" => HEARTBEAT_INTERVAL,
            "shutdown_timeout" => SHUTDOWN_TIMEOUT,
            "cancellation_grace" => CANCELLATION_GRACE,
            "report_flush_timeout" => REPORT_FLUSH_TIMEOUT,
            "http_timeout" => HTTP_TIMEOUT,
            "stream_linger" => STREAM_LINGER,
            _ => return None,
        })
    }
}

/// OAuth client credentials. `Debug` never prints the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// OAuth client id.
    pub client_id: String,
    client_secret: String,
    /// Where the secret was read from, to read it again when the token endpoint
    /// refuses it (a secret mount rotated in place).
    secret_file: Option<std::path::PathBuf>,
}

impl Credentials {
    /// Credentials for the client-credentials grant.
    pub fn new(client_id: impl Into<String>, client_secret: impl Into<String>) -> Self {
        Self { client_id: client_id.into(), client_secret: client_secret.into(), secret_file: None }
    }

    /// Credentials whose secret is the content of `path` (without its line end), as a
    /// Docker or Kubernetes secret mounts it. When the token endpoint refuses the
    /// secret, the worker reads the file again and, if it changed, uses the new secret.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let path = dir.path().join("secret");
    /// # std::fs::write(&path, "s3cret\n").unwrap();
    /// use kruxiaflow_worker::Credentials;
    ///
    /// let credentials = Credentials::from_secret_file("my-worker", &path).unwrap();
    /// assert_eq!(credentials.client_secret(), "s3cret");
    /// ```
    pub fn from_secret_file(
        client_id: impl Into<String>,
        path: impl AsRef<std::path::Path>,
    ) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let client_secret = read_secret(path)?;
        Ok(Self { client_id: client_id.into(), client_secret, secret_file: Some(path.to_owned()) })
    }

    /// The secret, for building the token request.
    pub fn client_secret(&self) -> &str {
        &self.client_secret
    }

    /// The file the secret was read from, if it was.
    pub fn secret_file(&self) -> Option<&std::path::Path> {
        self.secret_file.as_deref()
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials").field("client_id", &self.client_id).field("client_secret", &"<redacted>").finish()
    }
}

/// How a worker connects and behaves. Build it with [`WorkerConfig::from_env`], or in
/// code with struct update over [`WorkerConfig::new`]:
///
/// ```
/// use std::time::Duration;
/// use kruxiaflow_worker::WorkerConfig;
///
/// let config = WorkerConfig {
///     max_concurrent_activities: 32,
///     activity_timeout: Duration::from_secs(600),
///     ..WorkerConfig::new("http://localhost:8080")
/// };
/// config.validate().unwrap();
/// assert_eq!(config.worker, "rust");
/// ```
#[derive(Clone, PartialEq)]
pub struct WorkerConfig {
    /// Base URL of the API, without a trailing `/`.
    pub api_url: String,
    /// Client credentials; `None` talks to a dev-mode server without a token.
    pub credentials: Option<Credentials>,
    /// Default worker type, used when registering activities (`rust` by default).
    pub worker: String,
    /// This process's id; must be unique per process (`worker_<UUIDv7>` by default).
    pub worker_id: String,
    /// Most activities claimed per poll (1..=100; never more than the free slots).
    pub poll_max_activities: u32,
    /// Pause between polls when the queue was empty.
    pub poll_interval: Duration,
    /// Most activities running at once.
    pub max_concurrent_activities: usize,
    /// Execution timeout when the server sends none.
    pub activity_timeout: Duration,
    /// Longest gap between heartbeats (shortened further to keep short leases).
    pub heartbeat_interval: Duration,
    /// How long in-flight activities may finish after a shutdown request.
    pub shutdown_timeout: Duration,
    /// How long a cancelled handler gets to return before its future is dropped (a
    /// handler blocking its thread is settled from the worker's runtime instead).
    pub cancellation_grace: Duration,
    /// How long, at shutdown, the last reports may take to reach the server.
    pub report_flush_timeout: Duration,
    /// Timeout of one API request; also how long a file transfer may make no progress
    /// (transfers as such have no total limit).
    pub http_timeout: Duration,
    /// How long a token stream lets text gather after a request before it sends the
    /// next (40 ms by default: at most 25 requests a second per stream, whatever the
    /// token rate); the first text after a pause goes out at once. Zero sends every
    /// increment as soon as the previous request is answered.
    pub stream_linger: Duration,
    /// A PEM file of extra CA certificates to trust, besides the operating system's
    /// roots (which honour `SSL_CERT_FILE`) and the bundled web roots.
    pub ca_cert_file: Option<std::path::PathBuf>,
    /// Where to serve `/metrics` (Prometheus text), `/healthz` and `/readyz`; `None`
    /// (the default): no listener. Port 0 picks a free port
    /// ([`WorkerHandle::listening_on`](crate::WorkerHandle::listening_on) tells which).
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Most activities of a worker type running at once, for the types listed (the
    /// rest share `max_concurrent_activities` alone). The type's poller never claims
    /// more than its pool has free, so the rest of that work stays on the server for
    /// other workers. See [`max_activities_for`](Self::max_activities_for).
    pub max_activities_by_type: std::collections::BTreeMap<String, usize>,
}

/// `llm=8,ocr-gpu=2`: worker types and their pools.
fn parse_pools(raw: &str) -> Result<std::collections::BTreeMap<String, usize>, ConfigError> {
    let expected = "type=count pairs separated by commas, such as llm=8,ocr-gpu=2";
    let mut pools = std::collections::BTreeMap::new();
    for pair in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (worker, count) =
            pair.split_once('=').ok_or_else(|| invalid(env::MAX_ACTIVITIES_BY_TYPE, raw, expected))?;
        let count = count.trim().parse().map_err(|_| invalid(env::MAX_ACTIVITIES_BY_TYPE, raw, expected))?;
        if pools.insert(worker.trim().to_owned(), count).is_some() {
            return Err(invalid(env::MAX_ACTIVITIES_BY_TYPE, raw, "each worker type once"));
        }
    }
    Ok(pools)
}

/// Every field, the API URL without its password and the credentials without their
/// secret.
impl fmt::Debug for WorkerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerConfig")
            .field("api_url", &self.shown_api_url())
            .field("credentials", &self.credentials)
            .field("worker", &self.worker)
            .field("worker_id", &self.worker_id)
            .field("poll_max_activities", &self.poll_max_activities)
            .field("poll_interval", &self.poll_interval)
            .field("max_concurrent_activities", &self.max_concurrent_activities)
            .field("activity_timeout", &self.activity_timeout)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .field("cancellation_grace", &self.cancellation_grace)
            .field("report_flush_timeout", &self.report_flush_timeout)
            .field("http_timeout", &self.http_timeout)
            .field("stream_linger", &self.stream_linger)
            .field("ca_cert_file", &self.ca_cert_file)
            .field("metrics_addr", &self.metrics_addr)
            .field("max_activities_by_type", &self.max_activities_by_type)
            .finish()
    }
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self::new("http://localhost:8080")
    }
}

impl WorkerConfig {
    /// Defaults for every setting, talking to `api_url` without credentials.
    pub fn new(api_url: impl Into<String>) -> Self {
        Self {
            api_url: api_url.into().trim_end_matches('/').to_owned(),
            credentials: None,
            worker: "rust".to_owned(),
            worker_id: format!("worker_{}", uuid::Uuid::now_v7()),
            poll_max_activities: 10,
            poll_interval: Duration::from_millis(100),
            max_concurrent_activities: 16,
            activity_timeout: Duration::from_secs(300),
            heartbeat_interval: Duration::from_secs(30),
            shutdown_timeout: Duration::from_secs(30),
            cancellation_grace: Duration::from_secs(2),
            report_flush_timeout: Duration::from_secs(10),
            http_timeout: Duration::from_secs(30),
            stream_linger: DEFAULT_STREAM_LINGER,
            ca_cert_file: None,
            metrics_addr: None,
            max_activities_by_type: std::collections::BTreeMap::new(),
        }
    }

    /// Caps how many activities of worker type `worker` run at once (within
    /// `max_concurrent_activities`): the way to isolate a rate-limited provider is to
    /// give its activities a worker type of their own and a pool here.
    ///
    /// ```
    /// use kruxiaflow_worker::WorkerConfig;
    ///
    /// let config = WorkerConfig::new("http://localhost:8080").max_activities_for("llm", 8);
    /// assert_eq!(config.max_activities_by_type["llm"], 8);
    /// ```
    pub fn max_activities_for(mut self, worker: &str, count: usize) -> Self {
        self.max_activities_by_type.insert(worker.to_owned(), count);
        self
    }

    /// The longest a shutdown can take, from the request to `run` returning:
    /// `shutdown_timeout` for the drain, `cancellation_grace` for handlers cancelled
    /// after it, and `report_flush_timeout` for their reports. An orchestrator's stop
    /// grace period (Docker's `stop_grace_period`, Kubernetes'
    /// `terminationGracePeriodSeconds`) should be longer.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kruxiaflow_worker::WorkerConfig;
    ///
    /// assert_eq!(WorkerConfig::default().shutdown_bound(), Duration::from_secs(30 + 2 + 10));
    /// ```
    pub fn shutdown_bound(&self) -> Duration {
        self.shutdown_timeout + self.cancellation_grace + self.report_flush_timeout
    }

    /// Sets the client credentials.
    pub fn with_credentials(mut self, client_id: impl Into<String>, client_secret: impl Into<String>) -> Self {
        self.credentials = Some(Credentials::new(client_id, client_secret));
        self
    }

    /// Reads every `KRUXIAFLOW_*` variable (see [`env`](mod@env)); unset or empty variables keep
    /// their defaults. A bad value is an error naming the variable and the value.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`from_env`](Self::from_env), reading variables through `lookup`.
    ///
    /// ```
    /// use kruxiaflow_worker::WorkerConfig;
    ///
    /// let err = WorkerConfig::from_lookup(|name| match name {
    ///     "KRUXIAFLOW_API_URL" => Some("http://localhost:8080".into()),
    ///     "KRUXIAFLOW_WORKER_MAX_ACTIVITIES" => Some("abc".into()),
    ///     _ => None,
    /// })
    /// .unwrap_err();
    /// assert_eq!(
    ///     err.to_string(),
    ///     "KRUXIAFLOW_WORKER_MAX_ACTIVITIES must be a positive integer, got \"abc\""
    /// );
    /// ```
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let api_url = get(env::API_URL);
        let mut config = Self::new(api_url.as_deref().map_or(DEFAULT_API_URL, str::trim));
        config.credentials = credentials_from(&get)?;
        if let Some(worker) = get(env::WORKER) {
            config.worker = worker;
        }
        if let Some(worker_id) = get(env::WORKER_ID) {
            config.worker_id = worker_id;
        }
        if let Some(raw) = get(env::POLL_MAX_ACTIVITIES) {
            let wanted = parse_positive_int(env::POLL_MAX_ACTIVITIES, &raw)?;
            if wanted > u64::from(MAX_POLL_ACTIVITIES) {
                tracing::warn!(
                    "{} = {wanted} is above the server's limit; polling for at most {MAX_POLL_ACTIVITIES}",
                    env::POLL_MAX_ACTIVITIES
                );
            }
            config.poll_max_activities = wanted.min(u64::from(MAX_POLL_ACTIVITIES)) as u32;
        }
        if let Some(raw) = get(env::MAX_ACTIVITIES) {
            let wanted = parse_positive_int(env::MAX_ACTIVITIES, &raw)?;
            config.max_concurrent_activities = usize::try_from(wanted)
                .ok()
                .filter(|&n| n <= MAX_CONCURRENT_ACTIVITIES)
                .ok_or_else(|| invalid(env::MAX_ACTIVITIES, &raw, "an integer from 1 to 100000"))?;
        }
        if let Some(raw) = get(env::MAX_ACTIVITIES_BY_TYPE) {
            config.max_activities_by_type = parse_pools(&raw)?;
        }
        config.read_durations(&get)?;
        config.ca_cert_file = get(env::CA_CERT_FILE).map(|path| path.trim().into());
        if let Some(raw) = get(env::METRICS_ADDR) {
            let addr = raw
                .trim()
                .parse()
                .map_err(|_| invalid(env::METRICS_ADDR, &raw, "a host:port address such as 0.0.0.0:9464"))?;
            config.metrics_addr = Some(addr);
        }
        config.validate().map_err(|error| error.named_after(env::for_field))?;
        Ok(config)
    }

    /// Sets the durations of the variables `get` finds.
    fn read_durations(&mut self, get: &impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        let seconds = |name: &'static str, default: Duration| match get(name) {
            Some(raw) => parse_seconds(name, &raw),
            None => Ok(default),
        };
        self.poll_interval = seconds(env::POLL_INTERVAL, self.poll_interval)?;
        self.activity_timeout = seconds(env::ACTIVITY_TIMEOUT, self.activity_timeout)?;
        self.heartbeat_interval = seconds(env::HEARTBEAT_INTERVAL, self.heartbeat_interval)?;
        if self.heartbeat_interval < MIN_HEARTBEAT_INTERVAL {
            let raw = get(env::HEARTBEAT_INTERVAL).unwrap_or_default();
            return Err(invalid(env::HEARTBEAT_INTERVAL, &raw, "at least 1 second"));
        }
        self.shutdown_timeout = seconds(env::SHUTDOWN_TIMEOUT, self.shutdown_timeout)?;
        self.cancellation_grace = seconds(env::CANCELLATION_GRACE, self.cancellation_grace)?;
        self.report_flush_timeout = seconds(env::REPORT_FLUSH_TIMEOUT, self.report_flush_timeout)?;
        self.http_timeout = seconds(env::HTTP_TIMEOUT, self.http_timeout)?;
        if let Some(raw) = get(env::STREAM_LINGER) {
            self.stream_linger = match raw.trim().parse::<f64>() {
                Ok(0.0) => Duration::ZERO,
                _ => parse_seconds(env::STREAM_LINGER, &raw)?,
            };
        }
        Ok(())
    }

    /// Whether the client secret and tokens would cross the network unencrypted: an
    /// `http://` URL to a host other than this machine, with credentials.
    pub fn sends_secrets_in_clear(&self) -> bool {
        let Some(url) = reqwest::Url::parse(&self.api_url).ok() else { return false };
        let host = url.host_str().unwrap_or_default();
        let local = host.eq_ignore_ascii_case("localhost")
            || host.trim_matches(['[', ']']).parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
        self.credentials.is_some() && url.scheme() == "http" && !local
    }

    /// `api_url` as logs and errors show it: without the password of a user part.
    pub(crate) fn shown_api_url(&self) -> std::borrow::Cow<'_, str> {
        crate::text::redact_url(&self.api_url)
    }

    /// `api_url`, parsed: the base of every endpoint's URL.
    pub(crate) fn api_base(&self) -> Result<reqwest::Url, ConfigError> {
        reqwest::Url::parse(&self.api_url)
            .ok()
            .filter(|url| matches!(url.scheme(), "http" | "https") && url.host().is_some() && url.query().is_none())
            .ok_or_else(|| {
                invalid("api_url", &self.shown_api_url(), "an http:// or https:// URL with a valid host and port")
            })
    }

    /// Checks every field; the error names the field and the bad value.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.api_base()?;
        if !is_identifier(&self.worker) {
            return Err(invalid("worker", &self.worker, "a worker type of letters, digits, '_' and '-'"));
        }
        if self.worker_id.trim().is_empty() {
            return Err(invalid("worker_id", &self.worker_id, "a non-empty id"));
        }
        if self.poll_max_activities == 0 || self.poll_max_activities > MAX_POLL_ACTIVITIES {
            return Err(invalid(
                "poll_max_activities",
                &self.poll_max_activities.to_string(),
                "an integer from 1 to 100",
            ));
        }
        if self.max_concurrent_activities == 0 || self.max_concurrent_activities > MAX_CONCURRENT_ACTIVITIES {
            return Err(invalid(
                "max_concurrent_activities",
                &self.max_concurrent_activities.to_string(),
                "an integer from 1 to 100000",
            ));
        }
        for (worker, &count) in &self.max_activities_by_type {
            if !is_identifier(worker) {
                return Err(invalid("max_activities_by_type", worker, "worker types of letters, digits, '_' and '-'"));
            }
            if count == 0 || count > MAX_CONCURRENT_ACTIVITIES {
                return Err(invalid("max_activities_by_type", &format!("{worker}={count}"), "counts from 1 to 100000"));
            }
        }
        for (name, value, range) in [
            ("poll_interval", self.poll_interval, POLL_INTERVAL_RANGE),
            ("activity_timeout", self.activity_timeout, ACTIVITY_TIMEOUT_RANGE),
            ("heartbeat_interval", self.heartbeat_interval, HEARTBEAT_INTERVAL_RANGE),
            ("shutdown_timeout", self.shutdown_timeout, SHUTDOWN_TIMEOUT_RANGE),
            ("cancellation_grace", self.cancellation_grace, CANCELLATION_GRACE_RANGE),
            ("report_flush_timeout", self.report_flush_timeout, REPORT_FLUSH_TIMEOUT_RANGE),
            ("http_timeout", self.http_timeout, HTTP_TIMEOUT_RANGE),
            ("stream_linger", self.stream_linger, STREAM_LINGER_RANGE),
        ] {
            if !range.contains(&value) {
                let shown = |d: &Duration| humantime::format_duration(*d).to_string();
                return Err(ConfigError::OutOfRange {
                    name: name.to_owned(),
                    value: shown(&value),
                    min: shown(range.start()),
                    max: shown(range.end()),
                });
            }
        }
        if let Some(credentials) = &self.credentials
            && (credentials.client_id.is_empty() || credentials.client_secret.is_empty())
        {
            return Err(invalid("credentials", &format!("{credentials:?}"), "a non-empty client id and secret"));
        }
        Ok(())
    }
}

const SECOND: Duration = Duration::from_secs(1);
const HOUR: Duration = Duration::from_secs(3600);
/// The durations a configuration may set: below these floors nothing can work (a
/// 200 µs HTTP timeout never gets an answer), above these ceilings a typo (`3600` for
/// `3600ms`) would silently stall the worker.
const POLL_INTERVAL_RANGE: RangeInclusive<Duration> = Duration::from_millis(10)..=HOUR;
const ACTIVITY_TIMEOUT_RANGE: RangeInclusive<Duration> = SECOND..=Duration::from_secs(30 * 24 * 3600);
const HEARTBEAT_INTERVAL_RANGE: RangeInclusive<Duration> = Duration::from_millis(100)..=HOUR;
const SHUTDOWN_TIMEOUT_RANGE: RangeInclusive<Duration> = Duration::ZERO..=Duration::from_secs(24 * 3600);
const CANCELLATION_GRACE_RANGE: RangeInclusive<Duration> = Duration::ZERO..=HOUR;
const REPORT_FLUSH_TIMEOUT_RANGE: RangeInclusive<Duration> = Duration::from_millis(100)..=HOUR;
const HTTP_TIMEOUT_RANGE: RangeInclusive<Duration> = Duration::from_millis(100)..=HOUR;
const STREAM_LINGER_RANGE: RangeInclusive<Duration> = Duration::ZERO..=SECOND;

/// How long a token stream lets text gather after a request before it sends the next
/// one, by default: at any token rate a stream costs at most 25 requests a second, which
/// a reader cannot tell from one request a token.
const DEFAULT_STREAM_LINGER: Duration = Duration::from_millis(40);

fn invalid(name: &str, value: &str, expected: &'static str) -> ConfigError {
    ConfigError::Invalid { name: name.to_owned(), value: value.to_owned(), expected }
}

fn parse_positive_int(name: &str, raw: &str) -> Result<u64, ConfigError> {
    match raw.trim().parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(invalid(name, raw, "a positive integer")),
    }
}

/// Seconds (`30`, `0.5`), or a duration with units (`30s`, `100ms`, `1m 30s`).
fn parse_seconds(name: &str, raw: &str) -> Result<Duration, ConfigError> {
    let raw_trimmed = raw.trim();
    let parsed = match raw_trimmed.parse::<f64>() {
        Ok(s) if s.is_finite() && s > 0.0 && s < 1e9 => Some(Duration::from_secs_f64(s)),
        Ok(_) => None,
        Err(_) => humantime::parse_duration(raw_trimmed).ok().filter(|d| !d.is_zero() && d.as_secs() < 1_000_000_000),
    };
    parsed.ok_or_else(|| invalid(name, raw, "a positive number of seconds, or a duration such as 30s or 100ms"))
}

/// The client credentials of the variables `get` finds: both or neither, and the
/// secret from the variable or from a file, not both.
fn credentials_from(get: &impl Fn(&str) -> Option<String>) -> Result<Option<Credentials>, ConfigError> {
    let secret = match (get(env::CLIENT_SECRET), get(env::CLIENT_SECRET_FILE)) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::Conflict { first: env::CLIENT_SECRET, second: env::CLIENT_SECRET_FILE });
        }
        (Some(secret), None) => Some(Secret::Value(secret)),
        (None, Some(path)) => Some(Secret::File(path.trim().into())),
        (None, None) => None,
    };
    Ok(match (get(env::CLIENT_ID), secret) {
        (Some(id), Some(Secret::Value(secret))) => Some(Credentials::new(id, secret)),
        (Some(id), Some(Secret::File(path))) => Some(Credentials::from_secret_file(id, path)?),
        (None, None) => None,
        (Some(_), None) => {
            return Err(ConfigError::PartialCredentials { missing: env::CLIENT_SECRET, set: env::CLIENT_ID });
        }
        (None, Some(_)) => {
            return Err(ConfigError::PartialCredentials { missing: env::CLIENT_ID, set: env::CLIENT_SECRET });
        }
    })
}

/// Where the client secret comes from.
enum Secret {
    Value(String),
    File(std::path::PathBuf),
}

/// The secret in the file at `path`, without the line end most tools add. The error
/// never quotes the file's content.
pub(crate) fn read_secret(path: &std::path::Path) -> Result<String, ConfigError> {
    let unreadable =
        |detail: String| ConfigError::SecretFile { name: env::CLIENT_SECRET_FILE, path: path.into(), detail };
    let text = std::fs::read_to_string(path).map_err(|e| unreadable(e.to_string()))?;
    let secret = text.trim_end_matches(['\n', '\r']);
    if secret.is_empty() {
        return Err(unreadable("the file is empty".to_owned()));
    }
    Ok(secret.to_owned())
}

/// A configuration value is missing or invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// Only one of the client id and secret is set.
    #[error("{set} is set but {missing} is not: set both for client credentials, or neither for a dev-mode server")]
    PartialCredentials {
        /// The variable that is set.
        set: &'static str,
        /// The variable that is missing.
        missing: &'static str,
    },
    /// The CA certificate file cannot be used.
    #[error("{name} names {path:?}, which cannot be used as CA certificates: {detail}")]
    CaCertFile {
        /// The variable.
        name: &'static str,
        /// The file.
        path: std::path::PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// Two variables that say the same thing are both set.
    #[error("{first} and {second} are both set: set only one")]
    Conflict {
        /// One variable.
        first: &'static str,
        /// The other.
        second: &'static str,
    },
    /// The client secret file cannot be read. The message shows the path only when it
    /// is absolute: a relative "path" may be the secret itself, set in the wrong
    /// variable.
    #[error("{name} names {}, which cannot be read as the client secret: {detail}", shown_secret_path(path))]
    SecretFile {
        /// The variable.
        name: &'static str,
        /// The file.
        path: std::path::PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// The HTTP client could not be built from these settings.
    #[error("could not build the HTTP client: {0}")]
    HttpClient(String),
    /// A duration outside the range that can work.
    #[error("{name} must be from {min} to {max}, got {value}")]
    OutOfRange {
        /// Variable or field name.
        name: String,
        /// The rejected value.
        value: String,
        /// The least accepted.
        min: String,
        /// The most accepted.
        max: String,
    },
    /// A value does not parse or is out of range.
    #[error("{name} must be {expected}, got {value:?}")]
    Invalid {
        /// Variable or field name.
        name: String,
        /// The rejected value.
        value: String,
        /// What is accepted.
        expected: &'static str,
    },
}

/// An absolute path as it is; anything else only by its length.
fn shown_secret_path(path: &std::path::Path) -> String {
    if path.is_absolute() {
        format!("{path:?}")
    } else {
        let length = path.as_os_str().len();
        format!(
            "a relative path ({length} bytes, not shown: if it is the secret itself, set {} instead)",
            env::CLIENT_SECRET
        )
    }
}

impl ConfigError {
    /// The same error, naming the environment variable `variable_of` gives for the
    /// field it names, if any.
    fn named_after(self, variable_of: impl Fn(&str) -> Option<&'static str>) -> Self {
        match self {
            Self::Invalid { name, value, expected } => {
                let name = variable_of(&name).map_or(name, str::to_owned);
                Self::Invalid { name, value, expected }
            }
            Self::OutOfRange { name, value, min, max } => {
                let name = variable_of(&name).map_or(name, str::to_owned);
                Self::OutOfRange { name, value, min, max }
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests;
