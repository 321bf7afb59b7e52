//! A fake Kruxia Flow API server that speaks the worker protocol faithfully: same
//! paths, JSON shapes, status codes, validation messages and queue semantics.

mod activity;
mod admin;
mod auth;
mod clock;
mod endpoint;
mod envelope;
mod faults;
mod files;
mod gate;
mod handles;
mod log;
mod queue;
mod routes;
mod serve;
mod state;
mod subscribers;
mod token;
mod tooling;
mod usage;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub use activity::{ActivitySnapshot, Completion, Failure, NewActivity, Outcome, RetrySettings, RetryStrategy, Status};
pub use endpoint::Endpoint;
pub use faults::{ChaosConfig, Fault, REDIRECT_LOCATION};
pub use files::StoredFile;
pub use handles::{Faults, Files, Log};
pub use log::RequestRecord;
pub use state::StreamRecord;
pub use usage::Usage;

use auth::{AuthConfig, Tokens};
use files::FileStore;
use queue::Queue;
use state::ServerState;
use tooling::Tooling;

/// How long [`FakeServer::wait_for`] and [`FakeServer::wait_until_idle`] wait before
/// failing the test.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(60);

/// A fake API server on `127.0.0.1`, for integration tests of workers.
///
/// ```
/// use kruxiaflow_worker_testing::{FakeServer, NewActivity};
/// use serde_json::json;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let server = FakeServer::start().await;
/// let id = server.enqueue(NewActivity::new("rust", "double").params(json!({"input": 21})));
///
/// // A worker would do this over HTTP; here we play the worker by hand.
/// let http = reqwest::Client::new();
/// let poll: serde_json::Value = http
///     .post(format!("{}/api/v1/workers/poll", server.url()))
///     .json(&json!({"worker": "rust", "worker_id": "w1", "max_activities": 1}))
///     .send().await.unwrap().json().await.unwrap();
/// assert_eq!(poll["activities"][0]["activity_id"], id.to_string());
///
/// http.post(format!("{}/api/v1/activities/{id}/complete", server.url()))
///     .json(&json!({"worker_id": "w1", "output": {"result": 42}}))
///     .send().await.unwrap();
/// let outcome = server.wait_for(id).await;
/// assert_eq!(outcome.expect_completed().output["result"], 42);
/// # }
/// ```
pub struct FakeServer {
    state: Arc<ServerState>,
    tooling: Arc<Tooling>,
    addr: SocketAddr,
    listener: Mutex<Option<Listening>>,
    sweeper: JoinHandle<()>,
}

struct Listening {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// Configures a [`FakeServer`].
#[derive(Debug, Clone)]
pub struct FakeServerBuilder {
    auth: AuthConfig,
    default_max_retries: u32,
    sweep_interval: Duration,
    unknown_models: HashSet<String>,
    port: u16,
}

impl Default for FakeServerBuilder {
    fn default() -> Self {
        Self {
            auth: AuthConfig {
                client: None,
                token_lifetime: Duration::from_secs(86_400),
                leeway: Duration::from_secs(60),
            },
            default_max_retries: 3,
            sweep_interval: Duration::from_secs(1),
            unknown_models: HashSet::new(),
            port: 0,
        }
    }
}

impl FakeServerBuilder {
    /// Auth mode: protected routes need a token from these client credentials.
    pub fn auth(mut self, client_id: impl Into<String>, client_secret: impl Into<String>) -> Self {
        self.auth.client = Some((client_id.into(), client_secret.into()));
        self
    }

    /// `expires_in` of issued tokens (default one day).
    pub fn token_lifetime(mut self, lifetime: Duration) -> Self {
        self.auth.token_lifetime = lifetime;
        self
    }

    /// How long after expiry a token is still accepted (the real server: 60 s).
    pub fn token_leeway(mut self, leeway: Duration) -> Self {
        self.auth.leeway = leeway;
        self
    }

    /// Retries for activities enqueued without a retry policy (the real default: 3).
    pub fn default_max_retries(mut self, retries: u32) -> Self {
        self.default_max_retries = retries;
        self
    }

    /// How often expired leases are swept (the real server: every 30 s).
    pub fn sweep_interval(mut self, interval: Duration) -> Self {
        self.sweep_interval = interval;
        self
    }

    /// Completion usage for this `provider`/`model` (without `cost_usd`) gets the
    /// server's "unknown model" warning.
    pub fn unknown_model(mut self, provider: &str, model: &str) -> Self {
        self.unknown_models.insert(format!("{provider}/{model}"));
        self
    }

    /// Listens on this port instead of a free one.
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Starts the server.
    ///
    /// # Panics
    /// If the port cannot be bound or the file store cannot be created: a test cannot
    /// go on without its server.
    pub async fn start(self) -> FakeServer {
        self.try_start().await.expect("the fake server could not start")
    }

