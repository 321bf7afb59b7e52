use kruxiaflow_worker::prelude::*;

#[activity(max_concurrency = 0, local_retries = "3")]
async fn zero() -> ActivityResult {
    ActivityResult::empty()
}

#[activity(max_concurrency = -1)]
async fn negative() -> ActivityResult {
    ActivityResult::empty()
}

fn main() {}
