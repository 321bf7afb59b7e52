//! The fake's own admin routes, under `/_fake/` so they cannot clash with the API.
//! They let a person drive the standalone fake with `curl`:
//!
//! | Route | Does |
//! |---|---|
//! | `POST /_fake/activities` | enqueue (body: [`NewActivity`](super::NewActivity) JSON; `worker` and `activity_name` at least) → `201 {"activity_id": ...}`; an unknown field is a `400` naming it |
//! | `POST /_fake/activities/batch` | enqueue `{"activity": NewActivity, "count": n}` → `201 {"count": n}` |
//! | `GET /_fake/activities` | every activity with its status and outcome |
//! | `GET /_fake/activities/{id}` | one activity |
//! | `GET /_fake/stats` | `{"activities": n, "settled": n, "requests": n}` |
//! | `GET /_fake/requests` | the request log |
//! | `GET /_fake/files` | stored files |
//! | `POST /_fake/sweep` | expire leases now → `{"requeued": n, "timed_out": n}` |

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde_json::json;
use uuid::Uuid;

use super::activity::NewActivity;
use super::state::ServerState;
use super::tooling::Tooling;

pub(crate) fn router(tooling: Arc<Tooling>) -> Router<Arc<ServerState>> {
    Router::new()
        .route("/_fake/activities", post(enqueue).get(list))
        .route("/_fake/activities/batch", post(enqueue_batch))
        .route("/_fake/activities/{id}", get(show))
        .route("/_fake/stats", get(stats))
        .route("/_fake/requests", get(requests))
        .route("/_fake/files", get(files))
        .route("/_fake/sweep", post(sweep))
        .layer(Extension(tooling))
}

/// A JSON body that must be exactly a `T`: an unknown field (a typo such as `setings`,
/// which would otherwise be ignored) is a 400 naming it and the fields accepted.
struct Strict<T>(T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> axum::extract::FromRequest<S> for Strict<T> {
    type Rejection = Response;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        let body = axum::body::Bytes::from_request(request, state).await.map_err(IntoResponse::into_response)?;
        let mut deserializer = serde_json::Deserializer::from_slice(&body);
        serde_path_to_error::deserialize(&mut deserializer).map(Strict).map_err(|error| {
            let message = format!("Bad request: {} at {}", error.inner(), error.path());
            super::envelope::error(StatusCode::BAD_REQUEST, "BAD_REQUEST", message)
        })
    }
}

async fn enqueue(State(state): State<Arc<ServerState>>, Strict(new): Strict<NewActivity>) -> Response {
    let now = state.clock.now();
    let id = state.with_queue(|q| q.enqueue(new, now));
    (StatusCode::CREATED, Json(json!({"activity_id": id}))).into_response()
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Batch {
    activity: NewActivity,
    count: usize,
}

async fn enqueue_batch(State(state): State<Arc<ServerState>>, Strict(batch): Strict<Batch>) -> Response {
    let now = state.clock.now();
    state.with_queue(|q| {
        for _ in 0..batch.count {
            q.enqueue(batch.activity.clone(), now);
        }
    });
    (StatusCode::CREATED, Json(json!({"count": batch.count}))).into_response()
}

async fn list(State(state): State<Arc<ServerState>>) -> Response {
    Json(state.read_queue(|q| q.snapshots())).into_response()
}

async fn show(State(state): State<Arc<ServerState>>, Path(id): Path<Uuid>) -> Response {
    match state.read_queue(|q| q.snapshot(id)) {
        Some(snapshot) => Json(snapshot).into_response(),
        None => {
            super::envelope::error(StatusCode::NOT_FOUND, "NOT_FOUND", format!("Not found: Activity '{id}' not found"))
        }
    }
}

async fn stats(State(state): State<Arc<ServerState>>, Extension(tooling): Extension<Arc<Tooling>>) -> Response {
    let (activities, settled) = state.read_queue(|q| (q.len(), q.settled_count()));
    let requests = tooling.log.len();
    Json(json!({"activities": activities, "settled": settled, "requests": requests})).into_response()
}

async fn requests(Extension(tooling): Extension<Arc<Tooling>>) -> Response {
    Json(tooling.log.snapshot()).into_response()
}

async fn files(State(state): State<Arc<ServerState>>) -> Response {
    Json(state.files.all()).into_response()
}

async fn sweep(State(state): State<Arc<ServerState>>) -> Response {
    let now = state.clock.now();
    let report = state.with_queue(|q| q.sweep(now));
    Json(json!({"requeued": report.requeued, "timed_out": report.timed_out})).into_response()
}
