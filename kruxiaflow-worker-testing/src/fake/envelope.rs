//! Error responses, byte for byte as the real server sends them.

use std::collections::BTreeMap;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use uuid::Uuid;

use super::queue::Refusal;

/// `{"error":{"code":..,"message":..}}` with `status`.
pub(crate) fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (status, Json(json!({"error": {"code": code, "message": message.into()}}))).into_response()
}

/// The envelope the real server sends for `status` when a fault is injected.
pub(crate) fn for_status(status: StatusCode) -> Response {
    match status.as_u16() {
        400 => error(status, "BAD_REQUEST", "Bad request: injected fault"),
        401 => error(status, "UNAUTHORIZED", "Unauthorized: injected fault"),
        404 => error(status, "NOT_FOUND", "Not found: The requested resource was not found"),
        409 => error(status, "CONFLICT", "Conflict: injected fault"),
        429 => error(status, "RATE_LIMIT_EXCEEDED", "Rate limit exceeded: injected fault"),
        503 => error(status, "SERVICE_UNAVAILABLE", "Service unavailable: injected fault"),
        s if s >= 500 => error(status, "INTERNAL_ERROR", "Internal server error"),
        _ => error(status, "BAD_REQUEST", "Bad request: injected fault"),
    }
}

/// The graceful-shutdown 503: lowercase code, no details.
pub(crate) fn shutting_down() -> Response {
    error(StatusCode::SERVICE_UNAVAILABLE, "service_unavailable", "Server is shutting down, please retry later")
}

pub(crate) fn unauthorized(message: &str) -> Response {
    error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", format!("Unauthorized: {message}"))
}

pub(crate) fn route_not_found() -> Response {
    error(StatusCode::NOT_FOUND, "NOT_FOUND", "Not found: The requested resource was not found")
}

pub(crate) fn refusal(id: Uuid, refusal: &Refusal) -> Response {
    match refusal {
        Refusal::NotFound => error(StatusCode::NOT_FOUND, "NOT_FOUND", format!("Not found: Activity '{id}' not found")),
        Refusal::ClaimedByOther => {
            error(StatusCode::CONFLICT, "CONFLICT", "Conflict: Activity claimed by different worker")
        }
        Refusal::AlreadyCompleted => error(StatusCode::CONFLICT, "CONFLICT", "Conflict: Activity already completed"),
        Refusal::Internal => error(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR", "Internal server error"),
    }
}

/// Field validation errors, collected per field path in the order they were found.
#[derive(Default)]
pub(crate) struct FieldErrors(BTreeMap<String, Vec<String>>);

impl FieldErrors {
    pub(crate) fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.entry(field.into()).or_default().push(message.into());
    }

    /// `Ok(())` when nothing was added, else the 422 `VALIDATION_ERROR` envelope.
    pub(crate) fn into_result(self) -> Result<(), Response> {
        if self.0.is_empty() {
            return Ok(());
        }
        let field_errors: serde_json::Map<String, Value> =
            self.0.into_iter().map(|(k, v)| (k, Value::from(v))).collect();
        Err((
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"error": {
                "code": "VALIDATION_ERROR",
                "message": "Validation failed",
                "details": {"field_errors": field_errors},
            }})),
        )
            .into_response())
    }
}
