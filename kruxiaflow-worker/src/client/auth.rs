//! OAuth client-credentials tokens: fetched once for all concurrent callers, refreshed
//! before they expire and whenever the server refuses one.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

use super::ClientError;
use crate::config::Credentials;
use crate::protocol::{TokenRequest, TokenResponse};

/// Refresh this long before expiry (or at half-life for short-lived tokens).
const REFRESH_MARGIN: Duration = Duration::from_secs(60);

pub(crate) struct TokenSource {
    url: String,
    request: TokenRequest,
    // Held across the fetch: that is what makes the fetch single-flight.
    cached: Mutex<Option<CachedToken>>,
}

struct CachedToken {
    value: Arc<str>,
    refresh_at: Instant,
}

impl TokenSource {
    pub(crate) fn new(base_url: &str, credentials: &Credentials) -> Self {
        Self {
            url: format!("{base_url}/api/v1/oauth/token"),
            request: TokenRequest {
                grant_type: "client_credentials".to_owned(),
                client_id: credentials.client_id.clone(),
                client_secret: credentials.client_secret().to_owned(),
            },
            cached: Mutex::new(None),
        }
    }

    /// A token that is not about to expire.
    pub(crate) async fn token(&self, http: &reqwest::Client) -> Result<Arc<str>, ClientError> {
        let mut cached = self.cached.lock().await;
        if let Some(token) = cached.as_ref()
            && Instant::now() < token.refresh_at
        {
            return Ok(Arc::clone(&token.value));
        }
        let fresh = self.fetch(http).await?;
        let value = Arc::clone(&fresh.value);
        *cached = Some(fresh);
        Ok(value)
    }

    /// Forgets `rejected` so the next call fetches a new token. A token another task
    /// already replaced is left alone, so a burst of 401s causes one fetch, not many.
    pub(crate) async fn invalidate(&self, rejected: &Arc<str>) {
        let mut cached = self.cached.lock().await;
        if cached.as_ref().is_some_and(|t| Arc::ptr_eq(&t.value, rejected)) {
            *cached = None;
        }
    }

    async fn fetch(&self, http: &reqwest::Client) -> Result<CachedToken, ClientError> {
        let fetched_at = Instant::now();
        let response =
            http.post(&self.url).json(&self.request).send().await.map_err(|e| ClientError::transport(&self.url, &e))?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(|e| ClientError::transport(&self.url, &e))?;
        if status != 200 {
            let error = ClientError::from_body(&self.url, status, &body);
            if error.is_transient() {
                return Err(error);
            }
            return Err(ClientError::Unauthorized(format!(
                "the token endpoint refused client '{}': {}",
                self.request.client_id,
                error.server_message()
            )));
        }
        let token: TokenResponse = serde_json::from_slice(&body)
            .map_err(|e| ClientError::Decode { url: self.url.clone(), detail: e.to_string() })?;
        let lifetime = Duration::from_secs(token.expires_in);
        let margin = REFRESH_MARGIN.min(lifetime / 2);
        tracing::debug!(expires_in = token.expires_in, "fetched an access token");
        Ok(CachedToken { value: Arc::from(token.access_token), refresh_at: fetched_at + lifetime - margin })
    }
}
