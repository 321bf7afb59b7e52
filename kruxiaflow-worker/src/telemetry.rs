//! What the worker tells the [`metrics`] facade. Every metric's name and labels live
//! here. Without a recorder installed, each update is a no-op on a handle; the handles
//! of the hot path (per activity, per poller) are made once, when the worker starts.

use std::collections::HashMap;
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, SharedString, counter, gauge, histogram};

use rust_decimal::Decimal;

use crate::protocol::UsageEntry;

pub(crate) const ACTIVITIES_STARTED: &str = "kruxiaflow_worker_activities_started_total";
pub(crate) const ACTIVITIES_FINISHED: &str = "kruxiaflow_worker_activities_finished_total";
pub(crate) const ACTIVITY_DURATION: &str = "kruxiaflow_worker_activity_duration_seconds";
pub(crate) const ACTIVITIES_IN_FLIGHT: &str = "kruxiaflow_worker_activities_in_flight";
pub(crate) const SLOTS_FREE: &str = "kruxiaflow_worker_slots_free";
/// The `worker` and `activity` label of what this worker did not register.
pub(crate) const UNREGISTERED: &str = "unregistered";
pub(crate) const POLLS: &str = "kruxiaflow_worker_polls_total";
pub(crate) const POLL_DURATION: &str = "kruxiaflow_worker_poll_duration_seconds";
pub(crate) const RPC_RETRIES: &str = "kruxiaflow_worker_rpc_retries_total";
pub(crate) const REPORTS_PENDING: &str = "kruxiaflow_worker_reports_pending";
pub(crate) const HEARTBEATS: &str = "kruxiaflow_worker_heartbeats_total";
pub(crate) const COST_USD: &str = "kruxiaflow_worker_cost_usd_total";
pub(crate) const LLM_TOKENS: &str = "kruxiaflow_worker_llm_tokens_total";
pub(crate) const RATE_LIMIT_WAIT: &str = "kruxiaflow_worker_rate_limit_wait_seconds";
pub(crate) const RATE_LIMIT_WAITING: &str = "kruxiaflow_worker_rate_limit_waiting";
pub(crate) const LOCAL_RETRIES: &str = "kruxiaflow_worker_local_retries_total";
pub(crate) const CONCURRENCY_WAITING: &str = "kruxiaflow_worker_concurrency_waiting";
pub(crate) const SPANS_DROPPED: &str = "kruxiaflow_worker_spans_dropped_total";

/// Renders what the built-in recorder holds as Prometheus text.
#[cfg(feature = "prometheus")]
pub(crate) type Prometheus = metrics_exporter_prometheus::PrometheusHandle;

/// Without the `prometheus` feature there is nothing to render.
#[cfg(not(feature = "prometheus"))]
#[derive(Clone)]
pub(crate) enum Prometheus {}

#[cfg(not(feature = "prometheus"))]
impl Prometheus {
    pub(crate) fn render(&self) -> String {
        match *self {}
    }
}

/// Drains the recorder's histogram samples every few seconds, for ever: they pile up
/// between scrapes otherwise.
pub(crate) async fn upkeep(prometheus: Prometheus) {
    #[cfg(feature = "prometheus")]
    {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(5));
        loop {
            every.tick().await;
            prometheus.run_upkeep();
        }
    }
    #[cfg(not(feature = "prometheus"))]
    match prometheus {}
}

/// Installs the built-in Prometheus recorder as the process's global recorder, once;
/// `None` when the application installed a recorder of its own first (metrics then go
/// there) or the `prometheus` feature is off.
pub(crate) fn install_prometheus() -> Option<Prometheus> {
    #[cfg(feature = "prometheus")]
    {
        static INSTALLED: std::sync::OnceLock<Option<Prometheus>> = std::sync::OnceLock::new();
        INSTALLED
            .get_or_init(|| {
                const SECONDS: [f64; 16] =
                    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0];
                let recorder = metrics_exporter_prometheus::PrometheusBuilder::new()
                    .set_buckets(&SECONDS)
                    .expect("the bucket list is not empty")
                    .build_recorder();
                let handle = recorder.handle();
                match metrics::set_global_recorder(recorder) {
                    Ok(()) => {
                        describe();
                        Some(handle)
                    }
                    Err(_) => {
                        tracing::warn!(
                            "a metrics recorder is already installed: metrics go there, and /metrics is not served"
                        );
                        None
                    }
                }
            })
            .clone()
    }
    #[cfg(not(feature = "prometheus"))]
    {
        tracing::warn!("built without the `prometheus` feature: /metrics is not served");
        None
    }
}

