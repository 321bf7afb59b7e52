//! The API endpoints, with the real server's validation rules and answers.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::Method;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, on};
use axum::{Json, Router};
use futures_util::TryStreamExt;
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use uuid::Uuid;

use super::endpoint::{Endpoint, ROUTES, SUBSCRIBE_BY_KEY};
use super::envelope::{self, FieldErrors};
use super::files::{StoredFile, now_rfc3339};
use super::queue::FailureReport;
use super::state::ServerState;
use super::tooling::Tooling;
use super::usage::Usage;
use super::{admin, gate, subscribers, token};

type Answer = Result<Response, Response>;

/// The API's routes, built from [`ROUTES`]: a path's endpoints merged by method.
pub(crate) fn router(state: Arc<ServerState>, tooling: Arc<Tooling>) -> Router {
    let mut paths: BTreeMap<&str, MethodRouter<Arc<ServerState>>> = BTreeMap::new();
    for (path, method, endpoint) in ROUTES {
        let routed = routed(path, method, *endpoint);
        let merged = match paths.remove(path) {
            Some(earlier) => earlier.merge(routed),
            None => routed,
        };
        paths.insert(path, merged);
    }
    let api = paths.into_iter().fold(Router::new(), |router, (path, routed)| router.route(path, routed));
    api.merge(admin::router(Arc::clone(&tooling)))
        .fallback(|| async { envelope::route_not_found() })
        .layer(axum::extract::DefaultBodyLimit::max(gate::JSON_BODY_LIMIT))
        .layer(axum::middleware::from_fn_with_state((Arc::clone(&state), tooling), gate::gate))
        .with_state(state)
}

/// `endpoint` at `path`, for requests with `method`.
fn routed(path: &str, method: &Method, endpoint: Endpoint) -> MethodRouter<Arc<ServerState>> {
    use Endpoint::*;
    let filter = if *method == Method::GET { MethodFilter::GET } else { MethodFilter::POST };
    match endpoint {
        Token => on(filter, token::issue),
        Poll => on(filter, poll),
        Heartbeat => on(filter, heartbeat),
        Complete => on(filter, complete),
        Fail => on(filter, fail),
        StreamSubscribers => on(filter, stream_subscribers),
        StreamToken => on(filter, stream_token),
        StreamComplete => on(filter, stream_complete),
        StreamError => on(filter, stream_error),
        Subscribe if path == SUBSCRIBE_BY_KEY => on(filter, subscribers::by_activity_key),
        Subscribe => on(filter, subscribers::by_activity_id),
        FileDownload => on(filter, download),
        FileUpload => on(filter, upload),
        Public => on(filter, health),
        // Not routes of the API: no entry of ROUTES names them.
        Admin | Unknown | Any => on(filter, || async { envelope::route_not_found() }),
    }
}

/// Keeps an explicit `null` apart from a missing key (which stays a plain-text 422).
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

fn one() -> u32 {
    1
}

#[derive(Deserialize)]
struct PollBody {
    worker: String,
    worker_id: String,
    #[serde(default = "one")]
    max_activities: u32,
}

async fn poll(State(state): State<Arc<ServerState>>, Json(body): Json<PollBody>) -> Answer {
    let mut errors = FieldErrors::default();
    if body.worker.is_empty() {
        errors.add("worker", "Worker type cannot be empty");
    }
    if body.worker_id.is_empty() {
        errors.add("worker_id", "Worker ID cannot be empty");
    }
    if body.max_activities < 1 {
        errors.add("max_activities", "max_activities must be at least 1");
    } else if body.max_activities > 100 {
        errors.add("max_activities", "max_activities must be at most 100");
    }
    errors.into_result()?;
    let now = state.clock.now();
    let items = state.with_queue(|q| q.poll(&body.worker, &body.worker_id, body.max_activities as usize, now));
    let count = items.len();
    Ok(Json(json!({"activities": items, "count": count})).into_response())
}

#[derive(Deserialize)]
struct HeartbeatBody {
    worker_id: String,
}

async fn heartbeat(
    State(state): State<Arc<ServerState>>,
    Path(id): Path<Uuid>,
    Json(body): Json<HeartbeatBody>,
) -> Answer {
    let mut errors = FieldErrors::default();
    if body.worker_id.is_empty() {
        errors.add("worker_id", "Worker ID cannot be empty");
    }
    errors.into_result()?;
    let now = state.clock.now();
    state.with_queue(|q| q.heartbeat(id, &body.worker_id, now)).map_err(|r| envelope::refusal(id, &r))?;
    Ok(Json(json!({"acknowledged": true, "next_heartbeat_seconds": 30})).into_response())
}

