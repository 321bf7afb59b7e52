//! `llm_chat`: asks an OpenAI-compatible chat completions API for a streamed answer
//! and forwards each piece to the activity's token stream, so a chat window watching
//! the activity shows the answer as the model writes it. Works with OpenAI, a local
//! vLLM, Ollama or llama.cpp server, or any compatible gateway.
//!
//! Where to send the request comes from the parameters, else from the environment the
//! worker runs in: `base_url` / `OPENAI_BASE_URL` (default `https://api.openai.com/v1`),
//! `model` / `OPENAI_MODEL`, `api_key` / `OPENAI_API_KEY` (local servers need none),
//! `provider` / `LLM_PROVIDER` (the usage entry's provider, default `openai`).
//!
//! The worker's `OPENAI_API_KEY` goes only to the worker's base URL: a workflow whose
//! parameters name another `base_url` gets no key but the `api_key` it passes itself,
//! so a workflow author cannot collect the worker's key with a server of their own.

pub mod stand_in;

use std::time::Duration;

use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use kruxiaflow_worker::error::retry_after_of;
use kruxiaflow_worker::prelude::*;
use kruxiaflow_worker::rate_limit::RateLimit;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// A chat message, as the chat completions API takes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The text.
    pub content: String,
}

/// Parameters of `llm_chat`: a `prompt` (with an optional `system` message) or a
/// whole `messages` list, and optionally where to send it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatParams {
    /// The user's message.
    #[serde(default)]
    pub prompt: Option<String>,
    /// A system message sent before `prompt`.
    #[serde(default)]
    pub system: Option<String>,
    /// The whole conversation, instead of `prompt` and `system`.
    #[serde(default)]
    pub messages: Option<Vec<ChatMessage>>,
    /// The model; else the worker's default.
    #[serde(default)]
    pub model: Option<String>,
    /// The API's base URL (ending in `/v1`); else the worker's default.
    #[serde(default)]
    pub base_url: Option<String>,
    /// The API key; else the worker's default.
    #[serde(default)]
    pub api_key: Option<String>,
    /// Provider name for the usage entry; else the worker's default.
    #[serde(default)]
    pub provider: Option<String>,
    /// Most tokens to generate.
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// Sampling temperature.
    #[serde(default)]
    pub temperature: Option<f64>,
}

/// Where requests go when the parameters do not say.
#[derive(Clone, Default, PartialEq)]
pub struct ChatDefaults {
    /// Base URL of the API, ending in `/v1`.
    pub base_url: String,
    /// Default model.
    pub model: Option<String>,
    /// Default API key.
    pub api_key: Option<String>,
    /// Provider name for usage entries.
    pub provider: String,
}

/// OpenAI's API, the default base URL.
pub const OPENAI_BASE_URL: &str = "https://api.openai.com/v1";

impl ChatDefaults {
    /// Defaults from the worker's environment (see the module documentation).
    pub fn from_env() -> Self {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Defaults from `lookup`, which answers environment variable names.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let set = |name| lookup(name).filter(|value: &String| !value.is_empty());
        Self {
            base_url: set("OPENAI_BASE_URL").unwrap_or_else(|| OPENAI_BASE_URL.to_owned()),
            model: set("OPENAI_MODEL"),
            api_key: set("OPENAI_API_KEY"),
            provider: set("LLM_PROVIDER").unwrap_or_else(|| "openai".to_owned()),
        }
    }
}

impl std::fmt::Debug for ChatDefaults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatDefaults")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("provider", &self.provider)
            .finish()
    }
}

/// The `llm_chat` activity: `text` is the model's whole answer; each piece of it went
/// to the token stream as it arrived; the call's token usage is recorded.
#[derive(Debug, Clone, kruxiaflow_worker::Activity)]
#[activity(name = "llm_chat", local_retries = 3)]
pub struct LlmChat {
    defaults: ChatDefaults,
    http: reqwest::Client,
    /// The worker's rate limit every request acquires one unit of, if any.
    requests_limit: Option<String>,
}

/// The name of the rate limit of the requests `llm_chat` sends, when the worker sets
/// one (`LLM_REQUESTS_PER_MINUTE`).
pub const REQUESTS_LIMIT: &str = "llm-requests";

