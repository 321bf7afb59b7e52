//! What macro-generated code calls.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::activity::{Execute, decode_params};
use crate::context::ActivityContext;
use crate::error::ActivityError;
use crate::result::ActivityResult;

/// What an `#[activity]` function may return (without `output = ...`).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be returned by an activity",
    label = "not an activity return type",
    note = "return `ActivityResult` or `Result<ActivityResult, E>` where `E: Into<ActivityError>` (any `std::error::Error` is), or use `#[activity(output = \"name\")]` to return any `Serialize` value as one named output",
    note = "`anyhow::Error` and `Box<dyn std::error::Error + Send + Sync>` work when written out as such in the return type (`anyhow::Result<ActivityResult>` too), not through an alias"
)]
pub trait IntoActivityOutcome {
    /// Converts into what the worker reports.
    fn into_activity_outcome(self) -> Result<ActivityResult, ActivityError>;
}

impl IntoActivityOutcome for ActivityResult {
    fn into_activity_outcome(self) -> Result<ActivityResult, ActivityError> {
        Ok(self)
    }
}

impl<E: Into<ActivityError>> IntoActivityOutcome for Result<ActivityResult, E> {
    fn into_activity_outcome(self) -> Result<ActivityResult, ActivityError> {
        self.map_err(Into::into)
    }
}

/// The error of a function declared to return `anyhow::Error` or
/// `Box<dyn Error + Send + Sync>`: a retryable `EXECUTION_ERROR` with its source chain,
/// as for any `std::error::Error`.
pub fn boxed_error(error: Box<dyn std::error::Error + Send + Sync + 'static>) -> ActivityError {
    ActivityError::from_error(&*error)
}

/// Parameters an `#[activity]` function can take. Generated code names it as
/// `<Params as DecodeParams>`, so a type that cannot be decoded is reported on the
/// user's own parameter type.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be an activity's parameters",
    label = "parameters are decoded from JSON",
    note = "derive `serde::Deserialize` for `{Self}`, or take `serde_json::Value`"
)]
pub trait DecodeParams: Sized {
    /// Decodes the item's parameters (see [`decode_params`]).
    fn decode(params: Value, ctx: &ActivityContext) -> Result<Self, ActivityError>;
}

impl<T: DeserializeOwned> DecodeParams for T {
    fn decode(params: Value, ctx: &ActivityContext) -> Result<Self, ActivityError> {
        decode_params(params, ctx)
    }
}

/// The body of a derived `Activity::run`.
pub async fn run_execute<T: Execute>(
    this: &T,
    params: Value,
    ctx: ActivityContext,
) -> Result<ActivityResult, ActivityError> {
    let params = decode_params::<T::Params>(params, &ctx)?;
    this.execute(params, &ctx).await
}