/// What a metric is, for its description.
#[cfg(feature = "prometheus")]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Every metric's kind, name, unit and help text (in `/metrics`).
#[cfg(feature = "prometheus")]
const DESCRIPTIONS: [(Kind, &str, Option<metrics::Unit>, &str); 17] = {
    use Kind::*;
    use metrics::Unit::Seconds;
    [
        (Counter, ACTIVITIES_STARTED, None, "Activity handlers started"),
        (
            Counter,
            ACTIVITIES_FINISHED,
            None,
            "Attempts ended: completed or failed (as reported to the server), or abandoned (nothing reported)",
        ),
        (Histogram, ACTIVITY_DURATION, Some(Seconds), "Handler start to report accepted, by outcome"),
        (Gauge, ACTIVITIES_IN_FLIGHT, None, "Attempts claimed and not yet ended (running, or delivering their report)"),
        (
            Gauge,
            SLOTS_FREE,
            None,
            "Slots not running an activity (max_concurrent_activities minus the activities running)",
        ),
        (Counter, POLLS, None, "Polls by result: work, empty or error"),
        (Histogram, POLL_DURATION, Some(Seconds), "Time for the server to answer a poll"),
        (Counter, RPC_RETRIES, None, "Requests retried after a transient failure, by endpoint"),
        (Gauge, REPORTS_PENDING, None, "Completion and failure reports not yet answered by the server"),
        (Counter, HEARTBEATS, None, "Heartbeats by result: ok, lease_lost or error"),
        (
            Gauge,
            COST_USD,
            None,
            "US dollars reported explicitly with results (usage priced by the server is not included)",
        ),
        (Counter, LLM_TOKENS, None, "LLM tokens reported in usage entries, by kind: input or output"),
        (Histogram, RATE_LIMIT_WAIT, Some(Seconds), "Time an acquisition waited for its rate limit, by limit"),
        (Gauge, RATE_LIMIT_WAITING, None, "Acquisitions waiting for their rate limit now, by limit"),
        (Counter, LOCAL_RETRIES, None, "Handlers run again inside their attempt after a retryable error, by code"),
        (Counter, SPANS_DROPPED, None, "Trace spans dropped: the export queue was full or the collector refused them"),
        (
            Gauge,
            CONCURRENCY_WAITING,
            None,
            "Attempts waiting for their activity's max_concurrency (holding their slot and lease)",
        ),
    ]
};

/// Describes every metric to the installed recorder.
#[cfg(feature = "prometheus")]
fn describe() {
    metrics::with_recorder(|recorder| {
        for (kind, name, unit, help) in DESCRIPTIONS {
            let (name, help) = (name.into(), help.into());
            match kind {
                Kind::Counter => recorder.describe_counter(name, unit, help),
                Kind::Gauge => recorder.describe_gauge(name, unit, help),
                Kind::Histogram => recorder.describe_histogram(name, unit, help),
            }
        }
    });
}

/// Spans that never reached the collector: the queue was full, or the collector did
/// not take their batch.
#[cfg_attr(not(feature = "otel"), allow(dead_code))]
pub(crate) fn spans_dropped(count: u64) {
    counter!(SPANS_DROPPED).increment(count);
}

/// An acquisition of rate limit `limit` starts (`1.0`) or stops (`-1.0`) waiting.
pub(crate) fn rate_limit_waiting(limit: &str, delta: f64) {
    gauge!(RATE_LIMIT_WAITING, "limit" => limit.to_owned()).increment(delta);
}

/// An acquisition of rate limit `limit` was granted after `waited`.
pub(crate) fn rate_limit_waited(limit: &str, waited: Duration) {
    histogram!(RATE_LIMIT_WAIT, "limit" => limit.to_owned()).record(waited.as_secs_f64());
}

/// A handler of `worker.activity` runs again in its attempt after an error `code`.
pub(crate) fn local_retry(worker: &str, activity: &str, code: &str) {
    counter!(LOCAL_RETRIES, "worker" => worker.to_owned(), "activity" => activity.to_owned(), "code" => code.to_owned())
        .increment(1);
}

