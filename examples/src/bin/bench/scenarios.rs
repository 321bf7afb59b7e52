//! The measurements: throughput, latency, memory per in-flight activity, file transfer.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::procs::{Proc, start_server, start_worker};

/// Talks to the fake server's admin routes.
pub struct Admin {
    http: reqwest::Client,
    url: String,
}

impl Admin {
    fn new(url: &str) -> Self {
        Self { http: reqwest::Client::new(), url: url.to_owned() }
    }

    async fn post(&self, path: &str, body: Value) -> Result<Value, String> {
        let response =
            self.http.post(format!("{}{path}", self.url)).json(&body).send().await.map_err(|e| e.to_string())?;
        response.json().await.map_err(|e| e.to_string())
    }

    async fn get(&self, path: &str) -> Result<Value, String> {
        let response = self.http.get(format!("{}{path}", self.url)).send().await.map_err(|e| e.to_string())?;
        response.json().await.map_err(|e| e.to_string())
    }

    /// Waits until the worker has polled (it is up and idle).
    async fn worker_ready(&self) -> Result<(), String> {
        self.wait(Duration::from_secs(30), |stats| stats["requests"].as_u64() > Some(0)).await
    }

    /// Waits until `count` activities are claimed and none has settled yet.
    async fn all_running(&self, count: usize, limit: Duration) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        loop {
            let activities = self.activities().await?;
            let running = activities.iter().filter(|a| a["status"] == "running").count();
            if running == count {
                return Ok(());
            }
            if running < count && activities.iter().any(|a| a["status"] == "completed") {
                return Err("an activity completed before all were running: too slow to sample".to_owned());
            }
            if Instant::now() > deadline {
                return Err(format!("timed out: {running} of {count} running"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn all_settled(&self, limit: Duration) -> Result<(), String> {
        self.wait(limit, |stats| stats["settled"] == stats["activities"]).await
    }

    async fn wait(&self, limit: Duration, done: impl Fn(&Value) -> bool) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        loop {
            let stats = self.get("/_fake/stats").await?;
            if done(&stats) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("timed out; server stats {stats}"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn activities(&self) -> Result<Vec<Value>, String> {
        Ok(self.get("/_fake/activities").await?.as_array().cloned().unwrap_or_default())
    }
}

fn worker_env(concurrency: usize) -> Vec<(&'static str, String)> {
    vec![
        ("KRUXIAFLOW_WORKER_MAX_ACTIVITIES", concurrency.to_string()),
        ("KRUXIAFLOW_WORKER_POLL_MAX_ACTIVITIES", concurrency.min(100).to_string()),
    ]
}

async fn start(concurrency: usize) -> Result<(Proc, Proc, Admin), String> {
    start_with(concurrency, &[]).await
}

/// Like [`start`], with `extra` in the worker's environment.
async fn start_with(concurrency: usize, extra: &[(&'static str, String)]) -> Result<(Proc, Proc, Admin), String> {
    let (server, url) = start_server()?;
    let mut env = worker_env(concurrency);
    env.extend(extra.iter().cloned());
    let worker = start_worker(&url, &env)?;
    let admin = Admin::new(&url);
    admin.worker_ready().await?;
    Ok((server, worker, admin))
}

/// Percentile of already sorted values.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn sorted(mut values: Vec<f64>) -> Vec<f64> {
    values.sort_by(f64::total_cmp);
    values
}

fn micros(activity: &Value, path: &[&str]) -> Option<f64> {
    path.iter().try_fold(activity, |v, key| v.get(*key)).and_then(Value::as_f64)
}

/// Scenario (a) and (c): a backlog of no-ops.
pub struct Throughput {
    pub per_second: f64,
    pub worker_cpu_us_per_activity: f64,
    pub server_cpu_share: f64,
    pub report_p50_ms: f64,
    pub report_p99_ms: f64,
}

pub async fn throughput(count: usize, concurrency: usize) -> Result<Throughput, String> {
    throughput_with(count, concurrency, &[]).await
}

/// [`throughput`] with `extra` in the worker's environment.
pub async fn throughput_with(
    count: usize,
    concurrency: usize,
    extra: &[(&'static str, String)],
) -> Result<Throughput, String> {
    let (server, worker, admin) = start_with(concurrency, extra).await?;
    let (worker_cpu, server_cpu) = (worker.cpu(), server.cpu());
    admin
        .post(
            "/_fake/activities/batch",
            json!({"activity": {"worker": "rust", "activity_name": "noop"}, "count": count}),
        )
        .await?;
    admin.all_settled(Duration::from_secs(600)).await?;
    let worker_cpu = worker.cpu() - worker_cpu;
    let server_cpu = server.cpu() - server_cpu;
    let activities = admin.activities().await?;
    let first = activities.iter().filter_map(|a| micros(a, &["enqueued_at_us"])).fold(f64::MAX, f64::min);
    let last = activities.iter().filter_map(|a| micros(a, &["settled_at_us"])).fold(0.0, f64::max);
    let reports = sorted(
        activities
            .iter()
            .filter_map(|a| {
                Some((micros(a, &["settled_at_us"])? - micros(a, &["outcome", "output", "ended_us"])?) / 1000.0)
            })
            .collect(),
    );
    Ok(Throughput {
        per_second: count as f64 / ((last - first) / 1e6),
        worker_cpu_us_per_activity: worker_cpu.as_secs_f64() * 1e6 / count as f64,
        server_cpu_share: server_cpu.as_secs_f64() / (server_cpu + worker_cpu).as_secs_f64(),
        report_p50_ms: percentile(&reports, 0.5),
        report_p99_ms: percentile(&reports, 0.99),
    })
}

/// Latency with an idle worker: activities enqueued one at a time.
pub struct Latency {
    pub start_p50_ms: f64,
    pub start_p99_ms: f64,
}

pub async fn latency(count: usize) -> Result<Latency, String> {
    let (_server, _worker, admin) = start(16).await?;
    for _ in 0..count {
        admin.post("/_fake/activities", json!({"worker": "rust", "activity_name": "noop"})).await?;
        tokio::time::sleep(Duration::from_millis(13)).await;
    }
    admin.all_settled(Duration::from_secs(120)).await?;
    let starts = sorted(
        admin
            .activities()
            .await?
            .iter()
            .filter_map(|a| {
                Some((micros(a, &["outcome", "output", "started_us"])? - micros(a, &["enqueued_at_us"])?) / 1000.0)
            })
            .collect(),
    );
    Ok(Latency { start_p50_ms: percentile(&starts, 0.5), start_p99_ms: percentile(&starts, 0.99) })
}

/// Scenario (b): many sleeping activities in flight at once.
pub struct Memory {
    pub idle_kib: u64,
    /// Once every activity is claimed and sleeping.
    pub sleeping_kib: u64,
    /// The high-water mark, reached when the activities report, all at once.
    pub peak_kib: u64,
}

impl Memory {
    /// What one activity costs while it sleeps.
    pub fn per_sleeping_kib(&self, count: usize) -> f64 {
        self.sleeping_kib.saturating_sub(self.idle_kib) as f64 / count as f64
    }

    /// What one activity costs at the peak, its report included.
    pub fn per_peak_kib(&self, count: usize) -> f64 {
        self.peak_kib.saturating_sub(self.idle_kib) as f64 / count as f64
    }
}

pub async fn memory(count: usize) -> Result<Memory, String> {
    let (_server, worker, admin) = start(count).await?;
    let idle_kib = worker.status_kib("VmRSS");
    let nap = json!({"worker": "rust", "activity_name": "nap", "parameters": {"ms": 1000}});
    admin.post("/_fake/activities/batch", json!({"activity": nap, "count": count})).await?;
    admin.all_running(count, Duration::from_secs(30)).await?;
    let sleeping_kib = worker.status_kib("VmRSS");
    admin.all_settled(Duration::from_secs(120)).await?;
    let peak_kib = worker.status_kib("VmHWM");
    Ok(Memory { idle_kib, sleeping_kib, peak_kib })
}

/// Scenario (d): one large file down and up again.
pub struct Files {
    pub mb_per_s: f64,
    pub rss_growth_mib: f64,
}

pub async fn files(size_mib: u64) -> Result<Files, String> {
    let scratch = tempfile::tempdir().map_err(|e| e.to_string())?;
    let path = scratch.path().join("big.bin");
    write_file(&path, size_mib).map_err(|e| e.to_string())?;
    let (_server, worker, admin) = start(4).await?;
    let workflow_id = uuid::Uuid::now_v7();
    let file = tokio::fs::File::open(&path).await.map_err(|e| e.to_string())?;
    let upload = admin
        .http
        .post(format!("{}/api/v1/workflows/{workflow_id}/activities/seed/files/big.bin", admin.url))
        .body(reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(file)))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if upload.status() != 201 {
        return Err(format!("seeding the file failed: {}", upload.status()));
    }
    let idle_kib = worker.status_kib("VmRSS");
    let started = Instant::now();
    let input = format!("postgres://{workflow_id}/seed/big.bin");
    admin
        .post(
            "/_fake/activities",
            json!({"worker": "rust", "activity_name": "copy_file", "parameters": {"input": input}}),
        )
        .await?;
    admin.all_settled(Duration::from_secs(600)).await?;
    let elapsed = started.elapsed();
    let peak_kib = worker.status_kib("VmHWM");
    let megabytes = size_mib as f64 * 1.048_576;
    Ok(Files {
        mb_per_s: 2.0 * megabytes / elapsed.as_secs_f64(),
        rss_growth_mib: peak_kib.saturating_sub(idle_kib) as f64 / 1024.0,
    })
}

fn write_file(path: &std::path::Path, size_mib: u64) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    let chunk: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8).collect();
    for _ in 0..size_mib {
        out.write_all(&chunk)?;
    }
    out.flush()
}

/// An OTLP/HTTP traces endpoint on 127.0.0.1 that takes every request and keeps
/// nothing; its URL. It runs until the bench ends.
pub async fn trace_sink() -> Result<String, String> {
    let app = axum::Router::new().route("/v1/traces", axum::routing::post(|| async { axum::http::StatusCode::OK }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
    let url = format!("http://{}", listener.local_addr().map_err(|e| e.to_string())?);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(url)
}

/// Scenario (g): what durable steps cost, against activities without steps.
pub struct StepsCost {
    pub record_requests_per_activity: f64,
    pub worker_cpu_us_per_activity: f64,
    pub handler_p50_ms: f64,
}

pub async fn steps_cost(count: usize, steps: u32) -> Result<StepsCost, String> {
    let (_server, worker, admin) = start(16).await?;
    let worker_cpu = worker.cpu();
    let activity = json!({"worker": "rust", "activity_name": "steps", "parameters": {"steps": steps}});
    admin.post("/_fake/activities/batch", json!({"activity": activity, "count": count})).await?;
    admin.all_settled(Duration::from_secs(600)).await?;
    let worker_cpu = worker.cpu() - worker_cpu;
    let requests = admin.get("/_fake/requests").await?;
    let record_requests = requests
        .as_array()
        .map_or(0, |all| all.iter().filter(|r| r["path"].as_str().is_some_and(|p| p.contains("/files/"))).count());
    let handler_ms = sorted(
        admin
            .activities()
            .await?
            .iter()
            .filter_map(|a| {
                Some(
                    (micros(a, &["outcome", "output", "ended_us"])? - micros(a, &["outcome", "output", "started_us"])?)
                        / 1000.0,
                )
            })
            .collect(),
    );
    Ok(StepsCost {
        record_requests_per_activity: record_requests as f64 / count as f64,
        worker_cpu_us_per_activity: worker_cpu.as_secs_f64() * 1e6 / count as f64,
        handler_p50_ms: percentile(&handler_ms, 0.5),
    })
}

/// Scenario (e): activities streaming tokens, each to one WebSocket subscriber.
pub struct Streaming {
    pub tokens_per_second: f64,
    pub requests_per_activity: f64,
    pub worker_cpu_ns_per_token: f64,
    pub worker_peak_rss_mib: f64,
}

/// How a streaming run is paced: `pace_ms` between two tokens of one activity, and the
/// worker's `KRUXIAFLOW_WORKER_STREAM_LINGER` in seconds (`None`: its default).
pub struct Pace {
    pub pace_ms: u64,
    pub linger: Option<&'static str>,
}

pub async fn streaming(activities: usize, tokens: u32, concurrency: usize, pace: Pace) -> Result<Streaming, String> {
    use kruxiaflow_worker_examples::load::TOKEN;
    use kruxiaflow_worker_testing::StreamSubscriber;

    let (_server, url) = start_server()?;
    let admin = Admin::new(&url);
    let activity = json!({"worker": "rust", "activity_name": "stream_tokens",
                          "parameters": {"tokens": tokens, "pace_ms": pace.pace_ms}, "settings": {"streaming": true}});
    admin.post("/_fake/activities/batch", json!({"activity": activity, "count": activities})).await?;
    let mut subscribers = tokio::task::JoinSet::new();
    for activity in admin.activities().await? {
        let id = activity["activity_id"].as_str().and_then(|id| id.parse().ok()).ok_or("an activity without an id")?;
        let subscriber = StreamSubscriber::connect(&url, id, None).await.map_err(|e| e.to_string())?;
        subscribers.spawn(subscriber.until_end());
    }
    let mut env = worker_env(concurrency);
    if let Some(linger) = pace.linger {
        env.push(("KRUXIAFLOW_WORKER_STREAM_LINGER", linger.to_owned()));
    }
    let worker = start_worker(&url, &env)?;
    let started = Instant::now();
    let (mut text_bytes, mut frames) = (0usize, 0usize);
    while let Some(received) = subscribers.join_next().await {
        let received = received.map_err(|e| e.to_string())?.map_err(|e| e.to_string())?;
        if received.end.is_none() {
            return Err("a subscriber's stream ended without complete or error".to_owned());
        }
        text_bytes += received.text().len();
        frames += received.tokens.len();
    }
    let elapsed = started.elapsed();
    admin.all_settled(Duration::from_secs(120)).await?;
    let delivered = text_bytes / TOKEN.len();
    let expected = activities * tokens as usize;
    if delivered != expected {
        return Err(format!("subscribers received {delivered} tokens of {expected}"));
    }
    Ok(Streaming {
        tokens_per_second: delivered as f64 / elapsed.as_secs_f64(),
        requests_per_activity: frames as f64 / activities as f64,
        worker_cpu_ns_per_token: worker.cpu().as_secs_f64() * 1e9 / delivered as f64,
        worker_peak_rss_mib: worker.status_kib("VmHWM") as f64 / 1024.0,
    })
}
