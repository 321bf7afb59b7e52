//! `POST /api/v1/oauth/token`: the client-credentials grant, JSON or form encoded.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::envelope;
use super::state::ServerState;

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum GrantType {
    ClientCredentials,
    Password,
    RefreshToken,
}

#[derive(Deserialize)]
struct TokenBody {
    grant_type: GrantType,
    client_id: Option<String>,
    client_secret: Option<String>,
}

pub(crate) async fn issue(State(state): State<Arc<ServerState>>, headers: HeaderMap, body: Bytes) -> Response {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let parsed: TokenBody = if content_type.starts_with("application/json") {
        if serde_json::from_slice::<serde_json::Value>(&body).is_err() {
            return text(StatusCode::BAD_REQUEST, "Invalid JSON: Failed to parse the request body as JSON");
        }
        match serde_json::from_slice(&body) {
            Ok(parsed) => parsed,
            Err(_) => {
                return text(
                    StatusCode::BAD_REQUEST,
                    "Invalid JSON: Failed to deserialize the JSON body into the target type",
                );
            }
        }
    } else if content_type.starts_with("application/x-www-form-urlencoded") {
        match serde_urlencoded::from_bytes(&body) {
            Ok(parsed) => parsed,
            Err(e) => return text(StatusCode::BAD_REQUEST, &format!("Invalid form data: {e}")),
        }
    } else {
        return text(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            &format!("Content-Type must be application/json or application/x-www-form-urlencoded, got: {content_type}"),
        );
    };
    match parsed.grant_type {
        GrantType::ClientCredentials => {}
        GrantType::Password => return envelope::unauthorized("Invalid username or password"),
        GrantType::RefreshToken => return envelope::unauthorized("Invalid or expired refresh token"),
    }
    let missing: Vec<&str> = [("client_id", &parsed.client_id), ("client_secret", &parsed.client_secret)]
        .into_iter()
        .filter(|(_, value)| value.as_deref().is_none_or(str::is_empty))
        .map(|(name, _)| name)
        .collect();
    if !missing.is_empty() {
        let reasons: Vec<String> =
            missing.iter().map(|f| format!("{f} is required for client_credentials grant")).collect();
        return envelope::error(StatusCode::BAD_REQUEST, "BAD_REQUEST", format!("Bad request: {}", reasons.join(", ")));
    }
    let (id, secret) = (parsed.client_id.unwrap_or_default(), parsed.client_secret.unwrap_or_default());
    if !state.tokens.credentials_match(&id, &secret) {
        return envelope::unauthorized("Invalid client credentials");
    }
    let token = state.tokens.issue(&state.clock);
    Json(json!({
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": state.tokens.lifetime().as_secs(),
    }))
    .into_response()
}

fn text(status: StatusCode, message: &str) -> Response {
    (status, message.to_owned()).into_response()
}