/// An attempt of `worker.activity` starts (`1.0`) or stops (`-1.0`) waiting for the
/// activity's `max_concurrency`.
pub(crate) fn concurrency_waiting(worker: &str, activity: &str, delta: f64) {
    gauge!(CONCURRENCY_WAITING, "worker" => worker.to_owned(), "activity" => activity.to_owned()).increment(delta);
}

/// How an attempt ended, as far as the server knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Finished<'a> {
    Completed,
    Failed {
        code: &'a str,
    },
    /// Nothing was reported: the lease was lost, or the report could not be delivered.
    Abandoned,
}

/// How an attempt ended and what the report the server took says it spent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Ended<'a> {
    pub(crate) finished: Finished<'a>,
    pub(crate) cost: Option<Decimal>,
    pub(crate) usage: &'a [UsageEntry],
}

impl Finished<'_> {
    /// Its place in [`ActivityMetrics::durations`].
    fn index(self) -> usize {
        match self {
            Self::Completed => 0,
            Self::Failed { .. } => 1,
            Self::Abandoned => 2,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::Failed { .. } => "failed",
            Self::Abandoned => "abandoned",
        }
    }
}

/// The handles of one registered activity.
struct ActivityMetrics {
    started: Counter,
    completed: Counter,
    abandoned: Counter,
    durations: [Histogram; 3],
    cost: Gauge,
}

impl ActivityMetrics {
    fn new(worker: &SharedString, activity: &SharedString) -> Self {
        let labels = [("worker", worker.clone()), ("activity", activity.clone())];
        let finished = |outcome: &'static str| counter!(ACTIVITIES_FINISHED, "worker" => worker.clone(), "activity" => activity.clone(), "outcome" => outcome);
        let duration = |outcome: &'static str| histogram!(ACTIVITY_DURATION, "worker" => worker.clone(), "activity" => activity.clone(), "outcome" => outcome);
        Self {
            started: counter!(ACTIVITIES_STARTED, &labels),
            completed: finished("completed"),
            abandoned: finished("abandoned"),
            durations: [duration("completed"), duration("failed"), duration("abandoned")],
            cost: gauge!(COST_USD, &labels),
        }
    }
}

/// The worker's metric handles, made once at startup for everything registered.
pub(crate) struct WorkerMetrics {
    activities: HashMap<String, HashMap<String, ActivityMetrics>>,
    in_flight: HashMap<String, Gauge>,
    slots_free: Gauge,
    reports_pending: Gauge,
}

