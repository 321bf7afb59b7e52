//! Token streaming: an activity pushes its output as it is produced (an LLM's tokens),
//! and clients watching the activity over the server's WebSocket see it live.
//!
//! An activity opts in through its definition's `settings.streaming` (`true` or
//! `{"enabled": true}`); it streams only while someone is subscribed. Streaming never
//! settles an activity: what the workflow keeps is the output of `/complete`.

mod ending;
mod outbox;
mod sender;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Map, Value};

use crate::future::BoxFuture;

pub(crate) use ending::StreamEnding;
pub(crate) use outbox::MAX_QUEUED_BYTES;
pub(crate) use sender::{Failure, StreamDriver, StreamTransport};

/// Where an activity sends its output as it produces it. Get it with
/// [`ActivityContext::stream`](crate::ActivityContext::stream); clones share one stream.
///
/// [`send`](Self::send) only queues: it never blocks and never fails the activity. A
/// background sender delivers the text in order, joining what was queued while a
/// request was in flight into one increment. When the server cannot keep up (more than
/// 1 MiB waiting) or keeps failing, the stream gives up with one warning and the
/// activity carries on; its final output still goes to subscribers in the `complete`
/// message the worker sends (within 5 s) before reporting the completion.
///
/// ```
/// use kruxiaflow_worker::prelude::*;
///
/// #[derive(serde::Deserialize)]
/// struct Prompt {
///     prompt: String,
/// }
///
/// #[activity]
/// async fn write_story(p: Prompt, ctx: &ActivityContext) -> Result<ActivityResult, ActivityError> {
///     let stream = ctx.stream();
///     let mut story = String::new();
///     for word in p.prompt.split_whitespace() {
///         let token = format!("{word} ");
///         stream.send(token.as_str());
///         story.push_str(&token);
///     }
///     Ok(ActivityResult::value("text", story))
/// }
/// # let _ = write_story;
/// ```
#[derive(Clone)]
pub struct TokenStream {
    sink: Option<Arc<dyn StreamSink>>,
    /// Text was queued: subscribers may have it, and cannot take it back.
    sent: Option<Arc<AtomicBool>>,
}

impl TokenStream {
    /// A stream that sends nothing: what activities that did not opt in get.
    pub(crate) fn disabled() -> Self {
        Self { sink: None, sent: None }
    }

    pub(crate) fn to(sink: Arc<dyn StreamSink>) -> Self {
        Self { sink: Some(sink), sent: Some(Arc::default()) }
    }

    /// Whether any text was queued (a local retry would send the answer twice).
    pub(crate) fn has_sent(&self) -> bool {
        self.sent.as_ref().is_some_and(|sent| sent.load(Ordering::Relaxed))
    }

    /// Queues `text` for the activity's subscribers. Never blocks, never fails; costs
    /// nothing when the activity did not opt in, and drops the text while nobody is
    /// subscribed.
    pub fn send(&self, text: impl Into<String>) {
        if let Some(sink) = &self.sink {
            let text = text.into();
            if !text.is_empty() {
                if let Some(sent) = &self.sent {
                    sent.store(true, Ordering::Relaxed);
                }
                sink.send(text);
            }
        }
    }

    /// Whether the activity opted in to streaming (`settings.streaming` is `true` or
    /// `{"enabled": true}`). Subscribers may still be absent.
    pub fn is_enabled(&self) -> bool {
        self.sink.is_some()
    }

    /// Waits until everything queued so far was sent (or dropped: nobody subscribed,
    /// or the stream gave up).
    pub async fn flush(&self) {
        if let Some(sink) = &self.sink {
            sink.flush().await;
        }
    }
}

impl std::fmt::Debug for TokenStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenStream").field("enabled", &self.is_enabled()).finish()
    }
}

/// What a [`TokenStream`] sends to. Not a public API: the worker and the testing
/// crate provide the implementations.
#[doc(hidden)]
pub trait StreamSink: Send + Sync + 'static {
    /// Queues non-empty `text`.
    fn send(&self, text: String);
    /// Resolves once everything queued so far was sent or dropped.
    fn flush(&self) -> BoxFuture<'_, ()>;
}

/// The message that ends an active stream, sent before the activity is reported.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum StreamEnd {
    /// `ws/complete` with the output object `/complete` carries.
    Complete(Map<String, Value>),
    /// `ws/error` with the failure message `/fail` carries.
    Error(String),
}

/// Whether `settings` opt the activity in to streaming: `"streaming": true` or
/// `"streaming": {"enabled": true}`.
pub(crate) fn opted_in(settings: &Value) -> bool {
    match settings.get("streaming") {
        Some(Value::Bool(enabled)) => *enabled,
        Some(Value::Object(options)) => options.get("enabled").and_then(Value::as_bool).unwrap_or(false),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn streaming_is_opted_in_by_true_or_enabled_true_only() {
        let cases = [
            (json!({"streaming": true}), true),
            (json!({"streaming": {"enabled": true}}), true),
            (json!({"streaming": {"enabled": true, "buffer": 4}}), true),
            (json!({"streaming": false}), false),
            (json!({"streaming": {"enabled": false}}), false),
            (json!({"streaming": {}}), false),
            (json!({"streaming": "yes"}), false),
            (json!({"streaming": 1}), false),
            (json!({"timeout_seconds": 5}), false),
            (json!(null), false),
        ];
        for (settings, expected) in cases {
            assert_eq!(opted_in(&settings), expected, "{settings}");
        }
    }

    #[test]
    fn a_disabled_stream_accepts_text_and_sends_nothing() {
        let stream = TokenStream::disabled();
        stream.send("ignored");
        assert!(!stream.is_enabled());
    }
}
