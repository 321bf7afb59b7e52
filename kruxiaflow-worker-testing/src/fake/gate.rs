//! The middleware every request passes: latency, authentication, the shutdown 503,
//! injected faults, and the request log. It is where the test tooling meets the
//! protocol model: the handlers behind it know nothing of faults or the log.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
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
use super::tooling::Tooling;

/// The real server's JSON body limit.
pub(crate) const JSON_BODY_LIMIT: usize = 50 * 1024 * 1024;

pub(crate) async fn gate(
    State((state, tooling)): State<(Arc<ServerState>, Arc<Tooling>)>,
    request: Request,
    next: Next,
) -> Response {
    let at = std::time::Instant::now();
    let matched = request.extensions().get::<MatchedPath>().map(MatchedPath::as_str);
    let (endpoint, activity_id) = Endpoint::of(request.method(), matched, request.uri().path());
    let method = request.method().to_string();
    let path = request.uri().path().to_owned();
    let authorization = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (request, body) = match capture_json(endpoint, request).await {
        Ok(captured) => captured,
        Err(rejection) => return rejection,
    };
    if let Some(latency) = tooling.faults.latency(endpoint) {
        tokio::time::sleep(latency).await;
    }
    let mut fault = None;
    let (response, mut claimed) = if let Err(refused) = admit((&state, &tooling), endpoint, authorization.as_deref()) {
        (refused, Vec::new())
    } else {
        fault =
            if endpoint.is_protected() || endpoint == Endpoint::Token { tooling.faults.next(endpoint) } else { None };
        apply(fault, endpoint, request, next).await
    };
    let extra = tooling.faults.over_delivery();
    let response = if endpoint == Endpoint::Poll && extra > 0 {
        let (response, more) = over_deliver(&state, body.as_ref(), extra, response).await;
        claimed.extend(more);
        response
    } else {
        response
    };
    let response = match endpoint {
        Endpoint::Poll => with_raw_poll_item(&tooling, response).await,
        Endpoint::StreamSubscribers | Endpoint::StreamToken => {
            with_pretended_subscribers(&tooling, activity_id, response).await
        }
        // The stream ended: its subscribers, pretended ones included, are gone.
        Endpoint::StreamComplete | Endpoint::StreamError if response.status() == StatusCode::OK => {
            if let Some(id) = activity_id {
                tooling.pretend(id, 0);
            }
            response
        }
        _ => response,
    };
    let response = match tooling.faults.bandwidth(endpoint) {
        Some(rate) => throttled(response, rate),
        None => response,
    };
    let status = if matches!(fault, Some(Fault::DropAfterCommit | Fault::DropBeforeCommit)) {
        0
    } else {
        response.status().as_u16()
    };
    let worker_id = body.as_ref().and_then(|b| b.get("worker_id")).and_then(Value::as_str).map(str::to_owned);
    tooling.log.push(|seq| RequestRecord {
        seq,
        method,
        path,
        endpoint,
        activity_id,
        worker_id,
        body,
        status,
        fault,
        claimed,
        at,
    });
    response
}

/// Claims `extra` more activities for the poller of a poll answered 200 (`body` its
/// request) and adds them to the answer, as a misbehaving server handing out more than
/// asked for would; returns their ids too.
async fn over_deliver(
    state: &ServerState,
    body: Option<&Value>,
    extra: u32,
    response: Response,
) -> (Response, Vec<uuid::Uuid>) {
    let poller = body.and_then(|b| Some((b.get("worker")?.as_str()?, b.get("worker_id")?.as_str()?)));
    let Some((worker, worker_id)) = poller.filter(|_| response.status() == StatusCode::OK) else {
        return (response, Vec::new());
    };
    let (mut parts, answer) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(answer, usize::MAX).await else { return (dropped_connection(), Vec::new()) };
    let Ok(mut answer) = serde_json::from_slice::<Value>(&bytes) else {
        return (Response::from_parts(parts, Body::from(bytes)), Vec::new());
    };
    let now = state.clock.now();
    let more = state.with_queue(|q| q.poll(worker, worker_id, extra as usize, now));
    let ids = more.iter().filter_map(|item| item["activity_id"].as_str()?.parse().ok()).collect();
    if let Some(activities) = answer["activities"].as_array_mut() {
        activities.extend(more);
        answer["count"] = Value::from(activities.len());
    }
    parts.headers.remove(header::CONTENT_LENGTH);
    (Response::from_parts(parts, Body::from(answer.to_string())), ids)
}

