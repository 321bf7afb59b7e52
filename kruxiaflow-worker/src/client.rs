//! The HTTP client for the worker endpoints: auth, retries, and the exact JSON of the
//! protocol. Every byte the worker sends goes out through [`ApiClient`].

mod auth;
mod error;
mod retry;

use std::sync::Arc;

use bytes::Bytes;
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use uuid::Uuid;

use crate::config::WorkerConfig;
use crate::protocol::{
    CompleteRequest, FailRequest, HeartbeatRequest, HeartbeatResponse, PollRequest, PollResponse, ReportAck,
};

use auth::TokenSource;
pub use error::{ClientError, is_transient_status};
pub use retry::RetryPolicy;

/// Talks to one Kruxia Flow API server.
///
/// Polls and heartbeats are retried a bounded number of times; completions and
/// failures are retried until the server answers definitively, because dropping them
/// loses work.
#[derive(Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    base_url: Arc<str>,
    auth: Option<Arc<TokenSource>>,
    retry: RetryPolicy,
}

impl ApiClient {
    /// A client for `config.api_url`, authenticated when credentials are set.
    pub fn new(config: &WorkerConfig, retry: RetryPolicy) -> Result<Self, ClientError> {
        let http = reqwest::Client::builder()
            .timeout(config.http_timeout)
            .connect_timeout(config.http_timeout.min(std::time::Duration::from_secs(10)))
            .user_agent(concat!("kruxiaflow-worker-rust/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError::transport(&config.api_url, &e))?;
        let base_url = config.api_url.trim_end_matches('/');
        Ok(Self {
            http,
            auth: config.credentials.as_ref().map(|c| Arc::new(TokenSource::new(base_url, c))),
            base_url: Arc::from(base_url),
            retry,
        })
    }

    /// The API base URL.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Claims up to `max_activities` activities. Items come back unparsed, so that a
    /// malformed one cannot take the others down with it.
    pub async fn poll(&self, request: &PollRequest) -> Result<Vec<Value>, ClientError> {
        let response: PollResponse =
            self.retry.retry("poll", || self.post_json("/api/v1/workers/poll", encode(request))).await?;
        Ok(response.activities)
    }

    /// Renews the lease on `activity_id`.
    pub async fn heartbeat(&self, activity_id: Uuid, worker_id: &str) -> Result<HeartbeatResponse, ClientError> {
        let path = format!("/api/v1/activities/{activity_id}/heartbeat");
        let body = HeartbeatRequest { worker_id: worker_id.to_owned() };
        let body = encode(&body);
        self.retry.retry("heartbeat", || self.post_json(&path, body.clone())).await
    }

    /// Reports success; retried until the server answers definitively.
    pub async fn complete(&self, activity_id: Uuid, body: &CompleteRequest) -> Result<ReportAck, ClientError> {
        let path = format!("/api/v1/activities/{activity_id}/complete");
        let body = encode(body);
        self.retry.retry_forever("completion report", || self.post_json(&path, body.clone())).await
    }

    /// Reports failure; retried until the server answers definitively.
    pub async fn fail(&self, activity_id: Uuid, body: &FailRequest) -> Result<ReportAck, ClientError> {
        let path = format!("/api/v1/activities/{activity_id}/fail");
        let body = encode(body);
        self.retry.retry_forever("failure report", || self.post_json(&path, body.clone())).await
    }

    async fn post_json<R: DeserializeOwned>(&self, path: &str, body: Bytes) -> Result<R, ClientError> {
        let url = format!("{}{path}", self.base_url);
        let response = self.send_authenticated(Method::POST, &url, Some(&body)).await?;
        let bytes = response.bytes().await.map_err(|e| ClientError::transport(&url, &e))?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode { url, detail: e.to_string() })
    }

    /// Sends one request with a bearer token (when configured); on 401 fetches a fresh
    /// token and tries once more. Non-success statuses become errors.
    async fn send_authenticated(
        &self,
        method: Method,
        url: &str,
        body: Option<&Bytes>,
    ) -> Result<reqwest::Response, ClientError> {
        let Some(auth) = &self.auth else {
            let response = self.send(method, url, body, None).await?;
            if response.status() == StatusCode::UNAUTHORIZED {
                return Err(ClientError::CredentialsRequired);
            }
            return check_status(url, response).await;
        };
        let token = auth.token(&self.http).await?;
        let response = self.send(method.clone(), url, body, Some(&token)).await?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return check_status(url, response).await;
        }
        auth.invalidate(&token).await;
        let token = auth.token(&self.http).await?;
        let response = self.send(method, url, body, Some(&token)).await?;
        if response.status() == StatusCode::UNAUTHORIZED {
            let error = check_status(url, response).await.err().map(|e| e.server_message());
            return Err(ClientError::Unauthorized(error.unwrap_or_default()));
        }
        check_status(url, response).await
    }

    async fn send(
        &self,
        method: Method,
        url: &str,
        body: Option<&Bytes>,
        token: Option<&str>,
    ) -> Result<reqwest::Response, ClientError> {
        let mut request = self.http.request(method, url).header("X-Request-ID", Uuid::now_v7().to_string());
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.header(reqwest::header::CONTENT_TYPE, "application/json").body(body.clone());
        }
        request.send().await.map_err(|e| ClientError::transport(url, &e))
    }
}

async fn check_status(url: &str, response: reqwest::Response) -> Result<reqwest::Response, ClientError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body = response.bytes().await.unwrap_or_default();
    Err(ClientError::from_body(url, status.as_u16(), &body))
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClient")
            .field("base_url", &self.base_url)
            .field("authenticated", &self.auth.is_some())
            .finish()
    }
}

/// Serializes a request body once, to be shared by every retry.
fn encode(value: &impl Serialize) -> Bytes {
    // The protocol types hold only strings, numbers, maps and `Value`s, whose
    // serialization cannot fail.
    Bytes::from(serde_json::to_vec(value).expect("protocol request bodies always serialize"))
}
