//! The background sender of one attempt's stream: it finds out whether anyone is
//! subscribed, sends the queued text in order with a running index, and ends the
//! stream when the attempt settles. It is the only code that talks to the server
//! about the stream, so the activity's `send` stays a queue push.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_util::task::AbortOnDropHandle;
use tracing::Instrument;

use super::outbox::{Mode, Outbox};
use super::{StreamEnd, TokenStream};
use crate::future::BoxFuture;

/// While nobody is subscribed, the subscriber count is asked this often, so a client
/// that connects mid-run gets what is sent from then on.
pub(crate) const RECHECK_EVERY: Duration = Duration::from_secs(1);
/// Pauses between the tries of one request; a failure after the last gives up.
const RETRY_PAUSES: [Duration; 2] = [Duration::from_millis(100), Duration::from_millis(300)];
/// How long the end of an attempt may wait for its stream (the last text and the end
/// message) before the attempt is reported without it.
pub(crate) const FINISH_DEADLINE: Duration = Duration::from_secs(10);
/// Once the attempt ends, the request in flight and then the last text each get this
/// long: the end message must not wait for a slow endpoint's answer about text that
/// the end carries in full anyway.
pub(crate) const LAST_TEXT_WITHIN: Duration = Duration::from_secs(1);

/// Why a stream request did not succeed.
#[derive(Debug)]
pub(crate) struct Failure {
    /// Trying again may help (transport trouble, 5xx, 429).
    pub(crate) transient: bool,
    pub(crate) message: String,
}

/// How the sender reaches the server; one request per call, no retries.
pub(crate) trait StreamTransport: Send + Sync + 'static {
    fn subscribers(&self) -> BoxFuture<'_, Result<u32, Failure>>;
    /// Sends one increment; answers how many subscribers got it.
    fn token<'a>(&'a self, text: &'a str, index: u32) -> BoxFuture<'a, Result<u32, Failure>>;
    fn end<'a>(&'a self, end: &'a StreamEnd) -> BoxFuture<'a, Result<(), Failure>>;
}

/// The attempt's side of its stream: starts the sender when the handler starts and
/// ends the stream when the attempt settles. Dropping it stops the sender.
pub(crate) struct StreamDriver {
    outbox: Arc<Outbox>,
    transport: Option<Box<dyn StreamTransport>>,
    linger: Duration,
    running: Option<(oneshot::Sender<StreamEnd>, AbortOnDropHandle<()>)>,
}

impl StreamDriver {
    /// A driver and the stream the activity sends to; nothing runs until
    /// [`start`](Self::start). After a request, the sender waits until `linger` has
    /// passed since it went out before the next one.
    pub(crate) fn new(transport: impl StreamTransport, linger: Duration) -> (Self, TokenStream) {
        let outbox = Arc::new(Outbox::new());
        let stream = TokenStream::to(Arc::clone(&outbox) as _);
        (Self { outbox, transport: Some(Box::new(transport)), linger, running: None }, stream)
    }

    /// Starts the sender on `runtime`, in the current span.
    pub(crate) fn start(&mut self, runtime: &tokio::runtime::Handle) {
        let Some(transport) = self.transport.take() else { return };
        let (end_tx, end_rx) = oneshot::channel();
        let sender = Sender {
            outbox: Arc::clone(&self.outbox),
            transport,
            index: 0,
            sent_bytes: 0,
            ever_active: false,
            refused: false,
            failure: None,
            linger: self.linger,
            last_request: None,
        };
        let task = runtime.spawn(sender.run(end_rx).in_current_span());
        self.running = Some((end_tx, AbortOnDropHandle::new(task)));
    }

    /// Ends the stream with `end` (nothing for `None`) once the queued text is out,
    /// waiting [`FINISH_DEADLINE`] at most.
    pub(crate) async fn finish(mut self, end: Option<StreamEnd>) {
        let (Some(end), Some((end_tx, mut task))) = (end, self.running.take()) else { return };
        let _ = end_tx.send(end);
        if tokio::time::timeout(FINISH_DEADLINE, &mut task).await.is_err() {
            tracing::warn!(
                deadline = ?FINISH_DEADLINE,
                "the token stream did not end in time; the activity is reported without its end message"
            );
        }
    }
}

impl Drop for StreamDriver {
    fn drop(&mut self) {
        // Any flush still waiting must not wait for a sender that will never run.
        self.outbox.close();
    }
}

struct Sender {
    outbox: Arc<Outbox>,
    transport: Box<dyn StreamTransport>,
    /// Index of the next increment: the increments sent so far.
    index: u32,
    /// Bytes of text the server took.
    sent_bytes: u64,
    /// Someone was subscribed at some point.
    ever_active: bool,
    /// The server refused the stream for good (a subscriber check failed definitively,
    /// such as a 401 for a token it accepts elsewhere): nothing more is asked.
    refused: bool,
    /// Why the last request failed for good.
    failure: Option<String>,
    linger: Duration,
    /// When the last token request went out.
    last_request: Option<Instant>,
}

impl Sender {
    async fn run(mut self, mut ends: oneshot::Receiver<StreamEnd>) {
        let end = self.until_ended(&mut ends).await;
        self.finish(end).await;
        self.outbox.close();
        // In the attempt's span: what its stream cost, for traces.
        tracing::debug!(
            target: "kruxiaflow_worker::stream_ended",
            increments = self.index,
            bytes = self.sent_bytes,
            watched = self.ever_active,
            "token stream ended"
        );
    }

