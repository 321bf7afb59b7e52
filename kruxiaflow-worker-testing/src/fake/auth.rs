//! Bearer tokens: issued by the token endpoint, checked on every protected route.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::clock::Clock;

/// How the fake authenticates.
#[derive(Debug, Clone)]
pub(crate) struct AuthConfig {
    /// Accepted client credentials; `None` means dev mode (no token needed).
    pub(crate) client: Option<(String, String)>,
    pub(crate) token_lifetime: Duration,
    /// The real server accepts tokens up to 60 s after `exp`.
    pub(crate) leeway: Duration,
}

pub(crate) struct Tokens {
    config: AuthConfig,
    /// Replaces the configured client secret once it was rotated.
    rotated_secret: Mutex<Option<String>>,
    issued: Mutex<HashMap<String, Issued>>,
}

struct Issued {
    expires_at: Instant,
    forced_expired: bool,
}

/// Why a bearer token was refused; the text is the server's 401 message.
pub(crate) enum TokenError {
    Missing,
    Expired,
    Invalid,
}

impl TokenError {
    pub(crate) fn message(&self) -> &'static str {
        match self {
            Self::Missing => "Missing or invalid Authorization header. Expected: Authorization: Bearer <token>",
            Self::Expired => "Invalid token: Expired token",
            Self::Invalid => "Invalid token: Invalid token: InvalidToken",
        }
    }
}

impl Tokens {
    pub(crate) fn new(config: AuthConfig) -> Self {
        Self { config, rotated_secret: Mutex::new(None), issued: Mutex::new(HashMap::new()) }
    }

    pub(crate) fn dev_mode(&self) -> bool {
        self.config.client.is_none()
    }

    pub(crate) fn lifetime(&self) -> Duration {
        self.config.token_lifetime
    }

    pub(crate) fn credentials_match(&self, client_id: &str, client_secret: &str) -> bool {
        let rotated = self.rotated_secret.lock().unwrap_or_else(|e| e.into_inner());
        self.config.client.as_ref().is_some_and(|(id, secret)| {
            id == client_id && rotated.as_deref().unwrap_or(secret.as_str()) == client_secret
        })
    }

    /// From now on only `secret` is accepted with the client id.
    pub(crate) fn rotate_secret(&self, secret: String) {
        *self.rotated_secret.lock().unwrap_or_else(|e| e.into_inner()) = Some(secret);
    }

    pub(crate) fn issue(&self, clock: &Clock) -> String {
        let token = format!("fake.{}", Uuid::new_v4().simple());
        let issued = Issued { expires_at: clock.now() + self.config.token_lifetime, forced_expired: false };
        self.lock().insert(token.clone(), issued);
        token
    }

    /// Checks an `Authorization` header. In dev mode a missing token is fine, but a
    /// token that is present is still validated, as the real server does.
    pub(crate) fn check(&self, header: Option<&str>, clock: &Clock) -> Result<(), TokenError> {
        let token = header.and_then(bearer_token);
        let Some(token) = token else {
            return if self.dev_mode() { Ok(()) } else { Err(TokenError::Missing) };
        };
        let issued = self.lock();
        let Some(entry) = issued.get(token) else {
            return Err(TokenError::Invalid);
        };
        if entry.forced_expired || clock.now() > entry.expires_at + self.config.leeway {
            return Err(TokenError::Expired);
        }
        Ok(())
    }

    /// Every issued token is now expired (leeway does not save them).
    pub(crate) fn expire_all(&self) {
        for entry in self.lock().values_mut() {
            entry.forced_expired = true;
        }
    }

    /// Every issued token is now unknown.
    pub(crate) fn revoke_all(&self) {
        self.lock().clear();
    }

    pub(crate) fn issued_count(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Issued>> {
        self.issued.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// `Bearer <token>`, scheme case-insensitive, header longer than 7 characters.
fn bearer_token(header: &str) -> Option<&str> {
    if header.len() <= 7 || !header[..7].eq_ignore_ascii_case("bearer ") {
        return None;
    }
    let token = header[7..].trim();
    (!token.is_empty()).then_some(token)
}
