//! A small misbehaving server on 127.0.0.1 for faults the fake server cannot produce:
//! a token endpoint that issues tokens of any lifetime and then hangs, a redirect whose
//! target can be watched, and poll answers scripted per test.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::Value;

/// How the token endpoint answers.
#[derive(Debug, Clone)]
pub enum TokenMode {
    /// A token valid for this many seconds.
    Valid(u64),
    /// Never answers.
    Hang,
    /// 307 to this URL.
    Redirect(String),
    /// 200 with an HTML page.
    Html,
    /// 401.
    Refuse,
}

#[derive(Default)]
struct Script {
    polls: Mutex<VecDeque<String>>,
    requests: Mutex<Vec<(String, Value)>>,
    tokens_issued: Mutex<Vec<String>>,
    token_modes: Mutex<VecDeque<TokenMode>>,
}

pub struct ScriptedServer {
    pub url: String,
    script: Arc<Script>,
}

impl ScriptedServer {
    pub async fn start() -> Self {
        let script = Arc::new(Script::default());
        let app = Router::new()
            .route("/api/v1/workers/poll", post(poll))
            .route("/api/v1/oauth/token", post(token))
            .route("/api/v1/activities/{id}/{action}", post(activity))
            .with_state(Arc::clone(&script));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, script }
    }

    /// The next poll answers exactly `body`.
    pub fn answer_next_poll(&self, body: &str) {
        self.script.polls.lock().unwrap().push_back(body.to_owned());
    }

    /// The token endpoint answers `mode` next (the last mode given repeats).
    pub fn token_mode(&self, mode: TokenMode) {
        self.script.token_modes.lock().unwrap().push_back(mode);
    }

    /// Requests received: (path, JSON body or null).
    pub fn requests(&self) -> Vec<(String, Value)> {
        self.script.requests.lock().unwrap().clone()
    }

    pub fn requests_ending(&self, suffix: &str) -> Vec<Value> {
        self.requests().into_iter().filter(|(path, _)| path.ends_with(suffix)).map(|(_, body)| body).collect()
    }

    /// Report bodies (complete or fail) for `activity_id`.
    pub fn reports(&self, activity_id: &str) -> Vec<(String, Value)> {
        self.requests()
            .into_iter()
            .filter(|(path, _)| path.contains(activity_id) && (path.ends_with("/complete") || path.ends_with("/fail")))
            .collect()
    }

    /// The bearer tokens the server has issued, in order.
    pub fn tokens_issued(&self) -> Vec<String> {
        self.script.tokens_issued.lock().unwrap().clone()
    }
}

fn record(script: &Script, path: String, body: &Bytes) {
    let json = serde_json::from_slice(body).unwrap_or(Value::Null);
    script.requests.lock().unwrap().push((path, json));
}

async fn poll(State(script): State<Arc<Script>>, body: Bytes) -> Response {
    record(&script, "/api/v1/workers/poll".into(), &body);
    let answer = script.polls.lock().unwrap().pop_front().unwrap_or_else(|| r#"{"activities":[]}"#.to_owned());
    ([(header::CONTENT_TYPE, "application/json")], answer).into_response()
}

async fn activity(
    State(script): State<Arc<Script>>,
    Path((id, action)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    record(&script, format!("/api/v1/activities/{id}/{action}"), &body);
    // Every heartbeat, complete and fail is acknowledged the same way.
    let _ = action;
    ([(header::CONTENT_TYPE, "application/json")], r#"{"acknowledged":true}"#).into_response()
}

async fn token(State(script): State<Arc<Script>>, body: Bytes) -> Response {
    record(&script, "/api/v1/oauth/token".into(), &body);
    let mode = {
        let mut modes = script.token_modes.lock().unwrap();
        if modes.len() > 1 {
            modes.pop_front().unwrap()
        } else {
            modes.front().cloned().unwrap_or(TokenMode::Valid(3600))
        }
    };
    match mode {
        TokenMode::Valid(expires_in) => {
            let token = format!("token-{}", uuid::Uuid::now_v7().simple());
            script.tokens_issued.lock().unwrap().push(token.clone());
            let body = serde_json::json!({"access_token": token, "token_type": "Bearer", "expires_in": expires_in});
            ([(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
        }
        TokenMode::Hang => std::future::pending().await,
        TokenMode::Redirect(location) => {
            (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, location)]).into_response()
        }
        TokenMode::Html => ([(header::CONTENT_TYPE, "text/html")], "<html><body>Sign in</body></html>").into_response(),
        TokenMode::Refuse => (StatusCode::UNAUTHORIZED, "invalid client").into_response(),
    }
}

/// A poll item for `activity_id` with `parameters_json` written as given.
pub fn item(activity_id: &str, activity_name: &str, parameters_json: &str) -> String {
    format!(
        r#"{{"activity_id":"{activity_id}","workflow_id":"0193b2c4-ffee-7aa0-9b11-2c3d4e5f6071","activity_key":"k-{activity_id}","worker":"rust","activity_name":"{activity_name}","parameters":{parameters_json},"settings":null,"timeout_seconds":30}}"#
    )
}
