use kruxiaflow_worker::prelude::*;

#[activity(name = "process text")]
async fn spaced() -> ActivityResult {
    ActivityResult::empty()
}

fn main() {}
