//! Durable steps under a `MockContext`: what an earlier attempt left in the activity's
//! step record, and what a run did with it.

use kruxiaflow_worker::context::Spend;
use serde::Serialize;
use serde_json::Value;

/// What an earlier attempt of the activity left in its step record, for
/// [`MockContextBuilder::resumed_from`](crate::MockContextBuilder::resumed_from): the
/// steps it completed and the checkpoint it saved.
///
/// ```
/// use kruxiaflow_worker::ActivityError;
/// use kruxiaflow_worker_testing::{EarlierAttempt, MockContext};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let mock = MockContext::builder("rust", "research")
///     .resumed_from(EarlierAttempt::new().step("plan", "three parts").checkpoint(2))
///     .build();
/// let ctx = mock.context();
/// let plan: String = ctx.step("plan", || async { Err(ActivityError::terminal("UNREACHED", "skipped")) }).await.unwrap();
/// let draft: String = ctx.step("draft", || async { Ok(format!("{plan}, drafted")) }).await.unwrap();
/// assert_eq!(draft, "three parts, drafted");
/// assert_eq!(ctx.last_checkpoint::<u32>().await, Some(2));
/// assert!(ctx.is_resumed().await);
/// assert_eq!(mock.steps_skipped(), ["plan"]);
/// assert_eq!(mock.steps_ran(), ["draft"]);
/// assert_eq!(mock.recorded_steps()["draft"], "three parts, drafted");
/// # }
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct EarlierAttempt {
    pub(crate) steps: Vec<(String, Value, Spend)>,
    pub(crate) checkpoint: Option<Value>,
    pub(crate) reported: bool,
}

impl Default for EarlierAttempt {
    fn default() -> Self {
        Self::new()
    }
}

impl EarlierAttempt {
    /// An earlier attempt that completed nothing and reported its failure (with its
    /// spend) as attempts do.
    pub fn new() -> Self {
        Self { steps: Vec::new(), checkpoint: None, reported: true }
    }

    /// It completed step `name` with `value`.
    ///
    /// # Panics
    /// If `value` cannot be serialized to JSON.
    pub fn step(self, name: &str, value: impl Serialize) -> Self {
        self.step_with_spend(name, value, Spend::default())
    }

    /// It completed step `name` with `value`, recording `spend` inside it.
    ///
    /// # Panics
    /// If `value` cannot be serialized to JSON.
    pub fn step_with_spend(mut self, name: &str, value: impl Serialize, spend: Spend) -> Self {
        let value = serde_json::to_value(value).unwrap_or_else(|e| panic!("step {name:?}: value is not JSON: {e}"));
        self.steps.push((name.to_owned(), value, spend));
        self
    }

    /// It saved `value` as its last checkpoint.
    ///
    /// # Panics
    /// If `value` cannot be serialized to JSON.
    pub fn checkpoint(mut self, value: impl Serialize) -> Self {
        self.checkpoint = Some(serde_json::to_value(value).unwrap_or_else(|e| panic!("checkpoint is not JSON: {e}")));
        self
    }

    /// It was killed before it reported (kill -9, out of memory): the spend of its
    /// steps never reached the server, so the resumed attempt reports it.
    pub fn killed(mut self) -> Self {
        self.reported = false;
        self
    }
}
