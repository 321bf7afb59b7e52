use kruxiaflow_worker::prelude::*;

#[activity(name = "")]
async fn empty_name() -> ActivityResult {
    ActivityResult::empty()
}

fn main() {}
