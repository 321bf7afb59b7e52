//! The HTTP client for the worker endpoints: auth, retries, and the exact JSON of the
//! protocol. Every byte the worker sends goes out through [`ApiClient`].

mod auth;
mod error;
mod http;
mod retry;
mod transfer;
mod trouble;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::{Method, Url};
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::config::WorkerConfig;
use crate::files::FileReference;
use crate::protocol::{
    FileMetadata, HeartbeatRequest, HeartbeatResponse, PollRequest, PollResponse, ReportAck, StreamComplete,
    StreamError, StreamToken, SubscriberCount, TokenDelivered, encode,
};
use crate::report::Report;
use crate::text::{escape_controls, redact_url};

use auth::TokenSource;
pub use error::ClientError;
pub(crate) use http::{HttpCustomizer, Pools, build_pools};
use retry::Persist;
pub use retry::RetryPolicy;

/// Talks to one Kruxia Flow API server.
///
/// A poll is one request (the poller owns its backoff); heartbeats and file transfers
/// are retried a bounded number of times; reports are retried until the server
/// answers the report itself, because dropping one loses work.
#[derive(Clone)]
pub(crate) struct ApiClient {
    http: reqwest::Client,
    /// The server's base URL, parsed once: endpoint URLs are built from it segment by
    /// segment, so no request pays for parsing a whole URL (its host's IDNA mapping
    /// among it).
    base_url: Arc<Url>,
    auth: Option<Arc<TokenSource>>,
    retry: RetryPolicy,
    /// Runs of failures by endpoint, shared by every pool's client, for the log.
    trouble: Arc<trouble::Trouble>,
    /// Limit of one JSON request, and how long a file transfer may make no progress.
    timeout: Duration,
}

impl ApiClient {
    /// A client for `base_url` (the parsed `config.api_url`) over `http`,
    /// authenticated when credentials are set. Token fetches run on the current runtime
    /// and use `http`.
    pub(crate) fn new(config: &WorkerConfig, base_url: Url, retry: RetryPolicy, http: reqwest::Client) -> Self {
        Self {
            auth: config.credentials.as_ref().map(|c| {
                Arc::new(TokenSource::new(api_url(&base_url, ["oauth", "token"]), c, http.clone(), config.http_timeout))
            }),
            http,
            base_url: Arc::new(base_url),
            retry,
            trouble: Arc::default(),
            timeout: config.http_timeout,
        }
    }

    /// The same server and tokens over another connection pool.
    pub(crate) fn with_http(&self, http: reqwest::Client) -> Self {
        Self { http, ..self.clone() }
    }

    /// Claims up to `max_activities` activities, once. Items come back unparsed, so
    /// that a malformed one cannot take the others down with it.
    pub(crate) async fn poll(&self, request: &PollRequest) -> Result<Vec<Box<RawValue>>, ClientError> {
        let response: PollResponse = self.post_json(&self.url(&["workers", "poll"]), encode(request)).await?;
        Ok(response.activities)
    }

    /// Renews the lease on `activity_id`.
    pub(crate) async fn heartbeat(&self, activity_id: Uuid, worker_id: &str) -> Result<HeartbeatResponse, ClientError> {
        let url = self.activity_url(activity_id, &["heartbeat"]);
        let body = encode(&HeartbeatRequest { worker_id: worker_id.to_owned() });
        self.retry.retry(("heartbeat", &self.trouble), Persist::Transient, || self.post_json(&url, body.clone())).await
    }

    /// Sends a complete or fail report (already encoded as `body`), again and again
    /// until the server answers the report itself (see [`ClientError::settles_report`]).
    /// Callers that must stop earlier drop the future.
    pub(crate) async fn report(
        &self,
        activity_id: Uuid,
        report: &Report,
        body: Bytes,
    ) -> Result<ReportAck, ClientError> {
        let url = self.activity_url(activity_id, &[report.endpoint()]);
        self.retry
            .retry((report.endpoint(), &self.trouble), Persist::UntilAnswered, || self.post_json(&url, body.clone()))
            .await
    }

