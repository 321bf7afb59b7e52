//! Worker processes for the tests that need real processes: started from an example
//! binary against the fake server, terminated or killed, never left behind.
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kruxiaflow_worker_testing::FakeServer;
use uuid::Uuid;

/// A worker process (one of the example binaries), killed if the test ends early.
pub struct WorkerProcess {
    pub child: Child,
    pub worker_id: String,
    /// Where its standard error goes, when the test reads it.
    stderr: Option<tempfile::NamedTempFile>,
}

impl WorkerProcess {
    /// Starts `binary` as a worker of `server`, with `env` on top of a quick poll.
    pub fn start(binary: &str, server: &FakeServer, env: &[(&str, &str)]) -> Self {
        Self::spawn(binary, server, env, None)
    }

    /// Like [`start`](Self::start), keeping what the process writes to standard error
    /// for [`stderr`](Self::stderr).
    pub fn start_capturing_stderr(binary: &str, server: &FakeServer, env: &[(&str, &str)]) -> Self {
        Self::spawn(binary, server, env, Some(tempfile::NamedTempFile::new().expect("a temporary file")))
    }

    /// What the process wrote to standard error so far.
    pub fn stderr(&self) -> String {
        self.stderr.as_ref().map(|file| std::fs::read_to_string(file.path()).unwrap_or_default()).unwrap_or_default()
    }

    fn spawn(binary: &str, server: &FakeServer, env: &[(&str, &str)], stderr: Option<tempfile::NamedTempFile>) -> Self {
        let worker_id = format!("worker_test_{}", Uuid::now_v7().simple());
        let child = Command::new(binary)
            .env("KRUXIAFLOW_API_URL", server.url())
            .env("KRUXIAFLOW_WORKER_ID", &worker_id)
            .env("KRUXIAFLOW_WORKER_POLL_INTERVAL", "0.02")
            // Retries under injected faults are expected here; keep the test output short.
            .env("RUST_LOG", "error")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(match &stderr {
                Some(file) => Stdio::from(file.reopen().expect("the temporary file reopens")),
                None => Stdio::inherit(),
            })
            .spawn()
            .unwrap_or_else(|e| panic!("{binary} does not start: {e}"));
        Self { child, worker_id, stderr }
    }

    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap_or("VmRSS: 0 kB");
        line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0)
    }

    /// Sends SIGTERM (through `kill`, so no unsafe code is needed).
    pub fn terminate(&self) {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
    }

    pub fn wait(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the worker did not exit within {limit:?}; it wrote:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl WorkerProcess {
    /// Kills the process at once (SIGKILL), as the out-of-memory killer or `kill -9`
    /// would: nothing of it runs after this.
    pub fn kill(&mut self) {
        self.child.kill().expect("the worker process can be killed");
        self.child.wait().expect("the killed worker is reaped");
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