/// The rate limit of `llm_chat`'s requests from `LLM_REQUESTS_PER_MINUTE` (a positive
/// whole number), if it is set: this worker's share of the provider's quota.
pub fn requests_limit_from_env() -> Option<RateLimit> {
    let per_minute = std::env::var("LLM_REQUESTS_PER_MINUTE").ok()?.trim().parse::<u64>().ok()?;
    (per_minute > 0).then(|| RateLimit::per_minute(per_minute))
}

/// How long the API may send nothing before the answer counts as stalled.
const STALL_TIMEOUT: Duration = Duration::from_secs(60);

impl LlmChat {
    /// An activity that falls back on `defaults`.
    pub fn new(defaults: ChatDefaults) -> Self {
        // No total timeout: an answer streams for as long as it takes (the activity's
        // own timeout bounds it); a stall is caught per read instead.
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .expect("a client with rustls and default settings builds");
        Self { defaults, http, requests_limit: None }
    }

    /// Makes every request acquire one unit of the worker's rate limit `name` first.
    pub fn limited_by(mut self, name: &str) -> Self {
        self.requests_limit = Some(name.to_owned());
        self
    }
}

/// One request, with everything resolved.
struct Call {
    url: String,
    api_key: Option<String>,
    provider: String,
    model: String,
    body: Value,
}

impl LlmChat {
    fn call(&self, params: ChatParams) -> Result<Call, ActivityError> {
        let invalid = |message: &str| ActivityError::terminal("INVALID_PARAMETERS", message);
        let messages = match (params.messages, params.prompt) {
            (Some(_), Some(_)) => return Err(invalid("give either messages or prompt, not both")),
            (Some(messages), None) if !messages.is_empty() => messages,
            (None, Some(prompt)) => {
                let system = params.system.map(|content| ChatMessage { role: "system".into(), content });
                system.into_iter().chain([ChatMessage { role: "user".into(), content: prompt }]).collect()
            }
            _ => return Err(invalid("a prompt or a non-empty messages list is required")),
        };
        let model = params
            .model
            .or_else(|| self.defaults.model.clone())
            .ok_or_else(|| invalid("no model: set the model parameter, or OPENAI_MODEL for the worker"))?;
        let mut body = json!({
            "model": model,
            "messages": messages,
            "stream": true,
            "stream_options": {"include_usage": true},
        });
        if let Some(max_tokens) = params.max_tokens {
            body["max_tokens"] = json!(max_tokens);
        }
        if let Some(temperature) = params.temperature {
            body["temperature"] = json!(temperature);
        }
        let base_url = params.base_url.unwrap_or_else(|| self.defaults.base_url.clone());
        let base_url = base_url.trim_end_matches('/');
        // The worker's key is for the worker's endpoint only.
        let worker_key =
            (base_url == self.defaults.base_url.trim_end_matches('/')).then(|| self.defaults.api_key.clone()).flatten();
        Ok(Call {
            url: format!("{base_url}/chat/completions"),
            api_key: params.api_key.or(worker_key),
            provider: params.provider.unwrap_or_else(|| self.defaults.provider.clone()),
            model,
            body,
        })
    }
}

impl Execute for LlmChat {
    type Params = ChatParams;

