//! File transfers: streamed both ways, watched for stalls rather than given a total
//! time limit, so a large file over a slow link succeeds while a dead one fails fast.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use reqwest::{Method, Url};
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

use super::{ApiClient, ClientError, Payload, Request, decode};
use crate::protocol::FileMetadata;

/// Bytes moved so far by one transfer.
#[derive(Default)]
pub(super) struct Progress {
    bytes: AtomicU64,
}

impl Progress {
    fn add(&self, n: usize) {
        self.bytes.fetch_add(n as u64, Ordering::Relaxed);
    }

    fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// `stream`, counting what passes through it into `progress`.
    pub(super) fn count<S, E>(progress: &Arc<Self>, stream: S) -> impl Stream<Item = Result<Bytes, E>> + Send + 'static
    where
        S: Stream<Item = Result<Bytes, E>> + Send + 'static,
    {
        let progress = Arc::clone(progress);
        stream.inspect(move |chunk| {
            if let Ok(chunk) = chunk {
                progress.add(chunk.len());
            }
        })
    }
}

pub(super) async fn download(client: &ApiClient, url: &Url, dest: &Path) -> Result<u64, ClientError> {
    let progress = Progress::default();
    let transfer = async {
        let request = Request { method: Method::GET, url, body: &Payload::Empty, timeout: None, streaming: false };
        let response = client.send_authenticated(&request).await?;
        let expected = response.content_length();
        let mut out = tokio::fs::File::create(dest).await.map_err(|e| ClientError::local(dest, &e))?;
        let mut body = response.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| ClientError::transport(url.as_str(), &e))?;
            out.write_all(&chunk).await.map_err(|e| ClientError::local(dest, &e))?;
            progress.add(chunk.len());
        }
        out.flush().await.map_err(|e| ClientError::local(dest, &e))?;
        let received = progress.bytes();
        match expected {
            Some(expected) if expected != received => Err(ClientError::Transport {
                url: url.to_string(),
                detail: format!("the body was cut short: received {received} of {expected} bytes"),
            }),
            _ => Ok(received),
        }
    };
    watched(url.as_str(), &progress, client.timeout, transfer).await
}

pub(super) async fn upload(
    client: &ApiClient,
    url: &Url,
    source: &Path,
    content_type: &str,
) -> Result<FileMetadata, ClientError> {
    // Shared with the request body, which counts the bytes as the server takes them.
    let progress = Arc::new(Progress::default());
    let counter = Arc::clone(&progress);
    let transfer = async move {
        let payload = Payload::File { path: source, content_type, progress: counter };
        let request = Request { method: Method::POST, url, body: &payload, timeout: None, streaming: false };
        let response = client.send_authenticated(&request).await?;
        decode(url.as_str(), response).await
    };
    watched(url.as_str(), &progress, client.timeout, transfer).await
}

/// Runs `transfer`, failing it with [`ClientError::Stalled`] once `progress` has not
/// moved for `stall`.
async fn watched<T>(
    url: &str,
    progress: &Progress,
    stall: Duration,
    transfer: impl Future<Output = Result<T, ClientError>>,
) -> Result<T, ClientError> {
    let watchdog = async {
        let tick = (stall / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
        let (mut seen, mut since) = (progress.bytes(), Instant::now());
        loop {
            tokio::time::sleep(tick).await;
            let now = progress.bytes();
            if now != seen {
                (seen, since) = (now, Instant::now());
            } else if since.elapsed() >= stall {
                return ClientError::Stalled { url: url.to_owned(), bytes: now, idle: since.elapsed() };
            }
        }
    };
    tokio::select! {
        result = transfer => result,
        stalled = watchdog => Err(stalled),
    }
}