impl WorkerMetrics {
    /// Handles for every `(worker type, activity name)` in `registered`.
    pub(crate) fn new<'a>(registered: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut activities: HashMap<String, HashMap<String, ActivityMetrics>> = HashMap::new();
        let mut in_flight = HashMap::new();
        for (worker, activity) in registered {
            let worker_label = SharedString::from(worker.to_owned());
            in_flight
                .entry(worker.to_owned())
                .or_insert_with(|| gauge!(ACTIVITIES_IN_FLIGHT, "worker" => worker_label.clone()));
            let metrics = ActivityMetrics::new(&worker_label, &SharedString::from(activity.to_owned()));
            activities.entry(worker.to_owned()).or_default().insert(activity.to_owned(), metrics);
        }
        Self { activities, in_flight, slots_free: gauge!(SLOTS_FREE), reports_pending: gauge!(REPORTS_PENDING) }
    }

    fn activity(&self, worker: &str, activity: &str) -> Option<&ActivityMetrics> {
        self.activities.get(worker)?.get(activity)
    }

    pub(crate) fn started(&self, worker: &str, activity: &str) {
        if let Some(metrics) = self.activity(worker, activity) {
            metrics.started.increment(1);
        }
    }

    /// An attempt ended as `ended` says, `elapsed` after its handler started (`None`:
    /// it never started).
    pub(crate) fn finished(&self, worker: &str, activity: &str, ended: Ended<'_>, elapsed: Option<Duration>) {
        let finished = ended.finished;
        let registered = self.activity(worker, activity);
        let (worker, activity) = self.labels(worker, activity);
        match (registered, finished) {
            (Some(metrics), Finished::Completed) => metrics.completed.increment(1),
            (Some(metrics), Finished::Abandoned) => metrics.abandoned.increment(1),
            // Failures carry their code, so their handles are made when they happen;
            // so is everything of an activity nobody registered.
            _ => finished_counter(worker, activity, finished).increment(1),
        }
        if let Some(elapsed) = elapsed.map(|d| d.as_secs_f64()) {
            match registered {
                Some(metrics) => metrics.durations[finished.index()].record(elapsed),
                None => histogram!(ACTIVITY_DURATION, "worker" => worker.to_owned(), "activity" => activity.to_owned(), "outcome" => finished.label())
                    .record(elapsed),
            }
        }
        self.spent(registered, (worker, activity), ended);
    }

    /// The labels of an activity: its names when registered; otherwise `unregistered`
    /// for what this worker does not know, so that names a server sends cannot grow
    /// the metrics without bound.
    fn labels<'a>(&self, worker: &'a str, activity: &'a str) -> (&'a str, &'a str) {
        match self.activities.get(worker) {
            Some(activities) if activities.contains_key(activity) => (worker, activity),
            Some(_) => (worker, UNREGISTERED),
            None => (UNREGISTERED, UNREGISTERED),
        }
    }

    fn spent(&self, registered: Option<&ActivityMetrics>, (worker, activity): (&str, &str), ended: Ended<'_>) {
        let Ended { cost, usage, .. } = ended;
        let explicit = cost.into_iter().chain(usage.iter().filter_map(|u| u.cost_usd));
        let dollars: f64 = explicit.filter_map(|d| f64::try_from(d).ok()).sum();
        if dollars != 0.0 {
            match registered {
                Some(metrics) => metrics.cost.increment(dollars),
                None => gauge!(COST_USD, "worker" => worker.to_owned(), "activity" => activity.to_owned())
                    .increment(dollars),
            }
        }
        usage.iter().for_each(tokens);
    }

    pub(crate) fn in_flight(&self, worker: &str, delta: f64) {
        match self.in_flight.get(worker) {
            Some(gauge) => gauge.increment(delta),
            None => gauge!(ACTIVITIES_IN_FLIGHT, "worker" => UNREGISTERED).increment(delta),
        }
    }

    /// All `count` slots are free (at startup).
    pub(crate) fn all_slots_free(&self, count: usize) {
        self.slots_free.set(count as f64);
    }

    /// Changes the free slots by `delta`.
    pub(crate) fn slots_free(&self, delta: f64) {
        self.slots_free.increment(delta);
    }

    pub(crate) fn reports_pending(&self, delta: f64) {
        self.reports_pending.increment(delta);
    }
}

fn finished_counter(worker: &str, activity: &str, finished: Finished<'_>) -> Counter {
    let (worker, activity) = (worker.to_owned(), activity.to_owned());
    match finished {
        Finished::Failed { code } => counter!(
            ACTIVITIES_FINISHED,
            "worker" => worker, "activity" => activity, "outcome" => "failed", "code" => code.to_owned()
        ),
        other => counter!(ACTIVITIES_FINISHED, "worker" => worker, "activity" => activity, "outcome" => other.label()),
    }
}

fn tokens(usage: &UsageEntry) {
    let kinds = [("input", usage.input_tokens), ("output", usage.output_tokens)];
    for (kind, count) in kinds.into_iter().filter(|(_, count)| *count > 0) {
        counter!(LLM_TOKENS, "provider" => usage.provider.clone(), "model" => usage.model.clone(), "kind" => kind)
            .increment(u64::from(count));
    }
}

/// The result of one poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PollResult {
    Work,
    Empty,
    Error,
}

/// The handles of one poller.
pub(crate) struct PollMetrics {
    results: [Counter; 3],
    duration: Histogram,
}

impl PollMetrics {
    pub(crate) fn new(worker: &str) -> Self {
        let result = |result: &'static str| counter!(POLLS, "worker" => worker.to_owned(), "result" => result);
        Self {
            results: [result("work"), result("empty"), result("error")],
            duration: histogram!(POLL_DURATION, "worker" => worker.to_owned()),
        }
    }

    pub(crate) fn polled(&self, result: PollResult, took: Duration) {
        self.results[result as usize].increment(1);
        self.duration.record(took.as_secs_f64());
    }
}

/// A request to `endpoint` failed transiently and is tried again.
pub(crate) fn retried(endpoint: &'static str) {
    counter!(RPC_RETRIES, "endpoint" => endpoint).increment(1);
}

/// A heartbeat's result: `ok`, `lease_lost` or `error`.
pub(crate) fn heartbeat(result: &'static str) {
    counter!(HEARTBEATS, "result" => result).increment(1);
}