    async fn execute(&self, params: ChatParams, ctx: &ActivityContext) -> Result<ActivityResult, ActivityError> {
        let call = self.call(params)?;
        if let Some(limit) = &self.requests_limit {
            ctx.rate_limit(limit).acquire(1).await?;
        }
        let mut request = self.http.post(&call.url).json(&call.body);
        if let Some(key) = &call.api_key {
            request = request.bearer_auth(key);
        }
        // The model's gateway, if it traces, puts its spans in this workflow's trace.
        if let Some(traceparent) = ctx.traceparent() {
            request = request.header("traceparent", traceparent);
        }
        let response = tokio::select! {
            response = request.send() => response?,
            reason = ctx.cancelled() => return Err(cancelled(reason)),
        };
        let status = response.status();
        if !status.is_success() {
            // A 429's or 503's wait, for the local retry (`local_retries = 3`).
            let retry_after = retry_after_of(&response);
            let body = response.text().await.unwrap_or_default();
            let error = refused(&call.url, status.as_u16(), &body);
            return Err(match retry_after {
                Some(delay) if error.is_retryable() => error.retry_after(delay),
                _ => error,
            });
        }

        let stream = ctx.stream();
        let mut events = response.bytes_stream().eventsource();
        let mut text = String::new();
        let mut usage = None;
        loop {
            let event = tokio::select! {
                next = tokio::time::timeout(STALL_TIMEOUT, events.next()) => next.map_err(|_| {
                    ActivityError::retryable("LLM_STREAM_STALLED", format!("{} sent nothing for {STALL_TIMEOUT:?}", call.url))
                })?,
                reason = ctx.cancelled() => return Err(cancelled(reason)),
            };
            let Some(event) = event else {
                return Err(ActivityError::retryable(
                    "LLM_STREAM_INTERRUPTED",
                    format!("{} ended its answer without [DONE] after {} characters", call.url, text.chars().count()),
                ));
            };
            let event = event.map_err(|e| ActivityError::retryable("LLM_STREAM_ERROR", e.to_string()))?;
            if event.data == "[DONE]" {
                break;
            }
            let chunk: Chunk = serde_json::from_str(&event.data).map_err(|e| {
                ActivityError::retryable("LLM_STREAM_ERROR", format!("unreadable chunk from {}: {e}", call.url))
            })?;
            if let Some(error) = chunk.error {
                return Err(ActivityError::retryable(
                    "LLM_STREAM_ERROR",
                    format!("{} failed mid-answer: {}", call.url, error.message),
                ));
            }
            for piece in chunk.choices.into_iter().filter_map(|choice| choice.delta.content) {
                stream.send(piece.as_str());
                text.push_str(&piece);
            }
            usage = chunk.usage.or(usage);
        }
        match usage {
            Some(usage) => ctx.record_usage(
                UsageEntry::new(call.provider, call.model)
                    .input_tokens(usage.prompt_tokens)
                    .output_tokens(usage.completion_tokens),
            ),
            None => ctx.logger().warning("the API sent no usage chunk; no usage is recorded for this call"),
        }
        Ok(ActivityResult::value("text", text))
    }
}

/// One `data:` event of a streamed chat completion.
#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<Usage>,
    /// Some servers report a failure mid-stream as an event of its own.
    #[serde(default)]
    error: Option<ApiError>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    delta: Delta,
}

#[derive(Deserialize, Default)]
struct Delta {
    #[serde(default)]
    content: Option<String>,
}

#[derive(Deserialize)]
struct Usage {
    prompt_tokens: u32,
    completion_tokens: u32,
}

#[derive(Deserialize)]
struct ApiError {
    message: String,
}

/// An error status from the API as the attempt's failure: throttling and server
/// trouble are worth another attempt, a refused request is not.
fn refused(url: &str, status: u16, body: &str) -> ActivityError {
    #[derive(Deserialize)]
    struct Envelope {
        error: ApiError,
    }
    let detail = serde_json::from_str::<Envelope>(body)
        .map(|e| e.error.message)
        .unwrap_or_else(|_| body.chars().take(200).collect());
    let message = format!("{url} answered {status}: {detail}");
    match status {
        429 => ActivityError::retryable("LLM_RATE_LIMITED", message),
        408 | 500..=599 => ActivityError::retryable("LLM_UNAVAILABLE", message),
        401 | 403 => ActivityError::terminal("LLM_UNAUTHORIZED", message),
        _ => ActivityError::terminal("LLM_REQUEST_REFUSED", message),
    }
}

fn cancelled(reason: kruxiaflow_worker::CancelReason) -> ActivityError {
    ActivityError::retryable("CANCELLED", format!("the answer was cut short: {reason}"))
}

/// Registers `llm_chat` under `worker`, with defaults from the environment.
pub fn register(registry: &mut ActivityRegistry, worker: &str) {
    let chat = LlmChat::new(ChatDefaults::from_env());
    let chat = if requests_limit_from_env().is_some() { chat.limited_by(REQUESTS_LIMIT) } else { chat };
    registry.register(chat, worker);
}

#[cfg(test)]
mod tests;
