//! A thin raw-HTTP client, so tests see exactly what the fake sends.
#![allow(dead_code)]

use kruxiaflow_worker_testing::{FakeServer, NewActivity};
use serde_json::{Value, json};
use uuid::Uuid;

pub const WORKER_ID: &str = "worker_vectors_0001";

/// A response: status, content type and body (JSON when it parses, else text).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub json: Option<Value>,
    pub text: String,
}

impl Reply {
    pub fn json(&self) -> &Value {
        self.json.as_ref().unwrap_or_else(|| panic!("expected a JSON body, got {:?}", self.text))
    }

    /// `error.message` of the envelope.
    pub fn message(&self) -> &str {
        self.json()["error"]["message"].as_str().unwrap_or_else(|| panic!("no error envelope: {}", self.text))
    }

    /// Asserts a JSON error envelope.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str, message: &str) {
        assert_eq!(self.status, status, "{}", self.text);
        assert_eq!(self.content_type, "application/json");
        assert_eq!(self.json(), &json!({"error": {"code": code, "message": message}}));
    }

    /// Asserts a 422 validation envelope with these field errors.
    #[track_caller]
    pub fn assert_validation(&self, field_errors: Value) {
        assert_eq!(self.status, 422, "{}", self.text);
        assert_eq!(
            self.json(),
            &json!({"error": {"code": "VALIDATION_ERROR", "message": "Validation failed", "details": {"field_errors": field_errors}}})
        );
    }

    /// Asserts a plain-text framework rejection starting with `prefix`.
    #[track_caller]
    pub fn assert_text(&self, status: u16, prefix: &str) {
        assert_eq!(self.status, status, "{}", self.text);
        assert_eq!(self.content_type, "text/plain; charset=utf-8");
        assert!(self.text.starts_with(prefix), "{:?} does not start with {prefix:?}", self.text);
    }
}

pub struct Api {
    pub http: reqwest::Client,
    pub base: String,
    pub token: Option<String>,
}

impl Api {
    pub fn new(server: &FakeServer) -> Self {
        Self { http: reqwest::Client::new(), base: server.url(), token: None }
    }

    pub fn with_token(mut self, token: &str) -> Self {
        self.token = Some(token.to_owned());
        self
    }

    pub async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        let request = match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        let response = request.send().await.expect("the fake answers");
        let status = response.status().as_u16();
        let content_type =
            response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        let text = response.text().await.unwrap();
        Reply { status, content_type, json: serde_json::from_str(&text).ok(), text }
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.send(self.http.post(format!("{}{path}", self.base)).json(&body)).await
    }

    pub async fn post_raw(&self, path: &str, content_type: Option<&str>, body: &'static str) -> Reply {
        let mut request = self.http.post(format!("{}{path}", self.base)).body(body);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        self.send(request).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(self.http.get(format!("{}{path}", self.base))).await
    }

    pub async fn poll(&self, worker: &str, worker_id: &str, max: u32) -> Reply {
        self.post("/api/v1/workers/poll", json!({"worker": worker, "worker_id": worker_id, "max_activities": max}))
            .await
    }

    /// Polls and returns the claimed ids.
    pub async fn claim(&self, worker: &str, worker_id: &str, max: u32) -> Vec<Uuid> {
        let reply = self.poll(worker, worker_id, max).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        reply.json()["activities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["activity_id"].as_str().unwrap().parse().unwrap())
            .collect()
    }

    pub async fn heartbeat(&self, id: Uuid, worker_id: &str) -> Reply {
        self.post(&format!("/api/v1/activities/{id}/heartbeat"), json!({"worker_id": worker_id})).await
    }

    pub async fn complete(&self, id: Uuid, worker_id: &str, output: Value) -> Reply {
        self.post(&format!("/api/v1/activities/{id}/complete"), json!({"worker_id": worker_id, "output": output})).await
    }

    pub async fn fail(&self, id: Uuid, worker_id: &str, retryable: bool) -> Reply {
        let body = json!({"worker_id": worker_id, "error": {"code": "UPSTREAM_5XX", "message": "boom", "retryable": retryable}});
        self.post(&format!("/api/v1/activities/{id}/fail"), body).await
    }
}

/// A dev-mode server with one activity claimed by [`WORKER_ID`].
pub async fn claimed(activity: NewActivity) -> (FakeServer, Api, Uuid) {
    let server = FakeServer::start().await;
    let worker = activity.worker.clone();
    let id = server.enqueue(activity);
    let api = Api::new(&server);
    assert_eq!(api.claim(&worker, WORKER_ID, 1).await, [id]);
    (server, api, id)
}
