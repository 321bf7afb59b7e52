use kruxiaflow_worker::prelude::*;

#[activity(crate = "not a path")]
async fn bad_crate() -> ActivityResult {
    ActivityResult::empty()
}

fn main() {}
