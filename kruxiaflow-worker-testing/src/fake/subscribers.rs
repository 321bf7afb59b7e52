//! The subscriber side of streaming (PROTOCOL.md §6.5): clients watch an activity over
//! a WebSocket and get, as JSON text frames, what workers send to `ws/token`,
//! `ws/complete` and `ws/error`. The subscriber count the worker endpoints answer
//! counts these open sockets.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::envelope;
use super::files::now_rfc3339;
use super::state::ServerState;

/// The open sockets of every activity.
#[derive(Default)]
pub(crate) struct Hub {
    sockets: Mutex<HashMap<Uuid, Vec<mpsc::UnboundedSender<Frame>>>>,
}

enum Frame {
    Text(String),
    Close,
}

impl Hub {
    fn sockets(&self) -> MutexGuard<'_, HashMap<Uuid, Vec<mpsc::UnboundedSender<Frame>>>> {
        self.sockets.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sockets still open for `id`.
    pub(crate) fn open(&self, id: Uuid) -> u32 {
        let mut sockets = self.sockets();
        let Some(open) = sockets.get_mut(&id) else { return 0 };
        open.retain(|socket| !socket.is_closed());
        open.len() as u32
    }

    /// Sends a `token` frame to every open socket of `id`; answers how many got it.
    pub(crate) fn token(&self, id: Uuid, text: &str, index: u32) -> u32 {
        let mut sockets = self.sockets();
        let Some(open) = sockets.get_mut(&id) else { return 0 };
        let frame = json!({"type": "token", "text": text, "index": index, "timestamp": now_rfc3339()}).to_string();
        open.retain(|socket| socket.send(Frame::Text(frame.clone())).is_ok());
        open.len() as u32
    }

    /// Sends the `complete` frame with `result` to every socket of `id`, then closes them.
    pub(crate) fn complete(&self, id: Uuid, result: &Value) {
        let frame = json!({"type": "complete", "activity_id": id, "result": result, "timestamp": now_rfc3339()});
        self.close_with(id, &frame);
    }

    /// Sends the `error` frame with `error` to every socket of `id`, then closes them.
    pub(crate) fn error(&self, id: Uuid, error: &str) {
        let frame = json!({"type": "error", "activity_id": id, "error": error, "timestamp": now_rfc3339()});
        self.close_with(id, &frame);
    }

    fn close_with(&self, id: Uuid, last: &Value) {
        let last = last.to_string();
        for socket in self.sockets().remove(&id).unwrap_or_default() {
            let _ = socket.send(Frame::Text(last.clone()));
            let _ = socket.send(Frame::Close);
        }
    }

    /// A new socket for `id`, counted from now on (before the upgrade completes, so a
    /// client that has its `101` is already counted).
    fn join(&self, id: Uuid) -> mpsc::UnboundedReceiver<Frame> {
        let (socket, frames) = mpsc::unbounded_channel();
        self.sockets().entry(id).or_default().push(socket);
        frames
    }
}

#[derive(Deserialize)]
pub(crate) struct SubscribeQuery {
    token: Option<String>,
}

/// `GET /api/v1/activities/{id}/ws`
pub(crate) async fn by_activity_id(
    State(state): State<Arc<ServerState>>,
    Path(id): Path<Uuid>,
    Query(query): Query<SubscribeQuery>,
    upgrade: WebSocketUpgrade,
) -> Response {
    subscribe(&state, id, query, upgrade)
}

/// `GET /api/v1/workflows/{workflow_id}/activities/{activity_key}/ws`
pub(crate) async fn by_activity_key(
    State(state): State<Arc<ServerState>>,
    Path((workflow_id, activity_key)): Path<(Uuid, String)>,
    Query(query): Query<SubscribeQuery>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let id = state.read_queue(|queue| {
        queue
            .snapshots()
            .into_iter()
            .find(|a| a.workflow_id == workflow_id && a.activity_key == activity_key)
            .map(|a| a.activity_id)
    });
    match id {
        Some(id) => subscribe(&state, id, query, upgrade),
        None => envelope::error(
            axum::http::StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!("Not found: Activity {activity_key} of workflow {workflow_id}"),
        ),
    }
}

/// The token travels in the query string (browsers cannot set headers on a WebSocket);
/// in dev mode it is optional.
fn subscribe(state: &ServerState, id: Uuid, query: SubscribeQuery, upgrade: WebSocketUpgrade) -> Response {
    let header = query.token.map(|token| format!("Bearer {token}"));
    if let Err(refused) = state.tokens.check(header.as_deref(), &state.clock) {
        return envelope::unauthorized(refused.message());
    }
    let frames = state.hub.join(id);
    upgrade.on_upgrade(move |socket| pump(socket, frames)).into_response()
}

/// Writes the activity's frames to the socket until the stream ends or the client leaves.
async fn pump(mut socket: WebSocket, mut frames: mpsc::UnboundedReceiver<Frame>) {
    loop {
        tokio::select! {
            frame = frames.recv() => match frame {
                Some(Frame::Text(text)) => {
                    if socket.send(Message::Text(text.into())).await.is_err() {
                        break;
                    }
                }
                Some(Frame::Close) | None => {
                    let _ = socket.send(Message::Close(None)).await;
                    break;
                }
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
        }
    }
}