    async fn until_ended(&mut self, ends: &mut oneshot::Receiver<StreamEnd>) -> Option<StreamEnd> {
        loop {
            match self.outbox.mode() {
                // The first check is always answered, even when the attempt ends
                // meanwhile: a subscriber of a quick activity still gets its end.
                Mode::Checking => {
                    let count = self.transport.subscribers().await;
                    self.subscribers_answered(count);
                }
                // Idle follows an answer of zero subscribers: wait, then ask again.
                Mode::Idle => {
                    tokio::select! {
                        biased;
                        end = &mut *ends => return end.ok(),
                        () = tokio::time::sleep(RECHECK_EVERY) => {}
                    }
                    let count = tokio::select! {
                        biased;
                        end = &mut *ends => return end.ok(),
                        count = self.transport.subscribers() => count,
                    };
                    self.subscribers_answered(count);
                }
                Mode::Active => {
                    if let Some(end) = self.send_as_text_arrives(ends).await {
                        return end;
                    }
                }
                Mode::GivenUp => {
                    let reason = match self.failure.take() {
                        Some(failure) => failure,
                        None if self.outbox.overflowed() => {
                            format!("more than {} bytes of text waited to be sent", super::MAX_QUEUED_BYTES)
                        }
                        None => "stopped".to_owned(),
                    };
                    tracing::warn!(
                        %reason,
                        "the token stream gave up; the activity goes on, and subscribers get its final output"
                    );
                    return ends.await.ok();
                }
            }
        }
    }

    /// Waits for text, lets more gather for the linger, and sends it; `Some` with the
    /// end when the attempt ended meanwhile.
    async fn send_as_text_arrives(&mut self, ends: &mut oneshot::Receiver<StreamEnd>) -> Option<Option<StreamEnd>> {
        tokio::select! {
            biased;
            end = &mut *ends => return Some(end.ok()),
            () = self.outbox.arrived.notified() => {}
        }
        // Lets text gather, so a fast stream costs a bounded number of requests; the
        // first text after a pause goes out at once.
        if let Some(at) = self.last_request.map(|last| last + self.linger)
            && at > Instant::now()
        {
            tokio::select! {
                biased;
                end = &mut *ends => return Some(end.ok()),
                () = tokio::time::sleep_until(at) => {}
            }
        }
        let sending = self.send_pending();
        tokio::pin!(sending);
        tokio::select! {
            () = &mut sending => None,
            end = &mut *ends => {
                // The request in flight gets a moment; the end must not wait for it.
                let _ = tokio::time::timeout(LAST_TEXT_WITHIN, sending).await;
                Some(end.ok())
            }
        }
    }

    /// Activates the stream when someone is subscribed, idles it otherwise; gives up
    /// when the server refuses the stream for good.
    fn subscribers_answered(&mut self, count: Result<u32, Failure>) {
        match count {
            Ok(count) if count > 0 => {
                self.ever_active = true;
                self.outbox.activate();
            }
            Ok(_) => self.outbox.idle(),
            Err(failure) if failure.transient => {
                tracing::debug!(error = %failure.message, "subscriber count unavailable; asking again soon");
                self.outbox.idle();
            }
            Err(failure) => {
                self.refused = true;
                self.failure = Some(failure.message);
                self.outbox.give_up();
            }
        }
    }

    /// Sends everything queued as one increment.
    async fn send_pending(&mut self) {
        let text = self.outbox.take();
        if text.is_empty() {
            return;
        }
        let (transport, index) = (&self.transport, self.index);
        self.last_request = Some(Instant::now());
        let sent = with_retries(|| transport.token(&text, index)).await;
        self.outbox.count_done(text.len());
        match sent {
            Ok(subscribers) => {
                self.index += 1;
                self.sent_bytes += text.len() as u64;
                if subscribers == 0 {
                    self.outbox.idle();
                }
            }
            Err(failure) => {
                self.failure = Some(failure.message);
                self.outbox.give_up();
            }
        }
    }

    /// The last text, then the end message, for a stream someone watches or watched.
    async fn finish(&mut self, end: Option<StreamEnd>) {
        let Some(end) = end else { return };
        if self.outbox.mode() == Mode::Active {
            let _ = tokio::time::timeout(LAST_TEXT_WITHIN, self.send_pending()).await;
        }
        // Nobody watched when the sender last looked, or it never looked (the stream
        // gave up at once); a client that came since waits for the end all the same.
        let watched =
            self.ever_active || (!self.refused && matches!(self.transport.subscribers().await, Ok(count) if count > 0));
        if !watched {
            return;
        }
        let transport = &self.transport;
        if let Err(failure) = with_retries(|| transport.end(&end)).await {
            tracing::warn!(error = %failure.message, "could not end the token stream; subscribers are not told");
        }
    }
}

/// Runs `request`, trying transient failures again after each of [`RETRY_PAUSES`].
async fn with_retries<'a, T>(mut request: impl FnMut() -> BoxFuture<'a, Result<T, Failure>>) -> Result<T, Failure> {
    let mut pauses = RETRY_PAUSES.iter();
    loop {
        match request().await {
            Ok(value) => return Ok(value),
            Err(failure) if failure.transient => match pauses.next() {
                Some(&pause) => {
                    crate::telemetry::retried("stream");
                    tokio::time::sleep(pause).await;
                }
                None => return Err(failure),
            },
            Err(failure) => return Err(failure),
        }
    }
}

#[cfg(test)]
mod tests;
