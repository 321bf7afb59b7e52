//! The worker: polls for activities, runs them with bounded concurrency, keeps their
//! leases, reports every outcome, and shuts down without stranding claimed work.

mod attempt;
mod backend;
mod conclude;
mod delivery;
mod health;
mod in_flight;
mod keeper;
mod lease;
mod listener;
mod poller;
mod shutdown;
mod stream_transport;
mod takeover;

use std::future::Future;
use std::sync::Arc;

use tokio::runtime::Handle;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::task::AbortOnDropHandle;

use crate::client::{ApiClient, HttpCustomizer, Pools, RetryPolicy, build_pools};
use crate::config::WorkerConfig;
use crate::error::WorkerError;
use crate::rate_limit::{RateLimit, RateLimits};
use crate::registry::ActivityRegistry;
use crate::telemetry::{self, WorkerMetrics};

use conclude::Concluding;
use delivery::Reporter;
use health::Health;
use in_flight::{InFlight, Slots};
use shutdown::Phase;
pub use shutdown::WorkerHandle;
use takeover::Takeovers;

/// Runs the activities of a registry against a Kruxia Flow server.
///
/// Activities run on a runtime the worker owns: their polls, handlers and reports.
/// What must go on however activity code behaves runs on the runtime that awaits
/// [`run`](Self::run): heartbeats, failing a handler stuck past its deadline, and
/// shutdown. Activity code that blocks its threads (CPU work, `std::thread::sleep`,
/// blocking I/O) therefore cannot cost other activities their leases, a handler stuck
/// for good is failed as a timeout, and it cannot keep the process from exiting. Still,
/// wrap blocking work in `tokio::task::spawn_blocking`, so other activities keep their
/// threads.
///
/// ```no_run
/// use kruxiaflow_worker::prelude::*;
///
/// # async fn demo(registry: ActivityRegistry) -> Result<(), WorkerError> {
/// let config = WorkerConfig::from_env()?;
/// WorkerManager::new(config, registry).run_until_shutdown().await
/// # }
/// ```
pub struct WorkerManager {
    config: WorkerConfig,
    registry: ActivityRegistry,
    retry: RetryPolicy,
    http: Option<HttpCustomizer>,
    handle: WorkerHandle,
    rate_limits: RateLimits,
}

/// A running worker, its parts each given only what they use: the pollers their
/// [`Polling`](poller::Polling) (and through its intake, attempts their
/// [`Execution`](attempt::Execution)); the lease keeper the in-flight table, the
/// worker's own client and the takeovers; the operator listener the health; the
/// shutdown the in-flight table and the takeovers. Each piece of state has one owner:
/// the reporters own report delivery, `takeovers` the deliveries made from the worker's
/// runtime, `in_flight` the running attempts and what is due for them.
struct Running {
    polling: Arc<poller::Polling>,
    in_flight: Arc<InFlight>,
    takeovers: Arc<Takeovers>,
    /// The worker's own traffic, on its own runtime and pool: heartbeats, takeovers,
    /// token streams. The activities' traffic (polls, reports, file transfers) goes over
    /// the activities' own pool, so a request never wakes the other runtime.
    client: ApiClient,
    health: Arc<Health>,
    /// Where pollers and attempts run. While every one of its threads is blocked, the
    /// worker claims nothing: the work goes to workers that can start it.
    activities: Handle,
    worker_types: Vec<String>,
    config: WorkerConfig,
}

impl WorkerManager {
    /// A worker for `registry`, configured by `config`.
    pub fn new(config: WorkerConfig, registry: ActivityRegistry) -> Self {
        Self {
            config,
            registry,
            retry: RetryPolicy::default(),
            http: None,
            handle: WorkerHandle::new(),
            rate_limits: RateLimits::default(),
        }
    }

    /// Registers the rate limit `name` (replacing one of the same name), for the
    /// activities of this worker to acquire with
    /// [`ctx.rate_limit(name)`](crate::ActivityContext::rate_limit). A limit is per worker
    /// process: give each of `n` replicas `1/n` of a provider's quota.
    ///
    /// ```
    /// use kruxiaflow_worker::prelude::*;
    /// use kruxiaflow_worker::rate_limit::RateLimit;
    ///
    /// let manager = WorkerManager::new(WorkerConfig::new("http://localhost:8080"), ActivityRegistry::new())
    ///     .rate_limit("openai-rpm", RateLimit::per_minute(500))
    ///     .rate_limit("openai-tpm", RateLimit::per_minute(200_000));
    /// # drop(manager);
    /// ```
    pub fn rate_limit(mut self, name: &str, limit: RateLimit) -> Self {
        self.rate_limits.insert(name, limit);
        self
    }

