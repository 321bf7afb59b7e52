//! `max_concurrency` and `local_retries`, on a function and on a derive.
use kruxiaflow_worker::prelude::*;

#[activity(name = "summarize", max_concurrency = 4, local_retries = 3)]
async fn summarize() -> ActivityResult {
    ActivityResult::empty()
}

#[activity]
async fn plain() -> ActivityResult {
    ActivityResult::empty()
}

#[derive(kruxiaflow_worker::Activity)]
#[activity(max_concurrency = 2)]
#[activity(local_retries = 0)]
struct Embedder;

impl Execute for Embedder {
    type Params = serde_json::Value;
    async fn execute(&self, _: serde_json::Value, _: &ActivityContext) -> Result<ActivityResult, ActivityError> {
        Ok(ActivityResult::empty())
    }
}

fn main() {
    assert_eq!((summarize.max_concurrency(), summarize.local_retries()), (Some(4), 3));
    assert_eq!((plain.max_concurrency(), plain.local_retries()), (None, 0));
    assert_eq!((Embedder.max_concurrency(), Embedder.local_retries()), (Some(2), 0));
}
