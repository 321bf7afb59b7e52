use kruxiaflow_worker::prelude::*;

#[activity]
async fn generic<T: serde::de::DeserializeOwned>(params: T) -> ActivityResult {
    let _ = params;
    ActivityResult::empty()
}

fn main() {}
