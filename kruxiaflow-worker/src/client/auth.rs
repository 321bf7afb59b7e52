//! OAuth client-credentials tokens.
//!
//! A token is used until it actually expires. Refreshing starts ahead of that, in the
//! background, and never makes a caller wait while the current token is still valid:
//! a token endpoint that hangs or fails must not stop polls, heartbeats or reports that
//! a valid token would carry. Only a caller without a valid token waits, and then for
//! one fetch at most, which has its own short timeout.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::ClientError;
use crate::config::Credentials;
use crate::protocol::{TokenRequest, TokenResponse};
use crate::text::escape_controls;

/// Refresh this long before expiry (or at half-life for short-lived tokens).
const REFRESH_MARGIN: Duration = Duration::from_secs(60);
/// A token request gets at most this long, whatever the HTTP timeout.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Background refreshes that fail are tried again this often, not on every request.
const REFRESH_RETRY: Duration = Duration::from_secs(1);
/// Lifetimes are clamped to this range: the server's number must neither overflow a
/// clock nor make a token unusable the moment it arrives.
const LIFETIME: std::ops::RangeInclusive<Duration> = Duration::from_secs(1)..=Duration::from_secs(30 * 24 * 3600);

pub(crate) struct TokenSource {
    url: String,
    request: TokenRequest,
    http: reqwest::Client,
    fetch_timeout: Duration,
    /// Fetches run here (the worker's control runtime), never on a caller's runtime.
    runtime: tokio::runtime::Handle,
    state: Mutex<State>,
    /// Bumped each time a fetch ends, successful or not.
    fetched: watch::Sender<u64>,
}

#[derive(Default)]
struct State {
    token: Option<CachedToken>,
    fetching: bool,
    last_error: Option<ClientError>,
    next_refresh: Option<Instant>,
}

struct CachedToken {
    value: Arc<str>,
    refresh_at: Instant,
    expires_at: Instant,
}

impl TokenSource {
    pub(crate) fn new(
        url: reqwest::Url,
        credentials: &Credentials,
        http: reqwest::Client,
        http_timeout: Duration,
    ) -> Self {
        Self {
            url: url.into(),
            request: TokenRequest {
                grant_type: "client_credentials".to_owned(),
                client_id: credentials.client_id.clone(),
                client_secret: credentials.client_secret().to_owned(),
            },
            http,
            fetch_timeout: http_timeout.min(FETCH_TIMEOUT),
            runtime: tokio::runtime::Handle::current(),
            state: Mutex::new(State::default()),
            fetched: watch::Sender::new(0),
        }
    }

    /// A token that has not expired: the cached one (refreshed in the background once
    /// it nears expiry), or a fresh one when there is none.
    pub(crate) async fn token(self: &Arc<Self>) -> Result<Arc<str>, ClientError> {
        let mut fetched = self.fetched.subscribe();
        {
            let mut state = self.lock();
            let now = Instant::now();
            if let Some(token) = &state.token
                && now < token.expires_at
            {
                let value = Arc::clone(&token.value);
                let refresh_due = now >= token.refresh_at && state.next_refresh.is_none_or(|at| now >= at);
                if refresh_due {
                    self.start_fetch(&mut state);
                }
                return Ok(value);
            }
            self.start_fetch(&mut state);
            fetched.borrow_and_update();
        }
        // The fetch has its own timeout, so this wait is bounded.
        let _ = fetched.changed().await;
        let state = self.lock();
        match &state.token {
            Some(token) if Instant::now() < token.expires_at => Ok(Arc::clone(&token.value)),
            _ => Err(state.last_error.clone().unwrap_or_else(|| ClientError::Unauthorized("no token".into()))),
        }
    }

    /// Forgets `rejected` so the next call fetches a new token. A token another task
    /// already replaced is left alone, so a burst of 401s causes one fetch, not many.
    pub(crate) fn invalidate(&self, rejected: &Arc<str>) {
        let mut state = self.lock();
        if state.token.as_ref().is_some_and(|t| Arc::ptr_eq(&t.value, rejected)) {
            state.token = None;
        }
    }

    fn start_fetch(self: &Arc<Self>, state: &mut State) {
        if state.fetching {
            return;
        }
        state.fetching = true;
        let this = Arc::clone(self);
        self.runtime.spawn(async move {
            let result = match tokio::time::timeout(this.fetch_timeout, this.fetch()).await {
                Ok(result) => result,
                Err(_) => Err(ClientError::Transport {
                    url: this.url.clone(),
                    detail: format!("no token within {:?}", this.fetch_timeout),
                }),
            };
            {
                let mut state = this.lock();
                state.fetching = false;
                match result {
                    Ok(token) => {
                        state.token = Some(token);
                        state.last_error = None;
                        state.next_refresh = None;
                    }
                    Err(error) => {
                        tracing::warn!(%error, "could not fetch an access token");
                        state.next_refresh = Some(Instant::now() + REFRESH_RETRY);
                        state.last_error = Some(error);
                    }
                }
            }
            this.fetched.send_modify(|n| *n = n.wrapping_add(1));
        });
    }

    async fn fetch(&self) -> Result<CachedToken, ClientError> {
        let fetched_at = Instant::now();
        let response = self
            .http
            .post(&self.url)
            .json(&self.request)
            .send()
            .await
            .map_err(|e| ClientError::transport(&self.url, &e))?;
        let status = response.status().as_u16();
        if let Some(redirect) = super::redirect_error(&self.url, &response) {
            return Err(redirect);
        }
        let body = response.bytes().await.map_err(|e| ClientError::transport(&self.url, &e))?;
        if status != 200 {
            let error = ClientError::from_body(&self.url, status, &body);
            if error.is_transient() {
                return Err(error);
            }
            if status == 404 {
                return Err(ClientError::Unauthorized(format!(
                    "the token endpoint {} answered 404: check KRUXIAFLOW_API_URL (the server's base URL, without a path such as /api/v1)",
                    self.url
                )));
            }
            return Err(ClientError::Unauthorized(format!(
                "the token endpoint refused client '{}' ({status}): {}; check KRUXIAFLOW_CLIENT_ID and KRUXIAFLOW_CLIENT_SECRET",
                escape_controls(&self.request.client_id),
                error.server_message()
            )));
        }
        let token: TokenResponse = serde_json::from_slice(&body).map_err(|e| ClientError::Decode {
            url: self.url.clone(),
            detail: format!("the token endpoint's answer is not a token: {e}"),
        })?;
        let lifetime = Duration::from_secs(token.expires_in).clamp(*LIFETIME.start(), *LIFETIME.end());
        let margin = REFRESH_MARGIN.min(lifetime / 2);
        tracing::debug!(expires_in = token.expires_in, "fetched an access token");
        Ok(CachedToken {
            value: Arc::from(token.access_token),
            refresh_at: fetched_at + (lifetime - margin),
            expires_at: fetched_at + lifetime,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Every update is a few plain assignments; a poisoned state is still consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}