    /// Streams a stored file into `dest` (created or truncated), checking the byte count
    /// against `Content-Length`. A transfer cut short is retried from the start; one
    /// that stops moving for the HTTP timeout is treated as cut short.
    pub(crate) async fn download_to(&self, file: &FileReference, dest: &Path) -> Result<u64, ClientError> {
        let url = self.file_url(file);
        self.retry
            .retry(("file_download", &self.trouble), Persist::Transient, || transfer::download(self, &url, dest))
            .await
    }

    /// Streams `source` to workflow storage as `file` (an upload overwrites, so a retry
    /// from the start is safe).
    pub(crate) async fn upload_from(
        &self,
        file: &FileReference,
        source: &Path,
        content_type: &str,
    ) -> Result<FileMetadata, ClientError> {
        let url = self.file_url(file);
        self.retry
            .retry(("file_upload", &self.trouble), Persist::Transient, || {
                transfer::upload(self, &url, source, content_type)
            })
            .await
    }

    /// Reads a small stored file whole (a step record); `None` when the server says
    /// there is no such file. One request: the caller owns the retries.
    pub(crate) async fn read_small_file(&self, file: &FileReference) -> Result<Option<Bytes>, ClientError> {
        let url = self.file_url(file);
        let request = Request {
            method: Method::GET,
            url: &url,
            body: &Payload::Empty,
            timeout: Some(self.timeout),
            streaming: false,
        };
        let response = match self.send_authenticated(&request).await {
            Ok(response) => response,
            Err(error) if error.verdict() == Some(404) => return Ok(None),
            Err(error) => return Err(error),
        };
        let expected = response.content_length();
        let bytes = response.bytes().await.map_err(|e| ClientError::transport(url.as_str(), &e))?;
        match expected {
            Some(expected) if expected != bytes.len() as u64 => Err(ClientError::Transport {
                url: redact_url(url.as_str()).into_owned(),
                detail: format!("the body was cut short: received {} of {expected} bytes", bytes.len()),
            }),
            _ => Ok(Some(bytes)),
        }
    }

    /// Stores `json` as `file` (replacing it). One request: the caller owns the retries.
    pub(crate) async fn write_small_file(&self, file: &FileReference, json: Bytes) -> Result<(), ClientError> {
        let url = self.file_url(file);
        let _: FileMetadata = self.post_json(&url, json).await?;
        Ok(())
    }

    /// How many clients watch `activity_id`'s stream; one request, no retries (the
    /// stream owns its retries).
    pub(crate) async fn stream_subscribers(&self, activity_id: Uuid, timeout: Duration) -> Result<u32, ClientError> {
        let url = self.activity_url(activity_id, &["ws", "subscribers"]);
        let request = Request::stream(Method::GET, &url, &Payload::Empty, timeout);
        let response = self.send_authenticated(&request).await?;
        decode::<SubscriberCount>(url.as_str(), response).await.map(|answer| answer.count)
    }

    /// Sends one increment of streamed text, once; answers how many sockets got it.
    pub(crate) async fn stream_token(
        &self,
        activity_id: Uuid,
        token: StreamToken<'_>,
        timeout: Duration,
    ) -> Result<u32, ClientError> {
        let url = self.activity_url(activity_id, &["ws", "token"]);
        let body = Payload::Json(encode(&token));
        let request = Request::stream(Method::POST, &url, &body, timeout);
        let response = self.send_authenticated(&request).await?;
        decode::<TokenDelivered>(url.as_str(), response).await.map(|answer| answer.subscribers)
    }

    /// Ends `activity_id`'s stream with `ws/complete` carrying `result`, once. The
    /// server answers with an empty body.
    pub(crate) async fn stream_complete(
        &self,
        activity_id: Uuid,
        result: &serde_json::Map<String, serde_json::Value>,
        timeout: Duration,
    ) -> Result<(), ClientError> {
        self.stream_end(activity_id, "complete", encode(&StreamComplete { result }), timeout).await
    }

    /// Ends `activity_id`'s stream with `ws/error` carrying `error`, once.
    pub(crate) async fn stream_error(
        &self,
        activity_id: Uuid,
        error: &str,
        timeout: Duration,
    ) -> Result<(), ClientError> {
        self.stream_end(activity_id, "error", encode(&StreamError { error }), timeout).await
    }

