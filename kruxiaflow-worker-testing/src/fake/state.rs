//! The protocol model: everything the fake server knows as a server — the queue, files,
//! tokens, streams — shared by its route handlers and its test helpers. Test tooling
//! (faults, the request log) lives apart, in `tooling`.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use serde::Serialize;
use serde_json::Value;
use tokio::sync::watch;
use uuid::Uuid;

use super::auth::Tokens;
use super::clock::Clock;
use super::files::FileStore;
use super::queue::Queue;
use super::subscribers::Hub;

/// What a worker streamed for one activity through the `ws/*` endpoints.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StreamRecord {
    /// `(index, text)` of every token increment, in arrival order.
    pub tokens: Vec<(u32, String)>,
    /// `result` of `ws/complete`, if sent.
    pub completed: Option<Value>,
    /// `error` of `ws/error`, if sent.
    pub error: Option<String>,
}

pub(crate) struct ServerState {
    pub(crate) queue: Mutex<Queue>,
    pub(crate) files: FileStore,
    pub(crate) tokens: Tokens,
    pub(crate) clock: Clock,
    pub(crate) streams: Mutex<HashMap<Uuid, StreamRecord>>,
    pub(crate) hub: Hub,
    pub(crate) unknown_models: HashSet<String>,
    changes: watch::Sender<u64>,
}

impl ServerState {
    pub(crate) fn new(queue: Queue, files: FileStore, tokens: Tokens, unknown_models: HashSet<String>) -> Self {
        Self {
            queue: Mutex::new(queue),
            files,
            tokens,
            clock: Clock::default(),
            streams: Mutex::new(HashMap::new()),
            hub: Hub::default(),
            unknown_models,
            changes: watch::channel(0).0,
        }
    }

    /// Runs `f` on the queue and wakes everyone waiting for a change.
    pub(crate) fn with_queue<T>(&self, f: impl FnOnce(&mut Queue) -> T) -> T {
        let result = f(&mut self.queue.lock().unwrap_or_else(|e| e.into_inner()));
        self.changes.send_modify(|version| *version += 1);
        result
    }

    /// Reads the queue without signalling a change.
    pub(crate) fn read_queue<T>(&self, f: impl FnOnce(&Queue) -> T) -> T {
        f(&self.queue.lock().unwrap_or_else(|e| e.into_inner()))
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    pub(crate) fn streams(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, StreamRecord>> {
        self.streams.lock().unwrap_or_else(|e| e.into_inner())
    }
}
