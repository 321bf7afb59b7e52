//! What the operator tests share: reading a worker's operator listener.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::Duration;

use kruxiaflow_worker::WorkerHandle;
use kruxiaflow_worker::prelude::*;
use kruxiaflow_worker_testing::FakeServer;

/// Runs until the worker cancels it.
#[activity]
pub async fn held(ctx: &ActivityContext) -> ActivityResult {
    let _ = ctx.cancelled().await;
    ActivityResult::value("ok", true)
}

/// Quick polls and a listener on a free port, for worker type `worker`.
pub fn config(server: &FakeServer, worker: &str) -> WorkerConfig {
    WorkerConfig {
        worker: worker.to_owned(),
        poll_interval: Duration::from_millis(10),
        http_timeout: Duration::from_secs(2),
        metrics_addr: Some("127.0.0.1:0".parse().unwrap()),
        ..WorkerConfig::new(server.url())
    }
}

/// The listener's base URL, once it is bound.
pub async fn listener(handle: &WorkerHandle) -> String {
    for _ in 0..500 {
        if let Some(addr) = handle.listening_on() {
            return format!("http://{addr}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the listener was not bound within 5 s");
}

pub async fn get(url: &str) -> (u16, String) {
    let response = reqwest::get(url).await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// Waits until `path` answers `status`, returning the body.
pub async fn until(base: &str, path: &str, status: u16) -> String {
    let mut last = (0, String::new());
    for _ in 0..500 {
        last = get(&format!("{base}{path}")).await;
        if last.0 == status {
            return last.1;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{path} did not answer {status} within 5 s; last: {last:?}");
}

/// The metrics once two renders 20 ms apart are the same.
pub async fn still(base: &str) -> BTreeMap<(String, BTreeMap<String, String>), f64> {
    let mut last = parse(&get(&format!("{base}/metrics")).await.1);
    for _ in 0..250 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = parse(&get(&format!("{base}/metrics")).await.1);
        if now == last {
            return now;
        }
        last = now;
    }
    panic!("the metrics did not stop changing within 5 s");
}

/// Prometheus text as (name, labels) → value.
pub fn parse(text: &str) -> BTreeMap<(String, BTreeMap<String, String>), f64> {
    let mut samples = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let (series, value) = line.rsplit_once(' ').unwrap();
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let labels = rest.trim_end_matches('}').split("\",").filter(|p| !p.is_empty()).map(|pair| {
                    let (key, value) = pair.split_once("=\"").unwrap();
                    (key.trim_start_matches(',').to_owned(), value.trim_end_matches('"').to_owned())
                });
                (name.to_owned(), labels.collect())
            }
            None => (series.to_owned(), BTreeMap::new()),
        };
        samples.insert((name, labels), value.parse().unwrap());
    }
    samples
}

pub fn value(samples: &BTreeMap<(String, BTreeMap<String, String>), f64>, name: &str, labels: &[(&str, &str)]) -> f64 {
    let labels: BTreeMap<String, String> = labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    *samples
        .get(&(name.to_owned(), labels.clone()))
        .unwrap_or_else(|| panic!("no sample {name}{labels:?} in:\n{samples:#?}"))
}