    async fn stream_end(
        &self,
        activity_id: Uuid,
        endpoint: &str,
        body: Bytes,
        timeout: Duration,
    ) -> Result<(), ClientError> {
        let url = self.activity_url(activity_id, &["ws", endpoint]);
        let body = Payload::Json(body);
        let request = Request::stream(Method::POST, &url, &body, timeout);
        self.send_authenticated(&request).await.map(drop)
    }

    fn url(&self, segments: &[&str]) -> Url {
        api_url(&self.base_url, segments.iter().copied())
    }

    /// `api/v1/activities/<activity_id>/<segments>` under the base URL.
    fn activity_url(&self, activity_id: Uuid, segments: &[&str]) -> Url {
        let mut id = Uuid::encode_buffer();
        let id = &*activity_id.hyphenated().encode_lower(&mut id);
        api_url(&self.base_url, ["activities", id].into_iter().chain(segments.iter().copied()))
    }

    fn file_url(&self, file: &FileReference) -> Url {
        let mut url = self.url(&["workflows"]);
        // The key and the name are encoded here, more strictly than `Url` would.
        let path = format!(
            "{}/{}/activities/{}/files/{}",
            url.path(),
            file.workflow_id,
            utf8_percent_encode(&file.activity_key, PATH_SEGMENT),
            utf8_percent_encode(&file.filename, PATH_SEGMENT)
        );
        url.set_path(&path);
        url
    }

    async fn post_json<R: DeserializeOwned>(&self, url: &Url, body: Bytes) -> Result<R, ClientError> {
        let request = Request {
            method: Method::POST,
            url,
            body: &Payload::Json(body),
            timeout: Some(self.timeout),
            streaming: false,
        };
        let response = self.send_authenticated(&request).await?;
        decode(url.as_str(), response).await
    }

    /// Sends one request with a bearer token (when configured); on the server's 401
    /// tries once more with a newer token (see [`TokenSource::after_refusal`]).
    /// Non-success statuses become errors.
    async fn send_authenticated(&self, request: &Request<'_>) -> Result<reqwest::Response, ClientError> {
        let url = request.url.as_str();
        let Some(auth) = &self.auth else {
            let response = self.send(request, None).await?;
            return match check_status(url, response).await {
                Err(error) if error.verdict() == Some(401) => Err(ClientError::CredentialsRequired),
                other => other,
            };
        };
        let token = auth.token().await?;
        let refused = match self.send_with(request, &token).await {
            Err(error) if error.verdict() == Some(401) => error,
            answered => return answered,
        };
        let token = auth.after_refusal(&token, request.streaming).await.map_err(|error| match error {
            ClientError::Unauthorized(reason) => {
                ClientError::Unauthorized(format!("{} ({reason})", refused.server_message()))
            }
            other => other,
        })?;
        match self.send_with(request, &token).await {
            Err(error) if error.verdict() == Some(401) => Err(ClientError::Unauthorized(error.server_message())),
            answered => answered,
        }
    }

    /// Sends `request` with `token`, noting whether the server took the token.
    async fn send_with(&self, request: &Request<'_>, token: &auth::Token) -> Result<reqwest::Response, ClientError> {
        let answered = check_status(request.url.as_str(), self.send(request, Some(token.as_str())).await?).await;
        let server_took_it = match &answered {
            Ok(_) => true,
            Err(error) => error.verdict().is_some_and(|status| status != 401),
        };
        if server_took_it {
            token.accepted();
        }
        answered
    }

    async fn send(&self, request: &Request<'_>, token: Option<&str>) -> Result<reqwest::Response, ClientError> {
        let mut builder = self
            .http
            .request(request.method.clone(), request.url.clone())
            .header("X-Request-ID", Uuid::now_v7().to_string());
        if let Some(timeout) = request.timeout {
            builder = builder.timeout(timeout);
        }
        if let Some(token) = token {
            builder = builder.bearer_auth(token);
        }
        builder = request.body.attach(builder)?;
        builder.send().await.map_err(|e| ClientError::transport(request.url.as_str(), &e))
    }
}

/// `api/v1/<segments>` under `base`.
fn api_url<'a>(base: &Url, segments: impl IntoIterator<Item = &'a str>) -> Url {
    let mut url = base.clone();
    url.path_segments_mut()
        .expect("the base URL is http(s) with a host (checked by WorkerConfig::validate)")
        .pop_if_empty()
        .extend(["api", "v1"])
        .extend(segments);
    url
}

