//! The operator listener: `/metrics` (Prometheus text), `/healthz` and `/readyz`, on the
//! address of `KRUXIAFLOW_WORKER_METRICS_ADDR`. HTTP/1 only, `GET` only, no bodies read.
//!
//! It is bounded so that whatever connects to it (a scanner, a stuck scraper, a flood)
//! cannot take what the activities need: at most [`Limits::connections`] connections
//! are open at once — one more is accepted and closed at once, so it costs a file
//! descriptor for no longer than that — a request's head must arrive within
//! [`Limits::head_timeout`] and fit in 8 KiB, and a connection lives at most
//! [`Limits::lifetime`].

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::task::AbortOnDropHandle;

use super::WorkerHandle;
use super::health::Health;
use crate::config::env;
use crate::error::WorkerError;
use crate::telemetry::{self, Prometheus};

/// Binds `addr`, telling `handle` the address actually bound.
pub(super) async fn bind(addr: SocketAddr, handle: &WorkerHandle) -> Result<TcpListener, WorkerError> {
    let listener = TcpListener::bind(addr).await.map_err(|error| WorkerError::Listener {
        variable: env::METRICS_ADDR,
        addr,
        reason: error.to_string(),
    })?;
    let bound = listener.local_addr().unwrap_or(addr);
    handle.set_listening(bound);
    tracing::info!(addr = %bound, "serving /metrics, /healthz and /readyz");
    Ok(listener)
}

/// The listener's bounds.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    /// Connections open at once.
    pub(super) connections: usize,
    /// How long a request's head may take to arrive, from the connection's start or
    /// the previous answer.
    pub(super) head_timeout: Duration,
    /// How long a connection may stay open, requests and idle time together.
    pub(super) lifetime: Duration,
}

impl Limits {
    /// 32 connections (a few probes and scrapers need a handful), heads within 5 s,
    /// connections closed after 60 s.
    pub(super) const DEFAULT: Self =
        Self { connections: 32, head_timeout: Duration::from_secs(5), lifetime: Duration::from_secs(60) };
}

/// Hyper's smallest read buffer, and so the largest request head served.
const MAX_HEAD_BYTES: usize = 8 * 1024;

/// Serves until aborted.
pub(super) async fn serve(listener: TcpListener, health: Arc<Health>, prometheus: Option<Prometheus>, limits: Limits) {
    // Ends with this task (which is aborted when the worker stops).
    let _upkeep =
        prometheus.clone().map(|prometheus| AbortOnDropHandle::new(tokio::spawn(telemetry::upkeep(prometheus))));
    let open = Arc::new(tokio::sync::Semaphore::new(limits.connections));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of file descriptors and the like: try again shortly.
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let Ok(place) = Arc::clone(&open).try_acquire_owned() else {
            // At the cap: closed at once, without a byte read or written.
            drop(stream);
            continue;
        };
        let health = Arc::clone(&health);
        let prometheus = prometheus.clone();
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            let response = answer(&request, &health, prometheus.as_ref());
            async move { Ok::<_, Infallible>(response) }
        });
        tokio::spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(limits.head_timeout)
                .max_buf_size(MAX_HEAD_BYTES)
                .serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(limits.lifetime, connection).await;
            drop(place);
        });
    }
}

fn answer(request: &Request<Incoming>, health: &Health, prometheus: Option<&Prometheus>) -> Response<Full<Bytes>> {
    if request.method() != Method::GET {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET is served\n".to_owned());
    }
    let judged = |verdict: Result<(), String>| match verdict {
        Ok(()) => text(StatusCode::OK, "ok\n".to_owned()),
        Err(reason) => text(StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")),
    };
    match request.uri().path() {
        "/healthz" => judged(health.liveness()),
        "/readyz" => judged(health.readiness()),
        "/metrics" => match prometheus {
            Some(prometheus) => {
                let mut response = text(StatusCode::OK, prometheus.render());
                response.headers_mut().insert(
                    hyper::header::CONTENT_TYPE,
                    hyper::header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                );
                response
            }
            None => text(
                StatusCode::NOT_FOUND,
                "metrics go to the recorder the application installed (or this build has no `prometheus` feature)\n"
                    .to_owned(),
            ),
        },
        _ => text(StatusCode::NOT_FOUND, "served here: /metrics, /healthz, /readyz\n".to_owned()),
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use tokio::sync::watch;

    use super::*;
    use crate::worker::shutdown::Phase;

    const LIMITS: Limits =
        Limits { connections: 4, head_timeout: Duration::from_millis(300), lifetime: Duration::from_secs(2) };

    async fn serving(limits: Limits) -> (SocketAddr, AbortOnDropHandle<()>, watch::Sender<Phase>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (phase, watching) = watch::channel(Phase::Running);
        let health = Arc::new(Health::new(&["w".to_owned()], watching));
        (addr, AbortOnDropHandle::new(tokio::spawn(serve(listener, health, None, limits))), phase)
    }

    /// Reads until the server closes the connection (or 5 s pass): what it sent.
    async fn until_closed(stream: &mut TcpStream) -> String {
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer))
            .await
            .expect("the server closes the connection")
            .expect("read");
        String::from_utf8_lossy(&answer).into_owned()
    }

    async fn healthz(addr: SocketAddr) -> String {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: w\r\nConnection: close\r\n\r\n").await.unwrap();
        until_closed(&mut stream).await
    }

    #[tokio::test]
    async fn at_the_connection_cap_new_connections_are_closed_at_once_and_idle_ones_time_out() {
        let (addr, _serving, _phase) = serving(LIMITS).await;
        let mut idle = Vec::new();
        for _ in 0..LIMITS.connections {
            idle.push(TcpStream::connect(addr).await.unwrap());
        }
        // The accept loop takes the idle ones first, in order.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let started = std::time::Instant::now();
        let mut refused = TcpStream::connect(addr).await.unwrap();
        assert_eq!(until_closed(&mut refused).await, "", "closed without a byte");
        assert!(started.elapsed() < LIMITS.head_timeout, "closed at once, not when an idle one timed out");

        // Connections that send nothing are closed once the head timeout passes.
        for stream in &mut idle {
            let answer = until_closed(stream).await;
            assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 408"), "{answer:?}");
        }
        let answer = healthz(addr).await;
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert!(answer.ends_with("\r\n\r\nok\n"), "{answer}");
    }

    #[tokio::test]
    async fn a_request_head_over_8_kib_is_refused() {
        let (addr, _serving, _phase) = serving(LIMITS).await;
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let padding = "a".repeat(MAX_HEAD_BYTES * 2);
        let request = format!("GET /healthz HTTP/1.1\r\nHost: w\r\nX-Pad: {padding}\r\n\r\n");
        // The server may close before it has read everything.
        let _ = stream.write_all(request.as_bytes()).await;
        let answer = until_closed(&mut stream).await;
        assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 431"), "{answer:?}");
    }

    #[tokio::test]
    async fn a_connection_kept_busy_is_closed_after_its_lifetime() {
        let (addr, _serving, _phase) = serving(LIMITS).await;
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let started = std::time::Instant::now();
        let mut answers = 0;
        let mut buffer = vec![0; 4096];
        loop {
            if stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: w\r\n\r\n").await.is_err() {
                break;
            }
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(_) => answers += 1,
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            assert!(started.elapsed() < LIMITS.lifetime * 3, "still open after {:?}", started.elapsed());
        }
        assert!(started.elapsed() >= LIMITS.lifetime, "closed early, after {:?}", started.elapsed());
        assert!(answers > 1, "requests were answered until then");
    }
}
