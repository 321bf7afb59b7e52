//! What the fake adds on top of the protocol model for tests: injected faults, the
//! request log and the switches tests flip. The route handlers never see it: the gate
//! applies the faults and switches and writes the log, the test-facing handles and the
//! admin routes read them.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;

use uuid::Uuid;

use super::faults::Faults;
use super::log::RequestLog;

#[derive(Default)]
pub(crate) struct Tooling {
    pub(crate) faults: Faults,
    pub(crate) log: RequestLog,
    /// While set, protected routes answer the graceful-shutdown 503.
    pub(crate) shutting_down: AtomicBool,
    /// Subscribers a test pretends watch an activity's stream
    /// (`FakeServer::set_stream_subscribers`), counted on top of the WebSocket
    /// subscribers actually connected, until the stream ends.
    pub(crate) pretended_subscribers: Mutex<HashMap<Uuid, u32>>,
}

impl Tooling {
    /// How many subscribers the test pretends watch `id`.
    pub(crate) fn pretended(&self, id: Uuid) -> u32 {
        self.pretended_subscribers.lock().unwrap_or_else(|e| e.into_inner()).get(&id).copied().unwrap_or(0)
    }

    pub(crate) fn pretend(&self, id: Uuid, subscribers: u32) {
        self.pretended_subscribers.lock().unwrap_or_else(|e| e.into_inner()).insert(id, subscribers);
    }
}
