//! The HTTP client for the worker endpoints: auth, retries, and the exact JSON of the
//! protocol. Every byte the worker sends goes out through [`ApiClient`].

mod auth;
mod error;
mod retry;

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use uuid::Uuid;

use crate::config::WorkerConfig;
use crate::files::FileReference;
use crate::protocol::{
    CompleteRequest, FailRequest, FileMetadata, HeartbeatRequest, HeartbeatResponse, PollRequest, PollResponse,
    ReportAck,
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
        let body = encode(&HeartbeatRequest { worker_id: worker_id.to_owned() });
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

    /// Streams a stored file into `dest` (created or truncated), checking the byte count
    /// against `Content-Length`. A transfer cut short is retried from the start.
    pub async fn download_to(&self, file: &FileReference, dest: &Path) -> Result<u64, ClientError> {
        let url = self.file_url(file);
        self.retry.retry("file download", || self.download_once(&url, dest)).await
    }

    async fn download_once(&self, url: &str, dest: &Path) -> Result<u64, ClientError> {
        let response = self.send_authenticated(Method::GET, url, &Payload::Empty).await?;
        let expected = response.content_length();
        let mut out = tokio::fs::File::create(dest).await.map_err(|e| ClientError::local(dest, &e))?;
        let mut body = response.bytes_stream();
        let mut received = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| ClientError::transport(url, &e))?;
            out.write_all(&chunk).await.map_err(|e| ClientError::local(dest, &e))?;
            received += chunk.len() as u64;
        }
        out.flush().await.map_err(|e| ClientError::local(dest, &e))?;
        match expected {
            Some(expected) if expected != received => Err(ClientError::Transport {
                url: url.to_owned(),
                detail: format!("the body was cut short: received {received} of {expected} bytes"),
            }),
            _ => Ok(received),
        }
    }

    /// Streams `source` to workflow storage as `file` (an upload overwrites, so a retry
    /// from the start is safe).
    pub async fn upload_from(
        &self,
        file: &FileReference,
        source: &Path,
        content_type: &str,
    ) -> Result<FileMetadata, ClientError> {
        let url = self.file_url(file);
        let payload = Payload::File { path: source, content_type };
        self.retry
            .retry("file upload", || async {
                let response = self.send_authenticated(Method::POST, &url, &payload).await?;
                decode(&url, response).await
            })
            .await
    }

    fn file_url(&self, file: &FileReference) -> String {
        format!(
            "{}/api/v1/workflows/{}/activities/{}/files/{}",
            self.base_url,
            file.workflow_id,
            utf8_percent_encode(&file.activity_key, PATH_SEGMENT),
            utf8_percent_encode(&file.filename, PATH_SEGMENT)
        )
    }

    async fn post_json<R: DeserializeOwned>(&self, path: &str, body: Bytes) -> Result<R, ClientError> {
        let url = format!("{}{path}", self.base_url);
        let response = self.send_authenticated(Method::POST, &url, &Payload::Json(body)).await?;
        decode(&url, response).await
    }

    /// Sends one request with a bearer token (when configured); on 401 fetches a fresh
    /// token and tries once more. Non-success statuses become errors.
    async fn send_authenticated(
        &self,
        method: Method,
        url: &str,
        body: &Payload<'_>,
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
        body: &Payload<'_>,
        token: Option<&str>,
    ) -> Result<reqwest::Response, ClientError> {
        let mut request = self.http.request(method, url).header("X-Request-ID", Uuid::now_v7().to_string());
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request = body.attach(request)?;
        request.send().await.map_err(|e| ClientError::transport(url, &e))
    }
}

/// Path segments keep unreserved characters and percent-encode everything else.
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// A request body, rebuilt for each attempt (a file stream cannot be replayed).
enum Payload<'a> {
    Empty,
    Json(Bytes),
    File { path: &'a Path, content_type: &'a str },
}

impl Payload<'_> {
    fn attach(&self, request: reqwest::RequestBuilder) -> Result<reqwest::RequestBuilder, ClientError> {
        Ok(match self {
            Self::Empty => request,
            Self::Json(bytes) => request.header(reqwest::header::CONTENT_TYPE, "application/json").body(bytes.clone()),
            Self::File { path, content_type } => {
                let file = std::fs::File::open(path).map_err(|e| ClientError::local(path, &e))?;
                let length = file.metadata().map_err(|e| ClientError::local(path, &e))?.len();
                let stream = tokio_util::io::ReaderStream::with_capacity(tokio::fs::File::from_std(file), 64 * 1024);
                request
                    .header(reqwest::header::CONTENT_TYPE, *content_type)
                    .header(reqwest::header::CONTENT_LENGTH, length)
                    .body(reqwest::Body::wrap_stream(stream))
            }
        })
    }
}

async fn decode<R: DeserializeOwned>(url: &str, response: reqwest::Response) -> Result<R, ClientError> {
    let bytes = response.bytes().await.map_err(|e| ClientError::transport(url, &e))?;
    serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode { url: url.to_owned(), detail: e.to_string() })
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
