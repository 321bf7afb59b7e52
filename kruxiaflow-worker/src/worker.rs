//! The worker: polls for activities, runs them with bounded concurrency, keeps their
//! leases, reports every outcome, and shuts down without stranding claimed work.

mod backend;
mod delivery;
mod dispatch;
mod heartbeat;
mod poller;
mod runner;
mod shutdown;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::sync::{Semaphore, watch};
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use crate::client::{ApiClient, RetryPolicy};
use crate::config::WorkerConfig;
use crate::context::ActivityContext;
use crate::error::WorkerError;
use crate::registry::ActivityRegistry;

use shutdown::Phase;
pub use shutdown::WorkerHandle;

/// Runs the activities of a registry against a Kruxia Flow server.
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
    phase: Arc<watch::Sender<Phase>>,
}

/// What every task of a running worker shares.
struct Shared {
    config: WorkerConfig,
    client: ApiClient,
    registry: ActivityRegistry,
    retry: RetryPolicy,
    slots: Arc<Semaphore>,
    report_slots: Semaphore,
    in_flight: Mutex<HashMap<Uuid, ActivityContext>>,
    tasks: TaskTracker,
    phase: watch::Receiver<Phase>,
}

impl Shared {
    fn in_flight(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, ActivityContext>> {
        // Entries are inserted and removed whole; a poisoned map is still consistent.
        self.in_flight.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl WorkerManager {
    /// A worker for `registry`, configured by `config`.
    pub fn new(config: WorkerConfig, registry: ActivityRegistry) -> Self {
        let (phase, _) = watch::channel(Phase::Running);
        Self { config, registry, retry: RetryPolicy::default(), phase: Arc::new(phase) }
    }

    /// Replaces the backoff used for transient HTTP failures.
    pub fn with_retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// A handle that stops this worker from elsewhere.
    pub fn handle(&self) -> WorkerHandle {
        WorkerHandle::new(Arc::clone(&self.phase))
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
    /// and waits for every report to be delivered.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), WorkerError> {
        self.config.validate()?;
        if self.registry.is_empty() {
            return Err(WorkerError::NoActivities);
        }
        if self.config.credentials.is_none() {
            tracing::warn!(
                "no client credentials configured: talking to {} without authentication (dev-mode server)",
                self.config.api_url
            );
        }
        let client = ApiClient::new(&self.config, self.retry).map_err(|e| WorkerError::HttpClient(e.to_string()))?;
        let shared = Arc::new(Shared {
            slots: Arc::new(Semaphore::new(self.config.max_concurrent_activities)),
            report_slots: Semaphore::new(delivery::REPORTS_IN_FLIGHT),
            config: self.config,
            client,
            registry: self.registry,
            retry: self.retry,
            in_flight: Mutex::new(HashMap::new()),
            tasks: TaskTracker::new(),
            phase: self.phase.subscribe(),
        });
        tracing::info!(
            worker_id = %shared.config.worker_id,
            activities = ?shared.registry.activity_types(),
            "worker started"
        );
        let pollers: Vec<_> = shared
            .registry
            .worker_types()
            .into_iter()
            .map(|worker| tokio::spawn(poller::poll_loop(Arc::clone(&shared), worker)))
            .collect();

        let handle = WorkerHandle::new(Arc::clone(&self.phase));
        let mut phase = shared.phase.clone();
        tokio::select! {
            () = shutdown => handle.shutdown(),
            _ = phase.wait_for(|p| *p != Phase::Running) => {}
        }
        for poller in pollers {
            // A poll in flight finishes first, so the activities it claimed are started
            // (and then drained or failed) rather than stranded.
            if let Err(error) = poller.await {
                tracing::error!(%error, "poller task ended abnormally");
            }
        }
        shutdown::drain(&shared).await;
        tracing::info!("worker stopped");
        Ok(())
    }
}

impl std::fmt::Debug for WorkerManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerManager").field("config", &self.config).field("registry", &self.registry).finish()
    }
}
