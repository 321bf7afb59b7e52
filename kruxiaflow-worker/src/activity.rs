//! The traits an activity implements, and typed parameter decoding.

use std::future::Future;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::context::ActivityContext;
use crate::error::{ActivityError, codes};
use crate::future::BoxFuture;
use crate::result::ActivityResult;

/// Something the worker can run: a name and an async handler taking JSON parameters.
///
/// `#[activity]` and `#[derive(Activity)]` implement it; writing it by hand is fine too:
///
/// ```
/// use kruxiaflow_worker::prelude::*;
/// use kruxiaflow_worker::decode_params;
///
/// #[derive(serde::Deserialize)]
/// struct Double { input: i64 }
///
/// struct Doubler;
///
/// impl Activity for Doubler {
///     fn name(&self) -> &str { "double" }
///
///     async fn run(&self, params: serde_json::Value, ctx: ActivityContext)
///         -> Result<ActivityResult, ActivityError> {
///         let params: Double = decode_params(params, &ctx)?;
///         Ok(ActivityResult::value("result", params.input * 2))
///     }
/// }
///
/// let mut registry = ActivityRegistry::new();
/// registry.register(Doubler, "rust");
/// assert_eq!(registry.activity_types(), ["rust.double"]);
/// ```
pub trait Activity: Send + Sync + 'static {
    /// The activity name polled items are dispatched on.
    fn name(&self) -> &str;

    /// Human-readable description (the doc comment, with the macros).
    fn description(&self) -> Option<&str> {
        None
    }

    /// At most this many attempts of this activity run their handler at once in one
    /// worker (`#[activity(max_concurrency = N)]`); `None`, the default: no cap beyond
    /// the worker's own. An attempt over the cap waits in its slot, its lease kept.
    fn max_concurrency(&self) -> Option<usize> {
        None
    }

    /// How many times a retryable failure runs the handler again inside the same
    /// attempt, after the error's `retry_after` or a backoff, while the deadline allows
    /// (`#[activity(local_retries = N)]`); 0, the default: never.
    fn local_retries(&self) -> u32 {
        0
    }

    /// Runs one attempt with the item's raw parameters.
    fn run(
        &self,
        params: Value,
        ctx: ActivityContext,
    ) -> impl Future<Output = Result<ActivityResult, ActivityError>> + Send;
}

/// The typed handler behind `#[derive(Activity)]`: the struct's fields are its
/// configuration, `Params` its parameters. `async fn` is allowed in the impl.
///
/// ```
/// use kruxiaflow_worker::prelude::*;
///
/// #[derive(serde::Deserialize)]
/// struct TextParams { text: String }
///
/// struct TextProcessor { max_length: usize }
///
/// impl Execute for TextProcessor {
///     type Params = TextParams;
///     async fn execute(&self, p: TextParams, _ctx: &ActivityContext)
///         -> Result<ActivityResult, ActivityError> {
///         let cut: String = p.text.chars().take(self.max_length).collect();
///         Ok(ActivityResult::value("text", cut))
///     }
/// }
/// ```
pub trait Execute: Send + Sync + 'static {
    /// The parameters type, decoded from the polled item's JSON.
    type Params: DeserializeOwned + Send + 'static;

    /// Runs one attempt.
    fn execute(
        &self,
        params: Self::Params,
        ctx: &ActivityContext,
    ) -> impl Future<Output = Result<ActivityResult, ActivityError>> + Send;
}

/// Decodes `params` into `T`. On failure the error is terminal `INVALID_PARAMETERS`
/// and its message names the activity, the path of the bad field and what was
/// expected, for example:
/// `invalid parameters for activity 'rust.checkout' at items[2].price: invalid type: string "x", expected f64`.
pub fn decode_params<T: DeserializeOwned>(params: Value, ctx: &ActivityContext) -> Result<T, ActivityError> {
    serde_path_to_error::deserialize(params).map_err(|error| {
        let path = error.path().to_string();
        let location = if path == "." { "the top level".to_owned() } else { path };
        ActivityError::terminal(
            codes::INVALID_PARAMETERS,
            format!(
                "invalid parameters for activity '{}' at {location}: {}",
                ctx.info().activity_type(),
                error.inner()
            ),
        )
    })
}

/// Object-safe form of [`Activity`], so the registry can hold any of them.
pub(crate) trait DynActivity: Send + Sync + 'static {
    fn run_boxed(&self, params: Value, ctx: ActivityContext) -> BoxFuture<'_, Result<ActivityResult, ActivityError>>;
}

impl<A: Activity> DynActivity for A {
    fn run_boxed(&self, params: Value, ctx: ActivityContext) -> BoxFuture<'_, Result<ActivityResult, ActivityError>> {
        Box::pin(self.run(params, ctx))
    }
}
