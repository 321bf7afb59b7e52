use kruxiaflow_worker::prelude::*;

#[activity(nme = "typo")]
async fn typo() -> ActivityResult {
    ActivityResult::empty()
}

fn main() {}
