//! OAuth client-credentials tokens.
//!
//! A token is used until it actually expires. Refreshing starts ahead of that, in the
//! background, and never makes a caller wait while the current token is still valid:
//! a token endpoint that hangs or fails must not stop polls, heartbeats or reports that
//! a valid token would carry. Only a caller without a valid token waits, and then for
//! one fetch at most, which has its own short timeout.
//!
//! A 401 does not throw the token away either: the token stays in use while one fetch
//! (per refused token, never more) looks for a new one, and only the refused request
//! waits for it. A 401 from a streaming endpoint for a token the server accepts
//! elsewhere says the stream is not allowed, not that the token is stale: it refreshes
//! nothing.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::ClientError;
use crate::config::{Credentials, env};
use crate::protocol::{TokenRequest, TokenResponse};
use crate::text::{escape_controls, redact_url};

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
    client_id: String,
    secret: Mutex<String>,
    /// Read again when the token endpoint refuses the secret.
    secret_file: Option<PathBuf>,
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
    value: Arc<Token>,
    refresh_at: Instant,
    expires_at: Instant,
}

/// A bearer token and what the server said of it.
pub(crate) struct Token {
    value: Box<str>,
    /// The server answered a request carrying it with something other than 401.
    accepted: AtomicBool,
    /// A 401 for it has asked for a new token (once per token).
    refused: AtomicBool,
}

impl Token {
    fn new(value: String) -> Self {
        Self { value: value.into(), accepted: AtomicBool::new(false), refused: AtomicBool::new(false) }
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.value
    }

