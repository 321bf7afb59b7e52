//! What the log says during an outage: one line when it starts, none per failed poll,
//! one when the server is back.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kruxiaflow_worker::prelude::*;
use kruxiaflow_worker_testing::FakeServer;

use crate::common::{RunningWorker, activity, config, echo, eventually};

/// Log output, shared with the subscriber.
#[derive(Clone, Default)]
pub(crate) struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    pub(crate) fn lines(&self) -> Vec<String> {
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

/// Captures `info` and above on this thread. The tests run on a current-thread
/// runtime, so the worker's own tasks run here, under this subscriber.
pub(crate) fn capture() -> (Captured, tracing::subscriber::DefaultGuard) {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    (captured, tracing::subscriber::set_default(subscriber))
}

#[tokio::test(flavor = "current_thread")]
async fn every_finished_activity_is_one_info_line_with_its_outcome() {
    let (captured, _guard) = capture();
    let server = FakeServer::start().await;
    let mut registry = ActivityRegistry::new();
    registry.register(echo(), "rust");
    registry.register(activity("refuse", |_p, _ctx| async { Err(ActivityError::terminal("BAD_INPUT", "no")) }), "rust");
    let worker = RunningWorker::start(config(&server), registry);
    let ok = server.enqueue(kruxiaflow_worker_testing::NewActivity::new("rust", "echo"));
    server.wait_for(ok).await.expect_completed();
    let bad = server.enqueue(
        kruxiaflow_worker_testing::NewActivity::new("rust", "refuse")
            .retry(kruxiaflow_worker_testing::RetrySettings::attempts(1)),
    );
    server.wait_for(bad).await;
    eventually("both are logged", || captured.lines().iter().filter(|l| l.contains("activity finished")).count() == 2)
        .await;
    worker.stop().await.unwrap();

    let finished: Vec<String> = captured.lines().into_iter().filter(|l| l.contains("activity finished")).collect();
    assert!(finished[0].contains(" INFO activity{"), "{}", finished[0]);
    assert!(finished[0].contains(&format!("activity_id={ok}")), "{}", finished[0]);
    assert!(finished[0].contains("activity_name=echo"), "{}", finished[0]);
    assert!(finished[0].contains("outcome=\"completed\""), "{}", finished[0]);
    assert!(finished[1].contains("activity_name=refuse"), "{}", finished[1]);
    assert!(finished[1].contains("outcome=\"failed\" code=BAD_INPUT"), "{}", finished[1]);
}

#[tokio::test(flavor = "current_thread")]
async fn an_outage_logs_one_line_when_it_starts_and_one_when_it_ends() {
    let (captured, _guard) = capture();

    let server = FakeServer::start().await;
    let mut registry = ActivityRegistry::new();
    registry.register(echo(), "rust");
    let worker = RunningWorker::start(config(&server), registry);
    eventually("the worker started", || captured.lines().iter().any(|l| l.contains("worker started"))).await;
    let polls_before = server.log().to(kruxiaflow_worker_testing::Endpoint::Poll).len();
    let before = captured.lines().len();

    server.stop().await;
    // Many failed polls (the test retry policy pauses at most 40 ms), well under the
    // 10 s after which a reminder would be due.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.restart().await;
    eventually("the recovery is logged", || captured.lines().iter().any(|l| l.contains("reachable again"))).await;
    assert!(server.log().to(kruxiaflow_worker_testing::Endpoint::Poll).len() > polls_before);
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

#[tokio::test(flavor = "current_thread")]
async fn an_outage_while_activities_finish_logs_a_handful_of_lines() {
    let (captured, _guard) = capture();
    let server = FakeServer::start().await;
    let release = Arc::new(tokio::sync::Semaphore::new(0));
    let waiter = {
        let release = Arc::clone(&release);
        activity("waiter", move |_p, _ctx| {
            let release = Arc::clone(&release);
            async move {
                let _permit = release.acquire().await;
                Ok(ActivityResult::value("done", true))
            }
        })
    };
    let mut registry = ActivityRegistry::new();
    registry.register(waiter, "rust");
    let ids: Vec<_> =
        (0..5).map(|_| server.enqueue(kruxiaflow_worker_testing::NewActivity::new("rust", "waiter"))).collect();
    let worker = RunningWorker::start(config(&server), registry);
    server.wait_until(Duration::from_secs(10), || (server.running_activities().len() == 5).then_some(())).await;
    let before = captured.lines().len();

    // The server goes away, the five finish and retry their reports until it is back.
    server.stop().await;
    release.add_permits(5);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.restart().await;
    for id in ids {
        server.wait_for(id).await.expect_completed();
    }
    eventually("the reports' recovery is logged", || {
        captured.lines().iter().any(|l| l.contains("complete requests succeed again"))
    })
    .await;
    worker.stop().await.unwrap();

    let during = &captured.lines()[before..];
    let warnings: Vec<&String> = during.iter().filter(|l| l.contains(" WARN ")).collect();
    assert_eq!(warnings.len(), 2, "one for the polls, one for the reports: {warnings:#?}");
    assert!(warnings.iter().any(|l| l.contains("complete requests are failing; retrying")), "{warnings:#?}");
    let recovered = during.iter().filter(|l| l.contains("complete requests succeed again")).count();
    assert_eq!(recovered, 1, "{during:#?}");
}

#[tokio::test(flavor = "current_thread")]
async fn a_server_warning_is_logged_once_on_one_line_however_often_it_comes() {
    let (captured, _guard) = capture();
    let model = "mystery\nERROR forged line";
    let server = FakeServer::builder().unknown_model("acme", model).start().await;
    let chatty = activity("chatty", move |_p, _ctx| async move {
        let usage = UsageEntry::new("acme", model).input_tokens(3);
        Ok(ActivityResult::value("ok", true).with_usage([usage]))
    });
    let mut registry = ActivityRegistry::new();
    registry.register(chatty, "rust");
    let worker = RunningWorker::start(config(&server), registry);
    for _ in 0..3 {
        let id = server.enqueue(kruxiaflow_worker_testing::NewActivity::new("rust", "chatty"));
        server.wait_for(id).await.expect_completed();
    }
    worker.stop().await.unwrap();

    let lines = captured.lines();
    let warnings: Vec<&String> = lines.iter().filter(|l| l.contains("server warning")).collect();
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert!(warnings[0].contains("unknown model 'acme/mystery\\nERROR forged line'"), "{}", warnings[0]);
    assert!(!lines.iter().any(|l| l.starts_with("ERROR forged")), "{lines:#?}");
}

#[tokio::test(flavor = "current_thread")]
async fn a_password_in_the_api_url_appears_in_no_log_line_and_no_error() {
    let (captured, _guard) = capture();
    let server = FakeServer::start().await;
    let with_password = server.url().replace("http://", "http://me:s3cr3t@");
    let config = WorkerConfig { api_url: with_password.clone(), ..config(&server) };
    assert!(!format!("{config:?}").contains("s3cr3t"), "{config:?}");
    let mut registry = ActivityRegistry::new();
    registry.register(echo(), "rust");
    let id = server.enqueue(kruxiaflow_worker_testing::NewActivity::new("rust", "echo"));
    server.faults().inject(
        kruxiaflow_worker_testing::Endpoint::Complete,
        kruxiaflow_worker_testing::Fault::Status(503),
        2,
    );
    let worker = RunningWorker::start(config, registry);
    server.wait_for(id).await.expect_completed();
    server.stop().await;
    eventually("the outage is logged", || captured.lines().iter().any(|l| l.contains("server unreachable"))).await;
    worker.stop().await.unwrap();

    let lines = captured.lines();
    assert!(lines.iter().any(|l| l.contains("me:redacted@")), "the URL is shown, redacted: {lines:#?}");
    let leaked: Vec<&String> = lines.iter().filter(|l| l.contains("s3cr3t")).collect();
    assert!(leaked.is_empty(), "{leaked:#?}");

    let bad = WorkerConfig { api_url: "http://me:s3cr3t@exa mple.com".to_owned(), ..WorkerConfig::default() };
    let error = bad.validate().unwrap_err().to_string();
    assert!(!error.contains("s3cr3t"), "{error}");
}
