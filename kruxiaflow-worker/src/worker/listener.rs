//! The operator listener: `/metrics` (Prometheus text), `/healthz` and `/readyz`, on the
//! address of `KRUXIAFLOW_WORKER_METRICS_ADDR`. HTTP/1 only, `GET` only, no bodies read.

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

use super::{Services, WorkerHandle};
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

/// Serves until aborted.
pub(super) async fn serve(listener: TcpListener, services: Arc<Services>, prometheus: Option<Prometheus>) {
    // Ends with this task (which is aborted when the worker stops).
    let _upkeep =
        prometheus.clone().map(|prometheus| AbortOnDropHandle::new(tokio::spawn(telemetry::upkeep(prometheus))));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of file descriptors and the like: try again shortly.
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let services = Arc::clone(&services);
        let prometheus = prometheus.clone();
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            let response = answer(&request, &services, prometheus.as_ref());
            async move { Ok::<_, Infallible>(response) }
        });
        tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

fn answer(request: &Request<Incoming>, services: &Services, prometheus: Option<&Prometheus>) -> Response<Full<Bytes>> {
    if request.method() != Method::GET {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET is served\n".to_owned());
    }
    let judged = |verdict: Result<(), String>| match verdict {
        Ok(()) => text(StatusCode::OK, "ok\n".to_owned()),
        Err(reason) => text(StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")),
    };
    match request.uri().path() {
        "/healthz" => judged(services.health.liveness()),
        "/readyz" => judged(services.health.readiness()),
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