    /// Starts the server, or says why it could not.
    pub async fn try_start(self) -> std::io::Result<FakeServer> {
        let state = Arc::new(ServerState::new(
            Queue::new(self.default_max_retries),
            FileStore::new()?,
            Tokens::new(self.auth),
            self.unknown_models,
        ));
        let listener = TcpListener::bind(("127.0.0.1", self.port)).await?;
        let addr = listener.local_addr()?;
        let tooling = Arc::new(Tooling::default());
        let listening = listen(&state, &tooling, listener);
        let sweeper = tokio::spawn(sweep_periodically(Arc::downgrade(&state), self.sweep_interval));
        Ok(FakeServer { state, tooling, addr, listener: Mutex::new(Some(listening)), sweeper })
    }
}

fn listen(state: &Arc<ServerState>, tooling: &Arc<Tooling>, listener: TcpListener) -> Listening {
    let stop = CancellationToken::new();
    let router = routes::router(Arc::clone(state), Arc::clone(tooling));
    let task = tokio::spawn(serve::serve(listener, router, stop.clone()));
    Listening { stop, task }
}

async fn sweep_periodically(state: std::sync::Weak<ServerState>, interval: Duration) {
    loop {
        tokio::time::sleep(interval).await;
        let Some(state) = state.upgrade() else { return };
        let now = state.clock.now();
        state.with_queue(|q| q.sweep(now));
    }
}

impl FakeServer {
    /// A dev-mode server (no token needed) on a free port.
    pub async fn start() -> Self {
        Self::builder().start().await
    }

    /// A builder for auth mode and other settings.
    pub fn builder() -> FakeServerBuilder {
        FakeServerBuilder::default()
    }

    /// `http://127.0.0.1:{port}`: use it as `KRUXIAFLOW_API_URL`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Puts an activity in the queue; returns its id.
    pub fn enqueue(&self, activity: NewActivity) -> Uuid {
        let now = self.state.clock.now();
        self.state.with_queue(|q| q.enqueue(activity, now))
    }

    /// Waits until the activity is completed or failed terminally.
    ///
    /// # Panics
    /// After [`DEFAULT_WAIT`], with the activity's state, so a hung test says why.
    pub async fn wait_for(&self, id: Uuid) -> Outcome {
        match self.wait_for_timeout(id, DEFAULT_WAIT).await {
            Some(outcome) => outcome,
            None => panic!("activity {id} did not settle within {DEFAULT_WAIT:?}; state: {:?}", self.activity(id)),
        }
    }

    /// Waits up to `timeout` for the activity to settle.
    pub async fn wait_for_timeout(&self, id: Uuid, timeout: Duration) -> Option<Outcome> {
        self.wait_until(timeout, || self.state.read_queue(|q| q.outcome(id))).await
    }

    /// Waits until every enqueued activity is completed or failed terminally; returns
    /// each one's id and outcome, in enqueue order.
    ///
    /// # Panics
    /// After [`DEFAULT_WAIT`], listing the activities still open.
    pub async fn wait_until_idle(&self) -> Vec<(Uuid, Outcome)> {
        let settled = self
            .wait_until(DEFAULT_WAIT, || self.state.read_queue(|q| (q.settled_count() == q.len()).then_some(())))
            .await;
        if settled.is_none() {
            let open: Vec<_> = self.state.read_queue(|q| q.unsettled());
            panic!("{} activities did not settle within {DEFAULT_WAIT:?}: {open:?}", open.len());
        }
        self.activities().into_iter().filter_map(|a| Some((a.activity_id, a.outcome?))).collect()
    }

    /// Waits up to `timeout` until `check` returns `Some`, re-checking on every change.
    pub async fn wait_until<T>(&self, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
        let mut changes = self.state.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            changes.borrow_and_update();
            if let Some(value) = check() {
                return Some(value);
            }
            // Time also moves leases and backoffs, so re-check at least every 50 ms.
            let tick = tokio::time::sleep(Duration::from_millis(50));
            tokio::select! {
                _ = changes.changed() => {}
                () = tick => {}
                () = tokio::time::sleep_until(deadline) => return check(),
            }
        }
    }

    /// The state of one activity.
    pub fn activity(&self, id: Uuid) -> Option<ActivitySnapshot> {
        self.state.read_queue(|q| q.snapshot(id))
    }

    /// The state of every activity, in enqueue order.
    pub fn activities(&self) -> Vec<ActivitySnapshot> {
        self.state.read_queue(Queue::snapshots)
    }