/// Runs the handler; for a poll answered 200, also reads which activities its answer
/// claimed (logged even when a fault then loses the answer).
async fn run(endpoint: Endpoint, request: Request, next: Next) -> (Response, Vec<uuid::Uuid>) {
    let response = next.run(request).await;
    if endpoint != Endpoint::Poll || response.status() != StatusCode::OK {
        return (response, Vec::new());
    }
    let (parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else { return (dropped_connection(), Vec::new()) };
    let claimed = claimed_ids(&bytes);
    (Response::from_parts(parts, Body::from(bytes)), claimed)
}

/// The `activity_id` of each item of a poll answer; items read one by one, so that an
/// odd item (`server.faults()` can make some) does not hide the others.
fn claimed_ids(answer: &[u8]) -> Vec<uuid::Uuid> {
    #[derive(serde::Deserialize)]
    struct Answer {
        activities: Vec<Box<serde_json::value::RawValue>>,
    }
    #[derive(serde::Deserialize)]
    struct Item {
        activity_id: uuid::Uuid,
    }
    let Ok(answer) = serde_json::from_slice::<Answer>(answer) else { return Vec::new() };
    answer
        .activities
        .iter()
        .filter_map(|item| serde_json::from_str::<Item>(item.get()).ok())
        .map(|i| i.activity_id)
        .collect()
}

/// Authentication runs before the shutdown check, as on the real server.
fn admit(
    (state, tooling): (&ServerState, &Tooling),
    endpoint: Endpoint,
    authorization: Option<&str>,
) -> Result<(), Response> {
    if !endpoint.is_protected() {
        return Ok(());
    }
    state.tokens.check(authorization, &state.clock).map_err(|e| envelope::unauthorized(e.message()))?;
    if tooling.shutting_down.load(std::sync::atomic::Ordering::Relaxed) {
        return Err(envelope::shutting_down());
    }
    Ok(())
}

/// Runs the request (or not) as the fault says; also returns what a poll claimed.
async fn apply(fault: Option<Fault>, endpoint: Endpoint, request: Request, next: Next) -> (Response, Vec<uuid::Uuid>) {
    let refused = |response| (response, Vec::new());
    match fault {
        None => run(endpoint, request, next).await,
        Some(Fault::Status(status)) => {
            refused(envelope::for_status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)))
        }
        Some(Fault::ShuttingDown) => refused(envelope::shutting_down()),
        Some(Fault::DropBeforeCommit) => refused(dropped_connection()),
        Some(Fault::ErrorAfterCommit) => {
            let (_, claimed) = run(endpoint, request, next).await;
            (envelope::for_status(StatusCode::INTERNAL_SERVER_ERROR), claimed)
        }
        Some(Fault::DropAfterCommit) => {
            let (_, claimed) = run(endpoint, request, next).await;
            (dropped_connection(), claimed)
        }
        Some(Fault::TruncateBody) => {
            let (response, claimed) = run(endpoint, request, next).await;
            (truncate(response).await, claimed)
        }
        Some(Fault::Hang) => std::future::pending().await,
        Some(Fault::Redirect) => refused(
            (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, super::faults::REDIRECT_LOCATION)]).into_response(),
        ),
        Some(Fault::HtmlPage) => refused(
            ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], "<html><body><h1>Please sign in</h1></body></html>")
                .into_response(),
        ),
        Some(Fault::ProxyStatus(status)) => refused(
            (
                StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                "no healthy upstream",
            )
                .into_response(),
        ),
    }
}

/// Adds a raw poll item (scheduled with `server.faults().inject_raw_poll_item`) to a
/// successful poll answer, byte for byte: it may be JSON no parser accepts.
async fn with_raw_poll_item(tooling: &Tooling, response: Response) -> Response {
    if response.status() != StatusCode::OK {
        return response;
    }
    let Some(item) = tooling.faults.take_raw_poll_item() else { return response };
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else { return dropped_connection() };
    let text = String::from_utf8_lossy(&bytes);
    // The answer is `{"activities":[...],"count":n}`: the item goes at the array's end.
    let Some(end) = text.rfind("],\"count\"") else { return Response::from_parts(parts, Body::from(bytes)) };
    let separator = if text[..end].ends_with('[') { "" } else { "," };
    let spliced = format!("{}{separator}{item}{}", &text[..end], &text[end..]);
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(spliced))
}

/// Adds the subscribers a test pretends watch the activity to the count of a
/// `ws/subscribers` (`count`) or `ws/token` (`subscribers`) answer.
async fn with_pretended_subscribers(tooling: &Tooling, id: Option<uuid::Uuid>, response: Response) -> Response {
    let pretended = id.map_or(0, |id| tooling.pretended(id));
    if pretended == 0 || response.status() != StatusCode::OK {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else { return dropped_connection() };
    let Ok(mut answer) = serde_json::from_slice::<Value>(&bytes) else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    for field in ["count", "subscribers"] {
        if let Some(counted) = answer.get(field).and_then(Value::as_u64) {
            answer[field] = Value::from(counted + u64::from(pretended));
        }
    }
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(answer.to_string()))
}

/// Sends the body at `bytes_per_second`, in tenths of a second.
fn throttled(response: Response, bytes_per_second: u64) -> Response {
    let (parts, body) = response.into_parts();
    let chunk = usize::try_from(bytes_per_second / 10).unwrap_or(usize::MAX).max(1);
    let pieces = body.into_data_stream().flat_map(move |data| {
        let pieces: Vec<Result<bytes::Bytes, axum::Error>> = match data {
            Ok(bytes) => {
                (0..bytes.len()).step_by(chunk).map(|at| Ok(bytes.slice(at..(at + chunk).min(bytes.len())))).collect()
            }
            Err(error) => vec![Err(error)],
        };
        futures_util::stream::iter(pieces)
    });
    let paced = pieces.then(|piece| async move {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        piece
    });
    Response::from_parts(parts, Body::from_stream(paced))
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
