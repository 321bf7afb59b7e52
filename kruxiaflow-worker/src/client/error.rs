//! How a call to the API can fail, and which failures are worth retrying.

use crate::protocol::ErrorEnvelope;
use crate::text::{escape_controls, redact_url};

/// A call to the Kruxia Flow API failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The request did not get a complete answer: connect error, reset, timeout, or a
    /// body cut short. Retried.
    #[error("could not reach the server at {url}: {detail}")]
    Transport {
        /// The request URL.
        url: String,
        /// What the HTTP stack reported.
        detail: String,
    },
    /// The server answered with a non-success status.
    #[error("{url} answered {status}: {message}")]
    Status {
        /// The request URL.
        url: String,
        /// HTTP status.
        status: u16,
        /// `error.code` of the JSON envelope, when the body was one.
        code: Option<String>,
        /// `error.message` of the envelope, or the plain-text body.
        message: String,
    },
    /// The server refused our token even after a fresh one was fetched, or the token
    /// endpoint refused the client credentials.
    #[error("authentication failed: {0}")]
    Unauthorized(String),
    /// No credentials are configured but the server demands a token.
    #[error(
        "the server requires authentication: set KRUXIAFLOW_CLIENT_ID and KRUXIAFLOW_CLIENT_SECRET (or WorkerConfig::credentials)"
    )]
    CredentialsRequired,
    /// A local file could not be read or written.
    #[error("local file {path}: {detail}")]
    LocalFile {
        /// The file.
        path: String,
        /// What the OS reported.
        detail: String,
    },
    /// The server answered with a redirect. The worker follows none: a redirect could
    /// carry the client secret or a token to another origin.
    #[error(
        "{url} answered {status} redirecting to {location}; the worker follows no redirects: point KRUXIAFLOW_API_URL at the final address"
    )]
    Redirect {
        /// The request URL.
        url: String,
        /// HTTP status (3xx).
        status: u16,
        /// The `Location` header, escaped.
        location: String,
    },
    /// A file transfer made no progress for too long.
    #[error("file transfer {url} stalled: no data for {idle:?} after {bytes} bytes")]
    Stalled {
        /// The request URL.
        url: String,
        /// Bytes moved before the stall.
        bytes: u64,
        /// How long nothing moved.
        idle: std::time::Duration,
    },
    /// A success response whose body is not what the protocol says.
    #[error("unexpected response from {url}: {detail}")]
    Decode {
        /// The request URL.
        url: String,
        /// What did not parse.
        detail: String,
    },
}