    /// The server took a request carrying this token.
    pub(crate) fn accepted(&self) {
        if !self.accepted.load(Ordering::Relaxed) {
            self.accepted.store(true, Ordering::Relaxed);
        }
    }
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
            client_id: credentials.client_id.clone(),
            secret: Mutex::new(credentials.client_secret().to_owned()),
            secret_file: credentials.secret_file().map(ToOwned::to_owned),
            http,
            fetch_timeout: http_timeout.min(FETCH_TIMEOUT),
            runtime: tokio::runtime::Handle::current(),
            state: Mutex::new(State::default()),
            fetched: watch::Sender::new(0),
        }
    }

    /// A token that has not expired: the cached one (refreshed in the background once
    /// it nears expiry), or a fresh one when there is none.
    pub(crate) async fn token(self: &Arc<Self>) -> Result<Arc<Token>, ClientError> {
        let mut fetched = self.fetched.subscribe();
        {
            let mut state = self.lock();
            let now = Instant::now();
            if let Some(token) = &state.token
                && now < token.expires_at
            {
                let value = Arc::clone(&token.value);
                let stale = now >= token.refresh_at || value.refused.load(Ordering::Relaxed);
                if stale && state.next_refresh.is_none_or(|at| now >= at) {
                    self.start_fetch(&mut state);
                }
                return Ok(value);
            }
            self.start_fetch(&mut state);
            fetched.borrow_and_update();
        }
        // The fetch has its own timeout, so this wait is bounded.
        let _ = fetched.changed().await;
        self.current_other_than(None)
    }

    /// A token to try again with after the server refused `refused` (401) on a
    /// request, `streaming` telling whether that was a streaming endpoint.
    ///
    /// A newer token, if there is one. Otherwise the first 401 for a token starts one
    /// fetch and waits for it; later ones wait for that fetch or, once it failed, start
    /// another no more often than background refreshes do. Meanwhile everyone else
    /// keeps using the refused token, which may still be good for them. A streaming
    /// endpoint's 401 for a token the server accepts elsewhere fetches nothing.
    pub(crate) async fn after_refusal(
        self: &Arc<Self>,
        refused: &Arc<Token>,
        streaming: bool,
    ) -> Result<Arc<Token>, ClientError> {
        let mut fetched = self.fetched.subscribe();
        {
            let mut state = self.lock();
            let now = Instant::now();
            if let Some(current) = &state.token
                && !Arc::ptr_eq(&current.value, refused)
                && now < current.expires_at
            {
                return Ok(Arc::clone(&current.value));
            }
            if streaming && refused.accepted.load(Ordering::Relaxed) {
                return Err(ClientError::Unauthorized(
                    "the streaming endpoint refused a token the server accepts for polls and reports".to_owned(),
                ));
            }
            let first_refusal = !refused.refused.swap(true, Ordering::Relaxed);
            let may_fetch = first_refusal || state.next_refresh.is_none_or(|at| now >= at);
            if !state.fetching && !may_fetch {
                return Err(state.last_error.clone().unwrap_or_else(|| {
                    ClientError::Unauthorized("the server refused the token and no newer one is available yet".into())
                }));
            }
            self.start_fetch(&mut state);
            fetched.borrow_and_update();
        }
        let _ = fetched.changed().await;
        self.current_other_than(Some(refused))
    }

    /// The cached token if it is valid (and not `refused`), else why there is none.
    fn current_other_than(&self, refused: Option<&Arc<Token>>) -> Result<Arc<Token>, ClientError> {
        let state = self.lock();
        match &state.token {
            Some(token)
                if Instant::now() < token.expires_at && refused.is_none_or(|r| !Arc::ptr_eq(r, &token.value)) =>
            {
                Ok(Arc::clone(&token.value))
            }
            _ => Err(state.last_error.clone().unwrap_or_else(|| ClientError::Unauthorized("no token".into()))),
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
                    url: redact_url(&this.url).into_owned(),
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

    /// Fetches a token; when the endpoint refuses the secret and the secret came from
    /// a file whose content has changed since, once more with the new secret.
    async fn fetch(&self) -> Result<CachedToken, ClientError> {
        match self.fetch_once().await {
            Err(ClientError::Unauthorized(reason)) if self.reread_secret() => {
                tracing::info!(%reason, "the client secret file changed; fetching a token with the new secret");
                self.fetch_once().await
            }
            other => other,
        }
    }

    /// Reads the secret file again; whether it holds a new secret.
    fn reread_secret(&self) -> bool {
        let Some(path) = &self.secret_file else { return false };
        match crate::config::read_secret(path) {
            Ok(secret) => {
                let mut current = self.secret.lock().unwrap_or_else(|e| e.into_inner());
                let changed = *current != secret;
                *current = secret;
                changed
            }
            Err(error) => {
                tracing::warn!(%error, "could not read the client secret file again");
                false
            }
        }
    }

    async fn fetch_once(&self) -> Result<CachedToken, ClientError> {
        let fetched_at = Instant::now();
        let request = TokenRequest {
            grant_type: "client_credentials".to_owned(),
            client_id: self.client_id.clone(),
            client_secret: self.secret.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        };
        let response =
            self.http.post(&self.url).json(&request).send().await.map_err(|e| ClientError::transport(&self.url, &e))?;
        let status = response.status().as_u16();
        if let Some(redirect) = super::redirect_error(&self.url, &response) {
            return Err(redirect);
        }
        let body = response.bytes().await.map_err(|e| ClientError::transport(&self.url, &e))?;
        if status != 200 {
            let error = ClientError::from_body(&self.url, status, &body);
            // A proxy's page, or trouble on the server's side: not a verdict on us.
            if error.is_transient() {
                return Err(error);
            }
            if status == 404 {
                return Err(ClientError::Unauthorized(format!(
                    "the token endpoint {} answered 404: check KRUXIAFLOW_API_URL (the server's base URL, without a path such as /api/v1)",
                    redact_url(&self.url)
                )));
            }
            let secret_variable = if self.secret_file.is_some() { env::CLIENT_SECRET_FILE } else { env::CLIENT_SECRET };
            return Err(ClientError::Unauthorized(format!(
                "the token endpoint refused client '{}' ({status}): {}; check {} and {secret_variable}",
                escape_controls(&self.client_id),
                error.server_message(),
                env::CLIENT_ID,
            )));
        }
        let token: TokenResponse = serde_json::from_slice(&body).map_err(|e| ClientError::Decode {
            url: redact_url(&self.url).into_owned(),
            detail: format!("the token endpoint's answer is not a token: {e}"),
        })?;
        let lifetime = Duration::from_secs(token.expires_in).clamp(*LIFETIME.start(), *LIFETIME.end());
        let margin = REFRESH_MARGIN.min(lifetime / 2);
        tracing::debug!(expires_in = token.expires_in, "fetched an access token");
        Ok(CachedToken {
            value: Arc::new(Token::new(token.access_token)),
            refresh_at: fetched_at + (lifetime - margin),
            expires_at: fetched_at + lifetime,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Every update is a few plain assignments; a poisoned state is still consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}
