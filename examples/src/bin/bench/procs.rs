//! The processes under measurement, and what `/proc` says about them.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A child process stopped when dropped: SIGTERM first, so that the fake server can
/// remove its file directory (gigabytes after the file benchmark), then SIGKILL if it
/// has not exited within five seconds.
pub struct Proc {
    pub child: Child,
}

impl Drop for Proc {
    fn drop(&mut self) {
        // `kill` the command, so that no unsafe code is needed to send a signal.
        let terminated = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if terminated {
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while std::time::Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// User + system CPU time so far.
    pub fn cpu(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap_or_default();
        // Fields after the command name (which may contain spaces) start at ")".
        let fields: Vec<&str> =
            stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
        let ticks: u64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
            + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
        Duration::from_secs_f64(ticks as f64 / clock_ticks_per_second())
    }

    /// A `kB` line of `/proc/{pid}/status` (`VmRSS`, `VmHWM`), in KiB.
    pub fn status_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with(field))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }
}

fn clock_ticks_per_second() -> f64 {
    let output = Command::new("getconf").arg("CLK_TCK").output().ok();
    output.and_then(|o| String::from_utf8(o.stdout).ok()).and_then(|s| s.trim().parse().ok()).unwrap_or(100.0)
}

/// The `kruxiaflow-fake-server` binary next to this one. Under `cargo run` it is
/// (re)built once per bench run, so a stale fake server is never measured; otherwise
/// it must exist.
pub fn fake_server_binary() -> Result<PathBuf, String> {
    static BINARY: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    BINARY.get_or_init(build_fake_server).clone()
}

fn build_fake_server() -> Result<PathBuf, String> {
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let path = me.with_file_name("kruxiaflow-fake-server");
    let Ok(cargo) = std::env::var("CARGO") else {
        return if path.exists() {
            Ok(path)
        } else {
            Err("build the fake server first: cargo build --release -p kruxiaflow-worker-testing".to_owned())
        };
    };
    let mut build = Command::new(cargo);
    build.args(["build", "--quiet", "-p", "kruxiaflow-worker-testing", "--bin", "kruxiaflow-fake-server"]);
    if me.components().any(|c| c.as_os_str() == "release") {
        build.arg("--release");
    }
    let status = build.status().map_err(|e| format!("cannot run cargo to build the fake server: {e}"))?;
    if !status.success() || !path.exists() {
        return Err(format!("building the fake server failed ({status})"));
    }
    Ok(path)
}

/// Starts the fake server on a free port; returns it and its URL.
pub fn start_server() -> Result<(Proc, String), String> {
    let mut child = Command::new(fake_server_binary()?)
        .args(["--port", "0"])
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start the fake server: {e}"))?;
    let mut line = String::new();
    let stdout = child.stdout.take().ok_or("no stdout")?;
    BufReader::new(stdout).read_line(&mut line).map_err(|e| e.to_string())?;
    let url = line
        .strip_prefix("kruxiaflow-fake-server listening on ")
        .and_then(|rest| rest.split_whitespace().next())
        .ok_or_else(|| format!("unexpected first line from the fake server: {line:?}"))?
        .to_owned();
    Ok((Proc { child }, url))
}

/// Starts this binary in worker mode against `url`, with extra environment.
pub fn start_worker(url: &str, env: &[(&str, String)]) -> Result<Proc, String> {
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let child = Command::new(me)
        .arg("--worker")
        .env("KRUXIAFLOW_API_URL", url)
        .env("RUST_LOG", "error")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .spawn()
        .map_err(|e| format!("cannot start the worker: {e}"))?;
    Ok(Proc { child })
}