    /// Replaces the backoff used for transient HTTP failures.
    pub fn with_retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Adjusts the HTTP clients the worker builds: a proxy, a client certificate for
    /// mTLS, extra root certificates. The hook runs after the worker's own settings
    /// (no redirects, timeouts, the CA file of [`WorkerConfig::ca_cert_file`]).
    ///
    /// ```no_run
    /// use kruxiaflow_worker::prelude::*;
    ///
    /// # fn demo(config: WorkerConfig, registry: ActivityRegistry, pem: &[u8]) -> Result<(), Box<dyn std::error::Error>> {
    /// let ca = reqwest::Certificate::from_pem(pem)?;
    /// let manager = WorkerManager::new(config, registry)
    ///     .with_http_client(move |builder| builder.add_root_certificate(ca.clone()));
    /// # Ok(()) }
    /// ```
    pub fn with_http_client(
        mut self,
        customize: impl Fn(reqwest::ClientBuilder) -> reqwest::ClientBuilder + Send + Sync + 'static,
    ) -> Self {
        self.http = Some(Arc::new(customize));
        self
    }

    /// A handle that stops this worker from elsewhere.
    pub fn handle(&self) -> WorkerHandle {
        self.handle.clone()
    }

    /// Runs until SIGINT or SIGTERM, then shuts down gracefully. A second signal skips
    /// the rest of the drain.
    pub async fn run_until_shutdown(self) -> Result<(), WorkerError> {
        let handle = self.handle();
        let signals = tokio::spawn(shutdown::on_signals(handle));
        let result = self.run(std::future::pending()).await;
        signals.abort();
        result
    }

    /// Runs until `shutdown` resolves (or a [`WorkerHandle`] asks), then shuts down
    /// gracefully: stops claiming, lets in-flight activities finish for up to
    /// `shutdown_timeout`, cancels and fails the rest as retryable `WORKER_SHUTDOWN`,
    /// and gives their reports `report_flush_timeout`. The whole shutdown takes at most
    /// [`WorkerConfig::shutdown_bound`]. Reports that could not be delivered by then
    /// make it return [`WorkerError::ReportsUndelivered`] with their activity ids.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), WorkerError> {
        self.check()?;
        // The recorder first: the metric handles are made from it.
        let prometheus = self.config.metrics_addr.and_then(|_| telemetry::install_prometheus());
        let operator_listener = match self.config.metrics_addr {
            Some(addr) => Some(listener::bind(addr, &self.handle).await?),
            None => None,
        };
        let activities = ActivityRuntime::start()?;
        let handle = self.handle.clone();
        tracing::info!(
            worker_id = %self.config.worker_id,
            api_url = %self.config.shown_api_url(),
            activities = ?self.registry.activity_types(),
            "worker started"
        );
        let running = self.start(activities.handle())?;
        // Keeps leases until `run` ends, returned or dropped.
        let keeper = AbortOnDropHandle::new(tokio::spawn(keeper::keep(
            Arc::clone(&running.in_flight),
            running.client.clone(),
            running.config.worker_id.clone(),
            Arc::clone(&running.takeovers),
        )));
        // Stops serving however `run` ends, returned or dropped.
        let serving = operator_listener.map(|l| {
            let serve = listener::serve(l, Arc::clone(&running.health), prometheus, listener::Limits::DEFAULT);
            AbortOnDropHandle::new(tokio::spawn(serve))
        });
        let result = run_until_stopped(&running, shutdown, &handle).await;
        drop(serving);
        drop(keeper);
        drop(activities);
        tracing::info!("worker stopped");
        result
    }

    /// Refuses what can never run, and warns about what runs unsafely.
    fn check(&self) -> Result<(), WorkerError> {
        self.config.validate()?;
        if self.registry.is_empty() {
            return Err(WorkerError::NoActivities);
        }
        if self.config.sends_secrets_in_clear() {
            tracing::warn!(
                "the client secret and tokens go to {} unencrypted: use an https:// KRUXIAFLOW_API_URL off this machine",
                self.config.shown_api_url()
            );
        }
        if self.config.credentials.is_none() {
            tracing::warn!(
                "no client credentials configured: talking to {} without authentication (dev-mode server)",
                self.config.shown_api_url()
            );
        }
        Ok(())
    }

    /// The parts of the running worker, with activities running on `activities`.
    fn start(self, activities: Handle) -> Result<Running, WorkerError> {
        let Pools { control, work } = build_pools(&self.config, self.http.as_ref())?;
        let client = ApiClient::new(&self.config, self.config.api_base()?, self.retry, control);
        let work = client.with_http(work);
        let metrics = Arc::new(WorkerMetrics::new(self.registry.activity_names()));
        let reporter = Reporter::new(work.clone(), Arc::clone(&metrics));
        let in_flight = Arc::new(InFlight::new(Arc::clone(&metrics)));
        let worker_id = &self.config.worker_id;
        let takeovers = Arc::new(Takeovers::new(
            Concluding::new(reporter.sibling(client.clone()), Arc::clone(&metrics), worker_id.clone()),
            Arc::clone(&in_flight),
            Handle::current(),
        ));
        let slots = Arc::new(Slots::new(
            self.config.max_concurrent_activities,
            &self.config.max_activities_by_type,
            Arc::clone(&metrics),
        ));
        let worker_types = self.registry.worker_types();
        let health = Arc::new(Health::new(&worker_types, self.handle.phase().subscribe()));
        let execution = Arc::new(attempt::Execution {
            concluding: Concluding::new(reporter, Arc::clone(&metrics), worker_id.clone()),
            metrics,
            slots: Arc::clone(&slots),
            control: Handle::current(),
            cancellation_grace: self.config.cancellation_grace,
            registry: self.registry,
        });
        let intake = attempt::Intake {
            execution,
            rate_limits: Arc::new(self.rate_limits),
            config: self.config.clone(),
            client: client.clone(),
            control: Handle::current(),
            work: work.clone(),
            in_flight: Arc::clone(&in_flight),
            takeovers: Arc::clone(&takeovers),
            activities: activities.clone(),
        };
        let polling = poller::Polling {
            intake,
            slots,
            health: Arc::clone(&health),
            work,
            retry: self.retry,
            config: self.config.clone(),
        };
        Ok(Running {
            polling: Arc::new(polling),
            in_flight,
            takeovers,
            client,
            health,
            activities,
            worker_types,
            config: self.config,
        })
    }
}

