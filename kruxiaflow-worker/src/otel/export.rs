//! Getting finished spans to the collector without ever holding up the work: a
//! bounded queue that drops (and counts) what does not fit, and one task that sends
//! batches over the worker's own HTTP stack.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use opentelemetry::Context;
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter, SpanProcessor};
use tokio::sync::{mpsc, oneshot};

use crate::telemetry;

/// Spans waiting to be sent; beyond this, new spans are dropped.
pub(crate) const QUEUE: usize = 4096;
/// Spans per request.
const BATCH: usize = 512;
/// A batch goes out at least this often.
const EVERY: Duration = Duration::from_secs(1);
/// One export request may take this long.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// The OTLP exporter's HTTP client: the worker's reqwest (rustls), one request with a
/// total timeout.
#[derive(Debug, Clone)]
pub(crate) struct ReqwestClient(pub(crate) reqwest::Client);

impl HttpClient for ReqwestClient {
    fn send_bytes<'a, 'b>(
        &'a self,
        request: Request<Bytes>,
    ) -> Pin<Box<dyn Future<Output = Result<Response<Bytes>, HttpError>> + Send + 'b>>
    where
        'a: 'b,
        Self: 'b,
    {
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let response = self
                .0
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(body)
                .timeout(EXPORT_TIMEOUT)
                .send()
                .await?;
            let mut answer = Response::builder().status(response.status());
            if let Some(headers) = answer.headers_mut() {
                *headers = response.headers().clone();
            }
            Ok(answer.body(response.bytes().await?)?)
        })
    }
}

enum Message {
    Span(Box<SpanData>),
    Flush(oneshot::Sender<()>),
}

/// A span processor that never blocks: `on_end` queues the span or drops it.
#[derive(Debug)]
pub(crate) struct Queue {
    spans: mpsc::Sender<Message>,
    dropped: Arc<AtomicU64>,
}

/// The other end of a [`Queue`]: flushes it.
#[derive(Debug, Clone)]
pub(crate) struct Flusher {
    spans: mpsc::Sender<Message>,
}

impl Queue {
    /// A queue of [`QUEUE`] spans that `exporter` sends from a task on `runtime`.
    pub(crate) fn start<E: SpanExporter + 'static>(exporter: E, runtime: &tokio::runtime::Handle) -> (Self, Flusher) {
        Self::holding(QUEUE, exporter, runtime)
    }

    fn holding<E: SpanExporter + 'static>(
        capacity: usize,
        exporter: E,
        runtime: &tokio::runtime::Handle,
    ) -> (Self, Flusher) {
        let (spans, received) = mpsc::channel(capacity);
        let dropped = Arc::new(AtomicU64::new(0));
        runtime.spawn(send_batches(exporter, received, Arc::clone(&dropped)));
        (Self { spans: spans.clone(), dropped }, Flusher { spans })
    }
}

impl SpanProcessor for Queue {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        if self.spans.try_send(Message::Span(Box::new(span))).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            telemetry::spans_dropped(1);
        }
    }

    /// Flushing waits, and this is called from wherever: [`Flusher::flush`] is the
    /// bounded, async way.
    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

impl Flusher {
    /// Sends what is queued, waiting at most `limit`.
    pub(crate) async fn flush(&self, limit: Duration) -> bool {
        let (done, flushed) = oneshot::channel();
        let sent = async { self.spans.send(Message::Flush(done)).await.is_ok() && flushed.await.is_ok() };
        tokio::time::timeout(limit, sent).await.unwrap_or(false)
    }
}

/// Sends batches of at most [`BATCH`] spans, at least every [`EVERY`], and at once
/// when asked to flush. A batch the collector does not take is dropped and counted.
async fn send_batches<E: SpanExporter>(exporter: E, mut received: mpsc::Receiver<Message>, dropped: Arc<AtomicU64>) {
    let mut batch: Vec<SpanData> = Vec::with_capacity(BATCH);
    let mut tick = tokio::time::interval(EVERY);
    loop {
        let flush = tokio::select! {
            message = received.recv() => match message {
                Some(Message::Span(span)) => {
                    batch.push(*span);
                    if batch.len() < BATCH {
                        continue;
                    }
                    None
                }
                Some(Message::Flush(done)) => Some(done),
                None => break,
            },
            _ = tick.tick() => None,
        };
        if !batch.is_empty() {
            let spans = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
            let count = spans.len() as u64;
            let sent = tokio::time::timeout(EXPORT_TIMEOUT, exporter.export(spans)).await;
            if !matches!(sent, Ok(Ok(()))) {
                dropped.fetch_add(count, Ordering::Relaxed);
                telemetry::spans_dropped(count);
            }
        }
        if let Some(done) = flush {
            let _ = done.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;
    use std::time::SystemTime;

    use opentelemetry::InstrumentationScope;
    use opentelemetry::trace::{SpanContext, SpanId, SpanKind, Status};
    use tokio::sync::Notify;

    use super::*;

    /// An exporter that never finishes its first export (a collector that hangs).
    #[derive(Debug, Clone, Default)]
    struct Hanging {
        called: Arc<Notify>,
    }

    impl SpanExporter for Hanging {
        async fn export(&self, _batch: Vec<SpanData>) -> OTelSdkResult {
            self.called.notify_one();
            std::future::pending().await
        }
    }

    fn span() -> SpanData {
        SpanData {
            span_context: SpanContext::empty_context(),
            parent_span_id: SpanId::INVALID,
            parent_span_is_remote: false,
            span_kind: SpanKind::Internal,
            name: Cow::Borrowed("test"),
            start_time: SystemTime::now(),
            end_time: SystemTime::now(),
            attributes: Vec::new(),
            dropped_attributes_count: 0,
            events: Default::default(),
            links: Default::default(),
            status: Status::Unset,
            instrumentation_scope: InstrumentationScope::builder("test").build(),
        }
    }

    #[tokio::test]
    async fn a_hanging_collector_costs_spans_never_time_and_a_flush_is_bounded() {
        let exporter = Hanging::default();
        let called = Arc::clone(&exporter.called);
        let (queue, flusher) = Queue::holding(2, exporter, &tokio::runtime::Handle::current());
        queue.on_end(span());
        assert!(!flusher.flush(Duration::from_millis(100)).await, "the export hangs: the flush gives up");
        called.notified().await;
        // The exporting task is stuck: two spans fit in the queue, the rest are dropped
        // at once.
        for _ in 0..5 {
            queue.on_end(span());
        }
        assert_eq!(queue.dropped.load(Ordering::Relaxed), 3);
    }
}