#[derive(Deserialize)]
struct CompleteBody {
    worker_id: String,
    #[serde(deserialize_with = "present")]
    output: Option<Value>,
    #[serde(default)]
    cost_usd: Option<Decimal>,
    #[serde(default)]
    usage: Option<Vec<Usage>>,
}

async fn complete(
    State(state): State<Arc<ServerState>>,
    Path(id): Path<Uuid>,
    Json(body): Json<CompleteBody>,
) -> Answer {
    let mut errors = FieldErrors::default();
    if body.worker_id.is_empty() {
        errors.add("worker_id", "Worker ID cannot be empty");
    }
    let output = match body.output {
        Some(Value::Object(map)) => Some(map),
        _ => {
            errors.add("output", "Output must be a JSON object");
            None
        }
    };
    let usage = body.usage.unwrap_or_default();
    validate_spend(&mut errors, body.cost_usd, &usage);
    errors.into_result()?;
    let warnings = usage_warnings(&state, &usage);
    let now = state.clock.now();
    let output = output.unwrap_or_default();
    state
        .with_queue(|q| q.complete(id, &body.worker_id, output, body.cost_usd, usage, now))
        .map_err(|r| envelope::refusal(id, &r))?;
    let mut ack = json!({"acknowledged": true});
    if !warnings.is_empty() {
        ack["warnings"] = json!(warnings);
    }
    Ok(Json(ack).into_response())
}

#[derive(Deserialize)]
struct FailBody {
    worker_id: String,
    error: FailError,
    #[serde(default)]
    cost_usd: Option<Decimal>,
    #[serde(default)]
    usage: Option<Vec<Usage>>,
}

#[derive(Deserialize)]
struct FailError {
    code: String,
    message: String,
    retryable: bool,
}

async fn fail(State(state): State<Arc<ServerState>>, Path(id): Path<Uuid>, Json(body): Json<FailBody>) -> Answer {
    let mut errors = FieldErrors::default();
    if body.worker_id.is_empty() {
        errors.add("worker_id", "Worker ID cannot be empty");
    }
    if body.error.code.is_empty() {
        errors.add("error.code", "Error code cannot be empty");
    }
    if body.error.message.is_empty() {
        errors.add("error.message", "Error message cannot be empty");
    }
    let usage = body.usage.unwrap_or_default();
    validate_spend(&mut errors, body.cost_usd, &usage);
    errors.into_result()?;
    let warnings = usage_warnings(&state, &usage);
    let failure = FailureReport {
        code: body.error.code,
        message: body.error.message,
        retryable: body.error.retryable,
        cost_usd: body.cost_usd,
        usage,
    };
    let now = state.clock.now();
    let will_retry =
        state.with_queue(|q| q.fail(id, &body.worker_id, failure, now)).map_err(|r| envelope::refusal(id, &r))?;
    let mut ack = json!({"acknowledged": true, "will_retry": will_retry});
    if !warnings.is_empty() {
        ack["warnings"] = json!(warnings);
    }
    Ok(Json(ack).into_response())
}

fn validate_spend(errors: &mut FieldErrors, cost: Option<Decimal>, usage: &[Usage]) {
    if cost.is_some_and(|c| c.is_sign_negative() && !c.is_zero()) {
        errors.add("cost_usd", "Cost must be non-negative");
    }
    for (i, entry) in usage.iter().enumerate() {
        if entry.provider.is_empty() {
            errors.add(format!("usage[{i}].provider"), "Provider cannot be empty");
        }
        if entry.model.is_empty() {
            errors.add(format!("usage[{i}].model"), "Model cannot be empty");
        }
        if entry.cost_usd.is_some_and(|c| c.is_sign_negative() && !c.is_zero()) {
            errors.add(format!("usage[{i}].cost_usd"), "Cost must be non-negative");
        }
        if entry.cache_storage_token_hours.is_some_and(|c| c.is_sign_negative() && !c.is_zero()) {
            errors
                .add(format!("usage[{i}].cache_storage_token_hours"), "Cache storage token hours must be non-negative");
        }
    }
}