/// The runtime activities run on. It is shut down in the background when
/// dropped, however `run` ends (returned, or its future dropped): a handler stuck in
/// blocking code cannot be aborted, so its thread is left behind rather than waited
/// for — and a runtime dropped the ordinary way inside async code would panic.
struct ActivityRuntime(Option<tokio::runtime::Runtime>);

impl ActivityRuntime {
    /// Its threads log to the subscriber in effect where the worker started, a scoped
    /// one (`tracing::subscriber::set_default`, as tests use) included.
    fn start() -> Result<Self, WorkerError> {
        let dispatch = tracing::dispatcher::get_default(|current| current.clone());
        let scoped = (!dispatch.is::<tracing::subscriber::NoSubscriber>()).then_some(dispatch);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("kruxiaflow-activity")
            .on_thread_start(move || {
                if let Some(dispatch) = &scoped {
                    THREAD_SUBSCRIBER.set(Some(tracing::dispatcher::set_default(dispatch)));
                }
            })
            .on_thread_stop(|| THREAD_SUBSCRIBER.set(None))
            .build()
            .map_err(|e| WorkerError::Runtime(e.to_string()))?;
        Ok(Self(Some(runtime)))
    }

    fn handle(&self) -> Handle {
        self.0.as_ref().expect("present until dropped").handle().clone()
    }
}

thread_local! {
    /// Keeps an activity thread's subscriber in effect for as long as the thread runs.
    static THREAD_SUBSCRIBER: std::cell::Cell<Option<tracing::dispatcher::DefaultGuard>> = const { std::cell::Cell::new(None) };
}

impl Drop for ActivityRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

async fn run_until_stopped(
    running: &Running,
    shutdown: impl Future<Output = ()> + Send,
    handle: &WorkerHandle,
) -> Result<(), WorkerError> {
    let phase = handle.phase();
    let mut pollers = JoinSet::new();
    for worker in &running.worker_types {
        let polling = Arc::clone(&running.polling);
        pollers.spawn_on(poller::poll_loop(polling, worker.clone(), phase.subscribe()), &running.activities);
    }
    let mut watching = phase.subscribe();
    let mut failure = None;
    tokio::select! {
        () = shutdown => handle.shutdown(),
        _ = watching.wait_for(|p| *p != Phase::Running) => {}
        Some(ended) = pollers.join_next() => {
            // A poller returns on its own only once a shutdown began, or with an error.
            let stopping = *phase.borrow() != Phase::Running;
            failure = match ended {
                Ok(Ok(())) if stopping => None,
                Ok(Ok(())) => Some(WorkerError::PollerFailed("it returned while the worker was running".to_owned())),
                Ok(Err(error)) => Some(error),
                Err(error) if error.is_panic() => Some(WorkerError::PollerFailed(
                    crate::ActivityError::from_panic(&*error.into_panic()).message().to_owned(),
                )),
                Err(error) => Some(WorkerError::PollerFailed(error.to_string())),
            };
            if let Some(failure) = &failure {
                tracing::error!(%failure, "shutting down");
            }
            handle.shutdown();
        }
    }
    let drain_deadline = match *watching.borrow() {
        Phase::Immediate => Instant::now(),
        _ => Instant::now() + running.config.shutdown_timeout,
    };
    // A poll in flight may finish within the drain, so what it claimed is started.
    tokio::select! {
        () = async { while pollers.join_next().await.is_some() {} } => {}
        () = tokio::time::sleep_until(drain_deadline) => {}
        _ = watching.wait_for(|p| *p == Phase::Immediate) => {}
    }
    if !pollers.is_empty() {
        tracing::warn!(
            "a poll was still in flight at the end of the drain (the server did not answer, or every activity thread was blocked); abandoned: what it claimed returns to the queue when its lease expires"
        );
        pollers.abort_all();
    }
    let parts = (&*running.in_flight, &running.takeovers);
    let undelivered = shutdown::drain(parts, &running.config, phase.subscribe(), drain_deadline).await;
    if !undelivered.is_empty() {
        return Err(WorkerError::ReportsUndelivered { activity_ids: undelivered });
    }
    failure.map_or(Ok(()), Err)
}

impl std::fmt::Debug for WorkerManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerManager").field("config", &self.config).field("registry", &self.registry).finish()
    }
}