/// One request to send, possibly twice (after a 401).
struct Request<'a> {
    method: Method,
    url: &'a Url,
    body: &'a Payload<'a>,
    /// Total limit; `None` for file transfers, which are watched for stalls instead.
    timeout: Option<Duration>,
    /// To a `ws/*` endpoint: its 401 for a token accepted elsewhere refreshes nothing.
    streaming: bool,
}

impl<'a> Request<'a> {
    /// A request to a streaming (`ws/*`) endpoint, limited to `timeout`.
    fn stream(method: Method, url: &'a Url, body: &'a Payload<'a>, timeout: Duration) -> Self {
        Self { method, url, body, timeout: Some(timeout), streaming: true }
    }
}

/// Path segments keep unreserved characters and percent-encode everything else.
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// A request body, rebuilt for each attempt (a file stream cannot be replayed).
enum Payload<'a> {
    Empty,
    Json(Bytes),
    File { path: &'a Path, content_type: &'a str, progress: Arc<transfer::Progress> },
}

impl Payload<'_> {
    fn attach(&self, request: reqwest::RequestBuilder) -> Result<reqwest::RequestBuilder, ClientError> {
        Ok(match self {
            Self::Empty => request,
            Self::Json(bytes) => request.header(reqwest::header::CONTENT_TYPE, "application/json").body(bytes.clone()),
            Self::File { path, content_type, progress } => {
                let file = std::fs::File::open(path).map_err(|e| ClientError::local(path, &e))?;
                let length = file.metadata().map_err(|e| ClientError::local(path, &e))?.len();
                let stream = tokio_util::io::ReaderStream::with_capacity(tokio::fs::File::from_std(file), 64 * 1024);
                let stream = transfer::Progress::count(progress, stream);
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
    serde_json::from_slice(&bytes)
        .map_err(|e| ClientError::Decode { url: redact_url(url).into_owned(), detail: e.to_string() })
}

async fn check_status(url: &str, response: reqwest::Response) -> Result<reqwest::Response, ClientError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    if let Some(redirect) = redirect_error(url, &response) {
        return Err(redirect);
    }
    let body = response.bytes().await.unwrap_or_default();
    Err(ClientError::from_body(url, status.as_u16(), &body))
}

/// A 3xx answer as an error naming where it pointed.
fn redirect_error(url: &str, response: &reqwest::Response) -> Option<ClientError> {
    let status = response.status();
    status.is_redirection().then(|| {
        let location = response.headers().get(reqwest::header::LOCATION).map(|l| String::from_utf8_lossy(l.as_bytes()));
        ClientError::Redirect {
            url: redact_url(url).into_owned(),
            status: status.as_u16(),
            location: location.map_or_else(|| "(no Location header)".to_owned(), |l| escape_controls(&l).into_owned()),
        }
    })
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClient")
            .field("base_url", &redact_url(self.base_url.as_str()))
            .field("authenticated", &self.auth.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(api_url: &str) -> ApiClient {
        let config = WorkerConfig::new(api_url);
        let base = Url::parse(api_url).unwrap();
        ApiClient::new(&config, base, RetryPolicy::default(), reqwest::Client::new())
    }

    #[test]
    fn endpoint_urls_are_built_under_the_base_url_with_or_without_a_path_or_slash() {
        let id = Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
        let file =
            FileReference { workflow_id: id, activity_key: "step 1/ü".to_owned(), filename: "a+b (1).txt".to_owned() };
        for (base, prefix) in [
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
            ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
            ("https://flow.example/kruxia", "https://flow.example/kruxia"),
            ("https://flow.example/kruxia/", "https://flow.example/kruxia"),
        ] {
            let client = client(base);
            assert_eq!(client.url(&["workers", "poll"]).as_str(), format!("{prefix}/api/v1/workers/poll"));
            assert_eq!(
                client.activity_url(id, &["ws", "token"]).as_str(),
                format!("{prefix}/api/v1/activities/01234567-89ab-cdef-0123-456789abcdef/ws/token")
            );
            assert_eq!(
                client.file_url(&file).as_str(),
                format!(
                    "{prefix}/api/v1/workflows/01234567-89ab-cdef-0123-456789abcdef/activities/step%201%2F%C3%BC/files/a%2Bb%20%281%29.txt"
                )
            );
        }
    }
}
