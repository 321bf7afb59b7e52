//! Which API endpoint a request is for, from its method and path.

use axum::http::Method;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The endpoints of the API, for fault injection and the request log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Endpoint {
    /// `POST /api/v1/oauth/token`
    Token,
    /// `POST /api/v1/workers/poll`
    Poll,
    /// `POST /api/v1/activities/{id}/heartbeat`
    Heartbeat,
    /// `POST /api/v1/activities/{id}/complete`
    Complete,
    /// `POST /api/v1/activities/{id}/fail`
    Fail,
    /// `GET /api/v1/workflows/{wf}/activities/{key}/files/{name}`
    FileDownload,
    /// `POST /api/v1/workflows/{wf}/activities/{key}/files/{name}`
    FileUpload,
    /// `GET /api/v1/activities/{id}/ws/subscribers`
    StreamSubscribers,
    /// `POST /api/v1/activities/{id}/ws/token`
    StreamToken,
    /// `POST /api/v1/activities/{id}/ws/complete`
    StreamComplete,
    /// `POST /api/v1/activities/{id}/ws/error`
    StreamError,
    /// `GET /api/v1/activities/{id}/ws` and
    /// `GET /api/v1/workflows/{wf}/activities/{key}/ws`: a client subscribing over a
    /// WebSocket (the token, if any, in the query string).
    Subscribe,
    /// `/health` and `/api/v1/info`
    Public,
    /// The fake's own admin routes under `/_fake/`.
    Admin,
    /// Anything else (answered 404 without authentication).
    Unknown,
    /// Every endpoint (for latency settings).
    Any,
}

impl Endpoint {
    /// Classifies a request; also returns the activity id in the path, if any.
    pub fn classify(method: &Method, path: &str) -> (Self, Option<Uuid>) {
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        match segments.as_slice() {
            ["api", "v1", "oauth", "token"] => (Self::Token, None),
            ["api", "v1", "workers", "poll"] => (Self::Poll, None),
            ["api", "v1", "activities", id, rest @ ..] => {
                let id = Uuid::parse_str(id).ok();
                let endpoint = match rest {
                    ["heartbeat"] => Self::Heartbeat,
                    ["complete"] => Self::Complete,
                    ["fail"] => Self::Fail,
                    ["ws"] => Self::Subscribe,
                    ["ws", "subscribers"] => Self::StreamSubscribers,
                    ["ws", "token"] => Self::StreamToken,
                    ["ws", "complete"] => Self::StreamComplete,
                    ["ws", "error"] => Self::StreamError,
                    _ => Self::Unknown,
                };
                (endpoint, id)
            }
            ["api", "v1", "workflows", _, "activities", _, "ws"] => (Self::Subscribe, None),
            ["api", "v1", "workflows", _, "activities", _, "files", _] if method == Method::GET => {
                (Self::FileDownload, None)
            }
            ["api", "v1", "workflows", _, "activities", _, "files", _] => (Self::FileUpload, None),
            ["health"] | ["api", "v1", "info"] => (Self::Public, None),
            ["_fake", ..] => (Self::Admin, None),
            _ => (Self::Unknown, None),
        }
    }

    /// Needs a bearer token (outside dev mode) and answers 503 during shutdown.
    pub fn is_protected(self) -> bool {
        !matches!(self, Self::Token | Self::Public | Self::Admin | Self::Unknown | Self::Subscribe)
    }

    /// Carries a JSON body worth recording.
    pub(crate) fn has_json_body(self) -> bool {
        matches!(
            self,
            Self::Poll
                | Self::Heartbeat
                | Self::Complete
                | Self::Fail
                | Self::StreamToken
                | Self::StreamComplete
                | Self::StreamError
        )
    }
}
