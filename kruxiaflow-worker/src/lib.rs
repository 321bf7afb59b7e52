//! Write [Kruxia Flow](https://github.com/kruxia/kruxiaflow) workers in Rust.
//!
//! A worker polls the Kruxia Flow API for queued activities of its worker type, runs
//! them, and reports results, costs and failures. This crate gives you:
//!
//! - activities as plain async code with typed parameters ([`Activity`], [`Execute`],
//!   and with the default `macros` feature, `#[activity]` and `#[derive(Activity)]`);
//! - a [`WorkerManager`] that polls with bounded concurrency, heartbeats every running
//!   activity, enforces timeouts, survives panics, retries every transient HTTP failure
//!   and never drops a completion or failure report, and shuts down gracefully;
//! - an [`ActivityContext`] with the activity's identity, cancellation, heartbeats, a
//!   logger, cost/usage recording, and a [`TokenStream`] that sends output to the
//!   clients watching the activity as it is produced.
//!
//! ```no_run
//! use kruxiaflow_worker::prelude::*;
//! use kruxiaflow_worker::decode_params;
//!
//! #[derive(serde::Deserialize)]
//! struct Double { input: i64 }
//!
//! struct MyActivity;
//!
//! impl Activity for MyActivity {
//!     fn name(&self) -> &str { "my_activity" }
//!     async fn run(&self, params: serde_json::Value, ctx: ActivityContext)
//!         -> Result<ActivityResult, ActivityError> {
//!         let params: Double = decode_params(params, &ctx)?;
//!         Ok(ActivityResult::value("result", params.input * 2))
//!     }
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), WorkerError> {
//!     let config = WorkerConfig::from_env()?;
//!     let mut registry = ActivityRegistry::new();
//!     registry.register(MyActivity, &config.worker);
//!     WorkerManager::new(config, registry).run_until_shutdown().await
//! }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

// The READMEs' Rust snippets are compiled as doc tests so they cannot drift.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct CrateReadmeDoctests;

mod activity;
mod client;
pub mod config;
pub mod context;
pub mod error;
pub mod files;
mod future;
mod local_retry;
#[cfg(feature = "logging")]
pub mod logging;
mod macro_support;
mod names;
#[cfg(feature = "otel")]
pub mod otel;
mod protocol;
pub mod rate_limit;
mod registry;
mod report;
mod result;
mod settle;
pub mod steps;
pub mod stream;
mod telemetry;
mod text;
mod worker;

pub use activity::{Activity, Execute, decode_params};
pub use client::RetryPolicy;
pub use config::{ConfigError, Credentials, WorkerConfig};
pub use context::{ActivityContext, CancelReason};
pub use error::{ActivityError, WorkerError};
pub use local_retry::LocalRetry;
pub use protocol::{OutputDefinition, OutputType, UsageEntry};
pub use registry::{ActivityRegistry, RegistryError};
pub use result::{ActivityOutput, ActivityResult, Spend};
pub use stream::TokenStream;
pub use worker::{WorkerHandle, WorkerManager};

// Types of this crate's API from other crates, so that a user needs no matching
// version of those crates of their own.
pub use rust_decimal::{Decimal, dec};
pub use uuid::Uuid;

#[cfg(feature = "macros")]
pub use kruxiaflow_worker_macros::{Activity, activity};

/// Everything an activity or a worker `main` usually needs.
pub mod prelude {
    pub use crate::{
        Activity, ActivityContext, ActivityError, ActivityOutput, ActivityRegistry, ActivityResult, Decimal, Execute,
        OutputType, TokenStream, UsageEntry, Uuid, WorkerConfig, WorkerError, WorkerManager, dec,
    };

    #[cfg(feature = "macros")]
    pub use kruxiaflow_worker_macros::activity;
}

/// Runtime support for macro-generated code. Not a public API: it may change in any
/// release.
#[doc(hidden)]
pub mod __private {
    pub use serde_json::Value;

    pub use crate::activity::{Activity, Execute, decode_params};
    pub use crate::context::ActivityContext;
    pub use crate::error::ActivityError;
    pub use crate::macro_support::{DecodeParams, IntoActivityOutcome, boxed_error, run_execute};
    pub use crate::result::ActivityResult;
}

/// The settle rule, for the testing crate's `MockContext`, so that a mock's report is
/// exactly the worker's. Not a public API: it may change in any release.
#[doc(hidden)]
pub mod __testing {
    pub use crate::report::Report;
    pub use crate::settle::{Ending, HandlerOutcome, LeaseState, settle};
    pub use crate::stream::StreamSink;

    use std::sync::Arc;

    use crate::context::{ActivityContext, ActivityInfo, CancelReason, ContextBackend};
    use crate::rate_limit::RateLimit;
    use crate::stream::{StreamEnd, TokenStream};

    /// Cancels an attempt, as the worker does on a timeout, a shutdown or a lost lease.
    pub fn cancel(ctx: &ActivityContext, reason: CancelReason) {
        ctx.cancel(reason);
    }

    /// A context whose stream sends to `sink` when the activity opted in, with the
    /// rate limits `limits`.
    pub fn context_with_stream(
        info: ActivityInfo,
        backend: Arc<dyn ContextBackend>,
        sink: Arc<dyn StreamSink>,
        limits: &[(String, RateLimit)],
    ) -> ActivityContext {
        let stream =
            if crate::stream::opted_in(&info.settings) { TokenStream::to(sink) } else { TokenStream::disabled() };
        let mut rate_limits = crate::rate_limit::RateLimits::default();
        for (name, limit) in limits {
            rate_limits.insert(name, *limit);
        }
        ActivityContext::with_stream(info, backend, stream, Arc::new(rate_limits))
    }

    /// The step record: where it is, what an earlier attempt left, what a run left
    /// (of the activity (workflow id, activity id, activity key)).
    pub use crate::steps::inspect::{Recorded, earlier_record, record_file, recorded};

    /// The steps the attempt of `ctx` took, in order: `true` for one that ran, `false`
    /// for one skipped.
    pub fn steps_taken(ctx: &ActivityContext) -> Vec<(String, bool)> {
        ctx.used_journal().map(crate::steps::inspect::taken).unwrap_or_default()
    }

    /// Runs a handler as an attempt does, with its local retries.
    pub use crate::local_retry::run as run_with_local_retries;

    /// The end message a worker sends to an active stream before `report`.
    pub fn stream_end(report: Option<&Report>) -> Option<StreamEnd> {
        report.map(Report::stream_end)
    }
}
