//! Procedural macros for [`kruxiaflow-worker`](https://docs.rs/kruxiaflow-worker):
//! `#[activity]` and `#[derive(Activity)]`. Use them through `kruxiaflow-worker`, which
//! re-exports them and documents them with runnable examples.
#![forbid(unsafe_code)]

mod ast;
mod attr;
mod errors;
mod expand;
mod naming;
mod validate;

use proc_macro::TokenStream;

/// Turns an `async fn` into an activity.
///
/// The function becomes a value of a generated unit type of the same name that
/// implements `Activity`, so it registers like any activity; its typed body stays
/// callable as `my_activity.call(params, ctx)`. The doc comment becomes the activity's
/// description; visibility and other attributes carry over.
///
/// Arguments: at most one parameters argument (any `DeserializeOwned` type: a struct,
/// `serde_json::Value`, a map) and an optional `ActivityContext` or `&ActivityContext`,
/// in either order. Return `ActivityResult` or `Result<ActivityResult, E>` with
/// `E: Into<ActivityError>` (any `std::error::Error` is).
///
/// ```
/// use kruxiaflow_worker::prelude::*;
/// use kruxiaflow_worker_testing::MockContext;
/// use serde_json::json;
///
/// #[derive(serde::Deserialize)]
/// struct Double { input: i64 }
///
/// /// Doubles its input.
/// #[activity]
/// async fn my_activity(params: Double, ctx: ActivityContext) -> ActivityResult {
///     ctx.logger().info("doubling");
///     ActivityResult::value("result", params.input * 2)
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// assert_eq!(my_activity.name(), "my_activity");
/// assert_eq!(my_activity.description(), Some("Doubles its input."));
///
/// let mock = MockContext::new("rust", "my_activity");
/// let result = mock.run(&my_activity, json!({"input": 21})).await.unwrap();
/// assert_eq!(result.output("result"), Some(&json!(42)));
///
/// // Parameters that do not decode never reach the body.
/// let error = mock.run(&my_activity, json!({"input": "x"})).await.unwrap_err();
/// assert_eq!(error.code(), "INVALID_PARAMETERS");
/// # }
/// ```
///
/// # Options
///
/// `name = "..."` registers the activity under another name (1 to 255 letters, digits,
/// `_` or `-`):
///
/// ```
/// use kruxiaflow_worker::prelude::*;
///
/// #[activity(name = "custom_name")]
/// async fn my_func(params: serde_json::Value, ctx: &ActivityContext)
///     -> Result<ActivityResult, ActivityError> {
///     Ok(ActivityResult::value("output", "done"))
/// }
///
/// assert_eq!(my_func.name(), "custom_name");
/// ```
///
/// `output = "..."` lets the function return any `Serialize` value (or a `Result` of
/// one), reported as that single named output:
///
/// ```
/// use kruxiaflow_worker::prelude::*;
/// use kruxiaflow_worker_testing::MockContext;
/// use serde_json::json;
///
/// #[activity(output = "upper")]
/// async fn shout(params: Vec<String>) -> Result<Vec<String>, ActivityError> {
///     Ok(params.iter().map(|s| s.to_uppercase()).collect())
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let result = MockContext::new("rust", "shout").run(&shout, json!(["a", "b"])).await.unwrap();
/// assert_eq!(result.output("upper"), Some(&json!(["A", "B"])));
/// assert_eq!(shout.call(vec!["c".into()]).await.unwrap(), ["C"]);
/// # }
/// ```
///
/// `crate = "..."` points generated code at the runtime when it is reached through a
/// re-export:
///
/// ```
/// mod facade {
///     pub use kruxiaflow_worker as worker;
/// }
/// use facade::worker::{Activity, ActivityResult};
///
/// #[facade::worker::activity(crate = "crate::facade::worker")]
/// async fn through_a_facade() -> ActivityResult {
///     ActivityResult::empty()
/// }
///
/// fn main() {
///     assert_eq!(through_a_facade.name(), "through_a_facade");
/// }
/// ```
///
/// Mistakes are compile errors on the offending tokens, all reported together:
///
/// ```compile_fail
/// use kruxiaflow_worker::prelude::*;
///
/// #[activity(nme = "typo")] // unknown option `nme`; supported options: `name`, `output`, `crate`
/// fn not_async(a: i64, b: i64) -> ActivityResult { // must be `async fn`; one parameters argument
///     ActivityResult::empty()
/// }
/// ```
#[proc_macro_attribute]
pub fn activity(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::activity_fn::expand(args.into(), item.into()).into()
}

/// Implements `Activity` for a type that implements `Execute`: the type's fields are
/// its configuration, set before registration. The name defaults to the type name in
/// snake_case; the doc comment becomes the description. Works on structs (named,
/// tuple, unit, generic) and enums.
///
/// ```
/// use kruxiaflow_worker::prelude::*;
/// use kruxiaflow_worker::Activity;
/// use kruxiaflow_worker_testing::MockContext;
/// use serde_json::json;
///
/// #[derive(serde::Deserialize)]
/// struct TextParams { text: String }
///
/// /// Cuts text to a configured length.
/// #[derive(Activity)]
/// #[activity(name = "process_text")]
/// struct TextProcessor { max_length: usize, language: String }
///
/// impl Execute for TextProcessor {
///     type Params = TextParams;
///     async fn execute(&self, p: TextParams, _ctx: &ActivityContext)
///         -> Result<ActivityResult, ActivityError> {
///         let cut: String = p.text.chars().take(self.max_length).collect();
///         Ok(ActivityResult::value("text", cut))
///     }
/// }
///
/// #[derive(Activity)]
/// struct BatchProcessor { batch_size: usize }
/// # impl Execute for BatchProcessor {
/// #     type Params = ();
/// #     async fn execute(&self, _: (), _: &ActivityContext) -> Result<ActivityResult, ActivityError> {
/// #         Ok(ActivityResult::value("batch_size", self.batch_size))
/// #     }
/// # }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let processor = TextProcessor { max_length: 4, language: "es".into() };
/// assert_eq!(processor.name(), "process_text");
/// assert_eq!(BatchProcessor { batch_size: 50 }.name(), "batch_processor");
///
/// let result = MockContext::new("rust", "process_text").run(&processor, json!({"text": "hola mundo"})).await.unwrap();
/// assert_eq!(result.output("text"), Some(&json!("hola")));
/// # }
/// ```
///
/// `#[activity(crate = "...")]` points generated code at a re-exported runtime, as
/// for the attribute macro.
#[proc_macro_derive(Activity, attributes(activity))]
pub fn derive_activity(input: TokenStream) -> TokenStream {
    expand::derive::expand(input.into()).into()
}
