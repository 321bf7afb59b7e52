//! What the log says during an outage: one line when it starts, none per failed poll,
//! one when the server is back.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kruxiaflow_worker::prelude::*;
use kruxiaflow_worker_testing::FakeServer;

use crate::common::{RunningWorker, config, echo, eventually};

/// Log output, shared with the subscriber.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn lines(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap()).lines().map(str::to_owned).collect()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// Current-thread runtime: the worker's own tasks run on this thread, under the
// subscriber set for it.
#[tokio::test(flavor = "current_thread")]
async fn an_outage_logs_one_line_when_it_starts_and_one_when_it_ends() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    let _default = tracing::subscriber::set_default(subscriber);

    let server = FakeServer::start().await;
    let mut registry = ActivityRegistry::new();
    registry.register(echo(), "rust");
    let worker = RunningWorker::start(config(&server), registry);
    eventually("the worker started", || captured.lines().iter().any(|l| l.contains("worker started"))).await;
    let polls_before = server.requests_to(kruxiaflow_worker_testing::Endpoint::Poll).len();
    let before = captured.lines().len();

    server.stop().await;
    // Many failed polls (the test retry policy pauses at most 40 ms), well under the
    // 10 s after which a reminder would be due.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.restart().await;
    eventually("the recovery is logged", || captured.lines().iter().any(|l| l.contains("reachable again"))).await;
    assert!(server.requests_to(kruxiaflow_worker_testing::Endpoint::Poll).len() > polls_before);
    worker.stop().await.unwrap();

    let during: Vec<String> =
        captured.lines()[before..].iter().filter(|l| !l.contains("worker stopped")).cloned().collect();
    let url = server.url();
    assert_eq!(during.len(), 2, "{during:#?}");
    assert!(during[0].contains(" WARN "), "{}", during[0]);
    assert!(during[0].contains("server unreachable, retrying"), "{}", during[0]);
    assert_eq!(during[0].matches(url.as_str()).count(), 1, "the URL once: {}", during[0]);
    assert!(during[1].contains(" INFO "), "{}", during[1]);
    // The outage lasted the 1.5 s sleep and the restart: timing decides 1 or 2 s.
    let lasted = during[1].split("server reachable again after ").nth(1).and_then(|rest| rest.split('s').next());
    assert!(matches!(lasted, Some("1" | "2")), "{}", during[1]);
}
