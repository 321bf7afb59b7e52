//! The middleware every request passes: latency, authentication, the shutdown 503,
//! injected faults, and the request log.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde_json::Value;

use super::endpoint::Endpoint;
use super::envelope;
use super::faults::Fault;
use super::log::RequestRecord;
use super::state::ServerState;

/// The real server's JSON body limit.
pub(crate) const JSON_BODY_LIMIT: usize = 50 * 1024 * 1024;

pub(crate) async fn gate(State(state): State<Arc<ServerState>>, request: Request, next: Next) -> Response {
    let at = std::time::Instant::now();
    let (endpoint, activity_id) = Endpoint::classify(request.method(), request.uri().path());
    let method = request.method().to_string();
    let path = request.uri().path().to_owned();
    let authorization = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (request, body) = match capture_json(endpoint, request).await {
        Ok(captured) => captured,
        Err(rejection) => return rejection,
    };
    if let Some(latency) = state.faults.latency(endpoint) {
        tokio::time::sleep(latency).await;
    }
    let mut fault = None;
    let (response, claimed) = if let Err(refused) = admit(&state, endpoint, authorization.as_deref()) {
        (refused, Vec::new())
    } else {
        fault = if endpoint.is_protected() || endpoint == Endpoint::Token { state.faults.next(endpoint) } else { None };
        apply(fault, request, next).await
    };
    let status = if matches!(fault, Some(Fault::DropAfterCommit | Fault::DropBeforeCommit)) {
        0
    } else {
        response.status().as_u16()
    };
    state.log.push(RequestRecord {
        seq: 0,
        method,
        path,
        endpoint,
        activity_id,
        worker_id: body.as_ref().and_then(|b| b.get("worker_id")).and_then(Value::as_str).map(str::to_owned),
        body,
        status,
        fault,
        claimed,
        at,
    });
    response
}

/// Attached by the poll handler to its response: which activities it claimed.
#[derive(Clone)]
pub(crate) struct Claimed(pub(crate) Vec<uuid::Uuid>);

fn claimed(response: &Response) -> Vec<uuid::Uuid> {
    response.extensions().get::<Claimed>().map(|c| c.0.clone()).unwrap_or_default()
}

/// Authentication runs before the shutdown check, as on the real server.
fn admit(state: &ServerState, endpoint: Endpoint, authorization: Option<&str>) -> Result<(), Response> {
    if !endpoint.is_protected() {
        return Ok(());
    }
    state.tokens.check(authorization, &state.clock).map_err(|e| envelope::unauthorized(e.message()))?;
    if state.is_shutting_down() {
        return Err(envelope::shutting_down());
    }
    Ok(())
}

/// Runs the request (or not) as the fault says; also returns what a poll claimed.
async fn apply(fault: Option<Fault>, request: Request, next: Next) -> (Response, Vec<uuid::Uuid>) {
    let refused = |response| (response, Vec::new());
    match fault {
        None => {
            let response = next.run(request).await;
            let claimed = claimed(&response);
            (response, claimed)
        }
        Some(Fault::Status(status)) => {
            refused(envelope::for_status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)))
        }
        Some(Fault::ShuttingDown) => refused(envelope::shutting_down()),
        Some(Fault::DropBeforeCommit) => refused(dropped_connection()),
        Some(Fault::ErrorAfterCommit) => {
            let claimed = claimed(&next.run(request).await);
            (envelope::for_status(StatusCode::INTERNAL_SERVER_ERROR), claimed)
        }
        Some(Fault::DropAfterCommit) => {
            let claimed = claimed(&next.run(request).await);
            (dropped_connection(), claimed)
        }
        Some(Fault::TruncateBody) => {
            let response = next.run(request).await;
            let claimed = claimed(&response);
            (truncate(response).await, claimed)
        }
    }
}

/// A response whose body fails at once: the server aborts the connection, so the
/// client gets no complete answer.
fn dropped_connection() -> Response {
    let failing = futures_util::stream::once(async {
        Err::<bytes::Bytes, _>(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "fault: connection dropped"))
    });
    Response::new(Body::from_stream(failing))
}

/// Keeps status and headers (including `Content-Length`) but sends only half of the
/// body, then aborts.
async fn truncate(response: Response) -> Response {
    let (parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return dropped_connection();
    };
    let half = bytes.slice(..bytes.len() / 2);
    let stream = futures_util::stream::iter([Ok(half)]).chain(futures_util::stream::once(async {
        // Pausing lets the server flush the headers and the first half before aborting.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "fault: body truncated"))
    }));
    Response::from_parts(parts, Body::from_stream(stream))
}

/// Buffers JSON bodies (up to the server's limit) so they can be logged, and puts them
/// back for the handler.
async fn capture_json(endpoint: Endpoint, request: Request) -> Result<(Request, Option<Value>), Response> {
    if !endpoint.has_json_body() {
        return Ok((request, None));
    }
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, JSON_BODY_LIMIT).await.map_err(|_| {
        (StatusCode::PAYLOAD_TOO_LARGE, "Failed to buffer the request body: length limit exceeded").into_response()
    })?;
    let json = serde_json::from_slice(&bytes).ok();
    Ok((Request::from_parts(parts, Body::from(bytes)), json))
}
