//! Every request the fake answered, in order.

use std::sync::Mutex;
use std::time::Instant;

use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::endpoint::Endpoint;
use super::faults::Fault;

/// One request and the status it got.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RequestRecord {
    /// Position in the log, from 0.
    pub seq: u64,
    /// HTTP method.
    pub method: String,
    /// Request path.
    pub path: String,
    /// Which endpoint it was.
    pub endpoint: Endpoint,
    /// Activity id in the path, if any.
    pub activity_id: Option<Uuid>,
    /// `worker_id` of the JSON body, if any.
    pub worker_id: Option<String>,
    /// The JSON body (`None` for non-JSON bodies or bodies that did not parse).
    pub body: Option<Value>,
    /// The status answered (0 when the connection was dropped).
    pub status: u16,
    /// The fault injected into this request, if any.
    pub fault: Option<Fault>,
    /// For polls: the activities the server claimed (even when the answer was lost).
    pub claimed: Vec<Uuid>,
    /// When the request arrived.
    #[serde(skip)]
    pub at: Instant,
}

#[derive(Default)]
pub(crate) struct RequestLog {
    records: Mutex<Vec<RequestRecord>>,
}

impl RequestLog {
    /// Appends the record `record` makes for its position in the log.
    pub(crate) fn push(&self, record: impl FnOnce(u64) -> RequestRecord) {
        let mut records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        let seq = records.len() as u64;
        records.push(record(seq));
    }

    pub(crate) fn snapshot(&self) -> Vec<RequestRecord> {
        self.records.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(crate) fn len(&self) -> usize {
        self.records.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub(crate) fn clear(&self) {
        self.records.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}
