//! `kruxiaflow-fake-server`: the fake Kruxia Flow API on a port, for trying a worker
//! locally without a real server.
//!
//! ```text
//! kruxiaflow-fake-server [--port PORT] [--auth CLIENT_ID:CLIENT_SECRET] [--token-lifetime SECONDS]
//! ```
//!
//! Point a worker at the printed URL with `KRUXIAFLOW_API_URL`, then drive the queue
//! with the admin routes under `/_fake/`:
//!
//! ```text
//! curl -X POST localhost:8080/_fake/activities -H 'Content-Type: application/json' \
//!      -d '{"worker": "rust", "activity_name": "my_activity", "parameters": {"input": 21}}'
//! curl localhost:8080/_fake/activities
//! ```
#![forbid(unsafe_code)]

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use kruxiaflow_worker_testing::FakeServer;

const USAGE: &str =
    "usage: kruxiaflow-fake-server [--port PORT] [--auth CLIENT_ID:CLIENT_SECRET] [--token-lifetime SECONDS]";

/// `--help`: the options, then every admin route and every field they take.
const HELP: &str = r#"kruxiaflow-fake-server: the fake Kruxia Flow API on a port, for trying a worker without a server.

usage: kruxiaflow-fake-server [--port PORT] [--auth CLIENT_ID:CLIENT_SECRET] [--token-lifetime SECONDS]

  --port PORT               listen on 127.0.0.1:PORT (default: a free port, printed on the first line)
  --auth ID:SECRET          OAuth mode: the API needs a token from these client credentials
  --token-lifetime SECONDS  lifetime of the tokens it issues (default 86400)

The worker API is served as the real server's (PROTOCOL.md). The queue is driven with admin routes:

  POST /_fake/activities          enqueue one activity (fields below) -> 201 {"activity_id": "..."}
  POST /_fake/activities/batch    {"activity": {...}, "count": N} -> 201 {"count": N}
  GET  /_fake/activities          every activity: status, claims, failures, outcome
  GET  /_fake/activities/{id}     one activity (404 if unknown)
  GET  /_fake/stats               {"activities": N, "settled": N, "requests": N}
  GET  /_fake/requests            the request log: every request answered, with its status
  GET  /_fake/files               the files workers uploaded
  POST /_fake/sweep               expire leases now -> {"requeued": N, "timed_out": N}

Fields of an activity (all optional but worker and activity_name; an unknown field is a 400 naming it):

  worker             worker type (default "rust")
  activity_name      the activity's name
  activity_key       its key in the workflow (default: the name)
  activity_id        a fixed UUID (default: a new UUIDv7)
  workflow_id        a fixed workflow UUID (default: a new UUIDv7)
  parameters         the parameters object (default {})
  timeout_seconds    lease and execution timeout (default null: the server's 60 s lease)
  retry              {"max_attempts": N, "strategy": "exponential"|"fixed", "base_seconds": N,
                      "factor": F, "max_seconds": N} (default: the server's, 3 retries)
  signal_data        signal data sent with the item
  output_definitions [{"name": "...", "type": "value"|"file"|"folder"}]
  settings           extra settings keys; {"streaming": true} opts in to token streaming
  delay              seconds before it can be claimed
  item_overrides     keys overwritten in the poll item as sent (to test odd items)

Example:
  curl -X POST localhost:8080/_fake/activities -H 'Content-Type: application/json'        -d '{"worker": "rust", "activity_name": "my_activity", "parameters": {"input": 21}}'
"#;

#[derive(Debug, Default)]
struct Options {
    port: u16,
    auth: Option<(String, String)>,
    token_lifetime: Option<Duration>,
}

fn parse(args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut options = Options::default();
    let mut args = args.peekable();
    while let Some(flag) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value\n{USAGE}"));
        match flag.as_str() {
            "--port" => {
                let raw = value("--port")?;
                options.port = raw.parse().map_err(|_| format!("--port must be a port number, got {raw:?}"))?;
            }
            "--auth" => {
                let raw = value("--auth")?;
                let (id, secret) = raw
                    .split_once(':')
                    .filter(|(id, secret)| !id.is_empty() && !secret.is_empty())
                    .ok_or_else(|| format!("--auth must be CLIENT_ID:CLIENT_SECRET, got {raw:?}"))?;
                options.auth = Some((id.to_owned(), secret.to_owned()));
            }
            "--token-lifetime" => {
                let raw = value("--token-lifetime")?;
                let seconds: u64 = raw
                    .parse()
                    .ok()
                    .filter(|&s| s > 0)
                    .ok_or_else(|| format!("--token-lifetime must be a positive number of seconds, got {raw:?}"))?;
                options.token_lifetime = Some(Duration::from_secs(seconds));
            }
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(options)
}

#[tokio::main]
async fn main() -> ExitCode {
    if std::env::args().skip(1).any(|arg| arg == "--help" || arg == "-h") {
        print!("{HELP}");
        return ExitCode::SUCCESS;
    }
    let options = match parse(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        // Standard output is for the announcement, which readers may stop reading.
        .with_writer(std::io::stderr)
        .init();
    let mut builder = FakeServer::builder().port(options.port);
    let mode = match &options.auth {
        Some((id, secret)) => {
            builder = builder.auth(id, secret);
            format!("auth mode, client id {id:?}")
        }
        None => "dev mode, no token needed".to_owned(),
    };
    if let Some(lifetime) = options.token_lifetime {
        builder = builder.token_lifetime(lifetime);
    }
    let server = match builder.try_start().await {
        Ok(server) => server,
        Err(error) => {
            eprintln!("cannot start the fake server on port {}: {error}", options.port);
            return ExitCode::FAILURE;
        }
    };
    // Tests and scripts read the first line to find the server, and may close the pipe
    // after it: written in one piece, and a closed pipe is not an error.
    let announcement = format!(
        "kruxiaflow-fake-server listening on {} ({mode})\nfiles are kept in {} until the server stops\n",
        server.url(),
        server.files().dir().display()
    );
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(announcement.as_bytes()).and_then(|()| stdout.flush());
    drop(stdout);
    stop_requested().await;
    server.stop().await;
    // Dropping the server removes its file directory, which may hold gigabytes.
    drop(server);
    ExitCode::SUCCESS
}

/// Ctrl-C, or SIGTERM (what `kill`, Docker and Kubernetes send) on Unix.
async fn stop_requested() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut terminate) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
            return;
        }
    }
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> impl Iterator<Item = String> {
        list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>().into_iter()
    }

    #[test]
    fn options_are_parsed() {
        let options = parse(args(&["--port", "8080", "--auth", "me:s3cret", "--token-lifetime", "30"])).unwrap();
        assert_eq!(options.port, 8080);
        assert_eq!(options.auth, Some(("me".into(), "s3cret".into())));
        assert_eq!(options.token_lifetime, Some(Duration::from_secs(30)));
    }

    #[test]
    fn bad_options_are_named() {
        assert_eq!(parse(args(&["--port", "x"])).unwrap_err(), "--port must be a port number, got \"x\"");
        assert_eq!(
            parse(args(&["--auth", "nosecret"])).unwrap_err(),
            "--auth must be CLIENT_ID:CLIENT_SECRET, got \"nosecret\""
        );
        assert!(parse(args(&["--verbose"])).unwrap_err().starts_with("unknown argument \"--verbose\""));
        assert!(parse(args(&["--port"])).unwrap_err().starts_with("--port needs a value"));
    }
}
