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
    note = "return `ActivityResult` or `Result<ActivityResult, E>` where `E: Into<ActivityError>`, or use `#[activity(output = \"name\")]` to return any `Serialize` value as one named output"
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
