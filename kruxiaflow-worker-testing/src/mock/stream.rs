//! The token stream of a `MockContext`: records what an activity streams, in memory.

use std::sync::Mutex;

use kruxiaflow_worker::__testing::StreamSink;
use kruxiaflow_worker::context::BoxFuture;
use kruxiaflow_worker::stream::StreamEnd;

/// What an activity streamed through a [`MockContext`](crate::MockContext).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Streamed {
    /// `(index, text)` of every increment, in order.
    pub increments: Vec<(u32, String)>,
    /// The end message (`ws/complete` or `ws/error`) a worker would send before its
    /// report; `None` when the stream was never active or nothing is reported.
    pub end: Option<StreamEnd>,
}

impl Streamed {
    /// The increments' text, joined.
    pub fn text(&self) -> String {
        self.increments.iter().map(|(_, text)| text.as_str()).collect()
    }
}

pub(crate) struct MockStream {
    subscribers: u32,
    recorded: Mutex<Streamed>,
}

impl MockStream {
    pub(crate) fn new(subscribers: u32) -> Self {
        Self { subscribers, recorded: Mutex::default() }
    }

    pub(crate) fn is_active(&self) -> bool {
        self.subscribers > 0
    }

    pub(crate) fn end(&self, end: Option<StreamEnd>) {
        self.lock().end = end;
    }

    pub(crate) fn recorded(&self) -> Streamed {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Streamed> {
        self.recorded.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl StreamSink for MockStream {
    fn send(&self, text: String) {
        if self.is_active() {
            let mut recorded = self.lock();
            let index = recorded.increments.len() as u32;
            recorded.increments.push((index, text));
        }
    }

    fn flush(&self) -> BoxFuture<'_, ()> {
        Box::pin(std::future::ready(()))
    }
}
