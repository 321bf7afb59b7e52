use kruxiaflow_worker::prelude::*;

#[activity(name = "first", name = "second")]
async fn twice_named() -> ActivityResult {
    ActivityResult::empty()
}

fn main() {}
