//! Usage entries as the server reads them. The fake keeps its own type rather than the
//! SDK's `UsageEntry`, so that a change to what the SDK sends is judged by the fake's
//! reading of the wire, not silently shared by both sides.

use kruxiaflow_worker::UsageEntry;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// One LLM call's usage, as the server recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// `provider`.
    pub provider: String,
    /// `model`.
    pub model: String,
    /// `input_tokens` (0 when absent).
    #[serde(default)]
    pub input_tokens: u32,
    /// `output_tokens` (0 when absent).
    #[serde(default)]
    pub output_tokens: u32,
    /// `cache_read_tokens` (0 when absent).
    #[serde(default)]
    pub cache_read_tokens: u32,
    /// `cache_creation_tokens` (0 when absent).
    #[serde(default)]
    pub cache_creation_tokens: u32,
    /// `cache_storage_token_hours`, a decimal.
    #[serde(default)]
    pub cache_storage_token_hours: Option<Decimal>,
    /// `cost_usd`, a decimal.
    #[serde(default)]
    pub cost_usd: Option<Decimal>,
}

/// Compares what the server recorded with what an activity recorded.
impl PartialEq<UsageEntry> for Usage {
    fn eq(&self, entry: &UsageEntry) -> bool {
        self.provider == entry.provider
            && self.model == entry.model
            && self.input_tokens == entry.input_tokens
            && self.output_tokens == entry.output_tokens
            && self.cache_read_tokens == entry.cache_read_tokens
            && self.cache_creation_tokens == entry.cache_creation_tokens
            && self.cache_storage_token_hours == entry.cache_storage_token_hours
            && self.cost_usd == entry.cost_usd
    }
}