    /// Fault injection: statuses, hangs, dropped connections, latency, slow links,
    /// odd poll items, chaos.
    pub fn faults(&self) -> Faults<'_> {
        Faults::new(&self.tooling)
    }

    /// The log of every request answered.
    pub fn log(&self) -> Log<'_> {
        Log::new(&self.tooling)
    }

    /// Workflow file storage: seed inputs, read what activities uploaded.
    pub fn files(&self) -> Files<'_> {
        Files::new(&self.state)
    }

    /// The most activities `worker_id` ever had running at once.
    pub fn max_concurrent_claims(&self, worker_id: &str) -> usize {
        self.state.read_queue(|q| q.max_running(worker_id))
    }

    /// How many activities are completed or failed terminally (cheap: no snapshots).
    pub fn settled_count(&self) -> usize {
        self.state.read_queue(Queue::settled_count)
    }

    /// Ids of every activity running now (cheap: no snapshots are built).
    pub fn running_activities(&self) -> Vec<Uuid> {
        self.state.read_queue(Queue::running_ids)
    }

    /// Activities `worker_id` has running now.
    pub fn running_claims(&self, worker_id: &str) -> usize {
        self.state.read_queue(|q| q.running_count(worker_id))
    }

    /// While `true`, protected routes answer the graceful-shutdown 503.
    pub fn set_shutting_down(&self, shutting_down: bool) {
        self.tooling.shutting_down.store(shutting_down, std::sync::atomic::Ordering::Relaxed);
    }

    /// Expires every issued token now (leeway ignored): the next call gets 401.
    pub fn expire_tokens(&self) {
        self.state.tokens.expire_all();
    }

    /// Forgets every issued token: the next call gets 401 `InvalidToken`.
    pub fn revoke_tokens(&self) {
        self.state.tokens.revoke_all();
    }

    /// Rotates the client secret, as an operator does: from now on the token endpoint
    /// accepts only `secret` with the client id. Tokens already issued stay valid
    /// (revoke them with [`revoke_tokens`](Self::revoke_tokens)).
    pub fn rotate_client_secret(&self, secret: impl Into<String>) {
        self.state.tokens.rotate_secret(secret.into());
    }

    /// How many tokens have been issued (revoked ones excluded).
    pub fn tokens_issued(&self) -> usize {
        self.state.tokens.issued_count()
    }

    /// Gives a running activity to another worker id, as a reclaim by another process
    /// would: its worker's next heartbeat gets 409. Returns whether it was running.
    pub fn reassign(&self, id: Uuid) -> bool {
        let now = self.state.clock.now();
        self.state.with_queue(|q| q.reassign(id, "worker_fake_reassigned", now))
    }

    /// Moves the server's clock forward: leases, backoffs and tokens expire sooner.
    pub fn advance_clock(&self, by: Duration) {
        self.state.clock.advance(by);
        self.state.with_queue(|_| ());
    }

    /// Runs the lease sweep now; returns `(requeued, timed_out)`.
    pub fn sweep(&self) -> (usize, usize) {
        let now = self.state.clock.now();
        let report = self.state.with_queue(|q| q.sweep(now));
        (report.requeued, report.timed_out)
    }

    /// Pretends `subscribers` clients watch an activity's stream, on top of the
    /// WebSocket subscribers actually connected to
    /// `/api/v1/activities/{id}/ws`. `ws/complete` and `ws/error` reset it to 0.
    pub fn set_stream_subscribers(&self, id: Uuid, subscribers: u32) {
        self.tooling.pretend(id, subscribers);
    }

    /// What was streamed for an activity.
    pub fn stream(&self, id: Uuid) -> StreamRecord {
        self.state.streams().get(&id).cloned().unwrap_or_default()
    }

    /// Stops listening and closes every connection; state is kept.
    pub async fn stop(&self) {
        let listening = self.listener.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(listening) = listening {
            listening.stop.cancel();
            let _ = listening.task.await;
        }
    }

    /// Stops and starts again on the same port with the same state, closing every
    /// open connection on the way, as a server restart does.
    ///
    /// # Panics
    /// If the port cannot be bound again within five seconds.
    pub async fn restart(&self) {
        self.stop().await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(listener) => break listener,
                Err(e) if tokio::time::Instant::now() > deadline => panic!("cannot rebind {}: {e}", self.addr),
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        };
        let listening = listen(&self.state, &self.tooling, listener);
        *self.listener.lock().unwrap_or_else(|e| e.into_inner()) = Some(listening);
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.sweeper.abort();
        if let Some(listening) = self.listener.lock().unwrap_or_else(|e| e.into_inner()).take() {
            listening.stop.cancel();
            listening.task.abort();
        }
    }
}

impl std::fmt::Debug for FakeServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeServer").field("url", &self.url()).finish_non_exhaustive()
    }
}
