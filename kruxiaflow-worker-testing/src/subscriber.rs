//! A client watching an activity's token stream over the server's WebSocket, as a chat
//! front end would: for tests, demos and benchmarks, against [`FakeServer`] or a real
//! Kruxia Flow server.
//!
//! [`FakeServer`]: crate::FakeServer

use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use uuid::Uuid;

/// One message from the server to a subscriber (PROTOCOL.md §6.5).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
#[non_exhaustive]
pub enum StreamFrame {
    /// An increment of the activity's output.
    Token {
        /// The text.
        text: String,
        /// Its sequence number, as the worker assigned it.
        index: u32,
    },
    /// The activity's stream ended with this output. The fake server closes the socket
    /// after it; the real server (v0.8.3) leaves it open, so a client stops reading
    /// here.
    Complete {
        /// The output object the completion carries.
        result: Value,
    },
    /// The activity's stream ended with a failure (the socket as after
    /// [`Complete`](Self::Complete)).
    Error {
        /// The failure message.
        error: String,
    },
    /// Keep-alive.
    Ping,
}

/// Everything a subscriber received until the stream's end.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Received {
    /// `(index, text)` of every token frame, in arrival order.
    pub tokens: Vec<(u32, String)>,
    /// The `complete` or `error` frame, if one came.
    pub end: Option<StreamFrame>,
}

impl Received {
    /// The token texts joined: what a chat window would show.
    pub fn text(&self) -> String {
        self.tokens.iter().map(|(_, text)| text.as_str()).collect()
    }
}

/// Why subscribing or receiving failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SubscribeError {
    /// The WebSocket could not be opened or broke.
    #[error("WebSocket {url}: {source}")]
    Socket {
        /// The URL subscribed to (without its token).
        url: String,
        /// The cause.
        #[source]
        source: Box<tokio_tungstenite::tungstenite::Error>,
    },
    /// The server sent a text frame that is not a stream message.
    #[error("unexpected frame from {url}: {text}")]
    Frame {
        /// The URL subscribed to (without its token).
        url: String,
        /// The frame.
        text: String,
    },
}

/// A subscriber to one activity's stream.
///
/// ```
/// use kruxiaflow_worker_testing::{FakeServer, StreamSubscriber};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let server = FakeServer::start().await;
/// let id = uuid::Uuid::now_v7();
/// let subscriber = StreamSubscriber::connect(&server.url(), id, None).await.unwrap();
/// // ... a worker streams and completes the activity; here, by hand:
/// let http = reqwest::Client::new();
/// let url = format!("{}/api/v1/activities/{id}/ws", server.url());
/// http.post(format!("{url}/token")).json(&serde_json::json!({"text": "Hi", "index": 0})).send().await.unwrap();
/// http.post(format!("{url}/complete")).json(&serde_json::json!({"result": {"text": "Hi"}})).send().await.unwrap();
/// let received = subscriber.until_end().await.unwrap();
/// assert_eq!(received.text(), "Hi");
/// # }
/// ```
pub struct StreamSubscriber {
    url: String,
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl StreamSubscriber {
    /// Opens `GET {base_url}/api/v1/activities/{activity_id}/ws`, with `token` in the
    /// query string when given. Returns once the server accepted the socket, so the
    /// subscriber is already counted.
    pub async fn connect(base_url: &str, activity_id: Uuid, token: Option<&str>) -> Result<Self, SubscribeError> {
        Self::open(base_url, &format!("api/v1/activities/{activity_id}/ws"), token).await
    }

    /// Opens `GET {base_url}/api/v1/workflows/{workflow_id}/activities/{activity_key}/ws`
    /// (with `token` in the query string when given): the way a client watches an
    /// activity it knows only by its key in the workflow definition. The server answers
    /// 404 until the activity is scheduled, so a 404 is tried again every 100 ms for
    /// up to `wait`.
    pub async fn connect_by_key(
        base_url: &str,
        (workflow_id, activity_key): (Uuid, &str),
        token: Option<&str>,
        wait: std::time::Duration,
    ) -> Result<Self, SubscribeError> {
        let key = percent_encoding::utf8_percent_encode(activity_key, percent_encoding::NON_ALPHANUMERIC);
        let path = format!("api/v1/workflows/{workflow_id}/activities/{key}/ws");
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match Self::open(base_url, &path, token).await {
                Err(SubscribeError::Socket { source, .. })
                    if matches!(&*source, tokio_tungstenite::tungstenite::Error::Http(r) if r.status() == 404)
                        && tokio::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                other => return other,
            }
        }
    }

    /// Opens the WebSocket at `path` under `base_url`.
    async fn open(base_url: &str, path: &str, token: Option<&str>) -> Result<Self, SubscribeError> {
        let url = format!("{}/{path}", base_url.trim_end_matches('/')).replacen("http", "ws", 1);
        let with_token = match token {
            Some(token) => format!("{url}?token={token}"),
            None => url.clone(),
        };
        let (socket, _) = tokio_tungstenite::connect_async(with_token.as_str())
            .await
            .map_err(|source| SubscribeError::Socket { url: url.clone(), source: Box::new(source) })?;
        Ok(Self { url, socket })
    }

    /// The next stream message; `None` once the server closed the socket.
    pub async fn next_frame(&mut self) -> Result<Option<StreamFrame>, SubscribeError> {
        while let Some(message) = self.socket.next().await {
            let message =
                message.map_err(|source| SubscribeError::Socket { url: self.url.clone(), source: Box::new(source) })?;
            match message {
                Message::Text(text) => {
                    return serde_json::from_str(&text)
                        .map(Some)
                        .map_err(|_| SubscribeError::Frame { url: self.url.clone(), text: text.to_string() });
                }
                Message::Close(_) => return Ok(None),
                _ => {}
            }
        }
        Ok(None)
    }

    /// Receives until the stream's end: the `complete` or `error` frame, or the socket
    /// closing without one. It returns at the end frame whether or not the server then
    /// closes the socket (the real server does not), and closes it itself.
    pub async fn until_end(mut self) -> Result<Received, SubscribeError> {
        let mut received = Received::default();
        while let Some(frame) = self.next_frame().await? {
            match frame {
                StreamFrame::Token { text, index } => received.tokens.push((index, text)),
                StreamFrame::Ping => {}
                end => {
                    received.end = Some(end);
                    self.close().await;
                    return Ok(received);
                }
            }
        }
        Ok(received)
    }

    /// Leaves: closes the socket from the client's side, waiting briefly for the
    /// server's side of the close.
    pub async fn close(mut self) {
        let _ = self.socket.close(None).await;
        let drain = async { while let Some(Ok(_)) = self.socket.next().await {} };
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), drain).await;
    }
}

impl std::fmt::Debug for StreamSubscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamSubscriber").field("url", &self.url).finish_non_exhaustive()
    }
}
