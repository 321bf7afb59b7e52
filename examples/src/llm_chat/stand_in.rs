//! A stand-in for an OpenAI-compatible chat completions API on `127.0.0.1`: it
//! answers `POST /v1/chat/completions` with scripted server-sent events, for the demo
//! and the tests, so nothing leaves the machine.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router, routing::post};
use serde_json::{Value, json};
use tokio_util::task::AbortOnDropHandle;

/// How the stand-in answers one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A streamed answer.
    Stream(Answer),
    /// An error status with an OpenAI-style error body.
    Status(u16, String),
    /// `429 Too Many Requests` with `Retry-After` (whole seconds), as a provider
    /// answers a client over its limit.
    RateLimited {
        /// The `Retry-After` header's seconds.
        retry_after_secs: u64,
    },
}

/// A streamed answer: its pieces, then (unless cut) the usage chunk and `[DONE]`.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The content deltas, in order.
    pub pieces: Vec<String>,
    /// `(prompt_tokens, completion_tokens)` of the final usage chunk.
    pub usage: Option<(u32, u32)>,
    /// After this many pieces, stop early this way.
    pub stop_after: Option<(usize, Stop)>,
    /// Pause before each piece, so the answer streams as a model's would.
    pub pace: Duration,
}

impl Answer {
    /// `text` in word-sized pieces (spaces kept), with usage counted as one token per
    /// piece and per prompt word.
    pub fn words(text: &str) -> Self {
        let mut pieces = Vec::new();
        for (i, word) in text.split(' ').enumerate() {
            pieces.push(if i == 0 { word.to_owned() } else { format!(" {word}") });
        }
        let count = pieces.len() as u32;
        Self { pieces, usage: Some((12, count)), stop_after: None, pace: Duration::ZERO }
    }

    /// Pauses `pace` before each piece.
    pub fn paced(mut self, pace: Duration) -> Self {
        self.pace = pace;
        self
    }

    /// Stops early, as `stop` says, after `pieces` pieces.
    pub fn stopping_after(mut self, pieces: usize, stop: Stop) -> Self {
        self.stop_after = Some((pieces, stop));
        self
    }

    /// Without the usage chunk.
    pub fn without_usage(mut self) -> Self {
        self.usage = None;
        self
    }
}

/// How an answer stops early.
#[derive(Debug, Clone, PartialEq)]
pub enum Stop {
    /// An error event with this message, as servers report a failure mid-answer.
    Error(String),
    /// The connection ends without `[DONE]`.
    Cut,
}

/// A request the stand-in received.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
    /// The JSON body.
    pub body: Value,
    /// The `traceparent` header, if one was sent.
    pub traceparent: Option<String>,
}

/// A running stand-in model. Stops when dropped.
pub struct StandInModel {
    base_url: String,
    state: Arc<Script>,
    _server: AbortOnDropHandle<()>,
}

struct Script {
    /// Replies in order; the last one answers every later request.
    replies: Mutex<VecDeque<Reply>>,
    received: Mutex<Vec<Received>>,
}

impl StandInModel {
    /// Starts a stand-in answering with `replies` in order (the last one repeats).
    pub async fn start(replies: Vec<Reply>) -> std::io::Result<Self> {
        let state = Arc::new(Script { replies: Mutex::new(replies.into()), received: Mutex::default() });
        let app = Router::new().route("/v1/chat/completions", post(chat)).with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base_url = format!("http://{}/v1", listener.local_addr()?);
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { base_url, state, _server: AbortOnDropHandle::new(server) })
    }

    /// The base URL to give the activity (`http://127.0.0.1:port/v1`).
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The requests received so far.
    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

async fn chat(State(script): State<Arc<Script>>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let model = body["model"].clone();
    let traceparent = headers.get("traceparent").and_then(|v| v.to_str().ok()).map(str::to_owned);
    script.received.lock().unwrap_or_else(|e| e.into_inner()).push(Received { authorization, body, traceparent });
    let reply = {
        let mut replies = script.replies.lock().unwrap_or_else(|e| e.into_inner());
        if replies.len() > 1 { replies.pop_front() } else { replies.front().cloned() }
    };
    match reply {
        None => StatusCode::NOT_FOUND.into_response(),
        Some(Reply::Status(status, message)) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let body = json!({"error": {"message": message, "type": "stand_in_error"}});
            (status, Json(body)).into_response()
        }
        Some(Reply::RateLimited { retry_after_secs }) => {
            let body = json!({"error": {"message": "Rate limit reached for requests", "type": "requests"}});
            let retry_after = [(header::RETRY_AFTER, retry_after_secs.to_string())];
            (StatusCode::TOO_MANY_REQUESTS, retry_after, Json(body)).into_response()
        }
        Some(Reply::Stream(answer)) => {
            let events = futures_util::stream::unfold((answer, 0usize, model), next_event);
            Response::builder()
                .header(header::CONTENT_TYPE, "text/event-stream")
                .header(header::CACHE_CONTROL, "no-cache")
                .body(Body::from_stream(events))
                .expect("a response with static headers builds")
        }
    }
}

/// The event after `step` events of `answer`, as `data: …` lines.
async fn next_event(
    (answer, step, model): (Answer, usize, Value),
) -> Option<(Result<Bytes, Infallible>, (Answer, usize, Value))> {
    let chunk = |choices: Value, usage: Value| {
        json!({"id": "chatcmpl-stand-in", "object": "chat.completion.chunk", "created": 0, "model": model,
               "choices": choices, "usage": usage})
    };
    let pieces = answer.pieces.len();
    let data = match step {
        // The role comes first, with empty content, as OpenAI sends it.
        0 => chunk(
            json!([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]),
            Value::Null,
        )
        .to_string(),
        n if answer.stop_after.as_ref().is_some_and(|(after, _)| n > *after) => match &answer.stop_after {
            Some((after, Stop::Error(message))) if n == after + 1 => {
                json!({"error": {"message": message, "type": "server_error"}}).to_string()
            }
            _ => return None,
        },
        n if n <= pieces => {
            tokio::time::sleep(answer.pace).await;
            let piece = &answer.pieces[n - 1];
            chunk(json!([{"index": 0, "delta": {"content": piece}, "finish_reason": null}]), Value::Null).to_string()
        }
        n if n == pieces + 1 => {
            chunk(json!([{"index": 0, "delta": {}, "finish_reason": "stop"}]), Value::Null).to_string()
        }
        n if n == pieces + 2 => match answer.usage {
            Some((prompt, completion)) => chunk(
                json!([]),
                json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}),
            )
            .to_string(),
            None => "[DONE]".to_owned(),
        },
        n if n == pieces + 3 && answer.usage.is_some() => "[DONE]".to_owned(),
        _ => return None,
    };
    Some((Ok(Bytes::from(format!("data: {data}\n\n"))), (answer, step + 1, model)))
}