impl ClientError {
    /// Whether retrying may succeed: transport failures, 5xx, 408 and 429, and any
    /// answer that is not the server's own [verdict](Self::verdict). Every verdict but
    /// those (2xx, 404, 409, 422, 401 after a refresh, ...) is definitive.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Transport { .. } | Self::Stalled { .. } => true,
            Self::Status { status, .. } => is_transient_status(*status) || self.verdict().is_none(),
            Self::Unauthorized(_)
            | Self::CredentialsRequired
            | Self::Redirect { .. }
            | Self::Decode { .. }
            | Self::LocalFile { .. } => false,
        }
    }

    /// The status of an answer that is recognisably the Kruxia Flow server's own: one
    /// with its JSON error envelope, or one of the plain-text rejections its HTTP
    /// framework gives a request body it cannot take (400, 413, 415, 422). Any other
    /// answer — the plain-text or HTML 404, 502 or 503 a load balancer gives while the
    /// server restarts behind it — says nothing about the request: `None`.
    pub fn verdict(&self) -> Option<u16> {
        match self {
            Self::Status { status, code: Some(_), .. } => Some(*status),
            Self::Status { status: status @ (400 | 413 | 415 | 422), code: None, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether this is the server's final word on a report (complete or fail): its
    /// [verdict](Self::verdict), a 4xx about the report itself (400, 404, 409, 413,
    /// 422, ...). Everything else — transport trouble, 5xx, throttling, a proxy's
    /// answer, and trouble getting a token or being accepted with one — says nothing
    /// about the report, so it is sent again.
    pub(crate) fn settles_report(&self) -> bool {
        self.verdict()
            .is_some_and(|status| (400..500).contains(&status) && !matches!(status, 401 | 403 | 407 | 408 | 429))
    }

    /// The server's message, or this error's text.
    pub fn server_message(&self) -> String {
        match self {
            Self::Status { message, .. } => message.clone(),
            other => other.to_string(),
        }
    }

    pub(crate) fn transport(url: &str, error: &reqwest::Error) -> Self {
        let mut detail = error.to_string();
        // The URL is ours already: said once, lines stay readable.
        if let Some(request_url) = error.url() {
            detail = detail.replace(&format!(" for url ({request_url})"), "");
        }
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            detail.push_str(": ");
            detail.push_str(&cause.to_string());
            source = cause.source();
        }
        Self::Transport { url: redact_url(url).into_owned(), detail: redact_url(&detail).into_owned() }
    }

    pub(crate) fn local(path: &std::path::Path, error: &std::io::Error) -> Self {
        Self::LocalFile { path: path.display().to_string(), detail: error.to_string() }
    }

    /// Builds a status error from a response body that may or may not be the JSON
    /// envelope (framework rejections are plain text).
    pub(crate) fn from_body(url: &str, status: u16, body: &[u8]) -> Self {
        let url = &*redact_url(url);
        match serde_json::from_slice::<ErrorEnvelope>(body) {
            Ok(envelope) => Self::Status {
                url: url.to_owned(),
                status,
                code: Some(escape_controls(&envelope.error.code).into_owned()),
                message: escape_controls(&envelope.error.message).into_owned(),
            },
            Err(_) => {
                let text = String::from_utf8_lossy(body);
                let mut message: String = escape_controls(text.trim()).chars().take(500).collect();
                if message.is_empty() {
                    message = "(empty body)".to_owned();
                }
                Self::Status { url: url.to_owned(), status, code: None, message }
            }
        }
    }
}

/// 5xx, 408 Request Timeout and 429 Too Many Requests.
pub(crate) fn is_transient_status(status: u16) -> bool {
    status >= 500 || status == 408 || status == 429
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_statuses_are_5xx_408_and_429() {
        for status in [500, 502, 503, 504, 408, 429] {
            assert!(is_transient_status(status), "{status}");
        }
        for status in [200, 201, 400, 401, 403, 404, 405, 409, 413, 415, 422] {
            assert!(!is_transient_status(status), "{status}");
        }
    }

    #[test]
    fn plain_text_and_envelope_bodies_are_both_understood() {
        let envelope =
            br#"{"error":{"code":"service_unavailable","message":"Server is shutting down, please retry later"}}"#;
        let e = ClientError::from_body("u", 503, envelope);
        assert!(e.is_transient());
        assert_eq!(e.server_message(), "Server is shutting down, please retry later");
        let text = ClientError::from_body("u", 422, b"Failed to deserialize the JSON body into the target type: x");
        assert!(!text.is_transient());
        assert_eq!(text.server_message(), "Failed to deserialize the JSON body into the target type: x");
        assert!(matches!(text, ClientError::Status { code: None, .. }));
    }

    #[test]
    fn only_transport_and_transient_statuses_retry() {
        assert!(ClientError::Transport { url: "u".into(), detail: "reset".into() }.is_transient());
        assert!(!ClientError::Unauthorized("no".into()).is_transient());
        assert!(!ClientError::CredentialsRequired.is_transient());
        assert!(!ClientError::Decode { url: "u".into(), detail: "x".into() }.is_transient());
    }

    fn envelope(status: u16) -> ClientError {
        ClientError::from_body("u", status, br#"{"error":{"code":"X","message":"m"}}"#)
    }

    #[test]
    fn a_report_is_settled_only_by_the_servers_answer_about_the_report() {
        for status in [400, 404, 409, 413, 422] {
            assert!(envelope(status).settles_report(), "{status}");
        }
        for status in [400, 413, 415, 422] {
            assert!(ClientError::from_body("u", status, b"Failed to parse").settles_report(), "{status}");
        }
        for status in [401, 403, 408, 429, 500, 503] {
            assert!(!envelope(status).settles_report(), "{status}");
        }
        assert!(!ClientError::Unauthorized("token endpoint answered 401".into()).settles_report());
        assert!(!ClientError::Decode { url: "token".into(), detail: "html".into() }.settles_report());
        let redirect = ClientError::Redirect { url: "u".into(), status: 307, location: "x".into() };
        assert!(!redirect.settles_report());
    }

    #[test]
    fn a_proxys_plain_text_answer_is_no_verdict_and_is_retried() {
        for status in [401, 403, 404, 405, 409, 410, 502, 503] {
            let proxy = ClientError::from_body("u", status, b"<html>no healthy upstream</html>");
            assert_eq!(proxy.verdict(), None, "{status}");
            assert!(proxy.is_transient(), "{status}");
            assert!(!proxy.settles_report(), "{status}");
        }
        assert_eq!(envelope(404).verdict(), Some(404));
        assert!(!envelope(404).is_transient());
        assert_eq!(ClientError::from_body("u", 422, b"Failed to deserialize").verdict(), Some(422));
    }

    #[test]
    fn server_text_cannot_forge_log_lines() {
        let e = ClientError::from_body("u", 500, b"oops\nERROR forged\x1b[2J");
        assert_eq!(e.server_message(), "oops\\nERROR forged\\u{1b}[2J");
    }
}
