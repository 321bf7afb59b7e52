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
    /// `/health`
    Public,
    /// The fake's own admin routes under `/_fake/`.
    Admin,
    /// Anything else (answered 404 without authentication).
    Unknown,
    /// Every endpoint (for latency settings).
    Any,
}

/// The API's routes: the router is built from this table and every request is named
/// by the route it matched, so the two cannot disagree. A path may serve several
/// endpoints, told apart by method.
pub(crate) const ROUTES: &[(&str, Method, Endpoint)] = &[
    ("/api/v1/oauth/token", Method::POST, Endpoint::Token),
    ("/api/v1/workers/poll", Method::POST, Endpoint::Poll),
    ("/api/v1/activities/{id}/heartbeat", Method::POST, Endpoint::Heartbeat),
    ("/api/v1/activities/{id}/complete", Method::POST, Endpoint::Complete),
    ("/api/v1/activities/{id}/fail", Method::POST, Endpoint::Fail),
    ("/api/v1/activities/{id}/ws/subscribers", Method::GET, Endpoint::StreamSubscribers),
    ("/api/v1/activities/{id}/ws/token", Method::POST, Endpoint::StreamToken),
    ("/api/v1/activities/{id}/ws/complete", Method::POST, Endpoint::StreamComplete),
    ("/api/v1/activities/{id}/ws/error", Method::POST, Endpoint::StreamError),
    ("/api/v1/activities/{id}/ws", Method::GET, Endpoint::Subscribe),
    (SUBSCRIBE_BY_KEY, Method::GET, Endpoint::Subscribe),
    ("/api/v1/workflows/{workflow_id}/activities/{activity_key}/files/{filename}", Method::GET, Endpoint::FileDownload),
    ("/api/v1/workflows/{workflow_id}/activities/{activity_key}/files/{filename}", Method::POST, Endpoint::FileUpload),
    ("/health", Method::GET, Endpoint::Public),
];

/// The second route of [`Endpoint::Subscribe`].
pub(crate) const SUBSCRIBE_BY_KEY: &str = "/api/v1/workflows/{workflow_id}/activities/{activity_key}/ws";

/// Where the activity id sits in the routes that carry one.
const ACTIVITY_ROUTE: &str = "/api/v1/activities/{id}/";

impl Endpoint {
    /// The endpoint of a request to `path` that matched the route `matched` (`None`:
    /// no route matched); also the activity id in the path, if the route has one.
    pub(crate) fn of(method: &Method, matched: Option<&str>, path: &str) -> (Self, Option<Uuid>) {
        let Some(matched) = matched else { return (Self::Unknown, None) };
        if matched.starts_with("/_fake/") {
            return (Self::Admin, None);
        }
        let on_path = ROUTES.iter().filter(|(route, ..)| *route == matched);
        let endpoint = on_path
            .clone()
            .find(|(_, route_method, _)| route_method == method)
            .or_else(|| on_path.clone().next())
            .map_or(Self::Unknown, |(_, _, endpoint)| *endpoint);
        let id = matched
            .starts_with(ACTIVITY_ROUTE)
            .then(|| path.trim_start_matches('/').split('/').nth(3).and_then(|id| Uuid::parse_str(id).ok()))
            .flatten();
        (endpoint, id)
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