/// One warning per unknown `provider/model` among entries without an explicit cost.
fn usage_warnings(state: &ServerState, usage: &[Usage]) -> Vec<String> {
    let mut warnings: Vec<String> = Vec::new();
    for entry in usage.iter().filter(|e| e.cost_usd.is_none()) {
        let model = format!("{}/{}", entry.provider, entry.model);
        let warning = format!(
            "unknown model '{model}': not in the llm_models catalog; its usage will be recorded with cost 0 \u{2014} supply cost_usd per entry or update the catalog"
        );
        if state.unknown_models.contains(&model) && !warnings.contains(&warning) {
            warnings.push(warning);
        }
    }
    warnings
}

async fn download(
    State(state): State<Arc<ServerState>>,
    Path((workflow_id, activity_key, filename)): Path<(Uuid, String, String)>,
) -> Answer {
    let not_found =
        || envelope::error(StatusCode::NOT_FOUND, "NOT_FOUND", format!("Not found: File '{filename}' not found"));
    let stored = state.files.get(&(workflow_id, activity_key.clone(), filename.clone())).ok_or_else(not_found)?;
    let file = tokio::fs::File::open(&stored.path).await.map_err(|_| not_found())?;
    let content_type = stored.content_type.clone().unwrap_or_else(|| "application/octet-stream".to_owned());
    let headers = [
        (header::CONTENT_TYPE, content_type),
        (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{filename}\"")),
        (header::CONTENT_LENGTH, stored.size.to_string()),
    ];
    let body = Body::from_stream(tokio_util::io::ReaderStream::with_capacity(file, 64 * 1024));
    Ok((headers, body).into_response())
}

async fn upload(
    State(state): State<Arc<ServerState>>,
    Path((workflow_id, activity_key, filename)): Path<(Uuid, String, String)>,
    headers: HeaderMap,
    request: Request,
) -> Answer {
    let internal = |_| envelope::error(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR", "Internal server error");
    let path = state.files.new_blob_path();
    let mut file = tokio::fs::File::create(&path).await.map_err(internal)?;
    let mut stream = request.into_body().into_data_stream();
    let mut size = 0u64;
    while let Some(chunk) = stream.try_next().await.map_err(|_| {
        envelope::error(StatusCode::BAD_REQUEST, "BAD_REQUEST", "Bad request: the upload body was cut short")
    })? {
        size += chunk.len() as u64;
        file.write_all(&chunk).await.map_err(internal)?;
    }
    file.flush().await.map_err(internal)?;
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let stored = state.files.put(StoredFile {
        workflow_id,
        activity_key,
        filename,
        size,
        content_type,
        created_at: now_rfc3339(),
        path,
    });
    Ok((StatusCode::CREATED, Json(stored)).into_response())
}

async fn stream_subscribers(State(state): State<Arc<ServerState>>, Path(id): Path<Uuid>) -> Response {
    Json(json!({"count": state.hub.open(id)})).into_response()
}

#[derive(Deserialize)]
struct StreamToken {
    text: String,
    index: u32,
}

async fn stream_token(
    State(state): State<Arc<ServerState>>,
    Path(id): Path<Uuid>,
    Json(body): Json<StreamToken>,
) -> Response {
    let delivered = state.hub.token(id, &body.text, body.index);
    let mut streams = state.streams();
    let stream = streams.entry(id).or_default();
    stream.tokens.push((body.index, body.text));
    Json(json!({"subscribers": delivered})).into_response()
}

#[derive(Deserialize)]
struct StreamComplete {
    result: Value,
}

async fn stream_complete(
    State(state): State<Arc<ServerState>>,
    Path(id): Path<Uuid>,
    Json(body): Json<StreamComplete>,
) -> StatusCode {
    state.hub.complete(id, &body.result);
    let mut streams = state.streams();
    let stream = streams.entry(id).or_default();
    stream.completed = Some(body.result);
    StatusCode::OK
}

#[derive(Deserialize)]
struct StreamError {
    error: String,
}

async fn stream_error(
    State(state): State<Arc<ServerState>>,
    Path(id): Path<Uuid>,
    Json(body): Json<StreamError>,
) -> StatusCode {
    state.hub.error(id, &body.error);
    let mut streams = state.streams();
    let stream = streams.entry(id).or_default();
    stream.error = Some(body.error);
    StatusCode::OK
}

async fn health(State(state): State<Arc<ServerState>>) -> Response {
    if state.tokens.dev_mode() {
        Json(json!({"status": "ok", "insecure_dev": true})).into_response()
    } else {
        Json(json!({"status": "ok"})).into_response()
    }
}
