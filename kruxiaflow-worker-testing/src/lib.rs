//! Test tools for [Kruxia Flow](https://github.com/kruxia/kruxiaflow) workers written
//! with `kruxiaflow-worker`:
//!
//! - [`MockContext`] runs one activity in memory, through the same JSON parameter path
//!   as production, and records its heartbeats, logs, usage and cost;
//! - [`FakeServer`] is a real HTTP server on `127.0.0.1` that speaks the worker
//!   protocol faithfully, for integration tests of whole workers, with fault injection.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
// Handlers answer refusals with `Err(Response)`, the idiomatic axum style; boxing every
// error response would only add noise to a test server.
#![allow(clippy::result_large_err)]

/// Loading the captured request/response pairs the fake is checked against: this
/// repository's own tooling, not an API.
#[doc(hidden)]
pub mod conformance;
pub mod fake;
mod mock;
mod subscriber;

pub use fake::{
    ActivitySnapshot, ChaosConfig, Completion, Endpoint, Failure, FakeServer, FakeServerBuilder, Fault, NewActivity,
    Outcome, REDIRECT_LOCATION, RequestRecord, RetrySettings, RetryStrategy, Status, Usage,
};
pub use kruxiaflow_worker::Spend;
pub use mock::{EarlierAttempt, LogLevel, LogLine, MockContext, MockContextBuilder, Report, Streamed, Upload};
pub use subscriber::{Received, StreamFrame, StreamSubscriber, SubscribeError};
